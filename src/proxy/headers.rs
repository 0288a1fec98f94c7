//! Header rewriting on the way upstream and back: hop-by-hop removal (RFC 9110 §7.6.1) and the
//! X-Forwarded-* / Forwarded family, trusted only from configured proxies.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Headers that describe one connection and are never forwarded.
const HOP_COUNT: usize = 8;
static HOP_BY_HOP: [HeaderName; HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];
/// Where `Upgrade` is counted, after the names of `HOP_BY_HOP`.
const UPGRADE_INDEX: usize = HOP_COUNT;

/// What a header name means to the rewrites: a hop-by-hop name (its index in `HOP_BY_HOP`,
/// [`UPGRADE_INDEX`] for `Upgrade`), one of the forwarded family, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameClass {
    Hop(usize),
    Forwarded,
    EndToEnd,
}

/// The class of `name`. A `match` on the (always lowercase) name compiles to a length switch and
/// a few byte comparisons, so an end-to-end name costs about one comparison.
fn name_class(name: &HeaderName) -> NameClass {
    match name.as_str() {
        "connection" => NameClass::Hop(0),
        "keep-alive" => NameClass::Hop(1),
        "proxy-connection" => NameClass::Hop(2),
        "proxy-authenticate" => NameClass::Hop(3),
        "proxy-authorization" => NameClass::Hop(4),
        "te" => NameClass::Hop(5),
        "trailer" => NameClass::Hop(6),
        "transfer-encoding" => NameClass::Hop(7),
        "upgrade" => NameClass::Hop(UPGRADE_INDEX),
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "x-real-ip"
        | "forwarded" => NameClass::Forwarded,
        _ => NameClass::EndToEnd,
    }
}

/// What one pass over a message's header names found: which hop-by-hop headers are present and
/// whether any forwarded header is. Taken once per request, it serves the upgrade check, the
/// hop-by-hop stripping and the forwarded-header policy, which would otherwise each walk the
/// names or hash a lookup of their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderScan {
    /// `HOP_BY_HOP`'s names, then `Upgrade`.
    hop: [bool; HOP_COUNT + 1],
    forwarded: bool,
}

impl HeaderScan {
    /// Scans the names of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut scan = Self::default();
        for name in headers.keys() {
            match name_class(name) {
                NameClass::Hop(i) => scan.hop[i] = true,
                NameClass::Forwarded => scan.forwarded = true,
                NameClass::EndToEnd => {}
            }
        }
        scan
    }

    /// Whether any hop-by-hop header (`Upgrade` included) is present.
    fn any_hop(&self) -> bool {
        self.hop.contains(&true)
    }

    /// Whether `Connection` is present: it may name further headers, Host among them, that
    /// the stripping then removes.
    pub fn has_connection(&self) -> bool {
        self.hop[0]
    }

    /// Whether any of the forwarded family (X-Forwarded-*, X-Real-IP, Forwarded) is present.
    pub fn forwarded(&self) -> bool {
        self.forwarded
    }

    /// Whether the scanned request asks to switch protocols (HTTP/1.1 `Upgrade` and a
    /// `Connection` that names `upgrade`); `headers` must be the ones scanned.
    pub fn is_upgrade_request(&self, headers: &HeaderMap) -> bool {
        self.hop[UPGRADE_INDEX]
            && self.hop[0]
            && headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// Every header a client could use to claim another origin; dropped from untrusted peers.
const FORWARDED_FAMILY: [HeaderName; 5] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_REAL_IP,
    header::FORWARDED,
];

/// Removes hop-by-hop headers, including those named in `Connection`. When `keep_upgrade` is
/// set (a WebSocket or other protocol upgrade being tunnelled), `Connection: upgrade` and
/// `Upgrade` are kept.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    strip_scanned(headers, &HeaderScan::of(headers), keep_upgrade);
}

