//! One round: a random sign-in mix and a random set of faults, chosen from the seeded RNG only
//! (never from what was observed), so the same seed gives the same schedule.

use std::sync::Arc;
use std::time::Duration;

use dripgate::testkit::Fault;
use rand::Rng;
use rand::rngs::StdRng;

use super::legacy::LegacyFault;
use super::replica::LEASE_MS;
use super::world::World;

/// The provider operations a fault can hit (the Kinde spec's operationIds, and the token).
const PROVIDER_OPS: [&str; 4] = ["getUsers", "createUser", "SetUserPassword", "token"];
/// The provider writes.
const WRITES: [&str; 2] = ["createUser", "SetUserPassword"];

/// Faults, each with its chance per round.
const FAULTS: [(&str, f64); 14] = [
    ("replica_sigkill", 0.25),
    ("provider_500", 0.2),
    ("provider_429", 0.15),
    ("provider_hang", 0.1),
    ("provider_close", 0.15),
    ("commit_then_hang", 0.15),
    ("commit_then_close", 0.15),
    ("token_expired", 0.15),
    ("ledger_cut", 0.15),
    ("legacy_slow", 0.15),
    ("legacy_5xx", 0.1),
    ("phase_switch", 0.15),
    ("sighup", 0.1),
    ("delayed_write_race", 0.1),
];

/// Every fault kind, for the report.
pub fn fault_kinds() -> impl Iterator<Item = &'static str> {
    FAULTS.iter().map(|(k, _)| *k)
}

#[derive(Debug, Clone, Copy)]
enum Action {
    First,
    Seeded,
    Repeat,
    Wrong,
    Concurrent(usize),
    Change,
}

/// What the round did, for its log line and the checks.
pub struct RoundLog {
    pub text: String,
    /// The phase was `route` at some moment of the round.
    pub route_possible: bool,
}

fn pick_action(rng: &mut StdRng) -> Action {
    match rng.random_range(0..100) {
        0..30 => Action::First,
        30..50 => Action::Repeat,
        50..60 => Action::Wrong,
        60..75 => Action::Concurrent(rng.random_range(2..=4)),
        75..90 => Action::Change,
        _ => Action::Seeded,
    }
}

