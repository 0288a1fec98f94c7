//! `dripgate demo`: a complete local migration in one process, on loopback, with no setup.
//!
//! It starts a sample legacy app with a sign-in form and a few thousand generated users in a
//! SQLite file ([`users`], [`LegacyApp`]), a provider fake as the new provider (Kinde's, or
//! another with `--provider`, [`DemoProvider`]) with a hosted sign-in page of its own, and
//! dripgate in front of the app in `route` phase. Signing in once through
//! dripgate migrates the user; the next sign-in is redirected to the provider's page, which
//! accepts the same password.

mod providers;
pub mod users;

use providers::DemoFake;
pub use providers::DemoProvider;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::server::{BoundServer, ServerError};
use crate::testkit::legacy_app::LegacyApp;
use crate::testkit::signin_page;
pub use users::SampleUser;

/// Default number of generated legacy users.
pub const DEFAULT_USERS: usize = 3_000;

/// What to start.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// dripgate's listener (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// dripgate's admin listener.
    pub admin: SocketAddr,
    /// How many legacy users to generate.
    pub users: usize,
    /// Where the legacy database, ledger and audit log go; a fresh temporary directory, removed
    /// at shutdown, when `None`. Files in it are recreated at every start.
    pub data_dir: Option<PathBuf>,
    /// Which provider fake the users move to.
    pub provider: DemoProvider,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9090)),
            users: DEFAULT_USERS,
            data_dir: None,
            provider: DemoProvider::Kinde,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Preparing data or starting the sample servers failed.
    #[error("demo setup: {0}")]
    Setup(String),
    /// dripgate itself failed to start or stopped with an error.
    #[error(transparent)]
    Server(#[from] ServerError),
}

impl crate::failure::Classified for DemoError {
    fn blame(&self) -> crate::failure::Blame {
        match self {
            Self::Setup(_) => crate::failure::Blame::Internal,
            Self::Server(e) => e.blame(),
        }
    }

    fn retry(&self) -> crate::failure::Retry {
        crate::failure::Retry::Never
    }
}

/// The running demo: its addresses, sample credentials, and a way to stop it.
pub struct DemoHandle {
    /// dripgate's URL: sign in at `<proxy_url>/login`.
    pub proxy_url: String,
    /// dripgate's admin URL (`/metrics`, `/status`).
    pub admin_url: String,
    /// The legacy app's own URL (behind dripgate; for comparison only).
    pub legacy_url: String,
    /// The new provider fake's base URL.
    pub provider_url: String,
    /// The new provider's hosted sign-in page.
    pub provider_signin_url: String,
    /// Where the legacy database, ledger and audit log are.
    pub data_dir: PathBuf,
    /// A few generated users, one per hash format, with their passwords.
    pub samples: Vec<SampleUser>,
    /// How many legacy users were generated.
    pub user_count: usize,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServerError>>,
    provider: DemoFake,
    app: LegacyApp,
    remove_data_dir: bool,
}

/// Generates the users and starts the app, the provider fake and dripgate.
pub async fn start(options: DemoOptions) -> Result<DemoHandle, DemoError> {
    let (data_dir, remove_data_dir) = match &options.data_dir {
        Some(dir) => (dir.clone(), false),
        None => {
            let random: u64 = rand::random();
            let dir = std::env::temp_dir().join(format!("dripgate-demo-{random:016x}"));
            (dir, true)
        }
    };
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| DemoError::Setup(format!("cannot create {}: {e}", data_dir.display())))?;
    let legacy_db = data_dir.join("legacy-users.db");
    let ledger_db = data_dir.join("dripgate-ledger.db");
    let audit_log = data_dir.join("audit.jsonl");
    for stale in [&ledger_db, &audit_log] {
        // The provider fake starts empty every time, so the ledger must too.
        let _ = std::fs::remove_file(stale);
    }
    let samples = users::generate(&legacy_db, options.users).await?;
    let app = LegacyApp::start(&legacy_db)
        .await
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let provider = DemoFake::start(options.provider)
        .await
        .map_err(|e| DemoError::Setup(format!("provider fake: {e}")))?;
    let provider_url = provider.base_url();
    // The hosted page is at the fake's root, whatever the API's base path.
    let page_origin = url::Url::parse(&provider_url)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|e| DemoError::Setup(format!("provider fake: {e}")))?;
    let provider_signin_url = format!("{page_origin}{}", signin_page::PATH);
    let text = config_toml(
        &options,
        &app.url,
        &provider.provider_toml(),
        &provider_signin_url,
        &legacy_db,
        &ledger_db,
        &audit_log,
    );
    let config = crate::config::parse_str(&text, "demo config", std::iter::empty())
        .map_err(|e| DemoError::Setup(format!("demo config: {e}")))?;
    let bound = BoundServer::bind(config).await?;
    let proxy_url = format!("http://{}", bound.proxy_addr());
    let admin_url = format!("http://{}", bound.admin_addr());
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    Ok(DemoHandle {
        proxy_url,
        admin_url,
        legacy_url: app.url.clone(),
        provider_url,
        provider_signin_url,
        data_dir,
        samples,
        user_count: options.users,
        stop,
        server,
        provider,
        app,
        remove_data_dir,
    })
}

