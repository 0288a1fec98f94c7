//! A provider fake of any kind behind one interface, with the spec validators plugged in.

use super::*;
use crate::auth0_spec;
use dripgate::testkit::auth0::{FakeAuth0, FakeAuth0Options};

/// A provider fake of either kind.
pub enum Fake {
    Kinde(FakeKinde),
    Authgear(FakeAuthgear),
    Auth0(FakeAuth0),
}

impl Fake {
    pub async fn kinde() -> Self {
        Fake::Kinde(provider_common::kinde_fake().await)
    }

    pub async fn authgear() -> Self {
        Fake::Authgear(provider_common::authgear_fake().await)
    }

    /// An Auth0 fake without its rate limit.
    pub async fn auth0() -> Self {
        Fake::Auth0(auth0_spec::auth0_fake().await)
    }

    /// An Auth0 fake with these settings.
    pub async fn auth0_with(options: FakeAuth0Options) -> Self {
        Fake::Auth0(auth0_spec::auth0_fake_with(options).await)
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
        let (kind, kinde, authgear, auth0) = match self {
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
            Fake::Auth0(f) => (
                ProviderKind::Auth0,
                None,
                None,
                Some(auth0_spec::auth0_config(f)),
            ),
        };
        ProviderConfig {
            kind,
            kinde,
            authgear,
            auth0,
            http: provider_common::http(Duration::from_secs(5)),
            limits: provider_common::fast_limits(),
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
            Fake::Auth0(f) => f.users_by_email(email).len(),
        }
    }

    pub fn user_count(&self) -> usize {
        match self {
            Fake::Kinde(f) => f.users().len(),
            Fake::Authgear(f) => f.users().len(),
            Fake::Auth0(f) => f.users().len(),
        }
    }

    /// Whether the provider would accept `plaintext` for `email`.
    pub fn verify(&self, email: &str, plaintext: &str) -> bool {
        match self {
            Fake::Kinde(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Authgear(f) => f.verify_password(email, plaintext.as_bytes()),
            Fake::Auth0(f) => f.verify_password(email, plaintext.as_bytes()),
        }
    }

    pub fn calls(&self, operation: &str) -> u64 {
        match self {
            Fake::Kinde(f) => f.calls(operation),
            Fake::Authgear(f) => f.calls(operation),
            Fake::Auth0(f) => f.calls(operation),
        }
    }

    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        match self {
            Fake::Kinde(f) => f.fail_next(operation, n, fault),
            Fake::Authgear(f) => f.fail_next(operation, n, fault),
            Fake::Auth0(f) => f.fail_next(operation, n, fault),
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
            Fake::Auth0(f) => ["post_users", "patch_users_by_id"]
                .iter()
                .map(|op| f.calls(op))
                .sum(),
        }
    }

    pub fn spec_violations(&self) -> Vec<String> {
        match self {
            Fake::Kinde(f) => f.spec_violations(),
            Fake::Authgear(f) => f.spec_violations(),
            Fake::Auth0(f) => f.spec_violations(),
        }
    }
}
