//! After each round: wait for quiescence, then check the four invariants against the Kinde
//! fake's state, the ledger's rows, the answers the clients got and every byte dripgate wrote.

use std::collections::HashMap;
use std::time::Duration;

use dripgate::testkit::kinde::FakeKindeUser;

use super::replica::ROUTE_TEMPLATE;
use super::world::{MARKER, World};

/// A ledger row as the checks read it.
struct Row {
    state: String,
    provider_user_id: Option<String>,
    fingerprint: Option<String>,
    last_error: Option<String>,
}

/// A row as read: key, state, provider user id, fingerprint, last error.
type RowTuple = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn rows(world: &World) -> Option<HashMap<String, Row>> {
    let read: Vec<RowTuple> = sqlx::query_as(
        "SELECT user_key, state, provider_user_id, hash_fingerprint, last_error \
             FROM ledger_users",
    )
    .fetch_all(&world.pg)
    .await
    .ok()?;
    Some(
        read.into_iter()
            .map(|(key, state, provider_user_id, fingerprint, last_error)| {
                (
                    key,
                    Row {
                        state,
                        provider_user_id,
                        fingerprint,
                        last_error,
                    },
                )
            })
            .collect(),
    )
}

/// Sum of every sign-in outcome the running replicas counted.
async fn outcomes(world: &World) -> u64 {
    let mut total = 0;
    for replica in &world.replicas {
        let admin = replica.lock().unwrap().admin.clone();
        let Some(admin) = admin else { continue };
        let Ok(resp) = world.client.get(format!("{admin}/metrics")).send().await else {
            continue;
        };
        let page = resp.text().await.unwrap_or_default();
        total += page
            .lines()
            .filter(|l| l.starts_with("dripgate_signins_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
    }
    total
}

/// Waits (bounded: 120 × 250 ms) until no lease is live and the replicas' outcome counts stop
/// moving. `false` when the bound was reached.
pub async fn quiesce(world: &World) -> bool {
    let mut last = u64::MAX;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = world.ledger.now_ms().await.unwrap_or(i64::MAX);
        let live: Option<i64> =
            sqlx::query_scalar("SELECT COUNT(*) FROM ledger_users WHERE lease_expires_at > $1")
                .bind(now)
                .fetch_one(&world.pg)
                .await
                .ok();
        let total = outcomes(world).await;
        if live == Some(0) && total == last {
            return true;
        }
        last = total;
    }
    false
}

fn routed_to(email: &str) -> String {
    let hint: String = form_urlencoded::byte_serialize(email.as_bytes()).collect();
    ROUTE_TEMPLATE.replace("{login_hint}", &hint)
}

/// I1 and I2 for every user: at most one provider user, a pre-existing account never taken,
/// a `migrated` row names the user dripgate created and the provider accepts a password the
/// user had at legacy no earlier than the one whose fingerprint the row holds.
async fn users(world: &World, rows: &HashMap<String, Row>, breaks: &mut Vec<String>) {
    let kinde_users = world.kinde.users();
    for user in &world.users {
        let key = user.email.to_lowercase();
        let at_provider: Vec<&FakeKindeUser> = kinde_users
            .iter()
            .filter(|k| {
                k.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&user.email))
            })
            .collect();
        if at_provider.len() > 1 {
            breaks.push(format!("I1 {key}: {} provider users", at_provider.len()));
        }
        let row = rows.get(&key);
        if let Some(own) = &user.seeded {
            if !world.kinde.verify_password(&user.email, own.as_bytes()) {
                breaks.push(format!(
                    "I1 {key}: the pre-existing account's password changed"
                ));
            }
            if row.is_some_and(|r| r.state == "migrated") {
                breaks.push(format!(
                    "I1 {key}: a pre-existing account was taken as migrated"
                ));
            }
        }
        let Some(row) = row.filter(|r| r.state == "migrated") else {
            continue;
        };
        let Some(provider) = at_provider.first() else {
            breaks.push(format!("I2 {key}: migrated, no provider user"));
            continue;
        };
        if row.provider_user_id.as_deref() != Some(provider.id.as_str()) {
            breaks.push(format!("I1 {key}: the row names another provider user"));
        }
        if user.seeded.is_none() && provider.provided_id.as_deref() != Some(&user.legacy_id) {
            breaks.push(format!(
                "I1 {key}: the provider user is not the one dripgate made"
            ));
        }
        let recorded = user.hashes.iter().position(|h| {
            row.fingerprint.as_deref() == Some(world.ledger.fingerprint(h.as_bytes()).as_str())
        });
        let Some(recorded) = recorded else {
            breaks.push(format!(
                "I2 {key}: migrated with the fingerprint of no password"
            ));
            continue;
        };
        let accepted = user.passwords[recorded..]
            .iter()
            .any(|p| world.kinde.verify_password(&user.email, p.as_bytes()));
        if !accepted {
            breaks.push(format!(
                "I2 {key}: migrated (password #{recorded} of {}), the provider accepts none since",
                user.passwords.len()
            ));
        }
    }
}

