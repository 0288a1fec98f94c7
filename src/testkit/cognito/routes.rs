//! The Cognito fake's HTTP side: the JSON 1.1 envelope (method, path, content type, target),
//! SigV4 and credentials, fault injection, IAM denials, the model check, account quotas, and the
//! dispatch to the operations.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::sigv4::{SignedParts, parse_amz_date, parse_authorization, verify};
use super::{Shared, ops};
use crate::provider::cognito::{CONTENT_TYPE, SERVICE, TARGET_PREFIX};
use crate::testkit::{Fault, Incoming_, Reply, response, signin_page};

/// The operations the fake implements.
const IMPLEMENTED: [&str; 6] = [
    "AdminCreateUser",
    "AdminSetUserPassword",
    "AdminGetUser",
    "ListUsers",
    "AdminResetUserPassword",
    "DescribeUserPool",
];

/// Largest clock difference AWS accepts between `X-Amz-Date` and its own clock.
const MAX_SKEW_SECS: i64 = 15 * 60;

/// An AWS JSON error answer.
pub(super) fn aws_error(status: u16, kind: &str, message: &str) -> Reply {
    let mut r = response(
        status,
        CONTENT_TYPE,
        json!({"__type": kind, "message": message}).to_string(),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("{kind}:")) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    Reply::Send(r)
}

pub(super) fn ok(body: &Value) -> Reply {
    Reply::Send(response(200, CONTENT_TYPE, body.to_string()))
}

fn header<'a>(req: &'a Incoming_, name: &str) -> &'a str {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Which quota category an operation counts against (index into `Shared::quotas`).
fn category(op: &str) -> usize {
    match op {
        "AdminCreateUser" => 0,
        "AdminSetUserPassword" | "AdminResetUserPassword" => 1,
        "AdminGetUser" => 2,
        "ListUsers" => 3,
        _ => 4,
    }
}

pub(super) async fn handle(s: &Shared, req: Incoming_) -> Reply {
    if req.uri.path() == signin_page::PATH {
        return Reply::Send(signin_page::handle(&req, "Amazon Cognito", |email, pw| {
            s.lock().users.iter().any(|u| {
                u.email().is_some_and(|e| e.eq_ignore_ascii_case(email))
                    && u.status == "CONFIRMED"
                    && u.password_matches(pw)
            })
        }));
    }
    let op = match envelope(s, &req) {
        Ok(op) => op,
        Err(reply) => return *reply,
    };
    let fault = s.lock().knobs.arrive(&op);
    if let Err(reply) = authenticate(s, &req) {
        return *reply;
    }
    let mut hang_after = false;
    let mut close_after = false;
    match fault {
        Some(Fault::Status(code)) if code >= 500 => {
            return aws_error(code, "InternalErrorException", "Injected failure");
        }
        Some(Fault::Status(code)) => {
            return aws_error(code, "InvalidParameterException", "Injected failure");
        }
        Some(Fault::RateLimit { .. }) => {
            return aws_error(400, "TooManyRequestsException", "Too many requests");
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetConnection) => return Reply::Reset,
        Some(Fault::CommitThenHang) => hang_after = true,
        Some(Fault::CommitThenClose) => close_after = true,
        Some(Fault::PasswordPolicy) if op == "AdminSetUserPassword" => {
            return aws_error(
                400,
                "InvalidPasswordException",
                "Password did not conform with policy: Password not long enough",
            );
        }
        Some(Fault::PasswordPolicy) | None => {}
    }
    let injected = s
        .lock()
        .exceptions
        .get_mut(&op)
        .and_then(std::collections::VecDeque::pop_front);
    if let Some(kind) = injected {
        return aws_error(400, &kind, "Injected failure");
    }
    if let Some(reply) = denied(s, &op) {
        return reply;
    }
    let body = match checked_body(s, &op, &req.body) {
        Ok(b) => b,
        Err(reply) => return *reply,
    };
    if let Some(buckets) = &s.quotas
        && buckets[category(&op)].check().is_err()
    {
        s.lock().throttled += 1;
        return aws_error(400, "TooManyRequestsException", "Too many requests");
    }
    let reply = ops::handle(s, &op, &body);
    if hang_after {
        Reply::Hang
    } else if close_after {
        Reply::Reset
    } else {
        reply
    }
}

