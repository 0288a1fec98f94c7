//! The Authgear fake's HTTP side: the endpoint paths, the admin-key JWT check, content types,
//! reading `{query, variables, operationName}`, the mutation-field limit, the request validator
//! and fault injection.

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value, json};

use super::Shared;
use super::graphql::{self, Field, OperationKind, Selection};
use super::resolve::execute;
use crate::testkit::{Fault, Incoming_, Reply, json_response, response};

fn forbidden() -> Reply {
    Reply::Send(response(403, "text/plain; charset=utf-8", "Forbidden"))
}

fn authorized(s: &Shared, req: &Incoming_) -> bool {
    let Some(token) = req
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(s.options.key_id.as_str()) {
        return false;
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[s.options.project_id.as_str()]);
    validation.leeway = 300;
    let Ok(data) = jsonwebtoken::decode::<Value>(token, &s.key, &validation) else {
        return false;
    };
    let jti = data
        .claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or(token)
        .to_string();
    let mut st = s.lock();
    if st.revoked_jtis.contains(&jti) {
        return false;
    }
    st.seen_jtis.insert(jti);
    true
}

pub(super) async fn handle(s: &Shared, req: Incoming_) -> Reply {
    let path = req.uri.path();
    if path != "/_api/admin/graphql" && path != "/graphql" {
        return Reply::Send(response(
            404,
            "text/plain; charset=utf-8",
            "404 page not found",
        ));
    }
    if !authorized(s, &req) {
        s.lock().knobs.arrive("forbidden");
        return forbidden();
    }
    if req.method == hyper::Method::GET {
        return Reply::Send(response(
            200,
            "text/html; charset=utf-8",
            "<!DOCTYPE html><title>GraphiQL</title>",
        ));
    }
    if req.method != hyper::Method::POST {
        return Reply::Send(response(
            405,
            "text/plain; charset=utf-8",
            "method not allowed",
        ));
    }
    let ct = req
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim();
    if media != "application/json" && media != "application/graphql" {
        s.lock().knobs.violation(format!("content type {ct:?}"));
        return Reply::Send(response(
            415,
            "text/plain; charset=utf-8",
            format!("invalid content type: {ct}"),
        ));
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            return Reply::Send(json_response(
                400,
                &json!({"error": {"name": "BadRequest", "reason": "BadRequest", "message": "invalid JSON", "code": 400}}),
            ));
        }
    };
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let vars: Map<String, Value> = match body.get("variables") {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
        _ => Map::new(),
    };
    let op_name = body
        .get("operationName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let operation = match graphql::parse_operation(&query, op_name) {
        Ok(op) => op,
        Err(e) => return Reply::Send(json_response(200, &json!({"errors": [{"message": e}]}))),
    };
    let roots: Vec<&Field> = operation
        .selections
        .iter()
        .filter_map(|s| {
            if let Selection::Field(f) = s {
                Some(f)
            } else {
                None
            }
        })
        .collect();
    if operation.kind == OperationKind::Mutation && roots.len() > 5 {
        return Reply::Send(json_response(
            400,
            &json!({"error": {"name": "BadRequest", "reason": "BadRequest", "message": format!("too many mutation fields in one request: got {}, limit is 5", roots.len()), "code": 400}}),
        ));
    }
    let first = roots.first().map(|f| f.name.clone()).unwrap_or_default();
    let (fault, validator) = {
        let mut st = s.lock();
        (st.knobs.arrive(&first), st.validator.clone())
    };
    if let Some(validator) = validator
        && let Err(e) = validator(&first, &body)
    {
        s.lock().knobs.violation(format!("{first}: {e}"));
        return Reply::Send(json_response(
            200,
            &json!({"data": null, "errors": [{"message": e}]}),
        ));
    }
    let mut hang_after = false;
    let mut close_after = false;
    let mut policy_fault = false;
    match fault {
        Some(Fault::Status(403)) => return forbidden(),
        Some(Fault::Status(code)) => {
            return Reply::Send(json_response(
                code,
                &json!({"error": {"name": "InternalError", "reason": "UnexpectedError", "message": "unexpected error", "code": code}}),
            ));
        }
        Some(Fault::RateLimit { reset_secs }) => {
            let mut r = json_response(
                429,
                &json!({"error": {"name": "TooManyRequest", "reason": "RateLimited", "message": "request rate limited", "code": 429}}),
            );
            if let Ok(v) = hyper::header::HeaderValue::from_str(&reset_secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            return Reply::Send(r);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetConnection) => return Reply::Reset,
        Some(Fault::CommitThenHang) => hang_after = true,
        Some(Fault::CommitThenClose) => close_after = true,
        Some(Fault::PasswordPolicy) => policy_fault = true,
        None => {}
    }
    let result = execute(s, &roots, &vars, policy_fault);
    if hang_after {
        Reply::Hang
    } else if close_after {
        Reply::Reset
    } else {
        Reply::Send(json_response(200, &result))
    }
}
