//! A provider fake of either kind behind one interface, with the spec validators plugged in.

use super::*;

/// A provider fake of either kind.
pub enum Fake {
    Kinde(FakeKinde),
    Authgear(FakeAuthgear),
    /// The generic HTTP contract's reference fake.
    Http(FakeGenericHttp),
    Keycloak(FakeKeycloak),
    Cognito(FakeCognito),
}

impl Fake {
    pub async fn kinde() -> Self {
        Fake::Kinde(provider_common::kinde_fake().await)
    }

    pub async fn authgear() -> Self {
        Fake::Authgear(provider_common::authgear_fake().await)
    }

    pub async fn keycloak() -> Self {
        Fake::Keycloak(provider_common::keycloak::fake().await)
    }

    pub async fn http() -> Self {
        Fake::Http(provider_common::http_fake().await)
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
        let (kind, kinde, authgear, http_provider) = match self {
            Fake::Keycloak(f) => return provider_common::keycloak::provider_config(f),
            Fake::Cognito(f) => {
                return ProviderConfig {
                    kind: ProviderKind::Cognito,
                    kinde: None,
                    authgear: None,
                    cognito: Some(provider_common::cognito::config(f)),
                    http_provider: None,
                    keycloak: None,
                    http: provider_common::http(Duration::from_secs(5)),
                    limits: provider_common::fast_limits(),
                };
            }
            Fake::Kinde(f) => (
                ProviderKind::Kinde,
                Some(provider_common::kinde_config(f)),
                None,
                None,
            ),
            Fake::Authgear(f) => (
                ProviderKind::Authgear,
                None,
                Some(provider_common::authgear_config(f)),
                None,
            ),
            Fake::Http(f) => (
                ProviderKind::Http,
                None,
                None,
                Some(provider_common::http_provider_config(f)),
            ),
        };
        ProviderConfig {
            kind,
            kinde,
            authgear,
            http_provider,
            keycloak: None,
            cognito: None,
            http: provider_common::http(Duration::from_secs(5)),
            limits: provider_common::fast_limits(),
        }
    }

    /// The `[provider]` table of a child process's config, its secret from the environment
    /// variable [`Fake::child_secret`] names.
    pub fn child_provider_toml(&self) -> String {
        match self {
            Fake::Kinde(f) => format!(
                "[provider]\nkind = \"kinde\"\n\n[provider.kinde]\nbase_url = \"{}\"\n\
                 client_id = \"{}\"\nclient_secret = {{ env = \"TEST_PROVIDER_SECRET\" }}\n\
                 bcrypt_cost = 4\n",
                f.base_url(),
                f.options().client_id
            ),
            Fake::Http(f) => format!(
                "[provider]\nkind = \"http\"\n\n[provider.http_provider]\nbase_url = \"{}\"\n\
                 key_id = \"{}\"\nsigning_key = {{ env = \"TEST_PROVIDER_SECRET\" }}\n",
                f.base_url(),
                f.options().keys[0].0
            ),
            Fake::Keycloak(f) => format!(
                "[provider]\nkind = \"keycloak\"\n\n[provider.keycloak]\nbase_url = \"{}\"\n\
                 realm = \"{}\"\nclient_id = \"{}\"\n\
                 client_secret = {{ env = \"TEST_PROVIDER_SECRET\" }}\n",
                f.base_url(),
                f.options().realm,
                f.options().client_id
            ),
            Fake::Cognito(f) => {
                let o = f.options();
                format!(
                    "[provider]\nkind = \"cognito\"\n\n[provider.cognito]\nregion = \"{}\"\n\
                     user_pool_id = \"{}\"\naccess_key_id = \"{}\"\n\
                     secret_access_key = {{ env = \"TEST_PROVIDER_SECRET\" }}\nendpoint = \"{}\"\n\
                     legacy_id_attribute = \"custom:legacy_id\"\n",
                    o.region,
                    o.user_pool_id,
                    o.access_key_id,
                    f.base_url()
                )
            }
            Fake::Authgear(_) => {
                panic!("child processes use the Kinde, Keycloak, Cognito or generic HTTP fake")
            }
        }
    }

    /// The environment variable and value of the child's provider secret.
    pub fn child_secret(&self) -> (&'static str, String) {
        let secret = match self {
            Fake::Kinde(f) => f.options().client_secret.clone(),
            Fake::Http(f) => f.options().keys[0].1.clone(),
            Fake::Keycloak(f) => f.options().client_secret.clone(),
            Fake::Cognito(f) => f.options().secret_access_key.clone(),
            Fake::Authgear(_) => {
                panic!("child processes use the Kinde, Keycloak, Cognito or generic HTTP fake")
            }
        };
        ("TEST_PROVIDER_SECRET", secret)
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
            Fake::Http(f) => f
                .users()
                .iter()
                .filter(|u| u.email.eq_ignore_ascii_case(email))
                .count(),
            Fake::Keycloak(f) => f
                .users()
                .iter()
                .filter(|u| u.email.as_deref() == Some(email.to_lowercase().as_str()))
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
            Fake::Http(f) => f.users().len(),
            Fake::Keycloak(f) => f.users().len(),
            Fake::Cognito(f) => f.users().len(),
        }
    }

    /// Whether the provider would accept `plaintext` for `email`.
    pub fn verify(&self, email: &str, plaintext: &str) -> bool {
        match self {
            Fake::Kinde(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Authgear(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Http(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Keycloak(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Cognito(f) => f.verify_password(email, plaintext.as_bytes()),
        }
    }

    pub fn calls(&self, operation: &str) -> u64 {
        match self {
            Fake::Kinde(f) => f.calls(operation),
            Fake::Authgear(f) => f.calls(operation),
            Fake::Http(f) => f.calls(operation),
            Fake::Keycloak(f) => f.calls(operation),
            Fake::Cognito(f) => f.calls(operation),
        }
    }

    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        match self {
            Fake::Kinde(f) => f.fail_next(operation, n, fault),
            Fake::Authgear(f) => f.fail_next(operation, n, fault),
            Fake::Http(f) => f.fail_next(operation, n, fault),
            Fake::Keycloak(f) => f.fail_next(operation, n, fault),
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
            Fake::Http(f) => ["createUser", "setPassword", "requirePasswordChange"]
                .iter()
                .map(|op| f.calls(op))
                .sum(),
            Fake::Keycloak(f) => ["createUser", "updateUser", "resetPassword"]
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
            // A refused signature breaks the contract as much as a bad body.
            Fake::Http(f) => [f.spec_violations(), f.auth_refusals()].concat(),
            Fake::Keycloak(f) => f.spec_violations(),
            // A request the fake could not authenticate is a client bug here too.
            Fake::Cognito(f) => [f.spec_violations(), f.auth_failures()].concat(),
        }
    }
}
