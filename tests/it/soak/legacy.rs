//! The soak's legacy app: `POST /signin` checked against its own user table, every answer
//! carrying a fresh nonce (session cookie or body) and written to a journal under the request's
//! `x-soak-id`, so the harness can tell whether the client got exactly the answer legacy sent
//! for that request. Fault knobs: the next sign-ins slow, or answered with a 5xx.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::migration_common::Seen;

/// A fault for the next sign-in legacy answers.
#[derive(Debug, Clone, Copy)]
pub enum LegacyFault {
    /// Answer after this long.
    Slow(Duration),
    /// Answer with this status (and an error page).
    Status(u16),
}

#[derive(Default)]
struct State {
    users: HashMap<String, String>,
    journal: HashMap<String, Vec<Seen>>,
    faults: VecDeque<LegacyFault>,
}

/// The running app.
#[derive(Clone)]
pub struct Legacy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Legacy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, state.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    /// Sets a user's password in the app's own table.
    pub fn set_user(&self, email: &str, password: &str) {
        let mut st = self.state.lock().unwrap();
        st.users.insert(email.to_lowercase(), password.to_owned());
    }

    /// Queues a fault for the next sign-in.
    pub fn fault(&self, fault: LegacyFault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// Drops the queued faults.
    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// What legacy answered to the request with this id (several if it came more than once).
    pub fn answered(&self, id: &str) -> Vec<Seen> {
        let st = self.state.lock().unwrap();
        st.journal.get(id).cloned().unwrap_or_default()
    }
}

fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != http::Method::POST || req.uri().path() != "/signin" {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not here")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    }
    let id = req
        .headers()
        .get("x-soak-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let fields: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let fault = state.lock().unwrap().faults.pop_front();
    if let Some(LegacyFault::Slow(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let email = fields.get("email").cloned().unwrap_or_default();
    let password = fields.get("password").cloned().unwrap_or_default();
    let nonce = nonce();
    let seen = match fault {
        Some(LegacyFault::Status(code)) => Seen {
            status: code,
            location: None,
            set_cookie: Vec::new(),
            x_legacy: None,
            body: format!("legacy failed {nonce}"),
        },
        _ => {
            let st = state.lock().unwrap();
            let good = !password.is_empty()
                && st.users.get(&email.trim().to_lowercase()) == Some(&password);
            if good {
                Seen {
                    status: 302,
                    location: Some("/home".into()),
                    set_cookie: vec![format!("session={nonce}; Path=/; HttpOnly")],
                    x_legacy: None,
                    body: String::new(),
                }
            } else {
                Seen {
                    status: 200,
                    location: None,
                    set_cookie: Vec::new(),
                    x_legacy: None,
                    body: format!("<form>wrong email or password {nonce}</form>"),
                }
            }
        }
    };
    let response = to_response(&seen);
    state
        .lock()
        .unwrap()
        .journal
        .entry(id)
        .or_default()
        .push(seen);
    Ok(response)
}

fn to_response(seen: &Seen) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(seen.body.clone())));
    *r.status_mut() = StatusCode::from_u16(seen.status).unwrap();
    if let Some(l) = &seen.location {
        r.headers_mut().insert(header::LOCATION, l.parse().unwrap());
    }
    for c in &seen.set_cookie {
        r.headers_mut()
            .append(header::SET_COOKIE, c.parse().unwrap());
    }
    r.headers_mut()
        .insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
    r
}
