//! Which requests are sign-ins: method and path, compared the way the servers behind dripgate
//! resolve a path, so no spelling of a sign-in path walks past the interception.
//!
//! A request path is normalized before it is compared: `%XX` escapes of unreserved characters
//! (and of `/` and `\`) are decoded, `\` is read as `/` (IIS), `;…` parameters are dropped from
//! each segment (Tomcat, Jetty), repeated slashes are merged, `.` and `..` segments resolved,
//! and a trailing slash is ignored (Express, Rails). A route whose last segment names a script
//! (`/wp-login.php`) also covers the paths below it, which Apache and PHP-FPM run as that
//! script with a `PATH_INFO` (`/wp-login.php/x`). The query string never takes part: WordPress
//! runs `/wp-login.php?action=anything` as a sign-in, and which requests carry credentials is
//! decided from their fields.

use std::borrow::Cow;
use std::cmp::Ordering;

use http::{Method, Uri};

use super::extract::{FieldSpec, query_has_field};

/// Which handler a request goes to; also the `route` label of the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Forwarded as is, streamed.
    Proxy,
    /// A configured sign-in route (its index in `signin.routes`): the body is read first.
    Signin(usize),
    /// A configured forgot-password route (its index in `signin.forgot_password.routes`).
    ForgotPassword(usize),
}

impl RouteClass {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Signin(_) => "signin",
            Self::ForgotPassword(_) => "forgot_password",
        }
    }
}

/// One sign-in route as the router compares it.
#[derive(Debug, Clone)]
struct RouteMatch {
    method: Method,
    /// The configured path, normalized.
    path: String,
    case_insensitive: bool,
    /// Whether paths below this one run it (`PATH_INFO`).
    script: bool,
    /// The credential fields, to notice them in another method's query string.
    fields: FieldSpec,
    /// What a request it matches is.
    class: RouteClass,
}

impl RouteMatch {
    /// Whether a path already in normal form could match, from its length and one byte: the
    /// same length and last byte (in either case), or for a script a `/` just past its path.
    /// True whenever [`Self::path_matches`] is, so a `false` spares the comparison.
    #[inline]
    fn may_match(&self, path: &[u8]) -> bool {
        let route = self.path.as_bytes();
        match path.len().cmp(&route.len()) {
            Ordering::Equal => path
                .last()
                .zip(route.last())
                .is_none_or(|(a, b)| a.eq_ignore_ascii_case(b)),
            Ordering::Greater => self.script && path[route.len()] == b'/',
            Ordering::Less => false,
        }
    }

    fn path_matches(&self, path: &str) -> bool {
        let eq = |a: &str, b: &str| {
            if self.case_insensitive {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        if eq(path, &self.path) {
            return true;
        }
        self.script
            && path.len() > self.path.len()
            && path.as_bytes()[self.path.len()] == b'/'
            && path.is_char_boundary(self.path.len())
            && eq(&path[..self.path.len()], &self.path)
    }
}

/// Classifies requests by method and normalized path.
#[derive(Debug, Clone, Default)]
pub struct Router {
    signin: Vec<RouteMatch>,
}

impl Router {
    /// A router for the sign-in and forgot-password routes in `config` (validated
    /// beforehand). Sign-in routes come first: a path both have is a sign-in route, and the
    /// handler tells a reset request on it by its fields.
    pub fn new(config: &super::config::SigninConfig) -> Self {
        let signin = config.routes.iter().enumerate().map(|(i, r)| {
            let fields = FieldSpec {
                kind: r.body,
                identifier: r.identifier_field.clone(),
                password: r.password_field.clone(),
            };
            (
                &r.method,
                &r.path,
                r.case_insensitive_path,
                fields,
                RouteClass::Signin(i),
            )
        });
        let forgot = config
            .forgot_password
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let fields = FieldSpec {
                    kind: r.body,
                    identifier: r.identifier_field.clone(),
                    password: r.identifier_field.clone(),
                };
                let class = RouteClass::ForgotPassword(i);
                (&r.method, &r.path, r.case_insensitive_path, fields, class)
            });
        let signin = signin
            .chain(forgot)
            .filter_map(|(method, path, case_insensitive, fields, class)| {
                let method = Method::from_bytes(method.as_bytes()).ok()?;
                let path = normalize_path(path).into_owned();
                let last = path.rsplit('/').next().unwrap_or("");
                Some(RouteMatch {
                    method,
                    script: last.contains('.'),
                    path,
                    case_insensitive,
                    fields,
                    class,
                })
            })
            .collect();
        Self { signin }
    }

