//! `dripgate status [--admin URL] [--json] [--watch]`: where the migration stands, from a
//! running dripgate's `/status` (schema `dripgate.status/v1`, docs/STATUS.md), in the terminal.
//!
//! Exit codes: 0 when the admin listener answered and every dependency is up; 1 when a
//! dependency is down or the listener did not answer (with `--watch`, as of the last redraw
//! before Ctrl-C); 2 for a bad URL.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one `/status` request may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// `--watch`'s redraw interval.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// Largest `/status` body read.
const MAX_BODY: usize = 1 << 20;
/// Width of the text progress bar.
const BAR: usize = 40;

/// Runs the command.
pub fn run(admin: &str, json: bool, watch: bool) -> ExitCode {
    let uri = match status_uri(admin) {
        Ok(uri) => uri,
        Err(e) => {
            eprintln!("dripgate status: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dripgate status: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if !watch {
            return once(&uri, json, false).await;
        }
        loop {
            let code = once(&uri, json, true).await;
            tokio::select! {
                () = tokio::time::sleep(WATCH_EVERY) => {}
                _ = tokio::signal::ctrl_c() => return code,
            }
        }
    })
}

/// `<admin>/status`; a bare `host:port` is taken as `http://host:port`.
fn status_uri(admin: &str) -> Result<http::Uri, String> {
    let base = admin.trim().trim_end_matches('/');
    let base = if base.contains("://") {
        base.to_owned()
    } else {
        format!("http://{base}")
    };
    let url = if base.ends_with("/status") {
        base
    } else {
        format!("{base}/status")
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("bad admin URL {admin}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "bad admin URL {admin}: only http:// (the admin listener speaks plain HTTP)"
        ));
    }
    Ok(uri)
}

/// Fetches and prints once; the exit code of what it saw.
async fn once(uri: &http::Uri, json: bool, clear: bool) -> ExitCode {
    let fetched = fetch(uri).await;
    let mut out = String::new();
    if clear && !json {
        // Home the cursor and clear the screen.
        out.push_str("\x1b[H\x1b[2J");
    }
    let code = match &fetched {
        Ok((body, value)) => {
            if json {
                out.push_str(body.trim_end());
                out.push('\n');
            } else {
                out.push_str(&render(value, uri));
            }
            if all_up(value) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            if clear {
                let _ = writeln!(out, "dripgate status: {e}");
            } else {
                eprintln!("dripgate status: {e}");
            }
            ExitCode::FAILURE
        }
    };
    print!("{out}");
    code
}

async fn fetch(uri: &http::Uri) -> Result<(String, Value), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let work = async {
        let resp = client
            .get(uri.clone())
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("{uri}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{uri} answered {status}"));
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{uri}: not status JSON: {e}"))?;
        Ok((text, value))
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| format!("{uri}: no answer within {}s", TIMEOUT.as_secs()))?
}