/// I3 for the round's sign-ins: the client got exactly what legacy sent for that request, or
/// (only while `route` was on, for a user the ledger knows as migrated) the redirect.
fn answers(
    world: &mut World,
    round: u64,
    route_possible: bool,
    rows: &HashMap<String, Row>,
) -> Vec<String> {
    let mut breaks = Vec::new();
    let mut counted = Vec::new();
    for sent in world.sent.iter().filter(|s| s.round == round) {
        let Some(seen) = &sent.seen else {
            counted.push("no_response");
            continue;
        };
        let legacy = world.legacy.answered(&sent.id);
        if legacy.iter().any(|l| l == seen) {
            counted.push(if seen.status == 302 {
                "legacy_accepted"
            } else {
                "legacy_other"
            });
            continue;
        }
        let row = rows.get(&sent.email.to_lowercase());
        let known = row.is_some_and(|r| {
            r.state == "migrated" || r.last_error.as_deref() == Some("superseded_password_write")
        });
        if route_possible
            && known
            && seen.status == 303
            && seen.location.as_deref() == Some(routed_to(&sent.email).as_str())
        {
            counted.push("routed");
            continue;
        }
        breaks.push(format!(
            "I3 request {} ({}): got {} {:?}, legacy sent {:?}",
            sent.id,
            sent.email,
            seen.status,
            seen.location,
            legacy.iter().map(|l| l.status).collect::<Vec<_>>()
        ));
    }
    for c in counted {
        *world.answers.entry(c).or_default() += 1;
    }
    breaks
}

/// I4: no password (every one carries [`MARKER`]) and no bcrypt hash in anything dripgate wrote
/// since the last check: its output, audit files, the ledger's tables, /metrics and /status.
async fn secrets(world: &World, breaks: &mut Vec<String>, bytes: &mut u64) {
    let leaks = |text: &str| text.contains(MARKER) || text.contains("$2b$04$");
    for replica in &world.replicas {
        let (name, out, admin) = {
            let r = replica.lock().unwrap();
            let mut o = r.out.lock().unwrap();
            let text = std::mem::take(&mut *o);
            (r.name.clone(), text, r.admin.clone())
        };
        *bytes += out.len() as u64;
        if leaks(&out) {
            let line = out.lines().find(|l| leaks(l)).unwrap_or_default();
            breaks.push(format!("I4 {name}: a secret in its output: {line:.300}"));
        }
        if let Some(admin) = admin {
            for path in ["/metrics", "/status"] {
                if let Ok(resp) = world.client.get(format!("{admin}{path}")).send().await {
                    let text = resp.text().await.unwrap_or_default();
                    *bytes += text.len() as u64;
                    if leaks(&text) {
                        breaks.push(format!("I4 {name}: a secret in {path}"));
                    }
                }
            }
        }
        let audit = replica.lock().unwrap().audit_path(&world.shared);
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        if leaks(&text) {
            breaks.push(format!("I4 {name}: a secret in its audit file"));
        }
    }
    for table in ["ledger_users", "ledger_meta", "ledger_census"] {
        let sql = format!("SELECT row_to_json(t)::text FROM {table} t");
        let dump: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&world.pg)
            .await
            .unwrap_or_default();
        if dump.iter().any(|r| leaks(r)) {
            breaks.push(format!("I4 a secret in the ledger's {table}"));
        }
    }
}

/// Every invariant after round `round`; returns the breaks.
pub async fn round(
    world: &mut World,
    round: u64,
    route_possible: bool,
    bytes: &mut u64,
) -> Vec<String> {
    let mut breaks = Vec::new();
    if !quiesce(world).await {
        println!("soak round {round}: not quiescent after 30 s; checking anyway");
    }
    let Some(rows) = rows(world).await else {
        breaks.push(format!("round {round}: the ledger could not be read"));
        return breaks;
    };
    users(world, &rows, &mut breaks).await;
    breaks.extend(answers(world, round, route_possible, &rows));
    secrets(world, &mut breaks, bytes).await;
    if !world.kinde.spec_violations().is_empty() {
        breaks.push(format!(
            "spec violations: {:?}",
            world.kinde.spec_violations()
        ));
    }
    breaks
}