/// dripgate's config for the demo (TOML, so it reads like a real deployment's).
fn config_toml(
    options: &DemoOptions,
    app_url: &str,
    provider_toml: &str,
    signin_url: &str,
    legacy_db: &Path,
    ledger_db: &Path,
    audit_log: &Path,
) -> String {
    let quoted = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let sqlite = |p: &Path| toml::Value::String(format!("sqlite://{}", p.display())).to_string();
    format!(
        r#"
[server]
listen = "{listen}"

[admin]
listen = "{admin}"

[upstream]
url = "{app_url}"

[shutdown]
delay = "0s"
drain_timeout = "5s"

[log]
level = "warn"

[[signin.routes]]
method = "POST"
path = "/login"
body = "form"
identifier_field = "email"
password_field = "password"
legacy_failure = {{ status = [200] }}

[legacy]
preset = "generic"
database_url = {legacy_url}
table = "users"
format = "auto"
salt_position = "suffix"
columns = {{ id = "id", login = "", email = "email", hash = "hash", format = "format", salt = "salt", given_name = "given_name", family_name = "family_name" }}

{provider_toml}
[ledger]
url = {ledger_url}

[audit]
file = {audit_file}

[migration]
phase = "route"
route = {{ mode = "redirect", url_template = "{signin_url}?login_hint={{login_hint}}" }}
"#,
        listen = options.listen,
        admin = options.admin,
        legacy_url = sqlite(legacy_db),
        ledger_url = sqlite(ledger_db),
        audit_file = quoted(audit_log),
    )
}

impl DemoHandle {
    /// The audit log (one JSON event per line).
    pub fn audit_log(&self) -> PathBuf {
        self.data_dir.join("audit.jsonl")
    }

    /// Stops dripgate gracefully (drain), then the provider fake and the app; removes the
    /// temporary data directory.
    pub async fn shutdown(self) -> Result<(), DemoError> {
        let _ = self.stop.send(());
        let served = self
            .server
            .await
            .map_err(|e| DemoError::Setup(format!("dripgate task: {e}")))?;
        drop(self.provider);
        drop(self.app);
        if self.remove_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        Ok(served?)
    }

    /// What `dripgate demo` prints once everything is up.
    pub fn banner(&self) -> String {
        let mut out = format!(
            "dripgate demo: {users} legacy users in {dir}\n\n\
             \x20 sign in (through dripgate)  {proxy}/login\n\
             \x20 admin: metrics             {admin}/metrics\n\
             \x20 admin: status              {admin}/status\n\
             \x20 new provider's sign-in     {signin}\n\
             \x20 legacy app (direct)        {legacy}\n\
             \x20 audit log                  {audit}\n\n\
             Sample users (email / password / legacy hash format):\n",
            users = self.user_count,
            dir = self.data_dir.display(),
            proxy = self.proxy_url,
            admin = self.admin_url,
            signin = self.provider_signin_url,
            legacy = self.legacy_url,
            audit = self.audit_log().display(),
        );
        for s in &self.samples {
            out.push_str(&format!(
                "  {:<34} {:<16} {}\n",
                s.email, s.password, s.format
            ));
        }
        if let Some(s) = self.samples.first() {
            out.push_str(&format!(
                "\nTry it:\n\
                 \x20 1. open {proxy}/login and sign in as {email}: the legacy app answers, and\n\
                 \x20    dripgate migrates the user to the new provider beside it;\n\
                 \x20 2. sign in again: dripgate sends you (303) to the new provider's page,\n\
                 \x20    which accepts the same password.\n\
                 \x20 With curl:\n\
                 \x20   curl -i -d 'email={email}&password={password}' {proxy}/login\n\
                 \x20   curl -s {admin}/status\n\
                 \x20   curl -i -d 'email={email}&password={password}' {proxy}/login\n\
                 \x20   curl -s -d 'email={email}&password={password}' {signin}\n\n\
                 Ctrl-C stops everything.\n",
                proxy = self.proxy_url,
                admin = self.admin_url,
                signin = self.provider_signin_url,
                email = s.email,
                password = s.password,
            ));
        }
        out
    }
}

/// `dripgate demo`: starts the demo, prints the banner, runs until Ctrl-C or SIGTERM.
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    eprintln!("dripgate demo: generating {} legacy users…", options.users);
    let handle = start(options).await?;
    println!("{}", handle.banner());
    crate::server::shutdown_signal().await;
    eprintln!("dripgate demo: stopping…");
    handle.shutdown().await?;
    eprintln!("dripgate demo: stopped");
    Ok(())
}
