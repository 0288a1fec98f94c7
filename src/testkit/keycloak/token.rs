//! The Keycloak fake's token endpoint: `POST /realms/{realm}/protocol/openid-connect/token`,
//! `client_credentials` with the secret in the form or in HTTP Basic; the access token is a
//! JWT-shaped string carrying the service account's `realm-management` roles.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tokio::time::Instant;

use super::Issued;
use super::Shared;
use super::routes::{Resp, header, oauth_error};
use crate::testkit::{Incoming_, json_response};

pub(super) fn token(s: &Shared, req: &Incoming_) -> Resp {
    let ct = header(req, hyper::header::CONTENT_TYPE);
    if !ct.starts_with("application/x-www-form-urlencoded") {
        s.lock()
            .knobs
            .violation(format!("token: content type {ct:?}"));
        return oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&req.body).into_owned().collect();
    // client_secret_basic or client_secret_post.
    let basic = header(req, hyper::header::AUTHORIZATION)
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|b| {
            b.split_once(':')
                .map(|(i, p)| (i.to_string(), p.to_string()))
        });
    let (id, secret) = match basic {
        Some((i, p)) => (Some(i), Some(p)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    };
    let opts = &s.options;
    if id.as_deref() != Some(opts.client_id.as_str()) {
        return oauth_error(
            401,
            "invalid_client",
            "Invalid client or Invalid client credentials",
        );
    }
    if secret.as_deref() != Some(opts.client_secret.as_str()) {
        return oauth_error(
            401,
            "unauthorized_client",
            "Invalid client or Invalid client credentials",
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        _ => return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type"),
    }
    if !opts.service_accounts_enabled {
        return oauth_error(
            401,
            "unauthorized_client",
            "Client not enabled to retrieve service account",
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let lifetime = opts.token_lifetime.as_secs().max(1);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let jti: [u8; 16] = rand::random();
    let payload = URL_SAFE_NO_PAD.encode(
        json!({
            "exp": now + lifetime, "iat": now, "jti": hex::encode(jti),
            "iss": format!("{}/realms/{}", s.base_url, opts.realm), "typ": "Bearer",
            "azp": opts.client_id, "preferred_username": format!("service-account-{}", opts.client_id),
            "resource_access": {"realm-management": {"roles": opts.roles}},
            "scope": "profile email",
        })
        .to_string(),
    );
    let sig: [u8; 32] = rand::random();
    let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig));
    s.lock().tokens.insert(
        token.clone(),
        Issued {
            expires_at: Instant::now() + opts.token_lifetime,
            roles: opts.roles.clone(),
        },
    );
    json_response(
        200,
        &json!({
            "access_token": token, "expires_in": lifetime, "refresh_expires_in": 0,
            "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email",
        }),
    )
}