/// [`strip_hop_by_hop`] with the names already scanned (`scan` must be of `headers`).
pub fn strip_scanned(headers: &mut HeaderMap, scan: &HeaderScan, keep_upgrade: bool) {
    // The scan (no hashing, no allocation) found which of the fixed hop-by-hop headers are
    // present; usually none (most requests) or only `Connection: keep-alive` (most upstream
    // responses).
    if !scan.any_hop() && !keep_upgrade {
        return;
    }
    let present = scan.hop;
    let upgrade = present[UPGRADE_INDEX];
    // `Connection` is the first of `HOP_BY_HOP`; without it nothing more is named. Read and
    // removed through one lookup, so the fixed names that follow start after it.
    let named = if present[0] {
        take_connection(headers, keep_upgrade)
    } else {
        Vec::new()
    };
    let fixed = HOP_BY_HOP
        .iter()
        .zip(present)
        .skip(1)
        .filter_map(|(h, p)| p.then_some(h));
    for name in named.iter().chain(fixed) {
        if keep_upgrade && (name == header::UPGRADE || name == header::CONNECTION) {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// The `Connection` tokens that name no header to remove.
const CONNECTION_OPTIONS: [&str; 3] = ["keep-alive", "close", "upgrade"];

/// Removes `Connection` (unless `keep_upgrade`) and returns the extra headers it names as
/// hop-by-hop.
fn take_connection(headers: &mut HeaderMap, keep_upgrade: bool) -> Vec<HeaderName> {
    let header::Entry::Occupied(entry) = headers.entry(header::CONNECTION) else {
        return Vec::new();
    };
    let named = connection_named(|| entry.iter());
    if !keep_upgrade {
        entry.remove();
    }
    named
}

/// Extra headers that the `Connection` lines from `lines` name as hop-by-hop. Its usual tokens
/// (`keep-alive`, `close`, `upgrade`) name nothing more to remove, so the common case allocates
/// nothing; a lone `Connection: keep-alive` (most upstream responses) is recognised without
/// splitting.
fn connection_named<'a, I>(lines: impl Fn() -> I) -> Vec<HeaderName>
where
    I: Iterator<Item = &'a HeaderValue>,
{
    let is_named = |t: &str| {
        !t.is_empty()
            && !CONNECTION_OPTIONS
                .iter()
                .any(|known| t.eq_ignore_ascii_case(known))
    };
    let mut first = lines();
    if let (Some(only), None) = (first.next(), first.next())
        && !is_named(only.to_str().unwrap_or_default())
    {
        return Vec::new();
    }
    lines()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| is_named(t))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect()
}

/// What the proxy knows about the client side of a request: one per client connection, shared
/// by its requests.
#[derive(Debug)]
pub struct ClientInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The peer's address as an X-Forwarded-For value, written once per connection: every
    /// request on it then shares the value instead of formatting and allocating its own.
    peer_value: HeaderValue,
    /// The connection's upstream response deadline timer, reused request after request.
    pub(super) response_timer: super::timer::ResponseTimer,
}

impl ClientInfo {
    /// The client at `peer`, over TLS or not.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        Self {
            peer,
            tls,
            peer_value: ip_value(canonical(peer.ip())),
            response_timer: super::timer::ResponseTimer::default(),
        }
    }
}

/// The forwarded-header policy from config.
#[derive(Debug, Clone, Default)]
pub struct ForwardedPolicy {
    /// Peers whose forwarded headers are kept and extended.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether to send RFC 7239 `Forwarded` too.
    pub forwarded_header: bool,
}

impl ForwardedPolicy {
    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Sets X-Forwarded-For/-Proto/-Host (and `Forwarded` if configured). From an untrusted
    /// peer every client-supplied forwarded header is dropped first, so it cannot spoof them.
    /// `host` is the Host the client asked for; `sent_forwarded` is whether the client sent any
    /// of the forwarded family ([`HeaderScan::forwarded`]). A client that sent none (the usual
    /// case) costs no removals and no lookups.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        client: &ClientInfo,
        host: Option<&HeaderValue>,
        sent_forwarded: bool,
    ) {
        let peer_ip = canonical(client.peer.ip());
        if sent_forwarded && !self.trusts(peer_ip) {
            for name in &FORWARDED_FAMILY {
                headers.remove(name);
            }
        }
        let proto = if client.tls { "https" } else { "http" };
        let prior = if sent_forwarded {
            joined(headers, &X_FORWARDED_FOR)
        } else {
            None
        };
        let xff = match prior {
            Some(prior) => appended(&prior, peer_ip),
            None => Some(client.peer_value.clone()),
        };
        if let Some(v) = xff {
            headers.insert(X_FORWARDED_FOR, v);
        }
        if !sent_forwarded || !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if let Some(host) = host
            && (!sent_forwarded || !headers.contains_key(&X_FORWARDED_HOST))
        {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        if self.forwarded_header {
            self.append_forwarded(headers, peer_ip, proto, host);
        }
    }

    #[cold]
    #[inline(never)]
    fn append_forwarded(
        &self,
        headers: &mut HeaderMap,
        peer_ip: IpAddr,
        proto: &str,
        host: Option<&HeaderValue>,
    ) {
        let node = match peer_ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("\"[{ip}]\""),
        };
        let mut element = format!("for={node};proto={proto}");
        if let Some(host) = host.and_then(|h| h.to_str().ok()) {
            element.push_str(&format!(";host=\"{}\"", host.replace(['"', '\\'], "")));
        }
        let value = match joined(headers, &header::FORWARDED) {
            Some(prior) => format!("{prior}, {element}"),
            None => element,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(header::FORWARDED, v);
        }
    }
}

/// `prior` with `ip` appended, as a trusted proxy's X-Forwarded-For is extended.
#[cold]
#[inline(never)]
fn appended(prior: &str, ip: IpAddr) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{prior}, {ip}")).ok()
}

