//! Header rewriting on the way upstream and back: hop-by-hop removal (RFC 9110 §7.6.1), the
//! X-Forwarded-* / Forwarded family and other headers a client could use to claim another
//! origin, trusted only from configured proxies, and the upgrade allow-list.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use super::config::{DEFAULT_UNTRUSTED_DROP_HEADERS, ForwardingConfig, ProxyConfigError};
use super::error::ClientError;
pub(crate) use super::scan::contains_byte;

/// Headers that describe one connection and are never forwarded. `HTTP2-Settings` belongs to
/// an h2c upgrade (RFC 7540 §3.2.1), which is never tunnelled.
const HOP_COUNT: usize = 9;
static HOP_BY_HOP: [HeaderName; HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("http2-settings"),
];
/// Where `Transfer-Encoding` is in `HOP_BY_HOP`.
const TRANSFER_ENCODING_INDEX: usize = 7;
/// Where `Upgrade` is counted, after the names of `HOP_BY_HOP`.
const UPGRADE_INDEX: usize = HOP_COUNT;

/// What a header name means to the rewrites: a hop-by-hop name (its index in `HOP_BY_HOP`,
/// [`UPGRADE_INDEX`] for `Upgrade`), one of the forwarded family, another of the default
/// `forwarding.untrusted_drop_headers`, a name with an underscore, or none of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameClass {
    Hop(usize),
    Forwarded,
    Spoofable,
    Underscore,
    EndToEnd,
}

/// The default `forwarding.untrusted_drop_headers` that are not of the forwarded family (which
/// is always dropped from untrusted peers, and then set afresh).
const DEFAULT_SPOOFABLE: [HeaderName; 8] = [
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// The class of `name`. A `match` on the (always lowercase) name compiles to a length switch and
/// a few byte comparisons, so an end-to-end name costs about one comparison, and a byte scan
/// for an underscore (CGI maps `X_Forwarded_For` and `X-Forwarded-For` to the same variable).
fn name_class(name: &HeaderName) -> NameClass {
    let name = name.as_str();
    if let Some(i) = hop_index(name) {
        return NameClass::Hop(i);
    }
    match name {
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "x-real-ip"
        | "forwarded" => NameClass::Forwarded,
        "x-forwarded-port" | "x-forwarded-prefix" | "x-forwarded-server" | "x-client-ip"
        | "true-client-ip" | "cf-connecting-ip" | "x-original-url" | "x-rewrite-url" => {
            NameClass::Spoofable
        }
        other if contains_byte(other.as_bytes(), b'_') => NameClass::Underscore,
        _ => NameClass::EndToEnd,
    }
}

/// The index of a hop-by-hop name in `HOP_BY_HOP` ([`UPGRADE_INDEX`] for `Upgrade`): all a
/// response's names are checked for, since the forwarded-header policy applies to requests.
/// Always inlined: it runs for every header name of every response, and a call costs about
/// as much as the comparison.
#[inline(always)]
fn hop_index(name: &str) -> Option<usize> {
    Some(match name {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => TRANSFER_ENCODING_INDEX,
        "http2-settings" => 8,
        "upgrade" => UPGRADE_INDEX,
        _ => return None,
    })
}

/// What one pass over a message's header names found: which hop-by-hop headers are present and
/// whether any forwarded, otherwise spoofable or underscored header is. Taken once per request,
/// it serves the upgrade and transfer-coding checks, the hop-by-hop stripping and the
/// forwarded-header policy, which would otherwise each walk the names or hash a lookup of their
/// own.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderScan {
    /// `HOP_BY_HOP`'s names, then `Upgrade`.
    hop: [bool; HOP_COUNT + 1],
    forwarded: bool,
    spoofable: bool,
    underscore: bool,
}

