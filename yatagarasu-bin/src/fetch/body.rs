//! What whole-object and slice reads share: the body stream type, flight subscriptions as bodies,
//! flight errors as proxy errors, and read-ahead tasks that stop when nobody waits for them.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt as _;
use yatagarasu_coalesce::{FlightError, Subscription};
use yatagarasu_core::{Error, ErrorKind, ObjectMeta, Result};
use yatagarasu_s3::ObjectBody;

/// A response body as the proxy streams it.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;
/// Object metadata shared by the subscribers of a flight.
pub(crate) type Head = Arc<ObjectMeta>;

pub(super) type ObjectKey = (Arc<str>, String);
pub(super) type SliceKey = (Arc<str>, String, u64);
pub(super) type Sub = Subscription<Head, Bytes, Error>;
pub(super) type Audience = yatagarasu_coalesce::Audience<Head, Bytes, Error>;

pub(super) fn flight_error(e: FlightError<Error>) -> Error {
    match e {
        FlightError::Failed(e) => e,
        FlightError::Panicked => {
            Error::new(ErrorKind::Internal, "the shared origin fetch panicked")
        }
        FlightError::Cancelled => Error::new(
            ErrorKind::Unavailable,
            "the shared origin fetch was cancelled",
        ),
        FlightError::TimedOut => Error::new(
            ErrorKind::UpstreamTimeout,
            "timed out waiting for the shared origin fetch",
        ),
        FlightError::Lagged => Error::new(
            ErrorKind::Upstream,
            "this client fell too far behind the shared origin fetch and was dropped",
        ),
        other => Error::new(
            ErrorKind::Internal,
            format!("the shared origin fetch failed: {other}"),
        ),
    }
}

pub(super) fn sub_stream(sub: Sub) -> BodyStream {
    Box::pin(sub.map(|r| r.map_err(flight_error)))
}

pub(super) fn object_body_stream(body: ObjectBody) -> BodyStream {
    Box::pin(body)
}

/// Aborts a spawned task when dropped (a read-ahead nobody will read).
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
