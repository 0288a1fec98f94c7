//! The guard every state-changing admin request passes (`POST /phase`, and any later one).
//!
//! In order: a foreign `Origin` (a page in a browser posting cross-site) and a `Host` that is
//! not the listener's own address or a configured name (DNS rebinding: a name the attacker
//! controls, resolved to this listener) are refused with 403; a body that is not
//! `application/json` with 415 (HTML forms cannot send that type without a CORS preflight,
//! which the admin listener never grants); then the bearer token, when one is configured,
//! compared in constant time, with 401. Every refusal is counted by reason; the presented
//! token is never logged or echoed.

use std::net::SocketAddr;

use http::{HeaderMap, Request, header};
use prometheus::{IntCounterVec, Opts, Registry};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::Actor;
use crate::config::{AdminConfig, Secret};

/// Why a state-changing request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `Origin` is not the admin listener's own.
    ForeignOrigin,
    /// `Host` is missing or not the listener's address or an allowed name.
    ForeignHost,
    /// The body is not declared `application/json`.
    NotJson,
    /// A token is configured and none was presented.
    MissingToken,
    /// The presented token is not the configured one.
    WrongToken,
}

impl Rejection {
    /// Every reason, for the metric's series to exist from the start.
    const ALL: [Self; 5] = [
        Self::ForeignOrigin,
        Self::ForeignHost,
        Self::NotJson,
        Self::MissingToken,
        Self::WrongToken,
    ];

    /// The `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ForeignOrigin => "foreign_origin",
            Self::ForeignHost => "foreign_host",
            Self::NotJson => "not_json",
            Self::MissingToken => "missing_token",
            Self::WrongToken => "wrong_token",
        }
    }

    /// The response status.
    pub fn status(self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::ForeignOrigin | Self::ForeignHost => StatusCode::FORBIDDEN,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MissingToken | Self::WrongToken => StatusCode::UNAUTHORIZED,
        }
    }

    /// The response body.
    pub fn message(self) -> &'static str {
        match self {
            Self::ForeignOrigin => "cross-origin requests are not accepted\n",
            Self::ForeignHost => "Host is not this admin listener's address\n",
            Self::NotJson => "Content-Type must be application/json\n",
            Self::MissingToken => "Authorization: Bearer <admin.token> required\n",
            Self::WrongToken => "invalid admin token\n",
        }
    }
}

/// A caller that passed the guard. Only [`Guard::check`] makes one, so a handler that takes it
/// cannot be reached around the guard.
#[derive(Debug)]
pub struct Caller {
    actor: Actor,
}

