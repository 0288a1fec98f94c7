//! `[signin]`: which requests are sign-ins, how their bodies are read, and what legacy's
//! answer must show before a sign-in is migrated.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sign-in interception.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigninConfig {
    /// The method + exact path pairs that are sign-ins.
    pub routes: Vec<SigninRoute>,
    /// Sign-in bodies up to this size are read; a larger one is forwarded untouched.
    pub max_body_bytes: usize,
    /// Time allowed for the client to send a sign-in body.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// In `route`, what happens to a sign-in request whose credentials dripgate cannot read
    /// unambiguously, or whose body is over `max_body_bytes`: refused (400 / 413, the
    /// default), or forwarded to legacy as before, which lets a migrated user whose request
    /// is crafted that way sign in at legacy.
    pub unread_in_route: UnreadInRoute,
    /// Memory all sign-in bodies held at once may take; beyond it a sign-in waits up to
    /// `buffer_wait` for room, then gets 503.
    pub buffer_budget_bytes: usize,
    /// How long a sign-in waits for room in `buffer_budget_bytes`.
    #[serde(with = "humantime_serde")]
    pub buffer_wait: Duration,
    /// The legacy app's forgot-password routes, bridged to the provider's reset page in
    /// `route` and `complete` (`[signin.forgot_password]`).
    pub forgot_password: ForgotPasswordConfig,
}

/// `[signin.forgot_password]`: the legacy app's forgot-password routes and their limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForgotPasswordConfig {
    /// The method + path pairs of the legacy app's reset requests (none: no bridging).
    pub routes: Vec<ForgotPasswordRoute>,
    /// Reset requests allowed per identifier per `period` (then 429 until the period frees one).
    pub per_identifier: u32,
    /// Reset requests allowed per client address per `period`.
    pub per_client: u32,
    /// The window the two limits count over.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// Identifiers and addresses tracked at once by the limiters; beyond it the oldest idle
    /// ones are dropped, and while none can be, new ones are refused (429).
    pub max_tracked_keys: usize,
    /// Every bridged reset request is answered this long after it arrived, whether the user is
    /// unknown, migrated or provisioned meanwhile, so the answer's timing does not tell them
    /// apart; provisioning still running then finishes in the background.
    #[serde(with = "humantime_serde")]
    pub answer_after: Duration,
}

impl Default for ForgotPasswordConfig {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            per_identifier: 5,
            per_client: 30,
            period: Duration::from_secs(3600),
            max_tracked_keys: 100_000,
            answer_after: Duration::from_secs(2),
        }
    }
}

