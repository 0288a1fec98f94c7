//! `dripgate provider check` for the generic HTTP provider: a signed `GET /capabilities` (is
//! the signature accepted, what does the endpoint implement, does that cover this config), then
//! a signed find for an address that cannot exist.

use super::transport::{Call, only_2xx};
use super::wire::{self, CONTRACT};
use super::{GenericHttpClient, not_found_answer};
use crate::provider::limit::Idempotency;
use crate::provider::{CheckReport, ErrorClass, Operation, ProviderError};

/// The address `provider check` looks up (`.invalid` is reserved: no user can have it).
pub const PROBE_EMAIL: &str = "dripgate-provider-check@example.invalid";

type Line = (String, Result<String, String>);

impl GenericHttpClient {
    async fn capabilities_call(&self) -> Result<wire::Capabilities, ProviderError> {
        let op = Operation::Check;
        let answer = self
            .call(Call {
                op,
                idempotency: Idempotency::Idempotent,
                method: reqwest::Method::GET,
                url: self.url("/capabilities")?,
                body: None,
                idempotency_key: None,
                also_ok: only_2xx,
            })
            .await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| super::invalid_body(op, "capabilities response", &e))
    }

    /// What this config needs that the endpoint does not declare.
    fn missing(&self, caps: &wire::Capabilities) -> Vec<String> {
        let declares = |op: &str| caps.operations.iter().any(|o| o == op);
        let mut missing = Vec::new();
        if self.config.require_password_change && !declares("require_password_change") {
            missing.push("operation require_password_change".to_string());
        }
        if !self.imports.is_empty() && !declares("import_hash") {
            missing.push("operation import_hash".to_string());
        }
        for m in self.imports {
            if !caps.hash_methods.iter().any(|h| h == m.as_str()) {
                missing.push(format!("hash method {m}"));
            }
        }
        missing
    }

    fn capability_line(&self, caps: &wire::Capabilities) -> Line {
        let aspect = "capabilities".to_string();
        if caps.contract != CONTRACT {
            return (
                aspect,
                Err(format!(
                    "the endpoint speaks {:?}, dripgate {CONTRACT}",
                    crate::provider::error::clip(&caps.contract)
                )),
            );
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                crate::provider::error::clip(&v.join(", "))
            }
        };
        let declared = format!(
            "optional operations: {}; hash methods: {}",
            list(&caps.operations),
            list(&caps.hash_methods)
        );
        let missing = self.missing(caps);
        if missing.is_empty() {
            (aspect, Ok(declared))
        } else {
            (
                aspect,
                Err(format!(
                    "configured but not declared by the endpoint: {} ({declared})",
                    missing.join(", ")
                )),
            )
        }
    }

    async fn probe_find(&self) -> Line {
        let result = async {
            let mut url = self.url("/users")?;
            url.query_pairs_mut().append_pair("email", PROBE_EMAIL);
            self.call(Call {
                op: Operation::Check,
                idempotency: Idempotency::Idempotent,
                method: reqwest::Method::GET,
                url,
                body: None,
                idempotency_key: None,
                also_ok: not_found_answer,
            })
            .await
        }
        .await;
        (
            "find user".to_string(),
            result
                .map(|a| format!("GET /users?email=… answered {}", a.status))
                .map_err(|e| e.to_string()),
        )
    }

    pub(super) async fn check(&self) -> CheckReport {
        let mut lines = Vec::new();
        match self.capabilities_call().await {
            Ok(caps) => {
                lines.push((
                    "signature".to_string(),
                    Ok(format!(
                        "key id {} accepted by {}",
                        self.config.key_id, self.base
                    )),
                ));
                lines.push(self.capability_line(&caps));
            }
            Err(e) => {
                let aspect = if e.class() == ErrorClass::Auth {
                    "signature"
                } else {
                    "capabilities"
                };
                lines.push((aspect.to_string(), Err(e.to_string())));
                return CheckReport { lines };
            }
        }
        lines.push(self.probe_find().await);
        CheckReport { lines }
    }
}