    /// The forgot-password route with the same method and path as sign-in route `signin`, if
    /// any: a request there without sign-in credentials may be a reset request.
    pub fn forgot_password_beside(&self, signin: usize) -> Option<usize> {
        let route = self
            .signin
            .iter()
            .find(|r| r.class == RouteClass::Signin(signin))?;
        self.signin.iter().find_map(|r| match r.class {
            RouteClass::ForgotPassword(i)
                if r.method == route.method && r.path_matches(&route.path) =>
            {
                Some(i)
            }
            _ => None,
        })
    }

    /// The class of a request. A request on a sign-in path with another method (a `GET` that
    /// carries credentials in its query, which PHP's `$_REQUEST` would read) is a sign-in too,
    /// so its fields are checked like any other.
    pub fn classify(&self, method: &Method, uri: &Uri) -> RouteClass {
        if self.signin.is_empty() {
            return RouteClass::Proxy;
        }
        // A method no route has, and no query that could carry a route's fields: no sign-in,
        // whatever the path (most `GET`s).
        if uri.query().is_none() && !self.signin.iter().any(|r| r.method == method) {
            return RouteClass::Proxy;
        }
        // Almost every other request: a path that normalization leaves as it is, and that no
        // route could match by its length and last byte. It is no sign-in, whatever the method.
        let path = uri.path();
        if !self.signin.iter().any(|r| r.may_match(path.as_bytes())) && is_normal(path) {
            return RouteClass::Proxy;
        }
        self.classify_normalized(method, uri)
    }

    /// [`Self::classify`] for a path that may match: normalized, then compared.
    #[inline(never)]
    fn classify_normalized(&self, method: &Method, uri: &Uri) -> RouteClass {
        let path = normalize_path(uri.path());
        let mut first = None;
        for (i, r) in self.signin.iter().enumerate() {
            if r.path_matches(&path) {
                if r.method == method {
                    return r.class;
                }
                first = first.or(Some(i));
            }
        }
        let Some(first) = first else {
            return RouteClass::Proxy;
        };
        let names_a_field = uri
            .query()
            .is_some_and(|q| query_has_field(&self.signin[first].fields, q.as_bytes()));
        if names_a_field {
            self.signin[first].class
        } else {
            RouteClass::Proxy
        }
    }
}

/// `path` as the servers behind dripgate resolve it (see the module documentation). Borrowed
/// when it is already in that form, as almost every request path is.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if is_normal(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Whether `path` is already normalized: no escape, backslash or segment parameter, and no
/// empty, `.` or `..` segment (a dot inside a name, as in `/app.js`, is fine). A scan without
/// allocation, so that every proxied request pays only this.
#[inline]
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    // One pass: `dots` counts dots since the last slash, `segment_len` all bytes since it. A
    // segment that is empty (`//`, a trailing slash), or of only one or two dots (`.`, `..`),
    // has `dots == segment_len <= 2`.
    let (mut dots, mut segment_len) = (0usize, 0usize);
    for &b in &bytes[1..] {
        match b {
            b'%' | b';' | b'\\' => return false,
            b'/' if dots == segment_len && dots <= 2 => return false,
            b'/' => (dots, segment_len) = (0, 0),
            b'.' => (dots, segment_len) = (dots + 1, segment_len + 1),
            _ => segment_len += 1,
        }
    }
    // The last segment likewise, unless the path is `/`.
    bytes.len() == 1 || !(dots == segment_len && dots <= 2)
}

