//! The sample legacy app: a home page, an HTML sign-in form at `/login` checked against its own
//! SQLite user table with dripgate's hash verifier, and an `/account` page behind a session cookie.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, header};
use rand::Rng;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::signin_page::{escape, form_fields, html};
use super::{Incoming_, Reply, ServerHandle, response, serve};
use crate::hash::{HashConfig, LegacyHash, SaltPosition, verify};

/// A running legacy app; stops when dropped.
pub struct LegacyApp {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _server: ServerHandle,
}

struct App {
    users: SqlitePool,
    sessions: Mutex<HashMap<String, String>>,
    caps: HashConfig,
}

impl LegacyApp {
    /// Serves the app on `127.0.0.1:0`, reading users from the SQLite file at `db`.
    /// Errors name the step that failed (`legacy app database: …`).
    pub async fn start(db: &Path) -> std::io::Result<Self> {
        let options = SqliteConnectOptions::new().filename(db).read_only(true);
        let users = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| std::io::Error::other(format!("legacy app database: {e}")))?;
        let app = Arc::new(App {
            users,
            sessions: Mutex::new(HashMap::new()),
            caps: HashConfig::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| std::io::Error::other(format!("legacy app listener: {e}")))?;
        let url = listener
            .local_addr()
            .map(|a| format!("http://{a}"))
            .map_err(|e| std::io::Error::other(format!("legacy app listener: {e}")))?;
        let server = serve(listener, move |req| {
            let app = app.clone();
            async move { Reply::Send(app.handle(req).await) }
        })
        .map_err(|e| std::io::Error::other(format!("legacy app: {e}")))?;
        Ok(Self {
            url,
            _server: server,
        })
    }
}

type Page = Response<Full<Bytes>>;

impl App {
    async fn handle(&self, req: Incoming_) -> Page {
        match (&req.method, req.uri.path()) {
            (&Method::GET, "/") => html(
                200,
                "Acme Portal (legacy)",
                "<p>The legacy app dripgate sits in front of.</p>\
                 <p><a href=\"/login\">Sign in</a> · <a href=\"/account\">Your account</a></p>",
            ),
            (&Method::GET, "/login") => login_form(None, ""),
            (&Method::POST, "/login") => self.sign_in(&req.body).await,
            (&Method::GET, "/account") => self.account(&req.headers),
            _ => response(404, "text/plain; charset=utf-8", "not found\n"),
        }
    }

    async fn sign_in(&self, body: &[u8]) -> Page {
        let fields = form_fields(body);
        let email = fields.get("email").map(|e| e.trim().to_lowercase());
        let password = fields.get("password").cloned().unwrap_or_default();
        let Some(email) = email.filter(|e| !e.is_empty()) else {
            return login_form(Some("Enter your email and password."), "");
        };
        if self.check(&email, password).await {
            let token = hex::encode(rand::rng().random::<[u8; 16]>());
            self.lock().insert(token.clone(), email);
            let mut resp = response(302, "text/plain; charset=utf-8", "signed in\n");
            let cookie = format!("session={token}; Path=/; HttpOnly; SameSite=Lax");
            for (name, value) in [
                (header::LOCATION, "/account"),
                (header::SET_COOKIE, cookie.as_str()),
            ] {
                if let Ok(v) = header::HeaderValue::from_str(value) {
                    resp.headers_mut().insert(name, v);
                }
            }
            resp
        } else {
            login_form(Some("Wrong email or password."), &email)
        }
    }

    /// Whether `password` verifies against the stored hash of `email`.
    async fn check(&self, email: &str, password: String) -> bool {
        let row: Option<(String, Option<String>, String)> =
            sqlx::query_as("SELECT hash, salt, format FROM users WHERE email = ?")
                .bind(email)
                .fetch_optional(&self.users)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "legacy app: user lookup failed");
                    None
                });
        let Some((hash, salt, format)) = row else {
            return false;
        };
        let Ok(format) = format.parse() else {
            return false;
        };
        let mut stored = LegacyHash::new(format, hash);
        if let Some(salt) = salt {
            stored = stored.salted(salt, SaltPosition::Suffix);
        }
        let caps = self.caps.clone();
        tokio::task::spawn_blocking(move || verify(&stored, password.as_bytes(), &caps))
            .await
            .is_ok_and(|r| r.unwrap_or(false))
    }

    fn account(&self, headers: &hyper::HeaderMap) -> Page {
        let email = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix("session="))
            .find_map(|token| self.lock().get(token).cloned());
        match email {
            Some(email) => html(
                200,
                "Your account (legacy)",
                &format!(
                    "<p>Signed in at the <b>legacy app</b> as {}.</p>",
                    escape(&email)
                ),
            ),
            None => {
                let mut resp = response(302, "text/plain; charset=utf-8", "sign in first\n");
                resp.headers_mut()
                    .insert(header::LOCATION, header::HeaderValue::from_static("/login"));
                resp
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn login_form(error: Option<&str>, email: &str) -> Page {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    html(
        200,
        "Sign in (legacy)",
        &format!(
            "{error}<form method=\"post\" action=\"/login\">\
             <label>Email <input name=\"email\" type=\"email\" value=\"{}\"></label><br>\
             <label>Password <input name=\"password\" type=\"password\"></label><br>\
             <button type=\"submit\">Sign in</button></form>",
            escape(email)
        ),
    )
}
