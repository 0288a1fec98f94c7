//! A small legacy app for tests, served by hyper on 127.0.0.1:0.
//!
//! - `/echo`: answers JSON with the method, path+query, request headers and body length.
//! - `/upload`: reads the body as a stream and answers the byte count.
//! - `/download?bytes=N`: streams N bytes (64 KiB chunks, generated lazily).
//! - `/slow?ms=N`: waits N ms, then answers `slow done`.
//! - `/ws`: WebSocket echo.
//! - `/login`: echoes the body bytes back.
//! - `/signin`: a login form handler checked against the app's own user table ([`LegacyApp::users`],
//!   email → plaintext; a login name in [`LegacyApp::logins`] stands for its email): good
//!   credentials answer 302 to `/home` with `Set-Cookie: session=…`, bad ones 200 with the form
//!   and an error (so a failure signature can be configured). `/api/signin` is the same with a
//!   JSON body `{"credentials": {"email": …, "password": …}}`. A repeated form field is read
//!   as PHP, Django and Rails read it (the last value wins), or as Go's `FormValue` reads it
//!   (the first wins) with `?reader=first`; a success names the user it signed in with
//!   `x-legacy-user`, so a test can compare legacy's reading of a request with dripgate's.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

type AppBody = BoxBody<Bytes, Infallible>;

/// A running legacy app.
pub struct LegacyApp {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    /// The app's own user table for `/signin`: email (lower-cased) → plaintext password.
    pub users: Arc<Mutex<HashMap<String, String>>>,
    /// Login names accepted in place of the email at `/signin`: login → email (lower-cased).
    pub logins: Arc<Mutex<HashMap<String, String>>>,
}

impl LegacyApp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let users: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let table = users.clone();
        let logins: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let login_table = logins.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let counter = counter.clone();
                let table = table.clone();
                let login_table = login_table.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        route(req, table.clone(), login_table.clone())
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            users,
            logins,
        }
    }

    /// Lets the user with this email also sign in with `login`.
    pub fn set_login(&self, login: &str, email: &str) {
        self.logins
            .lock()
            .unwrap()
            .insert(login.to_owned(), email.to_lowercase());
    }

    /// Sets (or changes) a user's password in the app's own table.
    pub fn set_user(&self, email: &str, password: &str) {
        self.users
            .lock()
            .unwrap()
            .insert(email.to_lowercase(), password.to_owned());
    }
}

/// `{"credentials": {"email": …, "password": …}}`, the JSON shape of the app's API sign-in.
fn json_credentials(body: &[u8]) -> HashMap<String, String> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    ["email", "password"]
        .into_iter()
        .filter_map(|k| {
            let v = value["credentials"][k].as_str()?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The `/signin` and `/api/signin` handler: a form post (or, with a JSON content type, the
/// JSON body of [`json_credentials`]) checked against `users`.
async fn signin(
    req: Request<Incoming>,
    users: &Mutex<HashMap<String, String>>,
    logins: &Mutex<HashMap<String, String>>,
) -> Response<AppBody> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let first_wins = req.uri().query() == Some("reader=first");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let fields: HashMap<String, String> = if json {
        json_credentials(&body)
    } else if first_wins {
        let mut fields = HashMap::new();
        for (k, v) in form_urlencoded::parse(&body).into_owned() {
            fields.entry(k).or_insert(v);
        }
        fields
    } else {
        form_urlencoded::parse(&body).into_owned().collect()
    };
    let typed = fields.get("email").cloned().unwrap_or_default();
    // Trimmed as the most lenient stacks trim: PHP's `trim` (`\0`, `\x0B`) and Python's
    // `str.strip` (Unicode spaces, `\x1C`–`\x1F`) together.
    let typed = typed.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    let email = logins
        .lock()
        .unwrap()
        .get(typed)
        .cloned()
        .unwrap_or_else(|| typed.to_lowercase());
    let password = fields.get("password").cloned().unwrap_or_default();
    let good = users
        .lock()
        .unwrap()
        .get(&email)
        .is_some_and(|stored| *stored == password);
    if good {
        Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/home")
            .header(
                header::SET_COOKIE,
                format!("session=s-{}; HttpOnly", email.len()),
            )
            .header("x-legacy", "welcome")
            .header("x-legacy-user", email.as_str())
            .body(full(format!("welcome {email}")))
            .unwrap()
    } else {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/html")
            .header("x-legacy", "form")
            .body(full(
                "<form method=post action=/signin>bad credentials</form>",
            ))
            .unwrap()
    }
}

fn full(bytes: impl Into<Bytes>) -> AppBody {
    Full::new(bytes.into()).boxed()
}

fn query_number(req: &Request<Incoming>, key: &str) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn route(
    mut req: Request<Incoming>,
    users: Arc<Mutex<HashMap<String, String>>>,
    logins: Arc<Mutex<HashMap<String, String>>>,
) -> Result<Response<AppBody>, Infallible> {
    let resp = match req.uri().path() {
        "/signin" | "/api/signin" => signin(req, &users, &logins).await,
        "/upload" => {
            let mut body = req.into_body();
            let mut total = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    total += d.len();
                }
            }
            Response::new(full(total.to_string()))
        }
        "/download" => {
            let n = query_number(&req, "bytes");
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::unfold(n, move |left| {
                let chunk = chunk.clone();
                async move {
                    if left == 0 {
                        return None;
                    }
                    let take = left.min(chunk.len() as u64);
                    let frame = Frame::data(chunk.slice(..take as usize));
                    Some((Ok::<_, Infallible>(frame), left - take))
                }
            });
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_number(&req, "ms"))).await;
            Response::new(full("slow done"))
        }
        "/ws" => websocket(&mut req),
        "/login" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Response::new(full(body))
        }
        _ => {
            let headers: BTreeMap<String, Vec<String>> = req
                .headers()
                .keys()
                .map(|k| {
                    let values = req
                        .headers()
                        .get_all(k)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect();
                    (k.as_str().to_owned(), values)
                })
                .collect();
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let version = format!("{:?}", req.version());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let json = serde_json::json!({
                "method": method,
                "uri": uri,
                "version": version,
                "headers": headers,
                "body_len": body.len(),
            });
            let mut resp = Response::new(full(json.to_string()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            // A hop-by-hop header that must not reach the client.
            resp.headers_mut()
                .insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
            resp
        }
    };
    Ok(resp)
}

fn websocket(req: &mut Request<Incoming>) -> Response<AppBody> {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        let mut r = Response::new(full("not a websocket request"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = on_upgrade.await.unwrap();
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(Bytes::new()))
        .unwrap()
}