/// Runs round `round`.
pub async fn run(world: &mut World, rng: &mut StdRng, round: u64) -> RoundLog {
    let mut text = String::new();
    let mut route_possible = world.phase == "route";
    let actions: Vec<Action> = (0..rng.random_range(2..=5))
        .map(|_| pick_action(rng))
        .collect();
    let chosen: Vec<&'static str> = FAULTS
        .iter()
        .filter(|(_, p)| rng.random_bool(*p))
        .map(|(k, _)| *k)
        .collect();
    let mut instant: Vec<(usize, &'static str)> = Vec::new();
    let mut timed = Vec::new();
    let mut race = false;
    for kind in &chosen {
        *world.faults.entry(kind).or_default() += 1;
        match *kind {
            "replica_sigkill" => {
                let which = rng.random_range(0..world.replicas.len());
                let after = Duration::from_millis(rng.random_range(0..1500));
                text.push_str(&format!(" sigkill({which} after {after:?})"));
                let replica = world.replicas[which].clone();
                timed.push(tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    replica.lock().unwrap().kill();
                }));
            }
            "ledger_cut" => {
                let after = Duration::from_millis(rng.random_range(0..1000));
                let length = Duration::from_millis(rng.random_range(500..2500));
                // A third of the cuts reach one replica's path only (the ledger split between
                // them), decided from the draws above so the schedule of a seed is unchanged.
                let relays: Vec<_> = match after.as_millis() % 3 {
                    0 => vec![world.relays[(length.as_millis() % 2) as usize].clone()],
                    _ => world.relays.clone(),
                };
                let which = if relays.len() == 1 {
                    "one replica"
                } else {
                    "both"
                };
                text.push_str(&format!(
                    " ledger_cut({which}, after {after:?} for {length:?})"
                ));
                timed.push(tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    relays.iter().for_each(|r| r.cut());
                    tokio::time::sleep(length).await;
                    relays.iter().for_each(|r| r.heal());
                }));
            }
            "delayed_write_race" => race = true,
            kind => instant.push((rng.random_range(0..actions.len()), kind)),
        }
    }
    let mut parameters: Vec<(usize, &'static str, u64, usize)> = instant
        .iter()
        .map(|&(at, kind)| (at, kind, rng.random::<u64>(), rng.random_range(1..=3)))
        .collect();
    parameters.sort_by_key(|p| p.0);
    let mut turn = rng.random_range(0..2usize);
    for (i, action) in actions.iter().enumerate() {
        for &(_, kind, r, n) in parameters.iter().filter(|p| p.0 == i) {
            text.push_str(&apply(world, kind, r, n).await);
            route_possible |= world.phase == "route";
        }
        let users = world.users.len();
        let existing = |rng: &mut StdRng| (users > 0).then(|| rng.random_range(0..users));
        match *action {
            Action::First => {
                let u = world.add_user().await;
                text.push_str(&format!(" first(u{u})"));
                sign_in(world, round, &mut turn, u, None).await;
            }
            Action::Seeded => {
                let u = world.add_user().await;
                let own = world.password();
                world.kinde.seed_user(&world.users[u].email, &own);
                world.users[u].seeded = Some(own);
                // The takeover of issue 35: a first attempt that fails at the find, then another.
                let failing_find = rng.random_bool(0.5);
                if failing_find {
                    world.kinde.fail_next("getUsers", 2, Fault::Status(500));
                }
                text.push_str(&format!(" seeded(u{u}, failing find {failing_find})"));
                sign_in(world, round, &mut turn, u, None).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                sign_in(world, round, &mut turn, u, None).await;
            }
            Action::Repeat | Action::Wrong | Action::Change | Action::Concurrent(_) => {
                let Some(u) = existing(rng) else {
                    let u = world.add_user().await;
                    text.push_str(&format!(" first(u{u})"));
                    sign_in(world, round, &mut turn, u, None).await;
                    continue;
                };
                match *action {
                    Action::Repeat => {
                        text.push_str(&format!(" repeat(u{u})"));
                        sign_in(world, round, &mut turn, u, None).await;
                    }
                    Action::Wrong => {
                        text.push_str(&format!(" wrong(u{u})"));
                        let wrong = world.password();
                        sign_in(world, round, &mut turn, u, Some(wrong)).await;
                    }
                    Action::Change => {
                        text.push_str(&format!(" change(u{u})"));
                        world.change_password(u).await;
                        sign_in(world, round, &mut turn, u, None).await;
                    }
                    Action::Concurrent(n) => {
                        text.push_str(&format!(" concurrent(u{u} x{n})"));
                        concurrent(world, round, &mut turn, u, n).await;
                    }
                    _ => unreachable!(),
                }
            }
        }
    }
    if race {
        text.push_str(&delayed_write_race(world, rng, round, &mut turn).await);
    }
    for task in timed {
        let _ = task.await;
    }
    world.relays.iter().for_each(|r| r.heal());
    restart_dead(world).await;
    world.kinde.clear_faults();
    world.legacy.clear_faults();
    RoundLog {
        text,
        route_possible: route_possible || world.phase == "route",
    }
}

/// A resync whose password write the provider holds longer than the lease, while a newer
/// password is set by the other replica (the interleaving of tests/it/migration_stale_write.rs).
async fn delayed_write_race(
    world: &mut World,
    rng: &mut StdRng,
    round: u64,
    turn: &mut usize,
) -> String {
    let u = if world.users.is_empty() {
        world.add_user().await
    } else {
        rng.random_range(0..world.users.len())
    };
    world.change_password(u).await;
    world.kinde.fail_next(
        "SetUserPassword",
        1,
        Fault::Delay(Duration::from_millis(LEASE_MS + 600)),
    );
    sign_in(world, round, turn, u, None).await;
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 300)).await;
    world.change_password(u).await;
    sign_in(world, round, turn, u, None).await;
    format!(" delayed_write_race(u{u})")
}

