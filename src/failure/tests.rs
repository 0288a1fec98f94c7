//! The classification of every error type, by representative variants.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::ConfigError;
use crate::hash::{Format, HashError, UnknownFormat, VerifyError};
use crate::ledger::LedgerError;
use crate::legacy::LegacyError;
use crate::provider::{Operation, ProviderError, ProviderKind};
use crate::proxy::{ClientError, UpstreamError};
use crate::signin::Refusal;
use crate::signin::extract::Unread;

#[track_caller]
fn is(error: &dyn Classified, blame: Blame, retry: Retry, label: &str) {
    assert_eq!(
        (error.blame(), error.retry(), error.label()),
        (blame, retry, label),
        "{error}"
    );
}

#[test]
fn labels_are_unique() {
    let mut labels: Vec<_> = Blame::ALL.iter().map(|b| b.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), Blame::ALL.len());
}

#[test]
fn only_a_reused_connection_is_retried_at_once() {
    assert!(Retry::OnReusedConnection.now_on(true));
    assert!(!Retry::OnReusedConnection.now_on(false));
    for retry in [Retry::Never, Retry::Later] {
        assert!(!retry.now_on(true) && !retry.now_on(false));
    }
}

#[test]
fn hash_errors() {
    let f = Format::Bcrypt;
    is(
        &HashError::malformed(f, "x"),
        Blame::Legacy,
        Retry::Never,
        "malformed",
    );
    is(
        &HashError::unsupported(f, "x"),
        Blame::Legacy,
        Retry::Never,
        "unsupported",
    );
    is(
        &HashError::Undetected,
        Blame::Legacy,
        Retry::Never,
        "undetected",
    );
    let costly = HashError::CostTooHigh {
        format: f,
        param: "cost",
        value: 20,
        max: 14,
    };
    is(&costly, Blame::Legacy, Retry::Never, "cost_too_high");
    let long = HashError::PasswordTooLong {
        len: 5000,
        max: 4096,
    };
    is(&long, Blame::Client, Retry::Never, "password_too_long");
    let settings = HashError::Settings {
        format: f,
        reason: "x",
    };
    is(&settings, Blame::Config, Retry::Never, "settings");
    let internal = HashError::Internal {
        format: f,
        reason: "x",
    };
    is(&internal, Blame::Internal, Retry::Never, "internal");
    is(&UnknownFormat, Blame::Config, Retry::Never, "config");
}

#[test]
fn verify_errors() {
    is(&VerifyError::Shed, Blame::Capacity, Retry::Later, "shed");
    is(
        &VerifyError::Aborted,
        Blame::Internal,
        Retry::Later,
        "aborted",
    );
    let hash = VerifyError::Hash(HashError::Undetected);
    is(&hash, Blame::Legacy, Retry::Never, "undetected");
}

#[test]
fn provider_errors() {
    let (provider, operation) = (ProviderKind::Kinde, Operation::CreateUser);
    let auth = ProviderError::Auth {
        provider,
        operation,
        detail: "x".into(),
    };
    is(&auth, Blame::Config, Retry::Never, "auth");
    let limited = ProviderError::RateLimited {
        provider,
        operation,
        retry_after: None,
    };
    is(&limited, Blame::Provider, Retry::Later, "rate_limited");
    let transient = ProviderError::Transient {
        provider,
        operation,
        detail: "reset".into(),
        not_sent: false,
    };
    is(&transient, Blame::Provider, Retry::Later, "transient");
    let deadline = ProviderError::DeadlineExceeded {
        provider,
        operation,
    };
    is(&deadline, Blame::Provider, Retry::Later, "transient");
    let exists = ProviderError::AlreadyExists {
        provider,
        operation,
        existing_id: None,
    };
    is(&exists, Blame::Provider, Retry::Never, "already_exists");
    let policy = ProviderError::PasswordRejected {
        provider,
        operation,
        reasons: vec![],
    };
    is(&policy, Blame::Provider, Retry::Never, "password_rejected");
    let invalid = ProviderError::Invalid {
        provider,
        operation,
        status: Some(400),
        detail: "x".into(),
    };
    is(&invalid, Blame::Provider, Retry::Never, "invalid");
    is(
        &ProviderError::Config("x".into()),
        Blame::Config,
        Retry::Never,
        "config",
    );
    assert!(transient.is_transient() && limited.is_transient() && deadline.is_transient());
    assert!(!invalid.is_transient() && !auth.is_transient());
}

#[test]
fn ledger_errors() {
    let down = LedgerError::Unavailable(sqlx::Error::PoolClosed);
    is(&down, Blame::Ledger, Retry::Later, "unavailable");
    is(
        &LedgerError::Timeout,
        Blame::Ledger,
        Retry::Later,
        "timeout",
    );
    is(
        &LedgerError::Fenced,
        Blame::Contention,
        Retry::Never,
        "fenced",
    );
    let db = LedgerError::Database(sqlx::Error::RowNotFound);
    is(&db, Blame::Ledger, Retry::Never, "database");
    is(
        &LedgerError::Corrupt("x".into()),
        Blame::Ledger,
        Retry::Never,
        "corrupt",
    );
    is(
        &LedgerError::Config("x".into()),
        Blame::Config,
        Retry::Never,
        "config",
    );
    is(
        &LedgerError::Invalid("x"),
        Blame::Internal,
        Retry::Never,
        "invalid",
    );
    assert!(down.is_unavailable() && LedgerError::Timeout.is_unavailable());
    assert!(!LedgerError::Fenced.is_unavailable() && !db.is_unavailable());
}

