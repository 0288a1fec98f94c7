//! The command line: `dripgate <command>`.

pub mod hash;

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
    /// Legacy password hashes: verify, list formats.
    #[command(subcommand)]
    Hash(hash::HashCommand),
}

/// Parses the command line and runs the chosen command; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Hash(cmd) => hash::run(cmd),
    }
}
