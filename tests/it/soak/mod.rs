//! The chaos soak: two `dripgate serve` processes (the built binary) share a PostgreSQL ledger
//! reached through a TCP relay the harness cuts, in front of the soak's legacy app, with the
//! Kinde fake as the provider, all on 127.0.0.1. Each round picks, from a seeded RNG, a
//! sign-in mix (first sign-ins, repeats, wrong passwords, concurrent sign-ins of one user across
//! both replicas, legacy password changes, users pre-seeded at the provider) and faults
//! (SIGKILL of a replica at a random moment, restarted after; provider 500/429/hang/close;
//! commit-then-hang and commit-then-close on create and set-password; expired tokens; the
//! ledger's TCP path cut; legacy slow or 5xx; a phase switch; a SIGHUP reload; a password
//! write the provider holds longer than the lease while the other replica sets a newer one),
//! then waits for quiescence and checks I1–I4 (`check.rs`).
//!
//! `cargo test --test it soak::` runs the short soak (30 rounds, at most 4 minutes);
//! the full soak is
//! `DRIPGATE_SOAK_ROUNDS=1000 DRIPGATE_SOAK_SECS=5400 cargo test --test it soak:: -- --nocapture`.
//! `DRIPGATE_SOAK_SEED=<n>` replays a run's schedule (every round's faults and sign-ins are
//! printed with the seed); `DRIPGATE_SOAK_REPORT=<file>` writes the figures as JSON. Skipped
//! (with a message) when `DRIPGATE_TEST_POSTGRES_URL` is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check;
mod legacy;
mod relay;
mod replica;
mod round;
mod world;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::ledger_common;
use world::World;

struct Settings {
    rounds: u64,
    limit: Duration,
    seed: u64,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            rounds: var("DRIPGATE_SOAK_ROUNDS").unwrap_or(30),
            limit: Duration::from_secs(var("DRIPGATE_SOAK_SECS").unwrap_or(240)),
            seed: var("DRIPGATE_SOAK_SEED").unwrap_or_else(rand::random),
        }
    }
}

/// Audit events of every replica, by kind.
fn audit_counts(world: &World) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for replica in &world.replicas {
        let path = replica.lock().unwrap().audit_path(&world.shared);
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(kind) = v["event"].as_str()
            {
                *counts.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_keeps_the_four_invariants() {
    let settings = Settings::from_env();
    let Some(db) = ledger_common::postgres("soak").await else {
        return;
    };
    println!(
        "soak: seed {} rounds {} limit {:?}",
        settings.seed, settings.rounds, settings.limit
    );
    let started = Instant::now();
    let mut world = World::new(db, settings.seed).await;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut breaks: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0u64;
    let mut rounds = 0u64;
    while rounds < settings.rounds && started.elapsed() < settings.limit {
        let log = round::run(&mut world, &mut rng, rounds).await;
        let found = check::round(&mut world, rounds, log.route_possible, &mut bytes).await;
        println!(
            "soak round {rounds} (seed {}, phase {}):{}{}",
            settings.seed,
            world.phase,
            log.text,
            if found.iter().all(|b| seen.contains(b)) {
                ""
            } else {
                "  BREAK"
            }
        );
        for b in found {
            // A break that persists is reported once, in the round it appeared.
            if seen.insert(b.clone()) {
                println!("  break: {b}");
                breaks.push(format!("round {rounds}: {b}"));
            }
        }
        rounds += 1;
    }
    let elapsed = started.elapsed();
    let audit = audit_counts(&world);
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM ledger_users GROUP BY state ORDER BY state")
            .fetch_all(&world.pg)
            .await
            .unwrap();
    let mut faults: BTreeMap<&str, u64> = round::fault_kinds().map(|k| (k, 0)).collect();
    faults.extend(world.faults.iter().map(|(k, v)| (*k, *v)));
    let starts: u32 = world
        .replicas
        .iter()
        .map(|r| r.lock().unwrap().starts)
        .sum();
    let report = serde_json::json!({
        "seed": settings.seed,
        "rounds": rounds,
        "seconds": elapsed.as_secs_f64(),
        "signins": world.sent.len(),
        "answers": world.answers,
        "faults": faults,
        "replica_starts": starts,
        "legacy_users": world.users.len(),
        "ledger_states": states.into_iter().collect::<BTreeMap<_, _>>(),
        "audit_events": audit,
        "bytes_searched": bytes,
        "breaks": breaks.len(),
    });
    println!("soak report: {report:#}");
    if let Some(path) = world::report_path() {
        std::fs::write(path, format!("{report:#}\n")).unwrap();
    }
    for replica in &world.replicas {
        replica.lock().unwrap().stop();
    }
    world.ledger.close().await;
    world.pg.close().await;
    let World { db, .. } = world;
    db.cleanup().await;
    assert!(
        breaks.is_empty(),
        "invariant breaks:\n{}",
        breaks.join("\n")
    );
}
