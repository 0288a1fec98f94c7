//! Header rewriting on the way upstream and back: hop-by-hop removal (RFC 9110 §7.6.1) and the
//! X-Forwarded-* / Forwarded family, trusted only from configured proxies.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Headers that describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Removes hop-by-hop headers, including those named in `Connection`. When `keep_upgrade` is
/// set (a WebSocket or other protocol upgrade being tunnelled), `Connection: upgrade` and
/// `Upgrade` are kept.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        if keep_upgrade && (name == header::UPGRADE || name == header::CONNECTION) {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether a request asks to switch protocols (HTTP/1.1 `Connection: upgrade` + `Upgrade`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// What the proxy knows about the client side of a request.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
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
    /// `host` is the Host the client asked for.
    pub fn apply(&self, headers: &mut HeaderMap, client: ClientInfo, host: Option<&HeaderValue>) {
        let peer_ip = canonical(client.peer.ip());
        let trusted = self.trusts(peer_ip);
        if !trusted {
            for name in [
                X_FORWARDED_FOR,
                X_FORWARDED_PROTO,
                X_FORWARDED_HOST,
                X_REAL_IP,
                header::FORWARDED,
            ] {
                headers.remove(name);
            }
        }
        let proto = if client.tls { "https" } else { "http" };
        let xff = match joined(headers, &X_FORWARDED_FOR) {
            Some(prior) => format!("{prior}, {peer_ip}"),
            None => peer_ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(X_FORWARDED_FOR, v);
        }
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if let Some(host) = host
            && !headers.contains_key(&X_FORWARDED_HOST)
        {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        if self.forwarded_header {
            self.append_forwarded(headers, peer_ip, proto, host);
        }
    }

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

/// All values of a header joined by ", " (several header lines are one list).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
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

    fn client(ip: &str) -> ClientInfo {
        ClientInfo {
            peer: SocketAddr::new(ip.parse().unwrap(), 4000),
            tls: false,
        }
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
        policy.apply(&mut h, client("192.0.2.7"), Some(&host));
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "app.example");
        assert_eq!(
            h[header::FORWARDED],
            "for=192.0.2.7;proto=http;host=\"app.example\""
        );
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
        policy.apply(&mut h, client("::ffff:10.1.2.3"), None);
        assert_eq!(h[&X_FORWARDED_FOR], "1.2.3.4, 10.1.2.3");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
    }
}