/// Decodes `%XX` escapes of unreserved characters, `/` and `\` (the ones servers decode
/// before they route), reads `\` as `/`, and keeps every other escape as sent.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) if b.is_ascii_alphanumeric() || b"-._~/\\".contains(&b) => {
                out.push(if b == b'\\' { b'/' } else { b });
                i += 3;
            }
            _ => {
                out.push(if bytes[i] == b'\\' { b'/' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::signin::config::{SigninConfig, SigninRoute};

    fn router(path: &str, case_insensitive: bool) -> Router {
        let mut config = SigninConfig::default();
        config.routes = vec![SigninRoute {
            path: path.to_owned(),
            case_insensitive_path: case_insensitive,
            ..config.routes[0].clone()
        }];
        Router::new(&config)
    }

    fn class(r: &Router, method: &str, target: &str) -> RouteClass {
        let uri: Uri = target.parse().unwrap();
        r.classify(&Method::from_bytes(method.as_bytes()).unwrap(), &uri)
    }

    #[test]
    fn every_spelling_of_the_path_is_a_sign_in() {
        let r = router("/login", false);
        for target in [
            "/login",
            "//login",
            "/./login",
            "/x/../login",
            "/%6Cogin",
            "/%2e/login",
            "/%2E%2E/login",
            "/login/",
            "/login;jsessionid=1",
            "/%2flogin",
            "/%5Clogin",
            "http://example.test/login?x=1",
        ] {
            assert_eq!(class(&r, "POST", target), RouteClass::Signin(0), "{target}");
        }
        for target in [
            "/Login",
            "/login2",
            "/logins",
            "/x/login",
            "/login/x",
            "/%252e/login",
        ] {
            assert_eq!(class(&r, "POST", target), RouteClass::Proxy, "{target}");
        }
        assert_eq!(class(&r, "GET", "/login"), RouteClass::Proxy);
        assert_eq!(class(&r, "GET", "/login?next=/"), RouteClass::Proxy);
        assert_eq!(class(&r, "GET", "/login?email=a"), RouteClass::Signin(0));
        assert_eq!(class(&r, "GET", "/login?Password=a"), RouteClass::Signin(0));
    }

    #[test]
    fn case_and_path_info_where_the_route_says() {
        let r = router("/Login", true);
        assert_eq!(class(&r, "POST", "/LOGIN"), RouteClass::Signin(0));
        let wp = router("/wp-login.php", false);
        for target in [
            "/wp-login.php",
            "/wp-login.php?action=login",
            "/wp-login.php?action=lostpassword",
            "/wp-login.php/",
            "/wp-login.php/x",
            "/blog/../wp-login.php",
        ] {
            assert_eq!(
                class(&wp, "POST", target),
                RouteClass::Signin(0),
                "{target}"
            );
        }
        assert_eq!(class(&wp, "POST", "/wp-login.phpx"), RouteClass::Proxy);
    }

    #[test]
    fn the_quick_filter_passes_every_normal_path_that_matches() {
        let paths = [
            "/",
            "/login",
            "/LOGIN",
            "/Login",
            "/logiN",
            "/logim",
            "/hello",
            "/login/x",
            "/logins",
            "/wp-login.php",
            "/WP-LOGIN.PHP",
            "/wp-login.php/x",
            "/wp-login.phpx",
            "/a/login",
        ];
        for (route, case_insensitive) in [
            ("/login", false),
            ("/Login", true),
            ("/wp-login.php", false),
            ("/WP-Login.php", true),
            ("/", false),
        ] {
            for r in &router(route, case_insensitive).signin {
                for path in paths {
                    assert!(is_normal(path), "{path}");
                    if r.path_matches(path) {
                        assert!(r.may_match(path.as_bytes()), "{route} {path}");
                    }
                }
            }
        }
        let r = router("/login", false);
        assert!(!r.signin[0].may_match(b"/hello"));
        assert!(!r.signin[0].may_match(b"/a/b/c"));
        // The fast paths skip only what the full comparison would not match.
        assert_eq!(class(&r, "GET", "//login"), RouteClass::Proxy);
        assert_eq!(class(&r, "GET", "/%6cogin?email=a"), RouteClass::Signin(0));
        assert_eq!(
            class(&r, "GET", "/x/../login?email=a"),
            RouteClass::Signin(0)
        );
        assert_eq!(class(&r, "POST", "/%6cogin"), RouteClass::Signin(0));
        assert_eq!(class(&r, "POST", "/hello"), RouteClass::Proxy);
        assert_eq!(class(&r, "GET", "/hello?email=a"), RouteClass::Proxy);
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for plain in ["/", "/a/b", "/static/app.js", "/a.b/c..d", "/...", "/.a/b."] {
            assert!(matches!(normalize_path(plain), Cow::Borrowed(_)), "{plain}");
        }
        for not_plain in [
            "", "a", "//", "/a//b", "/a/", "/.", "/..", "/./a", "/a/../b", "/a/.", "/%41", "/a;b",
            "/a\\b",
        ] {
            assert!(
                matches!(normalize_path(not_plain), Cow::Owned(_)),
                "{not_plain}"
            );
        }
        assert_eq!(normalize_path("/a/"), "/a");
        assert_eq!(normalize_path("/a/."), "/a");
        assert_eq!(normalize_path("a"), "/a");
        assert_eq!(normalize_path("/a/./b/../c//"), "/a/c");
        assert_eq!(normalize_path("/.."), "/");
        assert_eq!(normalize_path("/%7euser/%41"), "/~user/A");
        assert_eq!(normalize_path("/a%20b"), "/a%20b");
    }
}
