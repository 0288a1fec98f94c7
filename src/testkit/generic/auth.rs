//! The receiving side of the request signature, in the order a receiver should check:
//! key id, timestamp window, signature (constant time), then the nonce (only a request that
//! verified may use one up, so a forger cannot burn nonces).

use tokio::time::Instant;

use super::{Shared, State};
use crate::provider::generic::sign::{self, Signed, SigningKey};
use crate::testkit::Incoming_;

fn header<'a>(req: &'a Incoming_, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_hex32(v: &str) -> bool {
    v.len() == 32
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks the request's signature headers; `Err(code)` is the contract's 401 code.
pub(super) fn check(s: &Shared, req: &Incoming_) -> Result<(), &'static str> {
    let key_id = header(req, sign::KEY_ID).unwrap_or_default();
    let key = s
        .options
        .keys
        .iter()
        .find(|(id, _)| id == key_id)
        .and_then(|(_, key)| SigningKey::new(key.as_bytes()))
        .ok_or("unknown_key")?;
    let timestamp = header(req, sign::TIMESTAMP).unwrap_or_default();
    let signed_at: u64 = timestamp.parse().map_err(|_| "stale_timestamp")?;
    let window = s.options.replay_window.as_secs();
    if sign::unix_now().abs_diff(signed_at) > window {
        return Err("stale_timestamp");
    }
    let nonce = header(req, sign::NONCE).unwrap_or_default();
    let signed = Signed {
        key_id,
        timestamp,
        nonce,
        method: req.method.as_str(),
        target: req.uri.path_and_query().map_or("/", |p| p.as_str()),
        idempotency_key: header(req, sign::IDEMPOTENCY_KEY).unwrap_or_default(),
        body: &req.body,
    };
    let signature = header(req, sign::SIGNATURE).unwrap_or_default();
    if !is_hex32(nonce) || !key.verify(&signed, signature) {
        return Err("bad_signature");
    }
    use_nonce(&mut s.lock(), nonce, s.options.replay_window)
}

/// Remembers the nonce for the replay window; a second use inside it is a replay.
fn use_nonce(st: &mut State, nonce: &str, window: std::time::Duration) -> Result<(), &'static str> {
    let now = Instant::now();
    if st.nonces.len() > 4096 {
        st.nonces.retain(|_, expires| *expires > now);
    }
    match st.nonces.get(nonce) {
        Some(expires) if *expires > now => Err("replayed_nonce"),
        _ => {
            // Kept for two windows: a timestamp may be up to one window in the future.
            st.nonces.insert(nonce.to_string(), now + window * 2);
            Ok(())
        }
    }
}
