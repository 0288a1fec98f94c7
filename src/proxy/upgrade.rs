//! Tunnelling an upgraded connection (WebSocket and the like) between client and upstream.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Once both sides have switched protocols, copies bytes both ways until either side closes.
/// Out of line, like every path most requests never take.
#[cold]
#[inline(never)]
pub fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "protocol upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
            Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
        }
    });
}
