//! The status page in a real browser: headless Chromium loads `GET /` from a running dripgate
//! with migrated users, runs the page's script under its Content-Security-Policy, and the
//! numbers it puts in the DOM equal `/status`; the burn-down chart has one point per hourly
//! bucket. Skipped (with a message) where no `chromium` is installed; `.ci/run` installs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::status::{USERS, migrated_world, status};

/// The Chromium binary, if there is one.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|bin| {
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// `chromium --headless --dump-dom` of `url`, after the page's script ran: (the DOM, Chromium's
/// stderr log, where `--enable-logging=stderr` puts the page's console messages as
/// `…:CONSOLE:<line>] "<message>", source: <url> (<line>)`, uncaught exceptions and CSP
/// violations included).
async fn dump_dom(bin: &'static str, url: String) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let dir = profile.path().to_owned();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--virtual-time-budget=5000",
                    "--enable-logging=stderr",
                    "--v=0",
                ])
                .arg(format!("--user-data-dir={}", dir.display()))
                .arg("--dump-dom")
                .arg(url)
                .output()
                .unwrap()
        }),
    )
    .await
    .expect("chromium returns")
    .unwrap();
    drop(profile);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every `http://` or `https://` URL in `text` that does not start with `origin`, except the SVG
/// namespace name the script passes to `createElementNS` (an identifier, never fetched).
fn foreign_urls(text: &str, origin: &str) -> Vec<String> {
    const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (at, _) in text.match_indices(scheme) {
            let url: String = text[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !"\"'<>()`".contains(*c))
                .collect();
            if url != SVG_NAMESPACE && !url.starts_with(&format!("{origin}/")) && url != origin {
                found.push(url);
            }
        }
    }
    found
}

/// Lines of Chromium's log that report the page's console or an uncaught exception.
fn console_lines<'a>(log: &'a str, origin: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains("Uncaught") || (l.contains(":CONSOLE") && l.contains(origin)))
        .collect()
}

#[test]
fn the_scanners_find_foreign_urls_and_console_lines() {
    let origin = "http://127.0.0.1:9090";
    let dom = r#"<a x="http://127.0.0.1:9090/status"></a><script>var SVG = "http://www.w3.org/2000/svg"; fetch("https://cdn.example/x.js")</script><img src='http://127.0.0.1:9091/'>"#;
    assert_eq!(
        foreign_urls(dom, origin),
        ["http://127.0.0.1:9091/", "https://cdn.example/x.js"]
    );
    let log = "[1:1:1207/140340.4:INFO:CONSOLE:1] \"boom\", source: http://127.0.0.1:9090/ (1)\n\
               [1:1:1207/140340.4:ERROR:dbus/bus.cc:405] Failed to connect to the bus\n\
               [1:1:1207/140340.5:INFO:CONSOLE:9] \"Uncaught TypeError: x\", source:  (9)\n";
    assert_eq!(console_lines(log, origin).len(), 2);
}

/// The value of attribute `name` on the element with `id`.
fn attr(dom: &str, id: &str, name: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let tag = &dom[start..end];
    let key = format!("{name}=\"");
    let from = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} on #{id}: {tag}"))
        + key.len();
    tag[from..from + tag[from..].find('"').unwrap()].to_owned()
}

/// The text of the element with `id` (no nested elements).
fn text(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap();
    let open = at + dom[at..].find('>').unwrap() + 1;
    dom[open..open + dom[open..].find('<').unwrap()].to_owned()
}

#[tokio::test]
async fn the_page_in_chromium_shows_what_status_says() {
    let Some(bin) = chromium() else {
        eprintln!("skipped: no chromium on this machine (.ci/run installs it)");
        return;
    };
    let (_world, _fake, dg, password) = migrated_world("status_browser").await;
    let v = status(&dg).await;
    let origin = dg.admin_url("");
    let resp = crate::common::client()
        .get(dg.admin_url("/"))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none';") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let (dom, log) = dump_dom(bin, dg.admin_url("/")).await;
    // No console message from the page, no uncaught exception, no CSP violation (each would
    // be a console line); and nothing in the DOM points anywhere but the admin origin.
    let console = console_lines(&log, &origin);
    assert!(console.is_empty(), "console output: {console:#?}");
    let foreign = foreign_urls(&dom, &origin);
    assert!(
        foreign.is_empty(),
        "off-origin URLs in the DOM: {foreign:?}"
    );
    assert_eq!(
        attr(&dom, "body", "data-loaded"),
        "1",
        "the script never rendered"
    );
    let m = &v["migration"];
    let p = &m["progress"];
    for (id, value) in [
        ("migrated", &p["migrated_users"]),
        ("legacy", &p["legacy_users"]),
        ("share", &p["share"]),
        ("rate", &m["rate"]["users_per_hour"]),
        ("rate24", &m["rate"]["users_per_hour_24h"]),
        ("eta", &m["eta"]["seconds"]),
        ("eta-rate", &m["eta"]["users_per_hour"]),
        ("to-target", &m["eta"]["users_to_target"]),
        ("phase", &m["settings"]["phase"]),
    ] {
        let shown: serde_json::Value = serde_json::from_str(&attr(&dom, id, "data-value"))
            .unwrap_or_else(|_| serde_json::Value::String(attr(&dom, id, "data-value")));
        assert_eq!(shown.as_f64().or(None), value.as_f64(), "#{id}");
        if value.is_string() {
            assert_eq!(shown, *value, "#{id}");
        }
    }
    assert_eq!(text(&dom, "migrated"), "3");
    assert_eq!(text(&dom, "share"), "60.0 %");
    assert_eq!(text(&dom, "rate-method"), "trailing_1h");
    assert_eq!(text(&dom, "eta-method"), "trailing_24h");
    assert_eq!(text(&dom, "eta"), "8 h 0 min");
    // The progress bar: 60 % of 1000.
    assert_eq!(attr(&dom, "bar-fill", "width"), "600");
    // The burn-down: one point per bucket of the series, ending at the users not migrated.
    let buckets = m["series"]["migrations"].as_array().unwrap().len();
    let points = attr(&dom, "burndown", "points");
    assert_eq!(points.split_whitespace().count(), buckets);
    assert_eq!(buckets, 14 * 24);
    assert!(dom.contains("ledger: up"), "dependencies listed");
    assert!(dom.contains("transient: 1"), "failures listed");
    // No token typed: the phase controls stay hidden.
    assert!(
        dom.contains("<fieldset id=\"change\" hidden=\"\">"),
        "controls hidden"
    );
    // The last hour's sign-ins of this replica, by outcome (those with none left out).
    assert_eq!(text(&dom, "signins-scope"), "this replica");
    assert!(
        dom.contains("<li data-key=\"migrated\" data-value=\"3\">migrated: 3</li>"),
        "sign-ins listed"
    );
    assert!(dom.contains("<li data-key=\"fallback\" data-value=\"1\">fallback: 1</li>"));
    for email in USERS {
        assert!(!dom.contains(email));
    }
    assert!(!dom.contains(&password));
    dg.stop().await;
}
