//! Listeners, TLS, connection limits and timeouts, graceful shutdown, admin endpoints.
//!
//! [`BoundServer::bind`] opens both listeners (so tests can bind `127.0.0.1:0` and read the
//! ports), [`BoundServer::serve`] runs until the shutdown future resolves and then drains:
//! `/readyz` turns 503, new connections are still served for `shutdown.delay`, then accepting
//! stops and in-flight requests get up to `shutdown.drain_timeout` to finish.

mod admin;
mod admin_guard;
pub mod health;
mod lifecycle;
mod listener;
mod preflight;
mod runtime;
mod service;
mod status;
mod status_page;
pub mod tls;
mod watchdog;
mod wiring;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::{Config, ConfigError};
use crate::proxy::Forwarder;
use crate::proxy::metrics::HttpMetrics;
use crate::signin::{Router, SigninHandler};
use health::Health;
use lifecycle::Lifecycle;
use listener::ConnLimits;
use service::RequestContext;
use tls::{CertStore, TlsError};

pub use preflight::preflight;
pub use runtime::{EVENT_INTERVAL, serve_runtime};
pub use wiring::build_engine;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The config is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A metric could not be registered.
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A migration dependency (legacy store, provider, ledger, audit log) could not be set up.
    #[error("{0}")]
    Dependency(String),
    /// A proxy worker's thread or runtime could not be started.
    #[error("cannot start proxy worker {worker}: {source}")]
    Worker {
        /// The worker's number.
        worker: usize,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Start-up failures: the operator acts (a dependency that could not be set up is named in its
/// message; `check-config` tells more).
impl crate::failure::Classified for ServerError {
    fn blame(&self) -> crate::failure::Blame {
        use crate::failure::Blame;
        match self {
            Self::Bind { .. } | Self::Dependency(_) => Blame::Config,
            Self::Tls(e) => e.blame(),
            Self::Config(e) => e.blame(),
            Self::Metrics(_) | Self::Worker { .. } => Blame::Internal,
        }
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }
}

/// A server whose listeners are bound but not yet serving.
pub struct BoundServer {
    config: Config,
    /// One listening socket per proxy worker, all on the same port.
    proxy: Vec<TcpListener>,
    admin: TcpListener,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    certs: Option<Arc<CertStore>>,
    ctx: Arc<RequestContext>,
    health: Arc<Health>,
    registry: Registry,
    config_path: Option<std::path::PathBuf>,
    settings_metrics: Option<crate::migrate::SettingsMetrics>,
}

impl BoundServer {
    /// Validates `config`, builds the request path and binds both listeners.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        config.validate_serving()?;
        let registry = crate::metrics::new_registry()?;
        let metrics = HttpMetrics::register(&registry)?;
        let health = Arc::new(Health::register(&registry)?);
        let certs = match &config.server.tls {
            Some(tls) => Some(CertStore::load(tls, &registry)?),
            None => None,
        };
        let migration = wiring::build(&config, &registry, &metrics).await?;
        let (engine, new_upstream, settings_metrics) = match migration {
            Some(m) => (Some(m.engine), m.new_upstream, Some(m.settings_metrics)),
            None => (None, None, None),
        };
        let ctx = Arc::new(RequestContext {
            router: Router::new(&config.signin),
            signin: SigninHandler::new(&config.signin, &registry, engine, new_upstream)?,
            legacy: Forwarder::legacy(&config.upstream, &config.forwarding, metrics.clone())
                .map_err(ConfigError::from)?,
            metrics,
        });
        let proxy = bind_proxy(config.server.listen, config.server.workers())?;
        let admin = bind(config.admin.listen).await?;
        let local = |l: &TcpListener, addr| {
            l.local_addr()
                .map_err(|source| ServerError::Bind { addr, source })
        };
        Ok(Self {
            proxy_addr: match proxy.first() {
                Some(first) => local(first, config.server.listen)?,
                None => {
                    return Err(ServerError::Bind {
                        addr: config.server.listen,
                        source: std::io::Error::other("no proxy worker"),
                    });
                }
            },
            admin_addr: local(&admin, config.admin.listen)?,
            config,
            proxy,
            admin,
            certs,
            ctx,
            health,
            registry,
            config_path: None,
            settings_metrics,
        })
    }

    /// The address clients connect to.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Re-reads `path` on SIGHUP and applies its `[migration]` phase and canary share (other
    /// keys need a restart; TLS certificates reload on their own).
    pub fn reload_migration_from(mut self, path: std::path::PathBuf) -> Self {
        self.config_path = Some(path);
        self
    }

    /// The registry `/metrics` exposes, for modules that add their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves until `shutdown` resolves, then drains and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let tls = match &self.certs {
            Some(store) => Some(store.acceptor()?),
            None => None,
        };
        let (phase_tx, phase) = watch::channel(Lifecycle::Running);
        let (stop_tx, stop) = watch::channel(false);
        if let Some(store) = &self.certs {
            store.spawn_watcher(stop.clone());
        }
        if let (Some(engine), Some(settings)) =
            (self.ctx.signin.engine(), self.settings_metrics.clone())
        {
            spawn_ledger_probe(engine.ledger().clone(), self.health.clone(), stop.clone());
            crate::migrate::spawn_settings_poll(
                engine.clone(),
                settings.clone(),
                self.config.migration.settings_poll_interval,
                stop.clone(),
            );
            if let Some(path) = &self.config_path {
                spawn_migration_reload(
                    path.clone(),
                    engine.clone(),
                    settings,
                    self.config.migration.clone(),
                    stop.clone(),
                );
            }
        }
        spawn_upstream_probe(&self.ctx.legacy, &self.config, &self.health, stop);

        let max = self.config.server.max_connections;
        let permits = Arc::new(Semaphore::new(max));
        let limits = ConnLimits::from(&self.config.server);
        let mut listeners = self.proxy.into_iter();
        let first = listeners.next();
        let mut workers = Vec::new();
        for (i, socket) in listeners.enumerate() {
            let worker = ProxyWorker {
                number: i + 1,
                ctx: Arc::new(self.ctx.for_worker()?),
                tls: tls.clone(),
                limits,
                permits: permits.clone(),
                phase: phase.clone(),
            };
            // On an error here the workers already started end with `phase_tx`, dropped.
            workers.push(worker.start(socket).await?);
        }
        let accept = tokio::spawn({
            let (ctx, permits, phase) = (self.ctx.clone(), permits.clone(), phase.clone());
            async move {
                if let Some(socket) = first {
                    listener::accept_loop(0, socket, tls, ctx, limits, permits, phase).await;
                }
            }
        });
        let admin_state = Arc::new(admin::AdminState {
            health: self.health.clone(),
            registry: self.registry.clone(),
            started: Instant::now(),
            upstream: self.config.upstream.url.clone(),
            engine: self.ctx.signin.engine().cloned(),
            guard: admin_guard::Guard::new(&self.config.admin, &self.registry)?,
            evicted: admin::evicted_counter(&self.registry)?,
            settings: self.settings_metrics.clone(),
        });
        let admin = tokio::spawn(admin::serve(self.admin, admin_state, phase.clone()));
        self.health.set_ready(true);
        tracing::info!(
            listen = %self.proxy_addr,
            admin = %self.admin_addr,
            tls = self.certs.is_some(),
            upstream = %self.config.upstream.url,
            "dripgate serving"
        );

        shutdown.await;
        let shutdown_cfg = &self.config.shutdown;
        tracing::info!(delay = ?shutdown_cfg.delay, "shutdown requested: readiness off, still serving");
        self.health.set_ready(false);
        tokio::time::sleep(shutdown_cfg.delay).await;

        tracing::info!(deadline = ?shutdown_cfg.drain_timeout, "draining in-flight requests");
        let _ = phase_tx.send(Lifecycle::Draining);
        let _ = accept.await;
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        let drained =
            tokio::time::timeout(shutdown_cfg.drain_timeout, permits.acquire_many(all)).await;
        if drained.is_err() {
            let open = max - permits.available_permits();
            tracing::warn!(open, "drain deadline passed; closing remaining connections");
        }
        let _ = phase_tx.send(Lifecycle::Closed);
        let _ = stop_tx.send(true);
        let _ = admin.await;
        // The workers end once told to drop what is left; their threads exit with them.
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        tracing::info!("dripgate stopped");
        Ok(())
    }
}

