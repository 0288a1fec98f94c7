//! The shipped operations files against a real scrape: dripgate with a migration configured
//! (legacy app, SQLite legacy store, Kinde fake, SQLite ledger, TLS on the public listener) gets
//! traffic of every kind (pass-through, a sign-in that migrates, one routed to the provider, a
//! wrong password), and then every metric named in deploy/prometheus/dripgate.rules.yml and
//! deploy/grafana/dripgate.json must be in its `/metrics`, and every `dripgate_` metric there
//! must have HELP text. The scrape is saved as `deploy-metrics.prom` in Cargo's target tmp dir
//! for `promtool check metrics` (.ci/run).

use crate::common;
use crate::migration_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::Dripgate;
use common::tls::TestCa;
use dripgate::config::TlsConfig;
use dripgate::migrate::Phase;
use migration_common::*;

/// A client that trusts only the test CA and never follows redirects.
fn tls_client(ca: &TestCa) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([cert])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts the sign-in form; returns the status.
async fn sign_in_tls(client: &reqwest::Client, base: &str, email: &str, password: &str) -> u16 {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .finish();
    client
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// What a scrape holds: sample names, and each family's TYPE and HELP.
#[derive(Default)]
struct Scrape {
    samples: BTreeSet<String>,
    types: BTreeMap<String, String>,
    help: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(page: &str) -> Self {
        let mut scrape = Scrape::default();
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                scrape.help.insert(name.to_owned(), text.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                scrape.types.insert(name.to_owned(), kind.trim().to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                scrape.samples.insert(line[..end].to_owned());
            }
        }
        scrape
    }

    /// Whether a name used in PromQL has samples: a series name, or a histogram family's
    /// `_bucket` / `_sum` / `_count`.
    fn has(&self, name: &str) -> bool {
        self.samples.contains(name)
            && self
                .types
                .get(name)
                .is_none_or(|kind| kind != "histogram" && kind != "summary")
    }
}

/// Every `dripgate_…` metric name in a PromQL text (recording rules are named `dripgate:…` and
/// are not metrics dripgate exports).
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(pos) = expr[i..].find("dripgate_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && word(bytes[end]) {
            end += 1;
        }
        if start == 0 || !word(bytes[start - 1]) {
            into.insert(expr[start..end].to_owned());
        }
        i = end;
    }
}

/// Every string under an `expr` key in a YAML document.
fn yaml_exprs(node: &yaml_rust2::Yaml, into: &mut Vec<String>) {
    use yaml_rust2::Yaml;
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    (Some("expr"), Yaml::String(s)) => into.push(s.clone()),
                    _ => yaml_exprs(v, into),
                }
            }
        }
        Yaml::Array(items) => items.iter().for_each(|v| yaml_exprs(v, into)),
        _ => {}
    }
}

/// Every PromQL string of a Grafana dashboard: panel targets' `expr` and template variables'
/// `query` / `definition`.
fn json_exprs(node: &serde_json::Value, into: &mut Vec<String>) {
    use serde_json::Value;
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => into.push(s.clone()),
                    _ => json_exprs(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| json_exprs(v, into)),
        _ => {}
    }
}

/// The metric names used by the shipped rules and dashboard, each with the file using it.
fn names_used() -> BTreeMap<String, &'static str> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = BTreeMap::new();

    let rules = "deploy/prometheus/dripgate.rules.yml";
    let text = std::fs::read_to_string(root.join(rules)).unwrap();
    let mut exprs = Vec::new();
    for doc in yaml_rust2::YamlLoader::load_from_str(&text).unwrap() {
        yaml_exprs(&doc, &mut exprs);
    }
    assert!(
        exprs.len() >= 10,
        "{rules}: only {} exprs found",
        exprs.len()
    );
    let mut names = BTreeSet::new();
    exprs.iter().for_each(|e| metric_names(e, &mut names));
    for name in names {
        used.insert(name, rules);
    }

    let dashboard = "deploy/grafana/dripgate.json";
    let text = std::fs::read_to_string(root.join(dashboard)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    json_exprs(&json, &mut exprs);
    assert!(
        exprs.len() >= 10,
        "{dashboard}: only {} exprs found",
        exprs.len()
    );
    let mut names = BTreeSet::new();
    exprs.iter().for_each(|e| metric_names(e, &mut names));
    for name in names {
        used.entry(name).or_insert(dashboard);
    }
    used
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let mut names = BTreeSet::new();
    metric_names(
        "sum by (job) (rate(dripgate_signins_total{outcome!~\"x\"}[5m])) / \
         dripgate:signins:rate5m + histogram_quantile(0.9, dripgate_http_request_duration_seconds_bucket)",
        &mut names,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "dripgate_http_request_duration_seconds_bucket",
            "dripgate_signins_total"
        ]
    );
}