/// Applies an instant fault; returns its log text.
async fn apply(world: &mut World, kind: &'static str, r: u64, n: usize) -> String {
    let op = PROVIDER_OPS[(r % 4) as usize];
    let write = WRITES[(r % 2) as usize];
    match kind {
        "provider_500" => {
            world.kinde.fail_next(op, n, Fault::Status(500));
            format!(" 500({op} x{n})")
        }
        "provider_429" => {
            world
                .kinde
                .fail_next(op, n, Fault::RateLimit { reset_secs: r % 2 });
            format!(" 429({op} x{n})")
        }
        "provider_hang" => {
            // Longer than the client's request timeout: it gives up.
            world
                .kinde
                .fail_next(op, 1, Fault::Delay(Duration::from_millis(2500)));
            format!(" hang({op})")
        }
        "provider_close" => {
            world.kinde.fail_next(op, n, Fault::ResetConnection);
            format!(" close({op} x{n})")
        }
        "commit_then_hang" => {
            world.kinde.fail_next(write, 1, Fault::CommitThenHang);
            format!(" commit_then_hang({write})")
        }
        "commit_then_close" => {
            world.kinde.fail_next(write, 1, Fault::CommitThenClose);
            format!(" commit_then_close({write})")
        }
        "token_expired" => {
            world.kinde.expire_tokens();
            " token_expired".into()
        }
        "legacy_slow" => {
            let d = Duration::from_millis(100 + r % 900);
            for _ in 0..n {
                world.legacy.fault(LegacyFault::Slow(d));
            }
            format!(" legacy_slow({d:?} x{n})")
        }
        "legacy_5xx" => {
            let code = if r.is_multiple_of(2) { 500 } else { 503 };
            for _ in 0..n {
                world.legacy.fault(LegacyFault::Status(code));
            }
            format!(" legacy_{code}(x{n})")
        }
        "phase_switch" => {
            let to = if world.phase == "migrate" {
                "route"
            } else {
                "migrate"
            };
            world.phase = to;
            for replica in world.replicas.clone() {
                let admin = {
                    let r = replica.lock().unwrap();
                    r.write_config(&world.shared, to);
                    r.admin.clone()
                };
                if let Some(admin) = admin {
                    let _ = world
                        .client
                        .post(format!("{admin}/phase"))
                        .header("content-type", "application/json")
                        .body(format!(r#"{{"phase": "{to}"}}"#))
                        .send()
                        .await;
                }
            }
            format!(" phase({to})")
        }
        "sighup" => {
            let which = (r % 2) as usize;
            let r = world.replicas[which].lock().unwrap();
            r.write_config(&world.shared, world.phase);
            r.reload();
            format!(" sighup({which})")
        }
        other => format!(" unknown({other})"),
    }
}

async fn sign_in(
    world: &mut World,
    round: u64,
    turn: &mut usize,
    user: usize,
    password: Option<String>,
) {
    let base = world.pick(*turn);
    *turn += 1;
    let email = world.users[user].email.clone();
    let password = password.unwrap_or_else(|| world.users[user].passwords.last().unwrap().clone());
    let sent = world.signin_future(round, base, &email, &password).await;
    world.sent.push(sent);
}

async fn concurrent(world: &mut World, round: u64, turn: &mut usize, user: usize, n: usize) {
    let email = world.users[user].email.clone();
    let password = world.users[user].passwords.last().unwrap().clone();
    let futures: Vec<_> = (0..n)
        .map(|_| {
            let base = world.pick(*turn);
            *turn += 1;
            world.signin_future(round, base, &email, &password)
        })
        .collect();
    let sent = futures_util::future::join_all(futures).await;
    world.sent.extend(sent);
}

/// Starts every replica that is down (killed this round), a few tries each.
pub async fn restart_dead(world: &World) {
    for replica in &world.replicas {
        for _ in 0..10 {
            let replica = Arc::clone(replica);
            let shared = &world.shared;
            let started = tokio::task::block_in_place(|| {
                let mut r = replica.lock().unwrap();
                if r.running() {
                    return true;
                }
                r.write_config(shared, world.phase);
                r.start(shared).is_ok()
            });
            if started {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
