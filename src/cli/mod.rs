//! The command line: `dripgate <command>`.

pub mod handoff;
pub mod hash;
mod health;
pub mod ledger;
pub mod ledger_verify;
pub mod legacy;
pub mod provider_check;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;

/// dripgate: drip-feed migration authentication proxy.
///
/// Sits in front of a legacy web app, forwards every request unchanged, and moves each user to a
/// new identity provider on their first successful sign-in.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  dripgate serve --config config/dripgate.example.toml\n  dripgate check-config --config /etc/dripgate/dripgate.toml\n  DRIPGATE_UPSTREAM__URL=http://127.0.0.1:3000 dripgate serve --config dripgate.toml\n  dripgate health --url http://127.0.0.1:9090/readyz"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    #[command(after_help = "Example:\n  dripgate serve --config config/dripgate.example.toml")]
    Serve {
        /// Config file (TOML); `DRIPGATE_SECTION__KEY` variables override its keys.
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file as `serve` would, open what `serve` would open (TLS files,
    /// legacy store, ledger, audit file), and print the effective config, secrets redacted.
    /// Exits 0 when serve could start, 2 with a message naming the key or file when not.
    #[command(
        after_help = "Example:\n  dripgate check-config --config /etc/dripgate/dripgate.toml"
    )]
    CheckConfig {
        /// Config file (TOML).
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
    },
    /// Legacy password hashes: verify, list formats.
    #[command(subcommand)]
    Hash(hash::HashCommand),
    /// Identity provider tools.
    Provider {
        /// What to do with the provider.
        #[command(subcommand)]
        command: ProviderCommand,
    },
    /// End of the migration window: move every legacy user not yet migrated to the provider
    /// through the live claim protocol (legacy hash imported, or a password change required,
    /// per hash format), resumably. `--dry-run` first. Exits 0 when every selected user was
    /// processed, 1 when some are left for another run, 2 on a config error.
    #[command(
        after_help = "Examples:\n  dripgate handoff --config /etc/dripgate/dripgate.toml --dry-run --report plan.jsonl\n  dripgate handoff --config /etc/dripgate/dripgate.toml --policy sha1=reset --report handoff.jsonl"
    )]
    Handoff(handoff::HandoffArgs),
    /// The legacy hash store: census before a migration, look up one user.
    #[command(subcommand)]
    Legacy(legacy::LegacyCommand),
    /// The migration ledger: export it, verify it against the provider, forget a user.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Start a complete local demo: a sample legacy app with generated users, a provider fake
    /// (Kinde's, or another with `--provider`) with a hosted sign-in page, and dripgate in front
    /// in `route` phase. Ctrl-C stops it.
    #[command(
        after_help = "Example:\n  dripgate demo\n  dripgate demo --listen 127.0.0.1:8080 --admin 127.0.0.1:9090 --users 3000 --data-dir ./demo-data\n  dripgate demo --provider keycloak\n  dripgate demo --provider auth0\n  dripgate demo --provider cognito"
    )]
    #[cfg(feature = "demo")]
    Demo {
        /// dripgate's listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The admin listen address (/metrics, /status).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
        /// How many legacy users to generate.
        #[arg(long, default_value_t = crate::demo::DEFAULT_USERS)]
        users: usize,
        /// Keep the legacy database, ledger and audit log here (recreated at each start)
        /// instead of a temporary directory removed at exit.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The new provider, played by its fake: `kinde`, `keycloak`, `auth0` (Auth0's free-tier
        /// rate limit, 2/s), `http` (the generic HTTP contract's reference fake, HMAC-signed
        /// requests) or `cognito` (an Amazon Cognito user pool, SigV4-signed requests).
        #[arg(long, default_value = "kinde")]
        provider: crate::demo::DemoProvider,
    },
    /// Not in this build: it was built without the `demo` cargo feature.
    #[cfg(not(feature = "demo"))]
    #[command(hide = true, disable_help_flag = true)]
    Demo {
        /// Whatever was given; ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Where the migration stands, from a running dripgate's admin listener: phase, migrated
    /// and legacy users with a progress bar, rate, ETA, dependencies. Exits 1 when a dependency
    /// is down or the admin listener does not answer.
    #[command(
        after_help = "Examples:\n  dripgate status\n  dripgate status --admin http://10.0.0.5:9090 --watch\n  dripgate status --json | jq .migration.progress"
    )]
    Status {
        /// The admin listener's base URL (`host:port` is taken as `http://host:port`).
        #[arg(
            long,
            env = "DRIPGATE_ADMIN_URL",
            default_value = "http://127.0.0.1:9090"
        )]
        admin: String,
        /// Print `/status` as it is (schema `dripgate.status/v1`, docs/STATUS.md).
        #[arg(long)]
        json: bool,
        /// Redraw every 2 seconds until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Probe an admin endpoint (for images without curl): exit 0 on a 2xx answer, else 1.
    #[command(after_help = "Example:\n  dripgate health --url http://127.0.0.1:9090/readyz")]
    Health {
        /// URL to GET.
        #[arg(long, default_value = "http://127.0.0.1:9090/readyz")]
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
}

