//! The new provider the demo starts: a fake with its hosted sign-in page, and the `[provider]`
//! tables that point dripgate at it.

use crate::testkit::cognito::{FakeCognito, FakeCognitoOptions, FakePasswordPolicy};
use crate::testkit::kinde::{FakeKinde, FakeKindeOptions};

use super::DemoError;

/// Which provider fake `dripgate demo` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoProvider {
    /// The Kinde fake.
    #[default]
    Kinde,
    /// The Amazon Cognito fake (SigV4-checked JSON 1.1 endpoint).
    Cognito,
}

/// A running provider fake (stops when dropped).
#[derive(Debug)]
pub enum RunningProvider {
    /// Kinde.
    Kinde(FakeKinde),
    /// Cognito.
    Cognito(FakeCognito),
}

impl RunningProvider {
    /// Starts the chosen fake on a free loopback port.
    pub async fn start(which: DemoProvider) -> Result<Self, DemoError> {
        let failed = |e: std::io::Error| DemoError::Setup(format!("provider fake: {e}"));
        Ok(match which {
            DemoProvider::Kinde => Self::Kinde(
                FakeKinde::start("127.0.0.1:0", FakeKindeOptions::default())
                    .await
                    .map_err(failed)?,
            ),
            // The demo's generated passwords are lower case, digits and a dash: the pool's
            // policy asks for 8 characters and a digit (Cognito's default would block them all).
            DemoProvider::Cognito => Self::Cognito(
                FakeCognito::start(
                    "127.0.0.1:0",
                    FakeCognitoOptions {
                        password_policy: FakePasswordPolicy {
                            min_length: 8,
                            require_uppercase: false,
                            require_lowercase: false,
                            require_numbers: true,
                            require_symbols: false,
                        },
                        ..FakeCognitoOptions::default()
                    },
                )
                .await
                .map_err(failed)?,
            ),
        })
    }

    /// The fake's base URL.
    pub fn base_url(&self) -> String {
        match self {
            Self::Kinde(k) => k.base_url(),
            Self::Cognito(c) => c.base_url(),
        }
    }

    /// dripgate's `[provider]` tables for this fake (TOML).
    pub fn config_toml(&self) -> String {
        match self {
            Self::Kinde(k) => format!(
                "[provider]\nkind = \"kinde\"\n\n[provider.kinde]\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nbcrypt_cost = 10\n",
                k.base_url(),
                k.options().client_id,
                k.options().client_secret,
            ),
            Self::Cognito(c) => {
                let o = c.options();
                format!(
                    "[provider]\nkind = \"cognito\"\n\n[provider.cognito]\nregion = \"{}\"\nuser_pool_id = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nendpoint = \"{}\"\nlegacy_id_attribute = \"custom:legacy_id\"\n",
                    o.region,
                    o.user_pool_id,
                    o.access_key_id,
                    o.secret_access_key,
                    c.base_url(),
                )
            }
        }
    }
}