impl Caller {
    /// Who it is, for the audit log.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}

/// The admin listener's checks for state-changing requests.
pub struct Guard {
    /// SHA-256 of the token: comparing digests keeps the comparison's time independent of the
    /// presented token's length as well as of its content.
    token_digest: Option<[u8; 32]>,
    token_name: String,
    allowed_hosts: Vec<String>,
    rejected: IntCounterVec,
}

impl Guard {
    /// The guard for `config`, registering `dripgate_admin_requests_rejected_total{reason}`.
    pub fn new(config: &AdminConfig, registry: &Registry) -> Result<Self, prometheus::Error> {
        let rejected = IntCounterVec::new(
            Opts::new(
                "dripgate_admin_requests_rejected_total",
                "State-changing admin requests refused, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(rejected.clone()))?;
        for reason in Rejection::ALL {
            rejected.with_label_values(&[reason.reason()]);
        }
        Ok(Self {
            token_digest: config.token.as_ref().map(digest),
            token_name: config.token_name.clone(),
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            rejected,
        })
    }

    /// Checks a state-changing request that arrived from `peer` on the listener address
    /// `local`; counts and logs (without any credential) a refusal.
    pub fn check<B>(
        &self,
        req: &Request<B>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<Caller, Rejection> {
        self.verdict(req, local).inspect_err(|r| {
            self.rejected.with_label_values(&[r.reason()]).inc();
            tracing::warn!(
                %peer,
                method = %req.method(),
                path = req.uri().path(),
                reason = r.reason(),
                "admin request refused"
            );
        })?;
        let token_name = match self.token_digest {
            Some(_) => self.token_name.as_str(),
            None => "none",
        };
        Ok(Caller {
            actor: Actor::admin(peer, token_name),
        })
    }

    fn verdict<B>(&self, req: &Request<B>, local: SocketAddr) -> Result<(), Rejection> {
        let headers = req.headers();
        if let Some(origin) = headers.get(header::ORIGIN) {
            let own = origin
                .to_str()
                .ok()
                .and_then(|o| o.parse::<http::Uri>().ok())
                .is_some_and(|o| self.is_own_origin(&o, local));
            if !own {
                return Err(Rejection::ForeignOrigin);
            }
        }
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| single_header(headers, header::HOST));
        if !host.is_some_and(|h| self.is_own_authority(&h, 80, local)) {
            return Err(Rejection::ForeignHost);
        }
        if !is_json(headers) {
            return Err(Rejection::NotJson);
        }
        let Some(expected) = &self.token_digest else {
            // Validation allows this only on a loopback listener.
            return Ok(());
        };
        let presented = single_header(headers, header::AUTHORIZATION)
            .and_then(|v| bearer(&v).map(|t| digest_str(t.as_bytes())))
            .ok_or(Rejection::MissingToken)?;
        if bool::from(presented.ct_eq(expected)) {
            Ok(())
        } else {
            Err(Rejection::WrongToken)
        }
    }

    /// An `Origin` of this listener: `http` (or `https`, for a TLS front end on an allowed
    /// name) with an authority [`Self::is_own_authority`] accepts.
    fn is_own_origin(&self, origin: &http::Uri, local: SocketAddr) -> bool {
        let default_port = match origin.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return false,
        };
        let path_ok = matches!(origin.path(), "" | "/") && origin.query().is_none();
        path_ok
            && origin
                .authority()
                .is_some_and(|a| self.is_own_authority(a.as_str(), default_port, local))
    }

    /// `host[:port]` names this listener: its `ip:port`, `localhost:port` when it is on
    /// loopback, or an `admin.allowed_hosts` entry (`name` with any port, or `name:port`).
    fn is_own_authority(&self, authority: &str, default_port: u16, local: SocketAddr) -> bool {
        let Ok(parsed) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        if authority.contains('@') {
            return false;
        }
        let host = parsed.host().to_ascii_lowercase();
        let port = parsed.port_u16().unwrap_or(default_port);
        let own_ip = match local.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if port == local.port()
            && (host == own_ip || (local.ip().is_loopback() && host == "localhost"))
        {
            return true;
        }
        let with_port = format!("{host}:{port}");
        self.allowed_hosts
            .iter()
            .any(|allowed| *allowed == host || *allowed == with_port)
    }
}

fn digest(token: &Secret) -> [u8; 32] {
    digest_str(token.expose().as_bytes())
}

fn digest_str(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The value of a header that occurs exactly once (a repeated Host or Authorization is refused).
fn single_header(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok().map(str::to_owned)
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the media type is exactly `application/json` (parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    single_header(headers, header::CONTENT_TYPE).is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn guard(token: Option<&str>, allowed: &[&str]) -> Guard {
        let config = AdminConfig {
            token: token.map(Secret::inline),
            allowed_hosts: allowed.iter().map(|s| (*s).to_owned()).collect(),
            ..AdminConfig::default()
        };
        Guard::new(&config, &Registry::new()).unwrap()
    }

    fn post(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::post("/phase");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    const LOCAL: &str = "127.0.0.1:9090";
    const PEER: &str = "127.0.0.1:5000";

    fn check(g: &Guard, headers: &[(&str, &str)]) -> Result<(), Rejection> {
        g.check(
            &post(headers),
            PEER.parse().unwrap(),
            LOCAL.parse().unwrap(),
        )
        .map(|_| ())
    }

    #[test]
    fn hosts_origins_types_and_tokens() {
        let g = guard(Some("0123456789abcdef"), &["admin.internal"]);
        let json = ("content-type", "application/json; charset=utf-8");
        let auth = ("authorization", "bearer 0123456789abcdef");
        for host in [
            "127.0.0.1:9090",
            "localhost:9090",
            "admin.internal",
            "ADMIN.internal:1",
        ] {
            assert_eq!(check(&g, &[("host", host), json, auth]), Ok(()), "{host}");
        }
        for host in [
            "127.0.0.1:9091",
            "evil.example:9090",
            "127.0.0.1",
            "a@127.0.0.1:9090",
        ] {
            assert_eq!(
                check(&g, &[("host", host), json, auth]),
                Err(Rejection::ForeignHost),
                "{host}"
            );
        }
        assert_eq!(check(&g, &[json, auth]), Err(Rejection::ForeignHost));
        let host = ("host", LOCAL);
        for origin in ["http://127.0.0.1:9090", "https://admin.internal"] {
            assert_eq!(check(&g, &[host, ("origin", origin), json, auth]), Ok(()));
        }
        for origin in [
            "null",
            "http://evil.example",
            "http://127.0.0.1:9091",
            "ftp://127.0.0.1:9090",
        ] {
            assert_eq!(
                check(&g, &[host, ("origin", origin), json, auth]),
                Err(Rejection::ForeignOrigin),
                "{origin}"
            );
        }
        for ct in [
            "text/plain",
            "application/json-seq",
            "application/x-www-form-urlencoded",
        ] {
            assert_eq!(
                check(&g, &[host, ("content-type", ct), auth]),
                Err(Rejection::NotJson)
            );
        }
        assert_eq!(check(&g, &[host, json]), Err(Rejection::MissingToken));
        assert_eq!(
            check(
                &g,
                &[host, json, ("authorization", "Basic 0123456789abcdef")]
            ),
            Err(Rejection::MissingToken)
        );
        for wrong in [
            "Bearer 0123456789abcdeX",
            "Bearer short",
            "Bearer 0123456789abcdef0",
        ] {
            assert_eq!(
                check(&g, &[host, json, ("authorization", wrong)]),
                Err(Rejection::WrongToken)
            );
        }
    }

    #[test]
    fn without_a_token_the_caller_is_named_none() {
        let g = guard(None, &[]);
        let req = post(&[("host", LOCAL), ("content-type", "application/json")]);
        let caller = g
            .check(&req, PEER.parse().unwrap(), LOCAL.parse().unwrap())
            .unwrap();
        assert_eq!(caller.actor().token_name.as_deref(), Some("none"));
        let g = guard(Some("0123456789abcdef"), &[]);
        let req = post(&[
            ("host", LOCAL),
            ("content-type", "application/json"),
            ("authorization", "Bearer 0123456789abcdef"),
        ]);
        let caller = g
            .check(&req, PEER.parse().unwrap(), LOCAL.parse().unwrap())
            .unwrap();
        assert_eq!(caller.actor().token_name.as_deref(), Some("admin"));
        assert_eq!(caller.actor().peer, Some(PEER.parse().unwrap()));
    }
}