#[tokio::test]
async fn rules_and_dashboard_name_only_metrics_a_real_scrape_has() {
    let used = names_used();

    let world = World::new().await;
    let migrating = ("mia@example.com", canary_password("deploy-mia"));
    let routed = ("rob@example.com", canary_password("deploy-rob"));
    world.add_user(migrating.0, &migrating.1).await;
    world.add_user(routed.0, &routed.1).await;
    // Signs in only with a wrong password (a migrated user would be routed before legacy).
    let mistaken = ("wes@example.com", canary_password("deploy-wes"));
    world.add_user(mistaken.0, &mistaken.1).await;
    let fake = Fake::kinde().await;

    let ca = TestCa::new();
    let (cert_file, key_file) = ca.issue(world.dir.path(), "localhost");
    let mut config = world.config(Some(&fake), legacy_signature());
    config.migration.phase = Phase::Route;
    config.migration.route = redirect();
    config.ledger.counts_interval = Duration::from_millis(100);
    config.server.tls = Some(TlsConfig {
        cert_file,
        key_file,
        reload_interval: Duration::ZERO,
    });
    let dg = Dripgate::start(config).await;
    let base = format!("https://localhost:{}", dg.addr.port());
    let client = tls_client(&ca);

    // Pass-through.
    let status = client
        .get(format!("{base}/echo"))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "pass-through: {status}");
    // A first sign-in that migrates.
    assert_eq!(
        sign_in_tls(&client, &base, migrating.0, &migrating.1).await,
        302
    );
    // A user who migrates, then signs in again and is routed to the provider.
    assert_eq!(sign_in_tls(&client, &base, routed.0, &routed.1).await, 302);
    wait_outcome(&dg, "migrated", 2).await;
    assert_eq!(sign_in_tls(&client, &base, routed.0, &routed.1).await, 303);
    wait_outcome(&dg, "routed", 1).await;
    // A wrong password: legacy refuses it, nothing is verified or migrated.
    assert_eq!(
        sign_in_tls(&client, &base, mistaken.0, "not-the-password").await,
        200
    );
    wait_outcome(&dg, "legacy_rejected", 1).await;
    // The ledger counts catch up (dripgate_ledger_users{state="migrated"}).
    let mut page = String::new();
    for _ in 0..100 {
        page = common::get_text(&dg.admin_url("/metrics")).await.1;
        if common::metric(&page, "dripgate_ledger_users{state=\"migrated\"}") == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        common::metric(&page, "dripgate_ledger_users{state=\"migrated\"}"),
        Some(2.0)
    );

    let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-metrics.prom");
    std::fs::write(&saved, &page).unwrap();
    let scrape = Scrape::parse(&page);

    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !scrape.has(name))
        .map(|(name, file)| format!("{name} (used in {file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics used by the shipped rules or dashboard but absent from /metrics \
         (scrape saved in {}):\n  {}",
        saved.display(),
        missing.join("\n  ")
    );

    let families: BTreeSet<&String> = scrape.types.keys().collect();
    let no_help: Vec<&&String> = families
        .iter()
        .filter(|name| name.starts_with("dripgate_"))
        .filter(|name| scrape.help.get(**name).is_none_or(|h| h.is_empty()))
        .collect();
    assert!(no_help.is_empty(), "metrics without HELP text: {no_help:?}");
    assert!(
        scrape
            .samples
            .contains("dripgate_tls_certificate_expiry_timestamp_seconds"),
        "the certificate expiry gauge is exported with TLS on"
    );
    let expiry = common::metric(&page, "dripgate_tls_certificate_expiry_timestamp_seconds")
        .expect("expiry gauge");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now,
        "rcgen's default certificate is valid for years"
    );

    world
        .assert_clean(&fake, &dg, migrating.0, &migrating.1)
        .await;
    dg.stop().await;
}