/// `POST /`, the JSON 1.1 content type, a target the model (or the fake) knows.
fn envelope(s: &Shared, req: &Incoming_) -> Result<String, Box<Reply>> {
    let violation = |what: String, reply: Reply| {
        s.lock().knobs.violation(what);
        Box::new(reply)
    };
    if req.method != hyper::Method::POST || req.uri.path() != "/" {
        return Err(violation(
            format!(
                "{} {}: the JSON protocol is POST /",
                req.method,
                req.uri.path()
            ),
            aws_error(404, "UnknownOperationException", "Unknown operation"),
        ));
    }
    let ct = header(req, "content-type");
    if ct != CONTENT_TYPE {
        return Err(violation(
            format!("content type {ct:?}, not {CONTENT_TYPE}"),
            aws_error(400, "SerializationException", "Unsupported content type"),
        ));
    }
    let target = header(req, "x-amz-target");
    let op = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(|t| t.strip_prefix('.'))
        .unwrap_or_default()
        .to_string();
    let in_model = s.lock().model.as_ref().map(|m| m.has_operation(&op));
    if op.is_empty() || in_model == Some(false) {
        return Err(violation(
            format!("X-Amz-Target {target:?} names no operation of the model"),
            aws_error(400, "UnknownOperationException", "Unknown operation"),
        ));
    }
    if !IMPLEMENTED.contains(&op.as_str()) {
        return Err(violation(
            format!("{op}: not implemented by the fake"),
            aws_error(400, "UnknownOperationException", "Unknown operation"),
        ));
    }
    Ok(op)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Signature Version 4 with the fake's key, region and service, a fresh `X-Amz-Date`, the
/// target signed, and the session token when the fake expects one.
fn authenticate(s: &Shared, req: &Incoming_) -> Result<(), Box<Reply>> {
    let fail = |why: String, status: u16, kind: &str, message: &str| {
        s.lock().auth_failures.push(why);
        Box::new(aws_error(status, kind, message))
    };
    let auth = header(req, "authorization");
    if auth.is_empty() {
        return Err(fail(
            "no Authorization header".into(),
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    }
    let parsed = parse_authorization(auth)
        .map_err(|e| fail(e.clone(), 400, "IncompleteSignatureException", &e))?;
    let opts = &s.options;
    if parsed.access_key != opts.access_key_id {
        return Err(fail(
            "unknown access key".into(),
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if parsed.region != opts.region || parsed.service != SERVICE {
        return Err(fail(
            format!("scope {}/{}", parsed.region, parsed.service),
            400,
            "InvalidSignatureException",
            "Credential should be scoped to a valid region and service.",
        ));
    }
    let amz_date = header(req, "x-amz-date");
    let fresh = parse_amz_date(amz_date).is_some_and(|t| (t - now_secs()).abs() <= MAX_SKEW_SECS);
    if !fresh || amz_date.get(..8) != Some(parsed.date.as_str()) {
        return Err(fail(
            format!("X-Amz-Date {amz_date:?}"),
            400,
            "InvalidSignatureException",
            "Signature expired or date does not match the credential scope.",
        ));
    }
    let mut required = vec!["host", "x-amz-date", "x-amz-target"];
    let token = header(req, "x-amz-security-token");
    if !token.is_empty() {
        required.push("x-amz-security-token");
    }
    let mut sorted = parsed.signed_headers.clone();
    sorted.sort();
    if let Some(missing) = required
        .iter()
        .find(|h| !parsed.signed_headers.iter().any(|x| x == *h))
    {
        s.lock()
            .knobs
            .violation(format!("header {missing} not signed"));
        return Err(fail(
            format!("{missing} not signed"),
            400,
            "IncompleteSignatureException",
            "Required headers are not signed.",
        ));
    }
    if sorted != parsed.signed_headers {
        s.lock().knobs.violation("SignedHeaders not sorted".into());
        return Err(fail(
            "SignedHeaders not sorted".into(),
            400,
            "IncompleteSignatureException",
            "SignedHeaders must be sorted.",
        ));
    }
    let parts = SignedParts {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query().unwrap_or_default(),
        headers: req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        payload: &req.body,
    };
    if !verify(&parts, &parsed, amz_date, &opts.secret_access_key) {
        return Err(fail(
            "signature mismatch".into(),
            400,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    check_session_token(s, token).map_err(|(why, kind, message)| fail(why, 400, kind, message))
}

fn check_session_token(
    s: &Shared,
    token: &str,
) -> Result<(), (String, &'static str, &'static str)> {
    let st = s.lock();
    let Some(expected) = st.session_token.as_deref() else {
        return if token.is_empty() {
            Ok(())
        } else {
            Err((
                "unexpected session token".into(),
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ))
        };
    };
    if token != expected {
        // A token that was valid before a rotation is reported as expired, as STS tokens are.
        return Err((
            "stale or wrong session token".into(),
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    if st.session_expired {
        return Err((
            "session token expired".into(),
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    Ok(())
}

/// IAM: an action the fake's options deny.
fn denied(s: &Shared, op: &str) -> Option<Reply> {
    let o = &s.options;
    o.denied_actions.iter().any(|a| a == op).then(|| {
        aws_error(
            400,
            "AccessDeniedException",
            &format!(
                "User: arn:aws:iam::123456789012:user/dripgate is not authorized to perform: cognito-idp:{op} on resource: arn:aws:cognito-idp:{}:123456789012:userpool/{} because no identity-based policy allows the cognito-idp:{op} action",
                o.region, o.user_pool_id
            ),
        )
    })
}

/// The body as JSON, checked against the model (when loaded).
fn checked_body(s: &Shared, op: &str, raw: &[u8]) -> Result<Value, Box<Reply>> {
    let body: Value = serde_json::from_slice(raw).map_err(|_| {
        s.lock().knobs.violation(format!("{op}: body is not JSON"));
        Box::new(aws_error(
            400,
            "SerializationException",
            "Malformed JSON body",
        ))
    })?;
    let model = s.lock().model.clone();
    if let Some(model) = model
        && let Err(e) = model.validate_input(op, &body)
    {
        s.lock().knobs.violation(format!("{op}: {e}"));
        let kind = if e.contains("unknown member") {
            "SerializationException"
        } else {
            "InvalidParameterException"
        };
        return Err(Box::new(aws_error(
            400,
            kind,
            &format!("1 validation error detected: {e}"),
        )));
    }
    Ok(body)
}