/// All values of a header joined by ", " (several header lines are one list). Only for clients
/// that sent forwarded headers themselves, so out of line.
#[cold]
#[inline(never)]
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// `ip` as a header value. IPv4 is written digit by digit: `Display` for addresses goes
/// through the formatter's padding machinery, a measurable share of a proxied request.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static(""));
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            text[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static(""))
}

/// IPv4-mapped IPv6 addresses are compared and reported as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The policy applied as the forwarder applies it: after a scan of the names.
    fn apply(
        policy: &ForwardedPolicy,
        h: &mut HeaderMap,
        client: &ClientInfo,
        host: Option<&HeaderValue>,
    ) {
        let sent_forwarded = HeaderScan::of(h).forwarded();
        policy.apply(h, client, host, sent_forwarded);
    }

    fn client(ip: &str) -> ClientInfo {
        ClientInfo::new(SocketAddr::new(ip.parse().unwrap(), 4000), false)
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-end-to-end", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-end-to-end"));
    }

    #[test]
    fn name_class_names_every_hop_by_hop_and_forwarded_header_and_nothing_else() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(name_class(name), NameClass::Hop(i), "{name}");
        }
        assert_eq!(name_class(&header::UPGRADE), NameClass::Hop(UPGRADE_INDEX));
        for name in &FORWARDED_FAMILY {
            assert_eq!(name_class(name), NameClass::Forwarded, "{name}");
        }
        for name in [
            header::HOST,
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-forwarded-port"),
        ] {
            assert_eq!(name_class(&name), NameClass::EndToEnd, "{name}");
        }
    }

    #[test]
    fn one_scan_tells_upgrade_requests_hop_by_hop_and_forwarded_headers_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.example"));
        let scan = HeaderScan::of(&h);
        assert!(!scan.any_hop() && !scan.forwarded && !scan.is_upgrade_request(&h));

        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(
            !HeaderScan::of(&h).is_upgrade_request(&h),
            "Upgrade without Connection"
        );
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        let scan = HeaderScan::of(&h);
        assert!(scan.any_hop() && scan.is_upgrade_request(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(
            !HeaderScan::of(&h).is_upgrade_request(&h),
            "Connection does not name upgrade"
        );

        h.insert(X_REAL_IP, HeaderValue::from_static("192.0.2.1"));
        assert!(HeaderScan::of(&h).forwarded);
    }

    #[test]
    fn a_lone_connection_option_names_nothing_and_a_header_name_is_named() {
        for (value, named) in [
            ("keep-alive", vec![]),
            ("Close", vec![]),
            ("x-hop", vec!["x-hop"]),
            ("keep-alive, X-Hop", vec!["x-hop"]),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_static(value));
            let got: Vec<String> = take_connection(&mut h, false)
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(got, named, "Connection: {value}");
            assert!(h.is_empty(), "Connection: {value} left in place");
        }
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("close"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("x-second-line"),
        );
        assert_eq!(
            take_connection(&mut h, true),
            vec![HeaderName::from_static("x-second-line")]
        );
        assert_eq!(
            h.get_all(header::CONNECTION).iter().count(),
            2,
            "kept for the upgrade"
        );
    }

    #[test]
    fn untrusted_peer_cannot_spoof_forwarded_headers() {
        let policy = ForwardedPolicy {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            forwarded_header: true,
        };
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        h.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4"));
        let host = HeaderValue::from_static("app.example");
        apply(&policy, &mut h, &client("192.0.2.7"), Some(&host));
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "app.example");
        assert_eq!(
            h[header::FORWARDED],
            "for=192.0.2.7;proto=http;host=\"app.example\""
        );
    }

    #[test]
    fn ip_values_match_display() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(ip), ip.to_string().as_str());
        }
    }

    #[test]
    fn connection_keep_alive_is_removed_and_named_headers_too() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, X-Hop"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert!(!h.contains_key("x-hop"));
    }

    #[test]
    fn a_connection_names_its_peer_in_canonical_form_on_every_request() {
        let policy = ForwardedPolicy::default();
        let client = client("::ffff:192.0.2.9");
        for _ in 0..2 {
            let mut h = HeaderMap::new();
            apply(&policy, &mut h, &client, None);
            assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.9");
        }
        let mut h = HeaderMap::new();
        apply(&policy, &mut h, &self::client("2001:db8::7"), None);
        assert_eq!(h[&X_FORWARDED_FOR], "2001:db8::7");
    }

    #[test]
    fn trusted_peer_is_appended() {
        let policy = ForwardedPolicy {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            forwarded_header: false,
        };
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        apply(&policy, &mut h, &client("::ffff:10.1.2.3"), None);
        assert_eq!(h[&X_FORWARDED_FOR], "1.2.3.4, 10.1.2.3");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
    }
}
