//! The upstream response deadline, on one timer per client connection.
//!
//! A fresh tokio timer per request is inserted into the runtime's timer wheel on its first poll
//! and taken out again when the response arrives: two locked wheel updates for a deadline that
//! almost never fires. A timer that is still armed and is reset to a later deadline only has its
//! expiry moved (one atomic update; the wheel re-files it if the old expiry comes round), so the
//! requests of one connection take turns with one timer instead.

use std::pin::Pin;

use crossbeam_utils::atomic::AtomicCell;
use tokio::time::{Instant, Sleep};

/// A deadline timer that the requests of one client connection reuse. An HTTP/1 connection has
/// one request in flight, so it always finds the timer free; concurrent HTTP/2 requests that
/// find it taken arm one of their own.
///
/// The slot is one pointer-sized atomic cell, not a mutex: taking and handing back the timer
/// are one atomic swap each, in the connection's own state rather than an allocation of its own.
#[derive(Default)]
pub struct ResponseTimer(AtomicCell<Option<Pin<Box<Sleep>>>>);

impl std::fmt::Debug for ResponseTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseTimer")
    }
}

impl ResponseTimer {
    /// A timer that fires at `deadline`: the connection's own if free, else a new one. Hand it
    /// back with [`ResponseTimer::put_back`] once the response head is in.
    pub(super) fn arm(&self, deadline: Instant) -> Pin<Box<Sleep>> {
        match self.0.take() {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// Keeps `sleep` for the connection's next request.
    pub(super) fn put_back(&self, sleep: Pin<Box<Sleep>>) {
        self.0.store(Some(sleep));
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use super::*;

    /// Polls `fut` until it completes, or until `deadline` fires (`None`), as a forwarding does.
    fn within<'a, F: Future>(
        mut fut: Pin<&'a mut F>,
        deadline: &'a mut Pin<Box<Sleep>>,
    ) -> impl Future<Output = Option<F::Output>> + 'a {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            deadline.as_mut().poll(cx).map(|()| None)
        })
    }

    #[test]
    fn the_slot_is_lock_free() {
        assert!(AtomicCell::<Option<Pin<Box<Sleep>>>>::is_lock_free());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_timer_fires_at_its_new_deadline_not_its_old_one() {
        let timer = ResponseTimer::default();
        let first = Instant::now() + Duration::from_secs(1);
        let mut sleep = timer.arm(first);
        assert_eq!(
            within(std::pin::pin!(async { 7 }), &mut sleep).await,
            Some(7)
        );
        timer.put_back(sleep);

        // Reset to a later deadline: the old expiry passes without firing.
        let second = Instant::now() + Duration::from_secs(5);
        let mut sleep = timer.arm(second);
        let never = std::future::pending::<()>();
        assert_eq!(within(std::pin::pin!(never), &mut sleep).await, None);
        assert!(Instant::now() >= second, "fired before its deadline");
        assert!(Instant::now() < second + Duration::from_millis(10));
        timer.put_back(sleep);

        // After firing it is armed again for the next request.
        let third = Instant::now() + Duration::from_secs(2);
        let mut sleep = timer.arm(third);
        let slow = tokio::time::sleep(Duration::from_secs(1));
        assert_eq!(within(std::pin::pin!(slow), &mut sleep).await, Some(()));
        let never = std::future::pending::<()>();
        assert_eq!(within(std::pin::pin!(never), &mut sleep).await, None);
        assert!(Instant::now() >= third);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_finds_the_timer_taken_gets_its_own() {
        let timer = ResponseTimer::default();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut a = timer.arm(deadline);
        let mut b = timer.arm(deadline + Duration::from_secs(1));
        let never = || std::future::pending::<()>();
        assert_eq!(within(std::pin::pin!(never()), &mut a).await, None);
        assert!(Instant::now() >= deadline && Instant::now() < deadline + Duration::from_secs(1));
        assert_eq!(within(std::pin::pin!(never()), &mut b).await, None);
        assert!(Instant::now() >= deadline + Duration::from_secs(1));
    }
}
