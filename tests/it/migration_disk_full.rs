//! A full disk under the audit file (`/dev/full`: every write fails with ENOSPC): sign-ins and
//! migrations go on, and every lost event is counted in `dripgate_audit_events_dropped_total`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::migration_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Dripgate;
use migration_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_file_on_a_full_disk_loses_events_counted_never_a_signin() {
    if !Path::new("/dev/full").exists() {
        println!("migration_disk_full: skipped (no /dev/full)");
        return;
    }
    let world = World::new().await;
    let fake = Fake::kinde().await;
    let email = "kit@example.com";
    let password = canary_password("disk-full");
    world.add_user(email, &password).await;
    let mut config = world.config(Some(&fake), legacy_signature());
    config.audit.file = Some(PathBuf::from("/dev/full"));
    let dg = Dripgate::start(config).await;

    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "migrated", 1).await;
    assert!(fake.verify(email, &password));
    let mut dropped = 0.0;
    for _ in 0..200 {
        let (_, page) = common::get_text(&dg.admin_url("/metrics")).await;
        dropped = common::metric(&page, "dripgate_audit_events_dropped_total").unwrap_or(0.0);
        if dropped >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dropped >= 1.0,
        "the unwritable user.migrated event is counted"
    );
    // The next sign-in is served as before.
    sign_in_unchanged(&world, &dg.url(""), email, &password).await;
    wait_outcome(&dg, "already_migrated", 1).await;
    assert!(logs().contains("audit events cannot be written"));
    world.assert_clean(&fake, &dg, email, &password).await;
    dg.stop().await;
}
