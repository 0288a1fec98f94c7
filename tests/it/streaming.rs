//! 50 MB in each direction through dripgate with flat memory. Alone in its test binary so the
//! process's peak RSS belongs to this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use bytes::Bytes;
use common::legacy_app::LegacyApp;
use common::{Dripgate, config_for};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const SIZE: u64 = 50 * 1024 * 1024;

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[tokio::test]
async fn fifty_megabytes_each_way_with_flat_memory() {
    let app = LegacyApp::start().await;
    let dg = Dripgate::start(config_for(app.addr)).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let before = peak_rss();

    // Upload: a lazily generated stream; the legacy app counts what arrives.
    let chunk = Bytes::from(vec![7u8; 256 * 1024]);
    let stream = futures_util::stream::unfold(SIZE, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(chunk.len() as u64) as usize;
            Some((
                Ok::<_, std::convert::Infallible>(Frame::data(chunk.slice(..take))),
                left - take as u64,
            ))
        }
    });
    let req = http::Request::post(dg.url("/upload"))
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let counted = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(counted, SIZE.to_string().as_bytes());

    // Download: count the bytes frame by frame without keeping them.
    let req = http::Request::get(dg.url(&format!("/download?bytes={SIZE}")))
        .body(http_body_util::Empty::<Bytes>::new().boxed())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame.unwrap().data_ref() {
            received += d.len() as u64;
        }
    }
    assert_eq!(received, SIZE);

    // Client, dripgate and legacy app share this process: had any of them buffered a body,
    // the peak would have grown by at least 50 MB.
    let growth = peak_rss().saturating_sub(before);
    assert!(
        growth < 24 * 1024 * 1024,
        "peak RSS grew by {} MiB while streaming 2 x 50 MiB",
        growth / (1024 * 1024)
    );
    dg.stop().await;
}
