//! Cognito request and response bodies (botocore model `cognito-idp` 2016-04-18, JSON 1.1): only
//! the members dripgate sends or reads. Member names are the model's (PascalCase).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::error::clip;
use crate::provider::http::Answer;

/// `AttributeType`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Attribute {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// `AdminCreateUserRequest`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AdminCreateUser<'a> {
    pub user_pool_id: &'a str,
    pub username: &'a str,
    pub user_attributes: Vec<Attribute>,
    pub message_action: &'static str,
}

/// `AdminSetUserPasswordRequest`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AdminSetUserPassword<'a> {
    pub user_pool_id: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub permanent: bool,
}

/// `AdminGetUserRequest`, `AdminResetUserPasswordRequest` (same members).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UserRef<'a> {
    pub user_pool_id: &'a str,
    pub username: &'a str,
}

/// `ListUsersRequest`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListUsers<'a> {
    pub user_pool_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub limit: u32,
}

/// `DescribeUserPoolRequest`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PoolRef<'a> {
    pub user_pool_id: &'a str,
}

/// `UserType` (in `ListUsersResponse.Users` and `AdminCreateUserResponse.User`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UserType {
    pub username: Option<String>,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// `ListUsersResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListUsersResponse {
    #[serde(default)]
    pub users: Vec<UserType>,
}

/// `AdminCreateUserResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AdminCreateUserResponse {
    pub user: Option<UserType>,
}

/// `AdminGetUserResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AdminGetUserResponse {
    pub username: Option<String>,
    #[serde(default)]
    pub user_attributes: Vec<Attribute>,
    pub user_status: Option<String>,
}

/// The value of attribute `name`, if present.
pub(super) fn attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.value.as_deref())
}

/// An AWS JSON 1.1 error: `__type` (the exception's shape name, any namespace prefix and URL
/// suffix removed) and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AwsError {
    pub kind: String,
    pub message: String,
}

impl AwsError {
    /// Reads the error from the body (`__type`, `message`/`Message`) or the `x-amzn-ErrorType`
    /// header; an unreadable error is `kind = ""`.
    pub fn parse(answer: &Answer) -> Self {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let raw = body
            .get("__type")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                answer
                    .headers
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let without_ns = raw.rsplit('#').next().unwrap_or_default();
        let kind = without_ns.split(':').next().unwrap_or_default().to_string();
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_str))
            .map(clip)
            .unwrap_or_default();
        Self { kind, message }
    }

    /// `Kind: message`, for error details.
    pub fn describe(&self, status: u16) -> String {
        match (self.kind.is_empty(), self.message.is_empty()) {
            (true, _) => format!("status {status}"),
            (false, true) => self.kind.clone(),
            (false, false) => format!("{}: {}", self.kind, self.message),
        }
    }
}

/// Escapes a value for a `ListUsers` filter string: inside the double quotes, a backslash and a
/// double quote are escaped with a backslash.
pub(super) fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Answer {
            status: 400,
            headers: map,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn error_type_is_read_from_body_or_header_without_namespace() {
        let e = AwsError::parse(&answer(
            &[],
            r#"{"__type":"com.amazonaws.cognito#UsernameExistsException","message":"User account already exists"}"#,
        ));
        assert_eq!(e.kind, "UsernameExistsException");
        assert_eq!(e.message, "User account already exists");
        let e = AwsError::parse(&answer(
            &[(
                "x-amzn-ErrorType",
                "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
            )],
            r#"{"Message":"not authorized"}"#,
        ));
        assert_eq!(e.kind, "AccessDeniedException");
        assert_eq!(e.message, "not authorized");
        assert_eq!(AwsError::parse(&answer(&[], "<html>")).kind, "");
    }

    #[test]
    fn filter_values_escape_quotes_and_backslashes() {
        assert_eq!(filter_value(r#"a"b\c@x.org"#), r#"a\"b\\c@x.org"#);
        assert_eq!(filter_value("ada@example.com"), "ada@example.com");
    }
}
