//! Shared test harness: a real legacy app on 127.0.0.1:0 and dripgate started in-process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod legacy_app;
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use dripgate::BoundServer;
use dripgate::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running dripgate.
pub struct Dripgate {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl Dripgate {
    /// Binds `config` (listeners are forced to 127.0.0.1:0) and serves it.
    pub async fn start(mut config: Config) -> Self {
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        let server = BoundServer::bind(config).await.expect("bind dripgate");
        let addr = server.proxy_addr();
        let admin = server.admin_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            addr,
            admin,
            stop: Some(stop),
            task,
        }
    }

    /// `http://addr`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://admin`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Triggers shutdown (as SIGTERM would) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("dripgate stops within 30 s")
            .unwrap();
    }
}

/// A config for tests: upstream at `upstream`, short shutdown timings, two proxy workers
/// (whatever the machine's core count, so every test crosses the multi-worker paths the same
/// way).
pub fn config_for(upstream: SocketAddr) -> Config {
    let mut config = Config::default();
    config.upstream.url = format!("http://{upstream}");
    config.server.worker_threads = 2;
    config.shutdown.delay = Duration::from_millis(0);
    config.shutdown.drain_timeout = Duration::from_secs(5);
    config
}

/// A plain reqwest client that never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The body of GET `url`.
pub async fn get_text(url: &str) -> (u16, String) {
    let resp = client().get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of one sample (exact series text, e.g. `name{a="b"}`) in a /metrics page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}
