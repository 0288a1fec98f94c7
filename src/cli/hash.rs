//! `dripgate hash …`: verify passwords against legacy hashes, list the formats.

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

use base64::Engine as _;
use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::hash::{self, DigestEncoding, Format, HashConfig, LegacyHash, Password, SaltPosition};

/// `dripgate hash` subcommands.
#[derive(Debug, Subcommand)]
pub enum HashCommand {
    /// Verify a password (read from stdin, never argv) against a stored hash.
    ///
    /// Exit status: 0 match, 1 mismatch, 2 error. With --jsonl, reads JSON lines shaped like
    /// tests/fixtures/hash-vectors.jsonl and writes {"ok": bool} or {"error": "…"} per line.
    Verify(VerifyArgs),
    /// List the supported formats with an example of each.
    Formats,
}

/// Arguments of `dripgate hash verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The stored hash value.
    #[arg(long, required_unless_present = "jsonl", conflicts_with = "jsonl")]
    pub hash: Option<String>,
    /// Format name (see `dripgate hash formats`), or `auto` to detect it (default).
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Separate salt, used as its literal bytes (md5/sha1/sha256/sha512).
    #[arg(long, requires = "salt_position")]
    pub salt: Option<String>,
    /// Where the salt goes: prefix or suffix.
    #[arg(long, value_parser = ["prefix", "suffix"], requires = "salt")]
    pub salt_position: Option<String>,
    /// Digest text form: hex, hex_upper or base64 (default: told from the length).
    #[arg(long, value_parser = ["hex", "hex_upper", "base64"])]
    pub encoding: Option<String>,
    /// Read JSON lines from stdin instead of one password.
    #[arg(long)]
    pub jsonl: bool,
}

/// Runs a `dripgate hash` subcommand.
pub fn run(cmd: HashCommand) -> ExitCode {
    match cmd {
        HashCommand::Formats => formats(),
        HashCommand::Verify(args) if args.jsonl => jsonl(),
        HashCommand::Verify(args) => verify_one(&args),
    }
}

fn formats() -> ExitCode {
    let mut out = std::io::stdout().lock();
    for f in Format::ALL {
        if writeln!(out, "{:<10} {}", f.as_str(), f.example()).is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn parse_format(name: &str) -> Result<Option<Format>, String> {
    if name.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    name.parse::<Format>().map(Some).map_err(|e| e.to_string())
}

fn build(
    format: Option<Format>,
    hash: String,
    salt: Option<Vec<u8>>,
    position: Option<&str>,
    encoding: Option<&str>,
) -> Result<LegacyHash, String> {
    let position = position.map(str::parse::<SaltPosition>).transpose()?;
    let encoding = encoding.map(str::parse::<DigestEncoding>).transpose()?;
    Ok(LegacyHash::with_format(format, hash)
        .with_salt(salt)
        .with_salt_position(position)
        .with_encoding(encoding))
}

fn fail(reason: &str) -> ExitCode {
    eprintln!("error: {reason}");
    ExitCode::from(2)
}

/// Reads the password from stdin; one trailing `\n` (or `\r\n`) is removed.
fn read_password() -> std::io::Result<Password> {
    let mut buf = Vec::new();
    std::io::stdin().lock().read_to_end(&mut buf)?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(Password::new(buf))
}

fn verify_one(args: &VerifyArgs) -> ExitCode {
    let format = match parse_format(&args.format) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let Some(stored) = args.hash.clone() else {
        return fail("--hash is required without --jsonl");
    };
    let legacy = match build(
        format,
        stored,
        args.salt.as_ref().map(|s| s.as_bytes().to_vec()),
        args.salt_position.as_deref(),
        args.encoding.as_deref(),
    ) {
        Ok(h) => h,
        Err(e) => return fail(&e),
    };
    let password = match read_password() {
        Ok(p) => p,
        Err(_) => return fail("could not read the password from stdin"),
    };
    match hash::verify(&legacy, password.expose(), &HashConfig::default()) {
        Ok(true) => {
            println!("match");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("mismatch");
            ExitCode::from(1)
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// One input line of `--jsonl`; other fields are ignored.
#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    format: Option<String>,
    hash: String,
    #[serde(default)]
    salt: Option<String>,
    #[serde(default)]
    salt_position: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// The password as standard base64, for bytes that are not UTF-8 (e.g. Latin-1).
    #[serde(default)]
    password_base64: Option<String>,
}

fn check_line(text: &str, caps: &HashConfig) -> Result<bool, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| format!("invalid JSON line: {e}"))?;
    let format = parse_format(line.format.as_deref().unwrap_or("auto"))?;
    let password = match (line.password, line.password_base64) {
        (Some(p), None) => Password::from(p),
        (None, Some(b)) => Password::new(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| "password_base64 is not valid base64".to_owned())?,
        ),
        _ => return Err("exactly one of password and password_base64 is required".into()),
    };
    let legacy = build(
        format,
        line.hash,
        line.salt.map(String::into_bytes),
        line.salt_position.as_deref(),
        line.encoding.as_deref(),
    )?;
    hash::verify(&legacy, password.expose(), caps).map_err(|e| e.to_string())
}

fn jsonl() -> ExitCode {
    let caps = HashConfig::default();
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    for line in stdin.split(b'\n') {
        let Ok(raw) = line else {
            return fail("could not read stdin");
        };
        let raw = zeroize::Zeroizing::new(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let result = match std::str::from_utf8(&raw) {
            Ok(text) => check_line(text, &caps),
            Err(_) => Err("line is not UTF-8".to_owned()),
        };
        let json = match result {
            Ok(ok) => serde_json::json!({ "ok": ok }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        if writeln!(out, "{json}").is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
