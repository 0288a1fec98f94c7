//! The Cognito client's transport: AWS JSON 1.1 (`POST /`, `X-Amz-Target`), Signature Version 4
//! with AWS's own signer (`aws-sigv4`), one token bucket per quota category, the session-token
//! re-read on `ExpiredTokenException`, and the mapping of AWS errors to typed errors.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::config::{CognitoConfig, CognitoQuotas};
use super::wire::AwsError;
use super::{CognitoClient, KIND};
use crate::provider::http::{Answer, send};
use crate::provider::limit::Idempotency;
use crate::provider::{Operation, ProviderError};
use crate::secret::{Secret, SecretSource};

/// The JSON protocol's target prefix (botocore `metadata.targetPrefix`).
pub const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService";
/// The JSON protocol's content type (`jsonVersion` 1.1).
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The SigV4 signing name (`endpointPrefix`).
pub const SERVICE: &str = "cognito-idp";

/// Cognito's quota categories (per account and region): `UserCreation`, `UserAccountRecovery`,
/// `UserRead`, `UserList`, `UserPoolRead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Category {
    Creation,
    AccountRecovery,
    Read,
    List,
    PoolRead,
}

/// One token bucket per category. The burst is half a second's worth: a tenth lost capacity to
/// timer hiccups on a loaded host (20 instead of 24 migrations/s against a 30/s quota, measured),
/// a whole second's let the first second carry nearly twice the quota (throttled by the fake).
pub(super) struct Quotas {
    buckets: [DefaultDirectRateLimiter; 5],
}

impl Quotas {
    pub fn new(q: &CognitoQuotas) -> Self {
        let bucket = |rps: u32| {
            let rate = NonZeroU32::new(rps).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new((rps / 2).max(1)).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        };
        Self {
            buckets: [
                bucket(q.user_creation),
                bucket(q.user_account_recovery),
                bucket(q.user_read),
                bucket(q.user_list),
                bucket(q.user_pool_read),
            ],
        }
    }

    fn bucket(&self, c: Category) -> &DefaultDirectRateLimiter {
        let i = match c {
            Category::Creation => 0,
            Category::AccountRecovery => 1,
            Category::Read => 2,
            Category::List => 3,
            Category::PoolRead => 4,
        };
        &self.buckets[i]
    }

    /// Waits for the category's next token, within `deadline`.
    async fn admit(
        &self,
        c: Category,
        op: Operation,
        deadline: Instant,
    ) -> Result<(), ProviderError> {
        tokio::time::timeout_at(deadline, self.bucket(c).until_ready())
            .await
            .map_err(|_| ProviderError::DeadlineExceeded {
                provider: KIND,
                operation: op,
            })
    }
}

/// The signing credentials and how many times they were re-read.
pub(super) struct Keys {
    current: Mutex<(u64, Credentials)>,
}

fn credentials(config: &CognitoConfig, secret: &Secret, token: Option<&Secret>) -> Credentials {
    Credentials::new(
        config.access_key_id.clone(),
        secret.expose().to_string(),
        token.map(|t| t.expose().to_string()),
        None,
        "dripgate-config",
    )
}

/// Reads a secret again from its variable or file (an inline secret cannot change).
fn reread(secret: &Secret) -> Option<String> {
    match secret.source() {
        SecretSource::Inline => None,
        SecretSource::Env(var) => std::env::var(var).ok(),
        SecretSource::File(path) => std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim_end_matches(['\r', '\n']).to_string()),
    }
    .filter(|v| !v.is_empty())
}

impl Keys {
    pub fn new(config: &CognitoConfig) -> Self {
        let creds = credentials(
            config,
            &config.secret_access_key,
            config.session_token.as_ref(),
        );
        Self {
            current: Mutex::new((0, creds)),
        }
    }