#[test]
fn legacy_errors() {
    let timeout = LegacyError::Timeout {
        backend: "postgres",
        stage: "query",
        after: Duration::from_secs(1),
    };
    is(&timeout, Blame::LegacyStore, Retry::Later, "timeout");
    let down = LegacyError::Unavailable {
        backend: "mysql",
        message: "refused".into(),
    };
    is(&down, Blame::LegacyStore, Retry::Later, "unavailable");
    let query = LegacyError::Query {
        backend: "sqlite",
        message: "no column".into(),
    };
    is(&query, Blame::LegacyStore, Retry::Never, "query");
    let export = LegacyError::Export {
        path: "u.csv".into(),
        message: "line 3".into(),
    };
    is(&export, Blame::LegacyStore, Retry::Never, "query");
    is(
        &LegacyError::Config("x".into()),
        Blame::Config,
        Retry::Never,
        "config",
    );
    let metrics = LegacyError::Metrics(prometheus::Error::Msg("x".into()));
    is(&metrics, Blame::Internal, Retry::Never, "config");
}

#[test]
fn proxy_errors() {
    is(
        &ClientError::MissingHost,
        Blame::Client,
        Retry::Never,
        "bad_host",
    );
    is(
        &ClientError::BodyTimeout,
        Blame::Client,
        Retry::Later,
        "body_timeout",
    );
    let connect = UpstreamError::Connect("refused".into());
    is(&connect, Blame::Upstream, Retry::Later, "connect");
    let slow = UpstreamError::Timeout(Duration::from_secs(1));
    is(&slow, Blame::Upstream, Retry::Later, "timeout");
    let protocol = UpstreamError::Protocol("reset".into());
    is(&protocol, Blame::Upstream, Retry::Never, "protocol");
    let bad = UpstreamError::BadRequest("x".into());
    is(&bad, Blame::Client, Retry::Never, "bad_request");
    let client = UpstreamError::Client(ClientError::MalformedBody);
    is(&client, Blame::Client, Retry::Never, "client");
}

#[test]
fn signin_errors() {
    is(
        &Unread::RepeatedField,
        Blame::Client,
        Retry::Never,
        "repeated_field",
    );
    is(&Refusal::TooLarge, Blame::Client, Retry::Never, "too_large");
    let ambiguous = Refusal::AmbiguousIdentity;
    is(
        &ambiguous,
        Blame::Client,
        Retry::Never,
        "ambiguous_identity",
    );
}

#[test]
fn start_up_errors() {
    let config = ConfigError::Invalid {
        key: "a".into(),
        message: "b".into(),
    };
    is(&config, Blame::Config, Retry::Never, "config");
    let tls = crate::server::tls::TlsError::Cert {
        path: PathBuf::from("c.pem"),
        message: "x".into(),
    };
    is(&tls, Blame::Config, Retry::Never, "config");
    let bind = crate::server::ServerError::Bind {
        addr: "127.0.0.1:1".parse().unwrap(),
        source: std::io::Error::other("in use"),
    };
    is(&bind, Blame::Config, Retry::Never, "config");
    let metrics = crate::server::ServerError::Metrics(prometheus::Error::Msg("x".into()));
    is(&metrics, Blame::Internal, Retry::Never, "internal");
    let audit = crate::audit::AuditError::Open {
        path: PathBuf::from("a.log"),
        source: std::io::Error::other("denied"),
    };
    is(&audit, Blame::Config, Retry::Never, "config");
    let settings = crate::migrate::SettingsError::Unsupported(
        crate::migrate::phase::check_phase(crate::migrate::Phase::Route, false, false).unwrap_err(),
    );
    is(&settings, Blame::Config, Retry::Never, "config");
    let refused = crate::migrate::ChangeRefused::from(settings);
    is(&refused, Blame::Config, Retry::Never, "config");
    is(
        &crate::migrate::ChangeRefused::HandoffRequired,
        Blame::Config,
        Retry::Never,
        "config",
    );
    let ledger_down = crate::migrate::ChangeRefused::Ledger(crate::ledger::LedgerError::Timeout);
    is(&ledger_down, Blame::Ledger, Retry::Later, "ledger");
}

#[test]
fn handoff_errors() {
    use crate::handoff::HandoffError;
    let ledger = HandoffError::Ledger(LedgerError::Timeout);
    is(&ledger, Blame::Ledger, Retry::Later, "timeout");
    let legacy = HandoffError::Legacy(LegacyError::Unavailable {
        backend: "mysql",
        message: "refused".into(),
    });
    is(&legacy, Blame::LegacyStore, Retry::Later, "unavailable");
    let report = HandoffError::Report(std::io::Error::other("disk full"));
    is(&report, Blame::Config, Retry::Never, "config");
    is(
        &HandoffError::Config("x".into()),
        Blame::Config,
        Retry::Never,
        "config",
    );
}