/// Binds and serves `config` until `shutdown` resolves. Tests that need the bound ports use
/// [`BoundServer::bind`] and [`BoundServer::serve`] instead.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    BoundServer::bind(config).await?.serve(shutdown).await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A proxy worker beyond the first: its own thread and current-thread runtime, its own
/// listening socket on the shared port, its own upstream pool, and the connections it accepts.
/// Nothing of a request crosses threads, as in nginx's one event loop per worker process.
struct ProxyWorker {
    number: usize,
    ctx: Arc<RequestContext>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    permits: Arc<Semaphore>,
    phase: watch::Receiver<Lifecycle>,
}

impl ProxyWorker {
    /// Starts the worker's thread, serving `socket` until the phase reaches `Closed`; returns
    /// once its runtime is up.
    async fn start(self, socket: TcpListener) -> Result<std::thread::JoinHandle<()>, ServerError> {
        let number = self.number;
        let failed = |source| ServerError::Worker {
            worker: number,
            source,
        };
        // Moved to the worker's runtime: a tokio socket belongs to the runtime that polls it.
        let socket = socket.into_std().map_err(failed)?;
        let (started, up) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("dripgate-worker-{number}"))
            .spawn(move || {
                // Built in its own thread: a runtime must not be dropped inside another one.
                let runtime = match serve_runtime() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                runtime.block_on(self.run(socket));
                // Blocking tasks (a DNS lookup of the upstream) get a bounded time to end.
                runtime.shutdown_timeout(WORKER_STOP_TIMEOUT);
            })
            .map_err(failed)?;
        match up.await {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(e)) => Err(failed(e)),
            Err(_) => Err(failed(std::io::Error::other(
                "worker thread ended at start",
            ))),
        }
    }

    async fn run(self, socket: std::net::TcpListener) {
        let mut phase = self.phase.clone();
        match TcpListener::from_std(socket) {
            Ok(socket) => {
                listener::accept_loop(
                    self.number,
                    socket,
                    self.tls,
                    self.ctx,
                    self.limits,
                    self.permits,
                    self.phase,
                )
                .await;
            }
            Err(e) => {
                tracing::error!(worker = self.number, error = %e, "proxy worker cannot listen")
            }
        }
        // Its connections drain like every other's; at `Closed` the runtime drops what is left.
        let _ = phase.wait_for(|p| *p == Lifecycle::Closed).await;
    }
}