/// `dripgate provider …`.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Obtain credentials and make one read call; print what works and what does not.
    #[command(
        after_help = "Example:\n  dripgate provider check --config /etc/dripgate/dripgate.toml"
    )]
    Check {
        /// Config file (TOML); its `[provider]` section is used.
        #[arg(long, env = "DRIPGATE_CONFIG")]
        config: PathBuf,
    },
}

/// Parses the command line and runs the chosen command; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Hash(cmd) => hash::run(cmd),
        Command::Legacy(cmd) => legacy::run(cmd),
        Command::Handoff(args) => handoff::run(args),
        Command::Ledger(cmd) => ledger::run(cmd),
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            admin,
            users,
            data_dir,
            provider,
        } => demo(crate::demo::DemoOptions {
            listen,
            admin,
            users,
            data_dir,
            provider,
        }),
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => {
            eprintln!("dripgate: this build has no demo (built without the `demo` cargo feature)");
            ExitCode::from(EXIT_USAGE)
        }
        Command::Health { url, timeout_secs } => health::probe(&url, timeout_secs),
        Command::Status { admin, json, watch } => status::run(&admin, json, watch),
        Command::Provider {
            command: ProviderCommand::Check { config },
        } => provider_check(&config),
    }
}

/// Exit code for a bad config or bad input.
const EXIT_USAGE: u8 = 2;

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load_for_serving(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    crate::logging::init(&config.log);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = match serve_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dripgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        crate::BoundServer::bind(config)
            .await?
            .reload_migration_from(path.to_path_buf())
            .serve(crate::server::shutdown_signal())
            .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "dripgate failed");
            eprintln!("dripgate: {e}");
            ExitCode::FAILURE
        }
    }
}

pub use crate::server::{EVENT_INTERVAL, serve_runtime};

/// The one-thread runtime of a one-shot command; on failure the exit code to return.
fn command_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("dripgate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Loads `path` and runs the validation `serve` and `check-config` share.
fn load_for_serving(path: &std::path::Path) -> Result<config::Config, config::ConfigError> {
    let config = config::load_file(path)?;
    config.validate_serving()?;
    Ok(config)
}

/// Validates the config as `serve` does (same function, same messages), then opens what
/// `serve` would open (`server::preflight`); any failure exits [`EXIT_USAGE`].
fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match load_for_serving(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dripgate: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match command_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    if let Err(e) = runtime.block_on(crate::server::preflight(&config)) {
        eprintln!("dripgate: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    for warning in config.warnings() {
        eprintln!("dripgate: warning: {warning}");
    }
    match config.to_redacted_toml() {
        Ok(text) => {
            println!(
                "# effective config of {} (secrets redacted)\n{text}",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dripgate: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn provider_check(path: &std::path::Path) -> ExitCode {
    let runtime = match command_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(provider_check::command(path, &mut std::io::stdout()));
    ExitCode::from(code)
}

#[cfg(feature = "demo")]
fn demo(options: crate::demo::DemoOptions) -> ExitCode {
    crate::logging::init(&config::LogConfig {
        level: "warn".into(),
        ..config::LogConfig::default()
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dripgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::demo::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dripgate demo: {e}");
            ExitCode::FAILURE
        }
    }
}
