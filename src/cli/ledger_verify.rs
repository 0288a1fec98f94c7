//! `dripgate ledger verify`: every `migrated` user of the ledger, checked at the provider.
//!
//! Per user: read by the recorded id ([`Provider::get_user`]); when the provider has no user
//! under it, look the email up to tell "created again under another id" from "gone". Then the
//! email (when the ledger is keyed by email; otherwise the key is a login and the email is not
//! in the ledger: `unknown`) and the password where the provider's API shows it (Authgear: a
//! primary password authenticator; Kinde: nothing, `unknown`). A check that fails is reported as
//! an error of the user, never as drift. Users are checked `concurrency` at a time, each call
//! under the provider client's own rate limiter; pages of the ledger are read as they are needed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde::Serialize;

use super::ledger::{EXIT_FAILED, EXIT_USAGE, open_ledger, rows};
use crate::config::Config;
use crate::ledger::{EXPORT_PAGE_ROWS, ExportRow, Ledger, State};
use crate::legacy::KeyField;
use crate::provider::{PasswordState, Provider, ProviderError, ProviderUserId, normalize_email};
use rand::Rng;

/// Exit status when some users could not be checked and no drift was found.
const EXIT_INCOMPLETE: u8 = 3;

/// The command's options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Check this many migrated users chosen at random instead of all.
    pub sample: Option<u32>,
    /// Where to write one JSON line per user.
    pub report: Option<PathBuf>,
    /// Users checked at once.
    pub concurrency: Option<usize>,
}

/// A disagreement between the ledger and the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// No user at the provider under the recorded id, nor under the email.
    MissingAtProvider,
    /// No user under the recorded id, but one with the email under another id.
    IdMismatch,
    /// The provider's email for the user is not the ledger's key.
    EmailMismatch,
    /// The provider says the user has no password.
    NoPassword,
}

impl Drift {
    fn as_str(self) -> &'static str {
        match self {
            Self::MissingAtProvider => "missing_at_provider",
            Self::IdMismatch => "id_mismatch",
            Self::EmailMismatch => "email_mismatch",
            Self::NoPassword => "no_password",
        }
    }
}

/// How the email compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailCheck {
    /// The provider's email is the ledger's key.
    Match,
    /// It is not.
    Mismatch,
    /// Not compared: the ledger is keyed by login, or the provider reported no email.
    Unknown,
}

/// One user's line in the report (never a hash or a password).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The ledger's user key.
    pub user_key: String,
    /// The provider id the ledger recorded.
    pub provider_user_id: Option<String>,
    /// `ok`, `drift` or `error`.
    pub status: &'static str,
    /// What disagrees (empty when ok).
    pub drift: Vec<Drift>,
    /// The id found by email when the recorded one is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found_id: Option<String>,
    /// The provider's email, when it differs from the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_email: Option<String>,
    /// How the email compared.
    pub email: EmailCheck,
    /// What the provider says of the password.
    pub password: PasswordState,
    /// Why the user could not be checked (the provider error's class).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// The provider error's message (provider errors carry no secret or response body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
}

impl Finding {
    fn new(row: &ExportRow) -> Self {
        Finding {
            user_key: row.user_key.clone(),
            provider_user_id: row.provider_user_id.clone(),
            status: "ok",
            drift: Vec::new(),
            found_id: None,
            provider_email: None,
            email: EmailCheck::Unknown,
            password: PasswordState::Unknown,
            error: None,
            error_detail: None,
        }
    }

    fn failed(mut self, e: &ProviderError) -> Self {
        self.status = "error";
        self.error = Some(e.class().as_str());
        self.error_detail = Some(e.to_string());
        self
    }

    fn drifted(mut self, drift: Drift) -> Self {
        self.status = "drift";
        self.drift.push(drift);
        self
    }
}

