//! The Cognito fake with the botocore model loaded, and client configs for it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use dripgate::provider::cognito::{
    CognitoConfig, CognitoLookup, CognitoPasswordTransfer, CognitoQuotas, CognitoUsername,
};
use dripgate::testkit::cognito::{BotocoreModel, FakeCognito, FakeCognitoOptions};

/// The botocore model vendored in `tests/provider_specs/cognito-idp-service-2.json`
/// (provenance in `SOURCES.md` there).
pub fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/provider_specs/cognito-idp-service-2.json")
}

/// The botocore model, read once per test binary.
pub fn model() -> Arc<BotocoreModel> {
    static MODEL: OnceLock<Arc<BotocoreModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            Arc::new(BotocoreModel::load(&model_path()).unwrap_or_else(|e| {
                panic!("the Cognito model (tests/provider_specs) is needed: {e}")
            }))
        })
        .clone()
}

/// A fake started with `options` and the model loaded.
pub async fn fake_with(options: FakeCognitoOptions) -> FakeCognito {
    let fake = FakeCognito::start("127.0.0.1:0", options).await.unwrap();
    fake.set_model(model());
    fake
}

/// The default fake (pool signs in by email, `custom:legacy_id` in the schema, Cognito's
/// default password policy and published quotas) with the model loaded.
pub async fn fake() -> FakeCognito {
    fake_with(FakeCognitoOptions::default()).await
}

/// A client config for `fake`: its keys, region, pool and endpoint, `custom:legacy_id`.
pub fn config(fake: &FakeCognito) -> CognitoConfig {
    let o = fake.options();
    CognitoConfig {
        region: o.region.clone(),
        user_pool_id: o.user_pool_id.clone(),
        access_key_id: o.access_key_id.clone(),
        secret_access_key: o.secret_access_key.clone().into(),
        session_token: o.session_token.clone().map(Into::into),
        endpoint: Some(fake.base_url()),
        username: CognitoUsername::Email,
        lookup: CognitoLookup::ListUsers,
        legacy_id_attribute: Some("custom:legacy_id".into()),
        mark_email_verified: Some(true),
        password_transfer: CognitoPasswordTransfer::Password,
        quotas: CognitoQuotas::default(),
    }
}
