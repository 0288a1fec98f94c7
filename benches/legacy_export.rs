//! Loads a one-million-user export (CSV and JSON Lines) into the in-memory index and reports the
//! load time, the peak resident memory of the process, and lookup speed.
//!
//! `cargo bench --bench legacy_export` (optionally `-- 200000` for another row count). Each
//! format is measured in a fresh child process so their peak memory is not mixed up.

use std::io::{BufWriter, Write};
use std::process::Command;
use std::time::Instant;

use dripgate::legacy::{Columns, LegacyConfig, LegacyStore, Lookup};

const HASH: &str = "$2y$10$eS.DTZ3X3QLOwj.MHHSjOOs9aLTa6WBwTwCI/N7M776diclWhV10K";

fn columns() -> Columns {
    Columns {
        id: "id".into(),
        login: "login".into(),
        email: "email".into(),
        hash: "hash".into(),
        format: None,
        salt: None,
        given_name: Some("first_name".into()),
        family_name: Some("last_name".into()),
        created: None,
    }
}

fn write_file(path: &std::path::Path, rows: u64, jsonl: bool) -> std::io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    if !jsonl {
        writeln!(w, "id,login,email,hash,first_name,last_name,registered")?;
    }
    for i in 0..rows {
        if jsonl {
            writeln!(
                w,
                "{{\"id\":{i},\"login\":\"user{i}\",\"email\":\"User{i}@Example.com\",\"hash\":\"{HASH}\",\"first_name\":\"Given{i}\",\"last_name\":\"Family\",\"registered\":\"2019-03-01 10:00:00\"}}"
            )?;
        } else {
            writeln!(
                w,
                "{i},user{i},User{i}@Example.com,{HASH},Given{i},Family,2019-03-01 10:00:00"
            )?;
        }
    }
    w.flush()
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn child(kind: &str, rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("dripgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("users.{kind}"));
    write_file(&path, rows, kind == "jsonl")?;
    let size = std::fs::metadata(&path)?.len();
    let before = status_kib("VmHWM:");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let store = LegacyStore::open(
        &LegacyConfig::export(&path, columns()),
        &prometheus::Registry::new(),
    )?;
    let load = started.elapsed();
    let peak = status_kib("VmHWM:");
    let rss = status_kib("VmRSS:");
    let lookups = 200_000u64.min(rows);
    let started = Instant::now();
    let mut found = 0u64;
    runtime.block_on(async {
        for i in 0..lookups {
            let id = (i * 7919) % rows;
            if let Ok(Lookup::Found(_)) = store.lookup(&format!("user{id}@example.com")).await {
                found += 1;
            }
        }
    });
    let per_lookup = started.elapsed().as_secs_f64() / lookups as f64;
    println!(
        "{kind:<5} rows={rows} file={:.0} MiB load={:.2}s peak_rss={:.0} MiB (before load {:.0} MiB) rss_after={:.0} MiB lookups={lookups} found={found} per_lookup={:.1}us",
        size as f64 / 1048576.0,
        load.as_secs_f64(),
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
        rss as f64 / 1024.0,
        per_lookup * 1e6
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(kind) = std::env::var("DRIPGATE_BENCH_EXPORT_KIND") {
        return child(&kind, rows);
    }
    for kind in ["csv", "jsonl"] {
        let status = Command::new(std::env::current_exe()?)
            .arg(rows.to_string())
            .env("DRIPGATE_BENCH_EXPORT_KIND", kind)
            .status()?;
        if !status.success() {
            return Err(format!("{kind} run failed: {status}").into());
        }
    }
    Ok(())
}