impl ForgotPasswordConfig {
    /// Checks the routes, the limits, and that routes have the provider's reset page
    /// (`migration.reset_url_template`) to send requests to; the key and message of the first
    /// problem.
    pub fn validate(&self, reset_url_template: Option<&str>) -> Result<(), (String, &'static str)> {
        for (i, route) in self.routes.iter().enumerate() {
            let key = |field: &str| format!("signin.forgot_password.routes[{i}].{field}");
            if http::Method::from_bytes(route.method.as_bytes()).is_err() {
                return Err((key("method"), "not an HTTP method"));
            }
            if !route.path.starts_with('/') || route.path.contains('?') {
                return Err((key("path"), "must start with '/' and carry no query"));
            }
            if route.identifier_field.is_empty() {
                return Err((key("identifier_field"), "must not be empty"));
            }
            let not_a_pair = |pair: &String| pair.split_once('=').is_none_or(|(n, _)| n.is_empty());
            if route.query.iter().any(not_a_pair) {
                return Err((
                    key("query"),
                    "each entry is a name=value pair, e.g. \"action=lostpassword\"",
                ));
            }
        }
        if self.routes.is_empty() {
            return Ok(());
        }
        if !reset_url_template.unwrap_or("").contains("{login_hint}") {
            return Err((
                "migration.reset_url_template".to_owned(),
                "signin.forgot_password.routes need the provider's reset page, a URL with \
                 {login_hint} (e.g. https://auth.example.com/reset?login_hint={login_hint})",
            ));
        }
        if self.per_identifier == 0 || self.per_client == 0 || self.period.is_zero() {
            return Err((
                "signin.forgot_password".to_owned(),
                "per_identifier, per_client and period must be above zero",
            ));
        }
        if self.max_tracked_keys == 0 {
            return Err((
                "signin.forgot_password.max_tracked_keys".to_owned(),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// One forgot-password route of the legacy app.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRoute {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path, compared after normalization as a sign-in route's. A path shared with a
    /// sign-in route (WordPress's `/wp-login.php`) is a reset request when the body has this
    /// route's identifier field and no sign-in credentials.
    pub path: String,
    /// Compare the path without ASCII case.
    #[serde(default)]
    pub case_insensitive_path: bool,
    /// Body encoding: `auto`, `form`, `json` or `multipart`.
    #[serde(default)]
    pub body: super::extract::BodyKind,
    /// Field holding the identifier (WordPress: `user_login`).
    #[serde(default = "default_identifier_field")]
    pub identifier_field: String,
    /// `name=value` pairs of which the query string must hold one, its name once (WordPress:
    /// `["action=lostpassword", "action=retrievepassword"]`, so that registration, which posts
    /// `user_login` to the same path, still reaches legacy). Empty: any query.
    #[serde(default)]
    pub query: Vec<String>,
}

/// What happens in `route` to a sign-in dripgate cannot read unambiguously.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnreadInRoute {
    /// 400 (413 when too large), never forwarded.
    #[default]
    Refuse,
    /// Forwarded to legacy untouched (never migrated). A migrated user can then sign in at
    /// legacy by sending such a request.
    Forward,
}

impl Default for SigninConfig {
    fn default() -> Self {
        Self {
            routes: vec![SigninRoute {
                method: "POST".to_owned(),
                path: "/login".to_owned(),
                body: super::extract::BodyKind::Auto,
                identifier_field: default_identifier_field(),
                password_field: default_password_field(),
                legacy_failure: FailureSignature::default(),
                legacy_user: None,
                case_insensitive_path: false,
            }],
            max_body_bytes: 64 * 1024,
            body_timeout: Duration::from_secs(10),
            unread_in_route: UnreadInRoute::Refuse,
            buffer_budget_bytes: 16 * 1024 * 1024,
            buffer_wait: Duration::from_secs(1),
            forgot_password: ForgotPasswordConfig::default(),
        }
    }
}

/// One sign-in route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigninRoute {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path, without query, e.g. `/wp-login.php`; compared after normalization
    /// (see docs/ARCHITECTURE.md, "Sign-in integrity").
    pub path: String,
    /// Compare the path without ASCII case (an app on IIS or an Express app with its default
    /// routing).
    #[serde(default)]
    pub case_insensitive_path: bool,
    /// Body encoding: `auto` (from Content-Type), `form`, `json` or `multipart`.
    #[serde(default)]
    pub body: super::extract::BodyKind,
    /// Field holding the identifier (for JSON a key or a pointer such as `/user/email`).
    #[serde(default = "default_identifier_field")]
    pub identifier_field: String,
    /// Field holding the password.
    #[serde(default = "default_password_field")]
    pub password_field: String,
    /// What a failed legacy sign-in looks like; only sign-ins legacy accepted are verified.
    #[serde(default)]
    pub legacy_failure: FailureSignature,
    /// Where legacy's answer to a successful sign-in names the user it signed in; when set,
    /// a sign-in is migrated only if that user is the one dripgate read.
    #[serde(default)]
    pub legacy_user: Option<LegacyUserBinding>,
}

/// Where a legacy success response names the signed-in user: the strongest check that the
/// session legacy issued is the one of the user dripgate read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LegacyUserBinding {
    /// A response header whose value is the user's login or email (removed before the
    /// response reaches the client).
    pub header: Option<String>,
    /// A `Set-Cookie` name (a trailing `*` matches any suffix, e.g. WordPress's
    /// `wordpress_logged_in_*`) whose value starts with the user's login or email.
    pub cookie: Option<String>,
    /// Where the name ends in the cookie value (WordPress: `|`), after percent-decoding.
    pub cookie_separator: Option<String>,
}

impl LegacyUserBinding {
    /// The user a success response names, taking the header out of `headers`; `None` when
    /// the configured header and cookie are both missing.
    pub fn user_named(&self, headers: &mut http::HeaderMap) -> Option<String> {
        if let Some(name) = &self.header {
            let value = headers.remove(name.as_str());
            if let Some(user) = value.as_ref().and_then(|v| v.to_str().ok()) {
                return Some(user.trim().to_owned());
            }
        }
        let pattern = self.cookie.as_deref()?;
        headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|set| self.cookie_user(pattern, set))
    }

