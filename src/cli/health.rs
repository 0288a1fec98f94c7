//! `dripgate health --url URL`: a tiny HTTP probe for container health checks.

use std::process::ExitCode;
use std::time::Duration;

use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// GETs `url`; exit 0 on 2xx, 1 on any other answer or failure.
pub fn probe(url: &str, timeout_secs: u64) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dripgate health: {e}");
            return ExitCode::FAILURE;
        }
    };
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("dripgate health: bad URL {url}: {e}");
            return ExitCode::from(2);
        }
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let result = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(timeout_secs), client.get(uri)).await
    });
    match result {
        Ok(Ok(resp)) if resp.status().is_success() => {
            println!("{}", resp.status());
            ExitCode::SUCCESS
        }
        Ok(Ok(resp)) => {
            eprintln!("dripgate health: {url} answered {}", resp.status());
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("dripgate health: {url}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("dripgate health: {url}: no answer within {timeout_secs}s");
            ExitCode::FAILURE
        }
    }
}
