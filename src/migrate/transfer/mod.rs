//! The password's way to the provider: the verified legacy hash itself where the provider is
//! configured to take it (Kinde or Keycloak `password_transfer = "legacy_hash"`) and takes its
//! method, else the password the user just proved (Kinde: a fresh bcrypt of it; Keycloak: the
//! password, which it hashes itself, counted as `fallback_password`). Every choice under
//! `legacy_hash` is counted in `dripgate_password_transfer_total{provider,format,method,result}`.
//!
//! [`importable`] is the one conversion from `hash`'s parsed [`LegacyHash`] to the provider's
//! wire form ([`ImportedHash`](crate::provider::ImportedHash)); the live migration uses it here,
//! a bulk hand-off can too.

use prometheus::{IntCounterVec, Opts, Registry};

use crate::hash::{Format, LegacyHash};
use crate::provider::{
    ErrorClass, HashingMethod, Password, Provider, ProviderError, ProviderKind, ProviderUserId,
};

mod convert;

pub use convert::importable;

/// `result` label: the legacy hash was imported as it is.
pub const LEGACY_HASH: &str = "legacy_hash";
/// `result` label: the provider got a bcrypt of the password instead (Kinde).
pub const FALLBACK_BCRYPT: &str = "fallback_bcrypt";
/// `result` label: the provider got the password instead, to hash itself (Keycloak).
pub const FALLBACK_PASSWORD: &str = "fallback_password";

/// `dripgate_password_transfer_total`; cheap to clone.
#[derive(Debug, Clone)]
pub struct TransferMetrics {
    transfers: IntCounterVec,
}

impl TransferMetrics {
    /// Creates the counter and registers it in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let transfers = IntCounterVec::new(
            Opts::new(
                "dripgate_password_transfer_total",
                "Passwords given to a provider configured to import legacy hashes, by legacy \
                 format, hashing method sent and result (legacy_hash, fallback_bcrypt, \
                 fallback_password).",
            ),
            &["provider", "format", "method", "result"],
        )?;
        registry.register(Box::new(transfers.clone()))?;
        Ok(Self { transfers })
    }

    fn count(&self, provider: &str, format: Format, method: &str, result: &str) {
        self.transfers
            .with_label_values(&[provider, format.as_str(), method, result])
            .inc();
    }
}

/// Why a verified legacy hash is not sent as it is. The texts name formats and variants only,
/// never any part of the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotImportable {
    /// No hashing method of the provider computes this format.
    #[error("no provider hashing method computes {0} hashes")]
    NoMethod(Format),
    /// The format is, but not this variant of it.
    #[error("{format}: {reason}")]
    Variant {
        /// The legacy format.
        format: Format,
        /// Which variant, and why not.
        reason: &'static str,
    },
    /// The value is not what its format says (it verified, so this is not expected).
    #[error("{format}: {reason}")]
    Malformed {
        /// The legacy format.
        format: Format,
        /// What is off.
        reason: &'static str,
    },
    /// The provider does not take this method.
    #[error("the provider does not take hashing_method {0}")]
    NotTaken(HashingMethod),
}

/// Gives the provider user `id` the password the user just proved; `legacy` is the hash it was
/// verified against (of `format`). See the module doc.
pub async fn transfer(
    provider: &dyn Provider,
    id: &ProviderUserId,
    password: Password<'_>,
    legacy: &LegacyHash,
    format: Format,
    metrics: &TransferMetrics,
) -> Result<(), ProviderError> {
    let capabilities = provider.capabilities();
    if !capabilities.prefers_legacy_hash {
        return provider.set_password(id, password).await;
    }
    let kind = provider.kind().as_str();
    let imported = importable(legacy, format).and_then(|h| {
        if capabilities.imports(h.method) {
            Ok(h)
        } else {
            Err(NotImportable::NotTaken(h.method))
        }
    });
    match imported {
        Ok(hash) => match provider.import_legacy_hash(id, &hash).await {
            Ok(()) => {
                metrics.count(kind, format, hash.method.as_str(), LEGACY_HASH);
                return Ok(());
            }
            Err(e) if matches!(e.class(), ErrorClass::Invalid | ErrorClass::Unsupported) => {
                tracing::warn!(provider = kind, format = format.as_str(), method = hash.method.as_str(), error = %e,
                    "provider refused the legacy hash; sending a bcrypt of the password instead");
            }
            Err(e) => return Err(e),
        },
        Err(reason) => {
            tracing::debug!(provider = kind, format = format.as_str(), %reason,
                "legacy hash not importable; sending a bcrypt of the password instead");
        }
    }
    provider.set_password(id, password).await?;
    // Kinde is sent a bcrypt of the password; the others hash the password themselves.
    let (method, result) = match provider.kind() {
        ProviderKind::Kinde => (HashingMethod::Bcrypt.as_str(), FALLBACK_BCRYPT),
        _ => ("password", FALLBACK_PASSWORD),
    };
    metrics.count(kind, format, method, result);
    Ok(())
}
