//! `dripgate demo`, in-process: a sample user signs in through dripgate twice (legacy serves
//! the first sign-in and the user is migrated; the second is sent to the new provider's page),
//! and the new provider's page accepts the same password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use dripgate::demo::{self, DemoOptions, DemoProvider};
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

fn form(email: &str, password: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .finish()
}

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(email, password))
        .send()
        .await
        .unwrap()
}

async fn migrated_count(client: &reqwest::Client, admin_url: &str) -> u64 {
    let status: serde_json::Value = client
        .get(format!("{admin_url}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["migration"]["ledger_users"]["migrated"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_user_migrates_on_first_sign_in_and_is_routed_on_the_second() {
    sample_users_migrate_and_are_routed(DemoProvider::Kinde).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_generic_http_provider_too() {
    sample_users_migrate_and_are_routed(DemoProvider::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keycloak_demo_migrates_and_routes_the_same_way() {
    sample_users_migrate_and_are_routed(DemoProvider::Keycloak).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cognito_demo_migrates_and_routes_the_same_way() {
    sample_users_migrate_and_are_routed(DemoProvider::Cognito).await;
}

async fn sample_users_migrate_and_are_routed(provider: DemoProvider) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let handle = demo::start(DemoOptions {
        listen: loopback,
        admin: loopback,
        users: 300,
        data_dir: None,
        provider,
    })
    .await
    .unwrap();
    assert!(handle.samples.len() >= 3, "one sample per hash format");
    let banner = handle.banner();
    assert!(banner.contains(&format!("{}/login", handle.proxy_url)));
    assert!(banner.contains(&handle.provider_signin_url));
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let login = format!("{}/login", handle.proxy_url);

    // The form itself comes from the legacy app, through dripgate.
    let page = client.get(&login).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form"));

    // A wrong password is answered by legacy with the form again and migrates nobody.
    let sample = handle.samples[0].clone();
    let wrong = post_form(&client, &login, &sample.email, "not-the-password").await;
    assert_eq!(wrong.status(), 200);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong email or password")
    );

    for sample in &handle.samples {
        // First sign-in: the legacy app answers (302 + session cookie), dripgate migrates.
        let first = post_form(&client, &login, &sample.email, &sample.password).await;
        assert_eq!(first.status(), 302, "{}: first sign-in", sample.format);
        assert_eq!(first.headers()[LOCATION], "/account");
        assert!(first.headers().contains_key(SET_COOKIE));
    }
    let expected = handle.samples.len() as u64;
    let mut migrated = 0;
    for _ in 0..200 {
        migrated = migrated_count(&client, &handle.admin_url).await;
        if migrated >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(migrated, expected, "every sample user migrated");
    let metrics = client
        .get(format!("{}/metrics", handle.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("dripgate_"));

    for sample in &handle.samples {
        // Second sign-in: 303 to the new provider's page with the login hint.
        let second = post_form(&client, &login, &sample.email, &sample.password).await;
        assert_eq!(second.status(), 303, "{}: second sign-in", sample.format);
        let location = second.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&handle.provider_signin_url),
            "{location}"
        );
        let page = client.get(&location).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let escaped = sample.email.replace('&', "&amp;");
        assert!(page.text().await.unwrap().contains(&escaped));

        // The new provider accepts the same password, and only that one.
        let ok = post_form(
            &client,
            &handle.provider_signin_url,
            &sample.email,
            &sample.password,
        )
        .await;
        assert_eq!(ok.status(), 200, "{}", sample.format);
        let text = ok.text().await.unwrap();
        assert!(
            text.contains("Signed in at the new provider") && text.contains(&sample.email),
            "{text}"
        );
        let bad = post_form(&client, &handle.provider_signin_url, &sample.email, "nope").await;
        assert_eq!(bad.status(), 401);
    }

    // The plaintext passwords appear in neither the audit log nor the metrics.
    // The audit writer is a thread of its own: its lines can trail the responses a little.
    let mut audit = String::new();
    for _ in 0..200 {
        audit = std::fs::read_to_string(handle.audit_log()).unwrap_or_default();
        if audit.contains("user.migrated") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(audit.contains("user.migrated"), "{audit}");
    for sample in &handle.samples {
        assert!(!audit.contains(&sample.password));
        assert!(!metrics.contains(&sample.password));
    }

    let data_dir = handle.data_dir.clone();
    tokio::time::timeout(Duration::from_secs(15), handle.shutdown())
        .await
        .expect("shutdown within 15 s")
        .unwrap();
    assert!(!data_dir.exists(), "temporary data directory removed");
}