    fn get(&self) -> (u64, Credentials) {
        self.current
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// After `ExpiredTokenException` on credentials of `generation`: re-reads the session token
    /// and secret from their sources. True when there are different credentials to try (read
    /// now, or by another caller since).
    fn refresh(&self, config: &CognitoConfig, generation: u64) -> bool {
        let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0 != generation {
            return true;
        }
        let Some(token) = config.session_token.as_ref().and_then(reread) else {
            return false;
        };
        let unchanged = guard
            .1
            .session_token()
            .is_some_and(|old| bool::from(old.as_bytes().ct_eq(token.as_bytes())));
        if unchanged {
            return false;
        }
        let secret = reread(&config.secret_access_key)
            .unwrap_or_else(|| config.secret_access_key.expose().to_string());
        *guard = (
            generation + 1,
            Credentials::new(
                config.access_key_id.clone(),
                secret,
                Some(token),
                None,
                "dripgate-config",
            ),
        );
        true
    }
}

/// Maps an AWS error answer (other than the ones the caller refines) to a typed error.
pub(super) fn map_failure(
    op: Operation,
    target: &str,
    answer: &Answer,
    e: &AwsError,
) -> ProviderError {
    let detail = e.describe(answer.status);
    match e.kind.as_str() {
        "TooManyRequestsException"
        | "LimitExceededException"
        | "ThrottlingException"
        | "RequestLimitExceeded" => ProviderError::RateLimited {
            provider: KIND,
            operation: op,
            retry_after: None,
        },
        "UserNotFoundException" => ProviderError::NotFound {
            provider: KIND,
            operation: op,
        },
        "AccessDeniedException" => ProviderError::Auth {
            provider: KIND,
            operation: op,
            detail: format!("IAM denies cognito-idp:{target} ({detail})"),
        },
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "MissingAuthenticationTokenException"
        | "MissingAuthenticationToken" => ProviderError::Auth {
            provider: KIND,
            operation: op,
            detail: format!("request signature or access key rejected ({detail})"),
        },
        "ExpiredTokenException" => ProviderError::Auth {
            provider: KIND,
            operation: op,
            detail: format!(
                "session token expired and no newer one at its source ({detail}); rotate [provider.cognito].session_token"
            ),
        },
        "ResourceNotFoundException" => {
            ProviderError::Config(format!("cognito {op}: user pool not found ({detail})"))
        }
        "InternalErrorException" | "ServiceUnavailable" | "InternalFailure" => {
            ProviderError::Transient {
                provider: KIND,
                operation: op,
                detail,
                not_sent: false,
            }
        }
        _ => match answer.status {
            429 => ProviderError::RateLimited {
                provider: KIND,
                operation: op,
                retry_after: None,
            },
            401 | 403 => ProviderError::Auth {
                provider: KIND,
                operation: op,
                detail,
            },
            408 | 500..=599 => ProviderError::Transient {
                provider: KIND,
                operation: op,
                detail,
                not_sent: false,
            },
            status => ProviderError::Invalid {
                provider: KIND,
                operation: op,
                status: Some(status),
                detail,
            },
        },
    }
}

/// A refinement of an AWS error for one operation (e.g. `InvalidPasswordException` on
/// set-password); `None` leaves it to [`map_failure`].
pub(super) type Refine = fn(Operation, &AwsError) -> Option<ProviderError>;

/// No refinement.
pub(super) fn plain(_: Operation, _: &AwsError) -> Option<ProviderError> {
    None
}

fn signing_failed(e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::Config(format!("cognito request signing: {e}"))
}

impl CognitoClient {
    /// A request for `target` with `body`, signed with `creds` now.
    fn signed(
        &self,
        target: &str,
        body: &[u8],
        creds: Credentials,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let target_header = format!("{TARGET_PREFIX}.{target}");
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", target_header.as_str()),
        ];
        // The payload hash is computed here, so the body (a password, for set-password) is
        // never handed to the signer.
        let payload_hash = hex::encode(Sha256::digest(body));
        let identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_failed(&e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.iter().copied(),
            SignableBody::Precomputed(payload_hash),
        )
        .map_err(|e| signing_failed(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| signing_failed(&e))?
            .into_parts();
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", target_header.as_str())
            .body(body.to_vec());
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(request)
    }

    /// One signed attempt; on `ExpiredTokenException`, re-reads the session token once and
    /// resends once.
    async fn attempt(
        &self,
        op: Operation,
        target: &str,
        body: &[u8],
    ) -> Result<Answer, ProviderError> {
        let (generation, creds) = self.keys.get();
        let answer = send(KIND, op, self.signed(target, body, creds)?).await?;
        if answer.status == 200 || AwsError::parse(&answer).kind != "ExpiredTokenException" {
            return Ok(answer);
        }
        if !self.keys.refresh(&self.config, generation) {
            return Ok(answer);
        }
        tracing::info!(provider = "cognito", operation = %op, "session token expired; re-read it and resending once");
        let (_, creds) = self.keys.get();
        send(KIND, op, self.signed(target, body, creds)?).await
    }

    /// Calls `target` (an operation of the model) with `body` under the client's limiter and the
    /// category's bucket; 200 is success, anything else a typed error (`refine` first).
    pub(super) async fn call(
        &self,
        op: Operation,
        target: &'static str,
        category: Category,
        idempotency: Idempotency,
        body: &[u8],
        refine: Refine,
    ) -> Result<Answer, ProviderError> {
        // The category's token is taken before a concurrency slot, so that calls waiting for
        // one category (ListUsers at 30/s) do not hold the slots another needs; a retry takes
        // a fresh token inside its attempt.
        self.quotas
            .admit(category, op, self.limiter.deadline_from_now())
            .await?;
        let first = AtomicBool::new(true);
        let first = &first;
        self.limiter
            .run(op, idempotency, |deadline| async move {
                if !first.swap(false, Ordering::Relaxed) {
                    self.quotas.admit(category, op, deadline).await?;
                }
                let answer = self.attempt(op, target, body).await?;
                if answer.status == 200 {
                    return Ok(answer);
                }
                let error = AwsError::parse(&answer);
                Err(refine(op, &error).unwrap_or_else(|| map_failure(op, target, &answer, &error)))
            })
            .await
    }

    /// The access key id in use (not secret; shown by `provider check`).
    pub(super) fn access_key_id(&self) -> &str {
        &self.config.access_key_id
    }

    /// Whether a session token is configured.
    pub(super) fn has_session_token(&self) -> bool {
        self.config
            .session_token
            .as_ref()
            .is_some_and(|t| !t.secret_string().expose_secret().is_empty())
    }
}