/// Whether every dependency reported is up.
fn all_up(status: &Value) -> bool {
    status["dependencies"]
        .as_object()
        .is_none_or(|deps| deps.values().all(|d| d["up"] == true))
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        None => "–".to_owned(),
        Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => thousands(n as i64),
        Some(n) => format!("{n:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned(),
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn duration(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// A text bar of `share` with `|` at `target`.
fn bar(share: f64, target: Option<f64>) -> String {
    let filled = ((share.clamp(0.0, 1.0) * BAR as f64).round()) as usize;
    let mark = target.map(|t| ((t.clamp(0.0, 1.0) * BAR as f64).round() as usize).min(BAR - 1));
    let cells: String = (0..BAR)
        .map(|i| match (i < filled, Some(i) == mark) {
            (_, true) => '|',
            (true, false) => '#',
            (false, false) => '.',
        })
        .collect();
    format!("[{cells}]")
}

/// The last `n` buckets as a one-line chart of digits-like blocks.
fn sparkline(buckets: &[Value], n: usize) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let tail: Vec<u64> = buckets
        .iter()
        .rev()
        .take(n)
        .rev()
        .map(|b| b.as_u64().unwrap_or(0))
        .collect();
    let max = tail.iter().copied().max().unwrap_or(0).max(1);
    tail.iter()
        .map(|&v| {
            if v == 0 {
                ' '
            } else {
                LEVELS[((v * 7).div_ceil(max)) as usize]
            }
        })
        .collect()
}

/// The figures as text.
fn render(s: &Value, uri: &http::Uri) -> String {
    let mut out = String::new();
    let ready = if s["ready"] == true {
        "ready"
    } else {
        "NOT READY"
    };
    let _ = writeln!(
        out,
        "dripgate {} at {uri}: {ready}, up {}",
        s["version"].as_str().unwrap_or("?"),
        duration(s["uptime_seconds"].as_u64().unwrap_or(0))
    );
    let m = &s["migration"];
    if m.is_null() {
        let _ = writeln!(out, "phase      pass-through (no migration configured)");
    } else {
        let settings = &m["settings"];
        let _ = writeln!(
            out,
            "phase      {} (canary {} %)",
            settings["phase"].as_str().unwrap_or("?"),
            num(&settings["canary_percent"])
        );
        let origin = &m["settings_origin"];
        if let Some(source) = origin["source"].as_str() {
            let by = origin["changed_by"]
                .as_str()
                .map(|b| format!(" ({b})"))
                .unwrap_or_default();
            let version = origin["version"]
                .as_i64()
                .map(|v| format!(", settings version {v}"))
                .unwrap_or_default();
            let _ = writeln!(out, "set by     {source}{by}{version}");
        }
        let p = &m["progress"];
        let e = &m["eta"];
        if p.is_null() {
            let _ = writeln!(out, "progress   unknown: the ledger could not be read");
        } else {
            let share = p["share"].as_f64();
            let _ = writeln!(
                out,
                "migrated   {} of {} legacy users ({})",
                num(&p["migrated_users"]),
                num(&p["legacy_users"]),
                share.map_or("legacy store not counted yet".to_owned(), |s| format!(
                    "{:.1} %",
                    s * 100.0
                ))
            );
            let _ = writeln!(
                out,
                "           {} target {} %",
                bar(share.unwrap_or(0.0), e["target_share"].as_f64()),
                num(&Value::from(
                    e["target_share"].as_f64().unwrap_or(0.0) * 100.0
                ))
            );
            let r = &m["rate"];
            let _ = writeln!(
                out,
                "rate       {} users/hour ({}); {} users/hour over 24 h",
                num(&r["users_per_hour"]),
                r["rate_method"].as_str().unwrap_or("?"),
                num(&r["users_per_hour_24h"])
            );
            let eta = if e["reached"] == true {
                "target reached".to_owned()
            } else {
                match e["seconds"].as_u64() {
                    Some(secs) => {
                        let left = &e["users_to_target"];
                        let noun = if left.as_u64() == Some(1) {
                            "user"
                        } else {
                            "users"
                        };
                        format!("{} ({} {noun} to go)", duration(secs), num(left))
                    }
                    None => "none: the rate is zero or the legacy store not counted".to_owned(),
                }
            };
            let _ = writeln!(
                out,
                "ETA        {eta}, at {} users/hour ({})",
                num(&e["users_per_hour"]),
                e["rate_method"].as_str().unwrap_or("?")
            );
            if let Some(buckets) = m["series"]["migrations"].as_array() {
                let _ = writeln!(out, "last 48 h  [{}] per hour", sparkline(buckets, 48));
            }
        }
        if let Some(f) = m["failures"].as_object().filter(|f| !f.is_empty()) {
            let list: Vec<String> = f.iter().map(|(k, n)| format!("{k} {}", num(n))).collect();
            let _ = writeln!(out, "failures   {}", list.join(", "));
        }
    }
    let deps: Vec<String> = s["dependencies"]
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| {
                    if v["up"] == true {
                        format!("{k} up")
                    } else {
                        match v["detail"].as_str() {
                            Some(why) => format!("{k} DOWN ({why})"),
                            None => format!("{k} DOWN"),
                        }
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "deps       {}",
        if deps.is_empty() {
            "none reported".to_owned()
        } else {
            deps.join(", ")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_bars_and_numbers() {
        assert_eq!(
            status_uri("127.0.0.1:9090").unwrap().to_string(),
            "http://127.0.0.1:9090/status"
        );
        assert_eq!(
            status_uri("http://a:1/").unwrap().to_string(),
            "http://a:1/status"
        );
        assert!(status_uri("https://a:1").is_err());
        assert_eq!(bar(0.5, Some(0.8)).len(), BAR + 2);
        assert_eq!(bar(0.5, Some(0.8)).matches('#').count(), 20);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(duration(8 * 3600), "8 h 0 min");
        assert_eq!(num(&Value::from(0.125)), "0.125");
        assert_eq!(num(&Value::from(2.5)), "2.5");
    }
}