/// Checks one migrated user at the provider. `email_keyed`: the ledger's key is the email.
pub async fn check(provider: &dyn Provider, row: &ExportRow, email_keyed: bool) -> Finding {
    let finding = Finding::new(row);
    let expected_email = email_keyed.then(|| normalize_email(&row.user_key));
    let details = match &row.provider_user_id {
        Some(id) => match provider.get_user(&ProviderUserId(id.clone())).await {
            Ok(details) => details,
            Err(e) => return finding.failed(&e),
        },
        None => None,
    };
    let Some(details) = details else {
        return missing(provider, finding, expected_email.as_deref()).await;
    };
    let mut finding = finding;
    finding.password = details.password;
    if let (Some(expected), Some(actual)) = (expected_email.as_deref(), &details.user.email) {
        if normalize_email(actual) == expected {
            finding.email = EmailCheck::Match;
        } else {
            finding.email = EmailCheck::Mismatch;
            finding.provider_email = Some(actual.clone());
            finding = finding.drifted(Drift::EmailMismatch);
        }
    }
    if details.password == PasswordState::NotSet {
        finding = finding.drifted(Drift::NoPassword);
    }
    finding
}

/// No user under the recorded id: is there one with the email (under another id)?
async fn missing(provider: &dyn Provider, finding: Finding, email: Option<&str>) -> Finding {
    let Some(email) = email else {
        return finding.drifted(Drift::MissingAtProvider);
    };
    match provider.find_user_by_email(email).await {
        Ok(Some(user)) => {
            let mut finding = finding.drifted(Drift::IdMismatch);
            finding.email = EmailCheck::Match;
            finding.found_id = Some(user.id.0);
            finding
        }
        Ok(None) => finding.drifted(Drift::MissingAtProvider),
        Err(e) => finding.failed(&e),
    }
}

/// Counts over every finding.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Users checked.
    pub checked: u64,
    /// Users that agree.
    pub ok: u64,
    /// Users with at least one drift.
    pub drifted: u64,
    /// Drifts by kind.
    pub drift: BTreeMap<&'static str, u64>,
    /// Users whose check failed, by error class.
    pub errors: BTreeMap<&'static str, u64>,
    /// Users whose password the provider does not show.
    pub password_unknown: u64,
    /// Users whose email was not compared.
    pub email_unknown: u64,
    /// The first error met, as an example.
    pub first_error: Option<String>,
}

impl Summary {
    fn add(&mut self, f: &Finding) {
        self.checked += 1;
        match f.status {
            "ok" => self.ok += 1,
            "drift" => self.drifted += 1,
            _ => {}
        }
        for d in &f.drift {
            *self.drift.entry(d.as_str()).or_default() += 1;
        }
        if let Some(e) = f.error {
            *self.errors.entry(e).or_default() += 1;
            if self.first_error.is_none() {
                self.first_error.clone_from(&f.error_detail);
            }
        }
        if f.error.is_none() && f.password == PasswordState::Unknown {
            self.password_unknown += 1;
        }
        if f.error.is_none() && f.email == EmailCheck::Unknown {
            self.email_unknown += 1;
        }
    }

    fn to_text(&self, provider: &str) -> String {
        let mut s = format!(
            "checked {} migrated users at {provider}: {} ok, {} with drift, {} not checked\n",
            self.checked,
            self.ok,
            self.drifted,
            self.errors.values().sum::<u64>()
        );
        for (kind, n) in &self.drift {
            s.push_str(&format!("  drift {kind:<20} {n:>10}\n"));
        }
        for (class, n) in &self.errors {
            s.push_str(&format!("  error {class:<20} {n:>10}\n"));
        }
        if let Some(e) = &self.first_error {
            s.push_str(&format!("  first error: {e}\n"));
        }
        if self.password_unknown > 0 {
            s.push_str(&format!(
                "  password unknown ({provider} does not show it): {}\n",
                self.password_unknown
            ));
        }
        if self.email_unknown > 0 {
            s.push_str(&format!(
                "  email not compared (ledger keyed by login, or no email at the provider): {}\n",
                self.email_unknown
            ));
        }
        s
    }

    /// The exit status: drift wins over an incomplete check.
    fn exit_code(&self) -> u8 {
        if self.drifted > 0 {
            EXIT_FAILED
        } else if !self.errors.is_empty() {
            EXIT_INCOMPLETE
        } else {
            0
        }
    }
}

