//! The new provider of the demo: which fake is started, and its `[provider]` config section.

use crate::testkit::auth0::{FakeAuth0, FakeAuth0Options};
use crate::testkit::kinde::{FakeKinde, FakeKindeOptions};

use super::DemoError;

/// Which provider fake the demo migrates to (`dripgate demo --provider …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoProvider {
    /// The Kinde fake.
    #[default]
    Kinde,
    /// The Auth0 fake (database connection, free-tier rate limit of 2 requests per second).
    Auth0,
}

/// A running provider fake; stops when dropped.
pub(super) enum ProviderFake {
    Kinde(FakeKinde),
    Auth0(FakeAuth0),
}

impl ProviderFake {
    pub(super) async fn start(which: DemoProvider) -> Result<Self, DemoError> {
        let failed = |e: std::io::Error| DemoError::Setup(format!("provider fake: {e}"));
        Ok(match which {
            DemoProvider::Kinde => Self::Kinde(
                FakeKinde::start("127.0.0.1:0", FakeKindeOptions::default())
                    .await
                    .map_err(failed)?,
            ),
            DemoProvider::Auth0 => Self::Auth0(
                FakeAuth0::start("127.0.0.1:0", FakeAuth0Options::default())
                    .await
                    .map_err(failed)?,
            ),
        })
    }

    pub(super) fn base_url(&self) -> String {
        match self {
            Self::Kinde(f) => f.base_url(),
            Self::Auth0(f) => f.base_url(),
        }
    }

    /// The `[provider]` tables of dripgate's config for this fake.
    pub(super) fn config_toml(&self) -> String {
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        match self {
            Self::Kinde(f) => format!(
                "[provider]\nkind = \"kinde\"\n\n[provider.kinde]\nbase_url = {}\nclient_id = {}\n\
                 client_secret = {}\nbcrypt_cost = 10\n",
                quoted(&f.base_url()),
                quoted(&f.options().client_id),
                quoted(&f.options().client_secret),
            ),
            Self::Auth0(f) => format!(
                "[provider]\nkind = \"auth0\"\n\n[provider.auth0]\nbase_url = {}\nclient_id = {}\n\
                 client_secret = {}\nconnection = {}\n",
                quoted(&f.base_url()),
                quoted(&f.options().client_id),
                quoted(&f.options().client_secret),
                quoted(&f.options().connection),
            ),
        }
    }
}