impl HeaderScan {
    /// Scans the hop-by-hop names of a response's `headers` (the forwarded-header classes
    /// are for requests only).
    pub fn of_response(headers: &HeaderMap) -> Self {
        let mut scan = Self::default();
        for name in headers.keys() {
            if let Some(i) = hop_index(name.as_str()) {
                scan.hop[i] = true;
            }
        }
        scan
    }

    /// Scans the names of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut scan = Self::default();
        for name in headers.keys() {
            match name_class(name) {
                NameClass::Hop(i) => scan.hop[i] = true,
                NameClass::Forwarded => scan.forwarded = true,
                NameClass::Spoofable => scan.spoofable = true,
                NameClass::Underscore => scan.underscore = true,
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

    /// Whether `Transfer-Encoding` is present.
    pub fn has_transfer_encoding(&self) -> bool {
        self.hop[TRANSFER_ENCODING_INDEX]
    }

    /// Whether the scanned request asks to switch protocols (HTTP/1.1 `Upgrade` and a
    /// `Connection` that names `upgrade`) to nothing but protocols in `allowed`; `headers` must
    /// be the ones scanned. A request that offers any other is to go upstream as a plain one.
    pub fn is_upgrade_request(&self, headers: &HeaderMap, allowed: &UpgradeProtocols) -> bool {
        self.hop[UPGRADE_INDEX]
            && self.hop[0]
            && headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            && allowed.allows_all(headers)
    }
}

/// The protocols a client may switch to (`forwarding.upgrade_protocols`): a tunnel escapes
/// sign-in interception, so only these may open one.
#[derive(Debug, Clone)]
pub struct UpgradeProtocols(Vec<String>);

impl UpgradeProtocols {
    /// `protocols` as configured, e.g. `["websocket"]`; matched without regard to case.
    pub fn new(protocols: &[String]) -> Self {
        Self(protocols.iter().map(|p| p.trim().to_owned()).collect())
    }

    /// Whether every protocol the `Upgrade` lines of `headers` offer is allowed (and there is
    /// at least one). An entry without a version (`websocket`) allows every version of it.
    fn allows_all(&self, headers: &HeaderMap) -> bool {
        let mut offered = headers
            .get_all(header::UPGRADE)
            .iter()
            .map(|v| v.to_str().ok())
            .flat_map(|v| v.unwrap_or("\0").split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .peekable();
        offered.peek().is_some() && offered.all(|t| self.allows(t))
    }

    fn allows(&self, offered: &str) -> bool {
        let name = offered.split('/').next().unwrap_or(offered);
        self.0.iter().any(|entry| {
            entry.eq_ignore_ascii_case(offered)
                || (!entry.contains('/') && entry.eq_ignore_ascii_case(name))
        })
    }
}

impl Default for UpgradeProtocols {
    fn default() -> Self {
        Self(vec!["websocket".to_owned()])
    }
}

/// Refuses transfer codings other than `chunked` alone. hyper's server already answers 400 when
/// `chunked` is not the last coding; what reaches here (`gzip, chunked`, `chunked, chunked`,
/// several lines) it has decoded as chunked only, and passing the rest on would hand the
/// upstream bytes in a coding no longer declared.
#[cold]
#[inline(never)]
pub fn check_transfer_coding(headers: &HeaderMap) -> Result<(), ClientError> {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .map(|v| v.to_str().ok())
        .flat_map(|v| v.unwrap_or("\0").split(','))
        .map(str::trim);
    match (codings.next(), codings.next()) {
        (Some(only), None) if only.eq_ignore_ascii_case("chunked") => Ok(()),
        _ => Err(ClientError::TransferCoding),
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
    strip_scanned(headers, &HeaderScan::of_response(headers), keep_upgrade);
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
    // Usually it names nothing (`Connection: keep-alive`), and then there is no list to drop.
    let named = if present[0] {
        take_connection(headers, keep_upgrade)
    } else {
        None
    };
    let fixed = HOP_BY_HOP
        .iter()
        .zip(present)
        .skip(1)
        .filter_map(|(h, p)| p.then_some(h));
    for name in named.iter().flatten().chain(fixed) {
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
/// hop-by-hop, `None` when it names none.
fn take_connection(headers: &mut HeaderMap, keep_upgrade: bool) -> Option<Vec<HeaderName>> {
    let header::Entry::Occupied(entry) = headers.entry(header::CONNECTION) else {
        return None;
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
/// splitting, and gives `None`.
fn connection_named<'a, I>(lines: impl Fn() -> I) -> Option<Vec<HeaderName>>
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
        return None;
    }
    lines()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| is_named(t))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect::<Vec<_>>()
        .into()
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
#[derive(Debug, Clone)]
pub struct ForwardedPolicy {
    /// Peers whose forwarded headers are kept and extended.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether to send RFC 7239 `Forwarded` too.
    pub forwarded_header: bool,
    /// Headers dropped from untrusted peers besides the forwarded family, when not the default
    /// list (which the header scan recognises by name, at no extra cost).
    pub custom_drop: Option<Vec<HeaderName>>,
    /// Whether names with an underscore are dropped from untrusted peers.
    pub drop_underscore: bool,
}

impl Default for ForwardedPolicy {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            forwarded_header: false,
            custom_drop: None,
            drop_underscore: true,
        }
    }
}

impl ForwardedPolicy {
    /// The policy of `[forwarding]`.
    pub fn from_config(config: &ForwardingConfig) -> Result<Self, ProxyConfigError> {
        let mut names = config
            .untrusted_drop_headers
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ProxyConfigError {
                key: "forwarding.untrusted_drop_headers".to_owned(),
                message: e.to_string(),
            })?;
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        let mut default: Vec<&str> = DEFAULT_UNTRUSTED_DROP_HEADERS.to_vec();
        default.sort_unstable();
        let is_default = names.iter().map(HeaderName::as_str).eq(default);
        Ok(Self {
            trusted_proxies: config.trusted_proxies.clone(),
            forwarded_header: config.forwarded_header,
            custom_drop: (!is_default).then_some(names),
            drop_underscore: config.drop_underscore_headers,
        })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Sets X-Forwarded-For/-Proto/-Host (and `Forwarded` if configured). From an untrusted
    /// peer every client-supplied forwarded or otherwise spoofable header is dropped first, so
    /// it cannot spoof them. `host` is the Host the client asked for; `scan` is the scan of
    /// `headers` taken before any rewrite. A client that sent none of those headers (the usual
    /// case) costs no removals and no lookups.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        client: &ClientInfo,
        host: Option<&HeaderValue>,
        scan: &HeaderScan,
    ) {
        let peer_ip = canonical(client.peer.ip());
        let sent_forwarded = scan.forwarded;
        let sent_spoofable = sent_forwarded
            || scan.spoofable
            || (scan.underscore && self.drop_underscore)
            || self.custom_drop.is_some();
        if sent_spoofable && !self.trusts(peer_ip) {
            self.drop_spoofable(headers, scan);
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

    /// Removes what an untrusted peer may not claim: the forwarded family, the configured list
    /// (by default the names the scan recognised as spoofable) and underscored names.
    #[cold]
    #[inline(never)]
    fn drop_spoofable(&self, headers: &mut HeaderMap, scan: &HeaderScan) {
        if scan.forwarded {
            for name in &FORWARDED_FAMILY {
                headers.remove(name);
            }
        }
        match &self.custom_drop {
            None if scan.spoofable => {
                for name in &DEFAULT_SPOOFABLE {
                    headers.remove(name);
                }
            }
            None => {}
            Some(names) => {
                for name in names {
                    headers.remove(name);
                }
            }
        }
        if scan.underscore && self.drop_underscore {
            let underscored: Vec<HeaderName> = headers
                .keys()
                .filter(|n| n.as_str().contains('_'))
                .cloned()
                .collect();
            for name in underscored {
                headers.remove(name);
            }
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
mod tests;