/// How long a stopped worker waits for its blocking tasks before its thread exits.
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds `workers` listening sockets to `addr` (to one port when `addr` asks for any): with
/// `SO_REUSEPORT` the kernel spreads new connections over them, so each worker accepts only
/// its own share and no two wake for the same connection.
fn bind_proxy(addr: SocketAddr, workers: usize) -> Result<Vec<TcpListener>, ServerError> {
    let failed = |source| ServerError::Bind { addr, source };
    let mut sockets = Vec::with_capacity(workers);
    let mut at = addr;
    for _ in 0..workers.max(1) {
        let socket = if at.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(failed)?;
        #[cfg(unix)]
        socket.set_reuseaddr(true).map_err(failed)?;
        #[cfg(unix)]
        if workers > 1 {
            socket.set_reuseport(true).map_err(failed)?;
        }
        socket.bind(at).map_err(failed)?;
        let listener = socket.listen(LISTEN_BACKLOG).map_err(failed)?;
        // The others join the port the first one got.
        at = listener.local_addr().map_err(failed)?;
        sockets.push(listener);
        #[cfg(not(unix))]
        break;
    }
    Ok(sockets)
}

/// Pending connections each listening socket holds (tokio's default for `TcpListener::bind`).
const LISTEN_BACKLOG: u32 = 1024;

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Checks every few seconds that the legacy upstream accepts TCP connections and reports it as
/// the `legacy_upstream` dependency. Readiness does not depend on it.
fn spawn_upstream_probe(
    legacy: &Forwarder,
    config: &Config,
    health: &Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    let authority = legacy.authority();
    let target = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let timeout = config.upstream.connect_timeout;
    let health = health.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = every.tick() => {}
            }
            let result = match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect(&target),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("connect failed: {e}")),
                Err(_) => Err("connect timed out".to_owned()),
            };
            health.report("legacy_upstream", result);
        }
    });
}

/// On SIGHUP, re-reads the config file. Its `[migration]` phase and canary share are initial
/// values, kept in the ledger for every replica; a reload writes them as a new change (source
/// `config_reload`, audited) only when they differ from what the file said before, so a SIGHUP
/// for another reason never undoes a change made through `POST /phase`. A file that no longer
/// validates, a switch the engine refuses, or a ledger that cannot record it, is logged and
/// ignored: the running settings stay. The handler is installed before this returns, so a
/// SIGHUP sent once the server reports itself serving never meets the default action
/// (terminating the process).
fn spawn_migration_reload(
    path: std::path::PathBuf,
    engine: crate::migrate::Engine,
    settings: crate::migrate::SettingsMetrics,
    started_with: crate::migrate::MigrationConfig,
    mut stop: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; config reload disabled");
                return;
            }
        };
        tokio::spawn(async move {
            let mut file = crate::migrate::RuntimeSettings {
                phase: started_with.phase,
                canary_percent: started_with.canary_percent,
            };
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = hup.recv() => {}
                }
                let loaded =
                    crate::config::load_file(&path).and_then(|c| c.validate_serving().map(|()| c));
                let config = match loaded {
                    Ok(config) => config,
                    Err(e) => {
                        tracing::error!(error = %e, "config reload failed; keeping the running phase");
                        continue;
                    }
                };
                let reloaded = crate::migrate::RuntimeSettings {
                    phase: config.migration.phase,
                    canary_percent: config.migration.canary_percent,
                };
                if reloaded == file {
                    tracing::info!(
                        "config reloaded; the file's phase and canary share are unchanged, the shared ones stay"
                    );
                    continue;
                }
                let actor = crate::audit::Actor::sighup();
                match engine
                    .change_shared(reloaded, &actor, false, &settings)
                    .await
                {
                    Ok(_) => file = reloaded,
                    Err(e) => {
                        tracing::error!(error = %e, "config reload refused; keeping the running phase");
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (path, engine, settings, started_with, stop);
}

/// Pings the ledger every 10 s and reports it as the `ledger` dependency until `stop` fires
/// (readiness does not depend on it).
fn spawn_ledger_probe(
    ledger: crate::ledger::Ledger,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = every.tick() => {}
            }
            let result = ledger.ping().await.map_err(|e| e.kind().to_owned());
            health.report("ledger", result);
        }
    });
}
