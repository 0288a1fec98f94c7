//! The command line: `dripgate <command>`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dripgate: drip-feed migration authentication proxy.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Identity provider tools.
    Provider {
        /// What to do with the provider.
        #[command(subcommand)]
        command: ProviderCommand,
    },
}

/// `dripgate provider …`.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Obtain credentials and make one read call; print what works and what does not.
    Check {
        /// The config file (its `[provider]` table is used).
        #[arg(long)]
        config: PathBuf,
    },
}

/// Parses the command line and runs the chosen command; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Provider {
            command: ProviderCommand::Check { config },
        } => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = runtime.block_on(crate::provider::check::command(
                &config,
                &mut std::io::stdout(),
            ));
            ExitCode::from(code)
        }
    }
}
