//! The demo's new provider, played by one of the test kit's fakes (`dripgate demo --provider`),
//! and the `[provider]` section that points dripgate at it.

use crate::testkit::cognito::{FakeCognito, FakeCognitoOptions, FakePasswordPolicy};
use crate::testkit::generic::{FakeGenericHttp, FakeGenericHttpOptions};
use crate::testkit::keycloak::{FakeKeycloak, FakeKeycloakOptions};
use crate::testkit::kinde::{FakeKinde, FakeKindeOptions};

/// The provider fake of the demo (`--provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemoProvider {
    /// The Kinde fake.
    #[default]
    Kinde,
    /// The Keycloak fake (Admin REST API, service-account token).
    Keycloak,
    /// The generic HTTP contract's reference fake (HMAC-signed requests).
    Http,
    /// The Amazon Cognito fake (a user pool; SigV4-signed AWS JSON 1.1).
    Cognito,
}

impl DemoProvider {
    /// Every demo provider, in the order `--help` lists them.
    pub const ALL: [DemoProvider; 4] = [Self::Kinde, Self::Keycloak, Self::Http, Self::Cognito];

    /// The name `--provider` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kinde => "kinde",
            Self::Keycloak => "keycloak",
            Self::Http => "http",
            Self::Cognito => "cognito",
        }
    }
}

impl std::str::FromStr for DemoProvider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown demo provider {s:?} ({})", names.join(", "))
            })
    }
}

/// The demo's Cognito pool: its generated passwords are lower case, digits and a dash, so the
/// policy asks for 8 characters and a digit (Cognito's default would block every one).
fn demo_cognito_pool() -> FakeCognitoOptions {
    FakeCognitoOptions {
        password_policy: FakePasswordPolicy {
            min_length: 8,
            require_uppercase: false,
            require_lowercase: false,
            require_numbers: true,
            require_symbols: false,
        },
        ..FakeCognitoOptions::default()
    }
}

/// A running provider fake (kept until shutdown).
pub(super) enum DemoFake {
    Kinde(FakeKinde),
    Keycloak(FakeKeycloak),
    Http(FakeGenericHttp),
    Cognito(FakeCognito),
}

impl DemoFake {
    pub(super) async fn start(provider: DemoProvider) -> std::io::Result<Self> {
        const ADDR: &str = "127.0.0.1:0";
        Ok(match provider {
            DemoProvider::Kinde => {
                Self::Kinde(FakeKinde::start(ADDR, FakeKindeOptions::default()).await?)
            }
            DemoProvider::Keycloak => {
                Self::Keycloak(FakeKeycloak::start(ADDR, FakeKeycloakOptions::default()).await?)
            }
            DemoProvider::Http => {
                Self::Http(FakeGenericHttp::start(ADDR, FakeGenericHttpOptions::default()).await?)
            }
            DemoProvider::Cognito => {
                Self::Cognito(FakeCognito::start(ADDR, demo_cognito_pool()).await?)
            }
        })
    }

    pub(super) fn base_url(&self) -> String {
        match self {
            Self::Kinde(f) => f.base_url(),
            Self::Keycloak(f) => f.base_url(),
            Self::Http(f) => f.base_url(),
            Self::Cognito(f) => f.base_url(),
        }
    }

    /// The `[provider]` table for this fake (TOML).
    pub(super) fn provider_toml(&self) -> String {
        match self {
            Self::Kinde(f) => format!(
                "[provider]\nkind = \"kinde\"\n\n[provider.kinde]\nbase_url = \"{}\"\n\
                 client_id = \"{}\"\nclient_secret = \"{}\"\nbcrypt_cost = 10\n",
                f.base_url(),
                f.options().client_id,
                f.options().client_secret
            ),
            Self::Keycloak(f) => format!(
                "[provider]\nkind = \"keycloak\"\n\n[provider.keycloak]\nbase_url = \"{}\"\n\
                 realm = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
                f.base_url(),
                f.options().realm,
                f.options().client_id,
                f.options().client_secret
            ),
            Self::Http(f) => {
                let (key_id, key) = &f.options().keys[0];
                format!(
                    "[provider]\nkind = \"http\"\n\n[provider.http_provider]\nbase_url = \"{}\"\n\
                     key_id = \"{key_id}\"\nsigning_key = \"{key}\"\nrequire_password_change = true\n",
                    f.base_url()
                )
            }
            Self::Cognito(f) => {
                let o = f.options();
                format!(
                    "[provider]\nkind = \"cognito\"\n\n[provider.cognito]\nregion = \"{}\"\n\
                     user_pool_id = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\
                     endpoint = \"{}\"\nlegacy_id_attribute = \"custom:legacy_id\"\n",
                    o.region,
                    o.user_pool_id,
                    o.access_key_id,
                    o.secret_access_key,
                    f.base_url()
                )
            }
        }
    }
}