/// Up to `n` migrated users chosen uniformly at random in one pass over the ledger (reservoir
/// sampling: `n` rows in memory, whatever the ledger holds).
async fn sample(ledger: Ledger, n: u32) -> Result<Vec<ExportRow>, String> {
    let n = n as usize;
    let mut chosen: Vec<ExportRow> = Vec::with_capacity(n.min(EXPORT_PAGE_ROWS as usize));
    let mut seen = 0usize;
    let mut migrated = rows(ledger, Some(State::Migrated));
    let mut rng = rand::rng();
    while let Some(row) = migrated.next().await {
        let row = row?;
        seen += 1;
        if chosen.len() < n {
            chosen.push(row);
        } else {
            let slot = rng.random_range(0..seen);
            if let Some(place) = chosen.get_mut(slot) {
                *place = row;
            }
        }
    }
    Ok(chosen)
}

/// The migrated users to check: a random sample, or every one, read as they are needed.
async fn migrated_rows(
    ledger: Ledger,
    sample_of: Option<u32>,
) -> Result<BoxStream<'static, Result<ExportRow, String>>, String> {
    Ok(match sample_of {
        Some(n) => stream::iter(sample(ledger, n).await?.into_iter().map(Ok)).boxed(),
        None => rows(ledger, Some(State::Migrated)),
    })
}

/// The whole command; returns the exit status.
pub async fn command(config: &Config, options: &Options) -> u8 {
    let Some(provider_config) = &config.provider else {
        eprintln!("dripgate: the config has no [provider] section");
        return EXIT_USAGE;
    };
    let provider = match crate::provider::build(provider_config, None, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return EXIT_USAGE;
        }
    };
    let mut report = match options
        .report
        .as_ref()
        .map(std::fs::File::create)
        .transpose()
    {
        Ok(file) => file.map(std::io::BufWriter::new),
        Err(e) => {
            eprintln!("dripgate: cannot create the report: {e}");
            return EXIT_FAILED;
        }
    };
    let ledger = match open_ledger(config).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return EXIT_FAILED;
        }
    };
    let email_keyed = config
        .legacy
        .as_ref()
        .is_none_or(|l| l.key == KeyField::Email);
    let concurrency = options
        .concurrency
        .unwrap_or(provider_config.limits.max_concurrency as usize)
        .max(1);
    let result = run(
        provider,
        ledger.clone(),
        options.sample,
        email_keyed,
        concurrency,
        |finding| match report.as_mut() {
            Some(out) => serde_json::to_writer(&mut *out, finding)
                .map_err(|e| e.to_string())
                .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string())),
            None => Ok(()),
        },
    )
    .await;
    ledger.close().await;
    if let Some(Err(e)) = report.as_mut().map(Write::flush) {
        eprintln!("dripgate: cannot write the report: {e}");
        return EXIT_FAILED;
    }
    match result {
        Ok(summary) => {
            print!("{}", summary.to_text(provider_config.kind.as_str()));
            summary.exit_code()
        }
        Err(e) => {
            eprintln!("dripgate: {e}");
            EXIT_FAILED
        }
    }
}

/// Checks the migrated users `concurrency` at a time, handing each finding to `record` (in the
/// order they finish) and counting it.
async fn run(
    provider: Arc<dyn Provider>,
    ledger: Ledger,
    sample: Option<u32>,
    email_keyed: bool,
    concurrency: usize,
    mut record: impl FnMut(&Finding) -> Result<(), String>,
) -> Result<Summary, String> {
    let mut findings = migrated_rows(ledger, sample)
        .await?
        .map(|row| {
            let provider = provider.clone();
            async move {
                let row = row?;
                Ok::<_, String>(check(provider.as_ref(), &row, email_keyed).await)
            }
        })
        .buffer_unordered(concurrency);
    let mut summary = Summary::default();
    while let Some(finding) = findings.next().await {
        let finding = finding?;
        record(&finding).map_err(|e| format!("cannot write the report: {e}"))?;
        summary.add(&finding);
    }
    Ok(summary)
}
