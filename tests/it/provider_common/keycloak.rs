//! The Keycloak fake with the Admin REST API spec loaded (every request checked against
//! `tests/provider_specs/keycloak-admin-api.json`), and a client config for it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dripgate::provider::ProviderConfig;
use dripgate::provider::ProviderKind;
use dripgate::provider::keycloak::{KeycloakConfig, KeycloakPasswordTransfer};
use dripgate::testkit::keycloak::{FakeKeycloak, FakeKeycloakOptions, KeycloakSpec};

/// The spec, parsed once per test binary: the copy vendored in `tests/provider_specs/` (see its
/// `SOURCES.md`); `DRIPGATE_KEYCLOAK_SPEC` may point elsewhere.
pub fn spec() -> Arc<KeycloakSpec> {
    static SPEC: OnceLock<Arc<KeycloakSpec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = KeycloakSpec::default_path();
        Arc::new(KeycloakSpec::load(&path).unwrap_or_else(|e| {
            panic!("the Keycloak spec is needed (set DRIPGATE_KEYCLOAK_SPEC): {e}")
        }))
    })
    .clone()
}

/// Options with the spec loaded.
pub fn options() -> FakeKeycloakOptions {
    FakeKeycloakOptions {
        spec: Some(spec()),
        ..FakeKeycloakOptions::default()
    }
}

pub async fn fake_with(options: FakeKeycloakOptions) -> FakeKeycloak {
    FakeKeycloak::start("127.0.0.1:0", options).await.unwrap()
}

pub async fn fake() -> FakeKeycloak {
    fake_with(options()).await
}

pub fn config(fake: &FakeKeycloak) -> KeycloakConfig {
    let o = fake.options();
    KeycloakConfig {
        base_url: fake.base_url(),
        realm: o.realm.clone(),
        client_id: o.client_id.clone(),
        client_secret: o.client_secret.clone().into(),
        token_realm: None,
        password_transfer: KeycloakPasswordTransfer::Plaintext,
        import_argon2: false,
        legacy_id_attribute: "dripgate_legacy_id".into(),
        mark_email_verified: Some(true),
        temporary_password: false,
    }
}

pub fn provider_config(fake: &FakeKeycloak) -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::Keycloak,
        kinde: None,
        authgear: None,
        keycloak: Some(config(fake)),
        cognito: None,
        http_provider: None,
        auth0: None,
        http: super::http(Duration::from_secs(5)),
        limits: super::fast_limits(),
    }
}
