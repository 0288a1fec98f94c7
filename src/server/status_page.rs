//! `GET /` on the admin listener: the status page. One self-contained HTML document (inline
//! CSS, one inline script; no external script, font, image or CDN) that polls `/status` every
//! 5 s and draws the figures and the burn-down chart (inline SVG). `/status` holds counts, never
//! a user. Read-only until an admin token is typed into its password field: then a small form
//! sends `POST /phase` (phase, canary share) with `Authorization: Bearer <token>`, through the
//! same admin guard as any other client. The token stays in that field, never in storage, a
//! cookie or a URL (`form-action 'none'` keeps the browser from submitting the form itself).
//!
//! Sent with a strict Content-Security-Policy: nothing may load but `/status` (`connect-src
//! 'self'`), and the inline script and style run only because their SHA-256 hashes are listed,
//! so any markup injected into the page could not run a script of its own.

use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

const HTML: &str = include_str!("status_page/page.html");
const CSS: &str = include_str!("status_page/page.css");
const JS: &str = include_str!("status_page/page.js");

/// The assembled page and its Content-Security-Policy.
pub struct Page {
    /// The HTML document.
    pub html: String,
    /// The `Content-Security-Policy` header value.
    pub csp: String,
}

/// The page, assembled once.
pub fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| Page {
        html: HTML
            .replacen("{{STYLE}}", CSS, 1)
            .replacen("{{SCRIPT}}", JS, 1),
        csp: format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(JS),
            hash(CSS)
        ),
    })
}

/// A CSP source expression for an inline element's exact content.
fn hash(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_its_inline_code_is_hashed() {
        let p = page();
        assert!(!p.html.contains("{{"));
        assert_eq!(p.html.matches("<script>").count(), 1);
        for external in ["src=", "href=", "@import", "url(", "http://", "https://"] {
            let allowed = external == "http://" && p.html.matches(external).count() == 1;
            assert!(
                !p.html.contains(external) || allowed,
                "{external} in the page"
            );
        }
        assert!(p.csp.contains(&hash(JS)));
        assert!(p.csp.contains(&hash(CSS)));
        assert!(p.csp.contains("form-action 'none'"));
        // The admin token is kept in page memory only.
        for storage in [
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "indexedDB",
        ] {
            assert!(!p.html.contains(storage), "{storage} in the page");
        }
        assert!(p.html.contains("<input type=\"password\" id=\"token\""));
        assert!(p.csp.starts_with("default-src 'none'"));
        assert!(!p.csp.contains("unsafe"));
    }
}
