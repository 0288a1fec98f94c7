//! A provider fake of either kind behind one interface, with the spec validators plugged in.

use super::*;

/// A provider fake of either kind.
pub enum Fake {
    Kinde(FakeKinde),
    Authgear(FakeAuthgear),
    Cognito(FakeCognito),
}

impl Fake {
    pub async fn kinde() -> Self {
        Fake::Kinde(provider_common::kinde_fake().await)
    }

    pub async fn authgear() -> Self {
        Fake::Authgear(provider_common::authgear_fake().await)
    }

    pub async fn cognito() -> Self {
        Fake::Cognito(provider_common::cognito::fake().await)
    }

    /// An Authgear fake whose password policy wants at least `min_len` characters.
    pub async fn authgear_min_length(min_len: usize) -> Self {
        let fake = FakeAuthgear::start(
            "127.0.0.1:0",
            FakeAuthgearOptions {
                project_id: "myapp".into(),
                key_id: "test-key-1".into(),
                public_key_pem: provider_common::read_spec_file("authgear-test-key.pub.pem"),
                min_password_length: min_len,
                password_history: false,
            },
        )
        .await
        .unwrap();
        fake.set_validator(provider_common::authgear_validator());
        Fake::Authgear(fake)
    }

    pub fn provider_config(&self) -> ProviderConfig {
        let mut config = ProviderConfig {
            kind: ProviderKind::Kinde,
            kinde: None,
            authgear: None,
            cognito: None,
            http: provider_common::http(Duration::from_secs(5)),
            limits: provider_common::fast_limits(),
        };
        match self {
            Fake::Kinde(f) => config.kinde = Some(provider_common::kinde_config(f)),
            Fake::Authgear(f) => {
                config.kind = ProviderKind::Authgear;
                config.authgear = Some(provider_common::authgear_config(f));
            }
            Fake::Cognito(f) => {
                config.kind = ProviderKind::Cognito;
                config.cognito = Some(provider_common::cognito::config(f));
            }
        }
        config
    }

    /// The `[provider]` tables of a child process's config file, and the environment
    /// variables holding their secrets (a config file never holds them).
    pub fn child_provider(&self) -> (String, Vec<(&'static str, String)>) {
        match self {
            Fake::Kinde(k) => (
                format!(
                    "[provider]\nkind = \"kinde\"\n\n[provider.kinde]\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = {{ env = \"TEST_KINDE_SECRET\" }}\nbcrypt_cost = 4\n",
                    k.base_url(),
                    k.options().client_id
                ),
                vec![("TEST_KINDE_SECRET", k.options().client_secret.clone())],
            ),
            Fake::Cognito(c) => {
                let o = c.options();
                (
                    format!(
                        "[provider]\nkind = \"cognito\"\n\n[provider.cognito]\nregion = \"{}\"\nuser_pool_id = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = {{ env = \"TEST_COGNITO_SECRET\" }}\nendpoint = \"{}\"\nlegacy_id_attribute = \"custom:legacy_id\"\n",
                        o.region,
                        o.user_pool_id,
                        o.access_key_id,
                        c.base_url()
                    ),
                    vec![("TEST_COGNITO_SECRET", o.secret_access_key.clone())],
                )
            }
            Fake::Authgear(_) => panic!("child processes use the Kinde or Cognito fake"),
        }
    }

    /// Provider users with this email.
    pub fn users_with_email(&self, email: &str) -> usize {
        match self {
            Fake::Kinde(f) => f
                .users()
                .iter()
                .filter(|u| {
                    u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })
                .count(),
            Fake::Authgear(f) => f
                .users()
                .iter()
                .filter(|u| u.email.eq_ignore_ascii_case(email))
                .count(),
            Fake::Cognito(f) => f
                .users()
                .iter()
                .filter(|u| u.email().is_some_and(|e| e.eq_ignore_ascii_case(email)))
                .count(),
        }
    }

    pub fn user_count(&self) -> usize {
        match self {
            Fake::Kinde(f) => f.users().len(),
            Fake::Authgear(f) => f.users().len(),
            Fake::Cognito(f) => f.users().len(),
        }
    }

    /// Whether the provider would accept `plaintext` for `email`.
    pub fn verify(&self, email: &str, plaintext: &str) -> bool {
        match self {
            Fake::Kinde(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Authgear(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Cognito(f) => f.verify_password(email, plaintext.as_bytes()),
        }
    }

    pub fn calls(&self, operation: &str) -> u64 {
        match self {
            Fake::Kinde(f) => f.calls(operation),
            Fake::Authgear(f) => f.calls(operation),
            Fake::Cognito(f) => f.calls(operation),
        }
    }

    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        match self {
            Fake::Kinde(f) => f.fail_next(operation, n, fault),
            Fake::Authgear(f) => f.fail_next(operation, n, fault),
            Fake::Cognito(f) => f.fail_next(operation, n, fault),
        }
    }

    /// Operations that write at the provider (create, password, update).
    pub fn writes(&self) -> u64 {
        match self {
            Fake::Kinde(f) => ["createUser", "updateUser", "SetUserPassword"]
                .iter()
                .map(|op| f.calls(op))
                .sum(),
            Fake::Authgear(f) => ["createUser", "resetPassword", "setPasswordExpired"]
                .iter()
                .map(|op| f.calls(op))
                .sum(),
            Fake::Cognito(f) => [
                "AdminCreateUser",
                "AdminSetUserPassword",
                "AdminResetUserPassword",
            ]
            .iter()
            .map(|op| f.calls(op))
            .sum(),
        }
    }

    pub fn spec_violations(&self) -> Vec<String> {
        match self {
            Fake::Kinde(f) => f.spec_violations(),
            Fake::Authgear(f) => f.spec_violations(),
            // A request the fake could not authenticate is a client bug here too.
            Fake::Cognito(f) => f
                .spec_violations()
                .into_iter()
                .chain(f.auth_failures())
                .collect(),
        }
    }
}
