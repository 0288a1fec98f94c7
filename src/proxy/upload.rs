//! A request body that is still arriving while its request goes upstream: watched for client
//! inactivity, and for where it ends, so that the upstream's response deadline can run from the
//! end of the body rather than from the request's arrival.
//!
//! Only requests whose body had not fully arrived with the head take this path; a request
//! without a body (most GETs) is complete on arrival and keeps the deadline from its arrival.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::error::ClientError;
use super::metrics::ClientErrorCounters;
use crate::body::{Body, BoxError};

/// Where an upload stands, as its body last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// The last frame was handed to the upstream connection, which has not asked for more.
    AwaitingUpstream,
    /// The upstream connection asked for more and the client has sent nothing yet.
    AwaitingClient,
    /// The whole body was handed over.
    Ended,
    /// The client's body failed (and the request with it).
    Failed(ClientError),
}

const AWAITING_UPSTREAM: u8 = 0;
const AWAITING_CLIENT: u8 = 1;
const ENDED: u8 = 2;
const MALFORMED: u8 = 3;
const STALLED: u8 = 4;

/// What the body (polled by the upstream connection's task) tells the forwarding (polled by
/// the client connection's task) about the upload.
#[derive(Debug, Default)]
pub(super) struct Upload {
    stage: AtomicU8,
    /// Frames handed over so far.
    frames: AtomicU64,
    /// `frames` when the forwarding last looked (only the forwarding touches it).
    seen: AtomicU64,
    /// When the body ended (set before `stage` becomes `ENDED`).
    ended_at: OnceLock<Instant>,
}

impl Upload {
    pub(super) fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Acquire) {
            AWAITING_CLIENT => Stage::AwaitingClient,
            ENDED => Stage::Ended,
            MALFORMED => Stage::Failed(ClientError::MalformedBody),
            STALLED => Stage::Failed(ClientError::BodyTimeout),
            _ => Stage::AwaitingUpstream,
        }
    }

    /// When the body ended, if it has.
    pub(super) fn ended_at(&self) -> Option<Instant> {
        (self.stage.load(Ordering::Acquire) == ENDED)
            .then(|| self.ended_at.get().copied())
            .flatten()
    }

    /// Whether a frame was handed over since the last call.
    pub(super) fn moved_since_last_look(&self) -> bool {
        let frames = self.frames.load(Ordering::Relaxed);
        self.seen.swap(frames, Ordering::Relaxed) != frames
    }

    fn set(&self, stage: u8) {
        self.stage.store(stage, Ordering::Release);
    }

    fn end(&self) {
        let _ = self.ended_at.set(Instant::now());
        self.set(ENDED);
    }
}

/// The request body as sent upstream: the client's, cut when the client sends nothing for
/// `idle_timeout`, reporting its progress to an [`Upload`].
pub(super) struct WatchedBody {
    inner: Body,
    upload: Arc<Upload>,
    idle_timeout: Duration,
    /// Armed when the body first waits on the client; reset at the start of each later wait.
    idle: Option<Pin<Box<Sleep>>>,
    /// Whether `idle` runs from the current wait (cleared by each frame).
    waiting: bool,
    counters: ClientErrorCounters,
}

impl WatchedBody {
    pub(super) fn new(
        inner: Body,
        upload: Arc<Upload>,
        idle_timeout: Duration,
        counters: ClientErrorCounters,
    ) -> Self {
        Self {
            inner,
            upload,
            idle_timeout,
            idle: None,
            waiting: false,
            counters,
        }
    }

    /// No frame is ready: the client owes bytes. The inactivity timer runs from the start of
    /// this wait (one clock reading per wait, none per frame).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.waiting {
            self.waiting = true;
            self.upload.set(AWAITING_CLIENT);
            let until = Instant::now() + self.idle_timeout;
            match &mut self.idle {
                Some(sleep) => sleep.as_mut().reset(until),
                None => self.idle = Some(Box::pin(tokio::time::sleep_until(until))),
            }
        }
        match self.idle.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(self.fail(ClientError::BodyTimeout)))),
            _ => Poll::Pending,
        }
    }

    /// Records and counts the client's failure; the error aborts the upstream request.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, err: ClientError) -> BoxError {
        self.upload.set(match err {
            ClientError::BodyTimeout => STALLED,
            _ => MALFORMED,
        });
        self.counters.count(err.reason());
        tracing::debug!(error = %err, "request body cut");
        Box::new(err)
    }
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                this.upload.frames.fetch_add(1, Ordering::Relaxed);
                // The upstream connection need not poll again once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.upload.end();
                } else {
                    this.upload.set(AWAITING_UPSTREAM);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.upload.end();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::debug!(error = %err, "request body malformed");
                Poll::Ready(Some(Err(this.fail(ClientError::MalformedBody))))
            }
            Poll::Pending => this.poll_idle(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http_body_util::BodyExt;

    use super::*;

    fn counters() -> ClientErrorCounters {
        let registry = prometheus::Registry::new();
        crate::proxy::metrics::HttpMetrics::register(&registry)
            .unwrap()
            .client_errors()
    }

    /// A body of `frames` chunks, one every `every`, then (with `stall`) nothing forever.
    fn trickle(frames: usize, every: Duration, stall: bool) -> Body {
        let stream = futures_util::stream::unfold(0, move |i| async move {
            if i == frames {
                if stall {
                    std::future::pending::<()>().await;
                }
                return None;
            }
            tokio::time::sleep(every).await;
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x"))),
                i + 1,
            ))
        });
        http_body_util::StreamBody::new(stream).boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_flowing_body_is_not_cut_and_reports_its_end() {
        let upload = Arc::new(Upload::default());
        let body = trickle(10, Duration::from_secs(5), false);
        let watched = WatchedBody::new(body, upload.clone(), Duration::from_secs(6), counters());
        let start = Instant::now();
        let bytes = watched.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 10);
        assert_eq!(upload.stage(), Stage::Ended);
        assert!(upload.ended_at().unwrap() >= start + Duration::from_secs(50));
        assert!(upload.moved_since_last_look());
        assert!(!upload.moved_since_last_look());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_after_the_inactivity_timeout() {
        let upload = Arc::new(Upload::default());
        let body = trickle(2, Duration::from_secs(1), true);
        let watched = WatchedBody::new(body, upload.clone(), Duration::from_secs(6), counters());
        let start = Instant::now();
        let err = watched.collect().await.err().unwrap();
        assert!(err.downcast_ref::<ClientError>().is_some());
        assert_eq!(upload.stage(), Stage::Failed(ClientError::BodyTimeout));
        assert!(Instant::now() >= start + Duration::from_secs(8));
    }
}
