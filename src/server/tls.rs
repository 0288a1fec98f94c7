//! TLS for the public listener: rustls with TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`,
//! and a certificate that reloads (SIGHUP or a file change) without touching open connections:
//! the resolver is consulted only during a handshake, so live sessions keep the key they began with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("cannot load certificate chain from {path}: {message}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The key file is unreadable, holds no key, or the key does not fit the provider.
    #[error("cannot load private key from {path}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The private key is not the one the (leaf) certificate was issued for.
    #[error(
        "certificate {cert} and private key {key} do not match: the key is not the one the \
         certificate was issued for"
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate and key files are the operator's (a failed reload keeps the old pair).
impl crate::failure::Classified for TlsError {
    fn blame(&self) -> crate::failure::Blame {
        crate::failure::Blame::Config
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }
}

/// The crypto provider every TLS use in dripgate shares.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Serves the current certificate; swapped atomically on reload.
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    loaded_mtimes: ArcSwap<(Option<SystemTime>, Option<SystemTime>)>,
    reloads: IntCounterVec,
    expiry: IntGauge,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_file", &self.config.cert_file)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the certificate and key named in `config`.
    pub fn load(config: &TlsConfig, registry: &Registry) -> Result<Arc<Self>, TlsError> {
        let provider = crypto_provider();
        let key = load_certified_key(config, &provider)?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "dripgate_tls_reloads_total",
                "Certificate reload attempts, by result.",
            ),
            &["result"],
        )
        .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
        let expiry = IntGauge::new(
            "dripgate_tls_certificate_expiry_timestamp_seconds",
            "Not-after time of the certificate being served (the leaf), in Unix seconds; \
             0 when it cannot be read.",
        )
        .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
        expiry.set(not_after(&key));
        // A second listener in the same registry reuses the existing counter and gauge.
        let _ = registry.register(Box::new(reloads.clone()));
        let _ = registry.register(Box::new(expiry.clone()));
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(key),
            loaded_mtimes: ArcSwap::from_pointee(mtimes(config)),
            config: config.clone(),
            provider,
            reloads,
            expiry,
        }))
    }

    /// Reloads from disk; on failure (unreadable files, a key that does not match the
    /// certificate) the current certificate stays in use and `result="failure"` is counted.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = mtimes(&self.config);
        match load_certified_key(&self.config, &self.provider) {
            Ok(key) => {
                self.expiry.set(not_after(&key));
                self.current.store(Arc::new(key));
                self.loaded_mtimes.store(Arc::new(stamp));
                self.reloads.with_label_values(&["success"]).inc();
                tracing::info!(cert = %self.config.cert_file.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                self.loaded_mtimes.store(Arc::new(stamp));
                self.reloads.with_label_values(&["failure"]).inc();
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the current one");
                Err(e)
            }
        }
    }

    /// Reloads if either file changed since the last load.
    fn reload_if_changed(&self) {
        if **self.loaded_mtimes.load() != mtimes(&self.config) {
            let _ = self.reload();
        }
    }

    /// A TLS acceptor serving this store's certificate.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Watches for SIGHUP and (every `reload_interval`) for file changes until `stop` fires.
    pub fn spawn_watcher(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut hup = hangup_signal();
            let interval = store.config.reload_interval;
            let mut poll = tokio::time::interval(if interval.is_zero() {
                Duration::from_secs(3600)
            } else {
                interval
            });
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = recv_hangup(&mut hup) => { let _ = store.reload(); }
                    _ = poll.tick() => if !interval.is_zero() { store.reload_if_changed() },
                }
            }
        });
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load_certified_key(
    config: &TlsConfig,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs(&config.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| TlsError::Key {
        path: config.key_file.clone(),
        message: e.to_string(),
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: config.key_file.clone(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public half; rustls's own `from_der` accepts that.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: config.cert_file.clone(),
            key: config.key_file.clone(),
        }),
        Err(e) => Err(TlsError::Cert {
            path: config.cert_file.clone(),
            message: e.to_string(),
        }),
    }
}

/// Loads the certificate and key named in `config` as serving would, the check that they
/// belong together included (`check-config`).
pub fn check_files(config: &TlsConfig) -> Result<(), TlsError> {
    load_certified_key(config, &crypto_provider()).map(|_| ())
}

/// The leaf certificate's not-after time in Unix seconds, or 0 (logged) when it cannot be read:
/// the expiry alert then fires rather than staying silent.
fn not_after(key: &CertifiedKey) -> i64 {
    let parsed = key
        .end_entity_cert()
        .map_err(|e| e.to_string())
        .and_then(|der| {
            x509_parser::parse_x509_certificate(der.as_ref())
                .map(|(_, cert)| cert.validity().not_after.timestamp())
                .map_err(|e| e.to_string())
        });
    parsed.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the certificate's expiry time");
        0
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::Cert {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate found".to_owned()));
    }
    Ok(certs)
}

fn mtimes(config: &TlsConfig) -> (Option<SystemTime>, Option<SystemTime>) {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (mtime(&config.cert_file), mtime(&config.key_file))
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_hangup(hup: &mut Hangup) {
    match hup {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hangup(_hup: &mut Hangup) {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rcgen::{CertificateParams, KeyPair, date_time_ymd};

    /// Writes a self-signed certificate valid until `year`-01-02 and its key into `dir`.
    fn write_pair(dir: &Path, year: i32) -> TlsConfig {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(year, 1, 2);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let config = TlsConfig {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
            reload_interval: Duration::ZERO,
        };
        std::fs::write(&config.cert_file, cert.pem()).unwrap();
        std::fs::write(&config.key_file, key.serialize_pem()).unwrap();
        config
    }

    /// The gauge's value on the scrape page.
    fn expiry_in(registry: &Registry) -> Option<f64> {
        let page = crate::metrics::render(registry).unwrap();
        page.lines().find_map(|l| {
            l.strip_prefix("dripgate_tls_certificate_expiry_timestamp_seconds ")
                .and_then(|v| v.parse().ok())
        })
    }

    #[test]
    fn expiry_gauge_follows_the_served_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let config = write_pair(dir.path(), 2031);
        let store = CertStore::load(&config, &registry).unwrap();
        // 2031-01-02T00:00:00Z
        assert_eq!(expiry_in(&registry), Some(1_925_078_400.0));

        write_pair(dir.path(), 2032);
        store.reload().unwrap();
        // 2032-01-02T00:00:00Z
        assert_eq!(expiry_in(&registry), Some(1_956_614_400.0));

        // A failed reload keeps the old certificate, and so its expiry.
        std::fs::write(&config.cert_file, "not a certificate").unwrap();
        assert!(store.reload().is_err());
        assert_eq!(expiry_in(&registry), Some(1_956_614_400.0));
    }
}
