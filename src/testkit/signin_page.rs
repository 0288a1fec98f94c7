//! A tiny hosted sign-in page for the fakes (`/demo/sign-in`), standing in for the provider's
//! own login page in the local demo. It is not part of any provider's API contract.
//!
//! `GET /demo/sign-in?login_hint=…` shows a form with the email filled in; `POST` with
//! `email` + `password` (form-urlencoded) checks the password against the fake's stored user.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};

use super::{Incoming_, query_params, response};

/// The page's path.
pub const PATH: &str = "/demo/sign-in";

/// Answers a request for [`PATH`]; `verify(email, password)` checks a password.
pub(crate) fn handle(
    req: &Incoming_,
    provider: &str,
    verify: impl Fn(&str, &[u8]) -> bool,
) -> Response<Full<Bytes>> {
    let title = format!("Sign in ({provider})");
    match req.method {
        Method::GET => {
            let hint = query_params(&req.uri)
                .remove("login_hint")
                .unwrap_or_default();
            html(200, &title, &form(&hint, None))
        }
        Method::POST => {
            let fields = form_fields(&req.body);
            let email = fields.get("email").map(|e| e.trim()).unwrap_or_default();
            let password = fields
                .get("password")
                .map(String::as_str)
                .unwrap_or_default();
            if !email.is_empty() && verify(email, password.as_bytes()) {
                html(
                    200,
                    &title,
                    &format!(
                        "<p class=\"ok\">Signed in at the new provider ({provider}) as {}.</p>",
                        escape(email)
                    ),
                )
            } else {
                html(
                    401,
                    &title,
                    &form(email, Some("Wrong email or password at the new provider.")),
                )
            }
        }
        _ => response(405, "text/plain; charset=utf-8", "method not allowed\n"),
    }
}

fn form(email: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"{PATH}\">\
         <label>Email <input name=\"email\" type=\"email\" value=\"{}\"></label><br>\
         <label>Password <input name=\"password\" type=\"password\" autofocus></label><br>\
         <button type=\"submit\">Sign in</button></form>",
        escape(email)
    )
}

/// An HTML page with `title` and the (already escaped) `body`.
pub(crate) fn html(status: u16, title: &str, body: &str) -> Response<Full<Bytes>> {
    let title = escape(title);
    response(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1>{body}</body></html>\n"
        ),
    )
}

/// The fields of a form-urlencoded body (the last value of a repeated name wins).
pub(crate) fn form_fields(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
