//! Reading a sign-in body: bounded in size, reserved against the shared memory budget, and
//! classified when it fails (the client's body, its pace, or dripgate's budget).

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;

use super::budget::Reservation;
use crate::body::{Body, PrefixedBody, boxed};
use crate::failure::{Blame, Classified, Retry};
use crate::migrate::Outcome;

/// What reading a sign-in body produced.
pub enum SigninBody {
    /// The whole body, within the size limit.
    Buffered(Bytes),
    /// Too large to inspect: the part read so far followed by the rest, to forward untouched.
    Oversized(Body),
}

/// Why a sign-in body could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The client's body failed (a reset, a malformed chunk).
    #[error("sign-in body failed: {0}")]
    Body(crate::body::BoxError),
    /// The body did not arrive within `signin.body_timeout`.
    #[error("sign-in body not received in time")]
    Timeout,
    /// No room in the sign-in body budget.
    #[error("sign-in body budget full")]
    BudgetFull,
}

impl ReadError {
    /// The sign-in's exit.
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            Self::Body(_) => Outcome::BodyError,
            Self::Timeout => Outcome::BodyTimeout,
            Self::BudgetFull => Outcome::BudgetFull,
        }
    }

    /// The status the client gets.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::BudgetFull => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A failed or slow body is the client's; a full budget is dripgate's capacity, free again
/// as other sign-ins finish.
impl Classified for ReadError {
    fn blame(&self) -> Blame {
        match self {
            Self::Body(_) | Self::Timeout => Blame::Client,
            Self::BudgetFull => Blame::Capacity,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Self::Body(_) => Retry::Never,
            Self::Timeout | Self::BudgetFull => Retry::Later,
        }
    }

    fn label(&self) -> &'static str {
        self.outcome().as_str()
    }
}

/// The request's `Content-Length`, when it has one valid value.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads `body` until it ends or exceeds `limit` bytes, reserving room in the budget first
/// (for the declared length at once, else as the bytes arrive).
pub(super) async fn read_limited(
    mut body: Body,
    limit: usize,
    declared: Option<u64>,
    room: &mut Reservation,
) -> Result<SigninBody, ReadError> {
    let declared = declared.map_or(0, |len| usize::try_from(len).unwrap_or(usize::MAX));
    room.grow_to(declared)
        .await
        .map_err(|_| ReadError::BudgetFull)?;
    let mut buf = BytesMut::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Body)?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > limit {
                buf.extend_from_slice(data);
                let rest = PrefixedBody::new(buf.freeze(), body);
                return Ok(SigninBody::Oversized(boxed(rest)));
            }
            room.grow_to(buf.len() + data.len())
                .await
                .map_err(|_| ReadError::BudgetFull)?;
            buf.extend_from_slice(data);
        }
    }
    Ok(SigninBody::Buffered(buf.freeze()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_are_classified_and_named_by_their_outcome() {
        let body = ReadError::Body("reset".into());
        assert_eq!((body.blame(), body.retry()), (Blame::Client, Retry::Never));
        assert_eq!(
            (body.outcome(), body.status()),
            (Outcome::BodyError, StatusCode::BAD_REQUEST)
        );
        let slow = ReadError::Timeout;
        assert_eq!((slow.blame(), slow.retry()), (Blame::Client, Retry::Later));
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        let full = ReadError::BudgetFull;
        assert_eq!(
            (full.blame(), full.retry()),
            (Blame::Capacity, Retry::Later)
        );
        assert_eq!(full.label(), "budget_full");
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