    fn cookie_user(&self, pattern: &str, set_cookie: &str) -> Option<String> {
        let pair = set_cookie.split(';').next()?.trim();
        let (name, value) = pair.split_once('=')?;
        let matches = match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        };
        if !matches {
            return None;
        }
        // The value is percent-decoded first: PHP's `setcookie` encodes WordPress's `|` as `%7C`.
        let value = value.trim_matches('"');
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()?;
        let decoded = match self.cookie_separator.as_deref() {
            Some(sep) => decoded.split(sep).next().unwrap_or("").to_owned(),
            None => decoded.into_owned(),
        };
        (!decoded.is_empty()).then_some(decoded)
    }
}

fn default_identifier_field() -> String {
    "email".to_owned()
}

fn default_password_field() -> String {
    "password".to_owned()
}

/// How to recognise a legacy sign-in that failed. Empty: every sign-in is verified (the hash
/// check is then the only judge, at the price of CPU spent on wrong guesses).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureSignature {
    /// Response statuses that mean "wrong credentials", e.g. `[200, 401]` for a form re-shown.
    pub status: Vec<u16>,
    /// A `Location` containing this text means failure, e.g. `"/login?error"`.
    pub location_contains: Option<String>,
    /// A successful sign-in sets this cookie; its absence means failure.
    pub success_cookie: Option<String>,
}

impl FailureSignature {
    /// Whether a legacy response with this status and headers is a failed sign-in.
    pub fn is_failure(&self, status: http::StatusCode, headers: &http::HeaderMap) -> bool {
        if self.status.contains(&status.as_u16()) {
            return true;
        }
        if let Some(needle) = &self.location_contains {
            let location = headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if location.contains(needle.as_str()) {
                return true;
            }
        }
        if let Some(cookie) = &self.success_cookie {
            let prefix = format!("{cookie}=");
            let set = headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.trim_start().starts_with(&prefix));
            if !set {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod legacy_user_binding_tests {
    #![allow(clippy::unwrap_used)]
    use super::LegacyUserBinding;
    use http::header::{HeaderMap, HeaderValue, SET_COOKIE};

    #[test]
    fn wordpress_cookie_names_the_login() {
        let binding = LegacyUserBinding {
            cookie: Some("wordpress_logged_in_*".into()),
            cookie_separator: Some("|".into()),
            ..LegacyUserBinding::default()
        };
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("wordpress_test_cookie=WP%20Cookie%20check; path=/"),
        );
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static(
                "wordpress_logged_in_0123abcd=j%C3%B6rg%40x.io%7C1700000000%7Ctok%7Chmac; path=/; HttpOnly",
            ),
        );
        // `|` arrives percent-encoded in WordPress's cookie: split after decoding.
        let named = binding.user_named(&mut headers);
        assert_eq!(named.as_deref(), Some("jörg@x.io"));
    }

    #[test]
    fn header_is_taken_out() {
        let binding = LegacyUserBinding {
            header: Some("x-legacy-user".into()),
            ..LegacyUserBinding::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-legacy-user", HeaderValue::from_static(" al@x.io "));
        assert_eq!(binding.user_named(&mut headers).as_deref(), Some("al@x.io"));
        assert!(headers.get("x-legacy-user").is_none());
        assert_eq!(binding.user_named(&mut headers), None);
    }
}
