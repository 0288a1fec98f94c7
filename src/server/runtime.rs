//! The runtime every proxy worker runs on.

/// The runtime of one proxy worker: `serve` runs the first worker (and the admin listener and
/// the background tasks) on it in the main thread, and every further worker on one of its own
/// (`server.worker_threads`).
///
/// tokio's current-thread scheduler, one event loop per thread as nginx has one per worker
/// process. It runs woken tasks in the order they woke, where the multi-thread scheduler's LIFO
/// slot runs each just-woken task at once. With the LIFO slot a proxy alternates "read from a
/// client, write upstream" per request, so the upstream (and, on the way back, the client) is
/// woken for each write and often has gone idle in between; in order, writes to the same peers
/// come in runs and one wake-up serves several. On small proxied responses this cut the
/// wake-up interrupts to the other CPU from 0.5–1.5 to 0.1–0.5 per request and the proxy's CPU
/// time per request by about a sixth (docs/BENCHMARKS.md). With several workers, the
/// multi-thread scheduler's work stealing and cross-thread wake-ups cost more again: 1.32× nginx's
/// CPU per request against 1.21× for one event loop per worker (two workers, docs/BENCHMARKS.md).
pub fn serve_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .event_interval(EVENT_INTERVAL)
        .enable_all()
        .build()
}

/// Task polls between two looks for I/O and timer events (tokio's default is 61). A proxied
/// request is a handful of short polls, so under load tokio's default asked the kernel for
/// events about every fifteen requests; 128 halves those `epoll_wait` calls (measured: 0.066 →
/// 0.035 per request at 256 connections, docs/BENCHMARKS.md) while a busy worker still looks
/// for events every few dozen requests.
pub const EVENT_INTERVAL: u32 = 128;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    use super::serve_runtime;

    #[test]
    fn workers_run_on_the_current_thread_scheduler() {
        let rt = serve_runtime().unwrap();
        assert_eq!(rt.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        // Blocking work still has its own threads there.
        let on = rt
            .block_on(async { tokio::task::spawn_blocking(|| std::thread::current().id()).await });
        assert_ne!(on.unwrap(), std::thread::current().id());
    }
}
