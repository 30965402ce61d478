//! The metrics seam: the proxy reports each finished request to a [`MetricsRecorder`] given to the
//! builder ([`ProxyBuilder::metrics`](crate::ProxyBuilder::metrics)), from typed outcomes. The
//! default records nothing; an exporter (Prometheus, OpenTelemetry, ...) implements the trait.

use std::time::Duration;

use http::Method;

use crate::outcome::{CacheStatus, Completion};

/// One finished request, as the access-log stage sees it when the response body ends.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestRecord<'a> {
    /// The bucket's config name; `None` for requests that matched no bucket (and `/health`, `/ready`).
    pub bucket: Option<&'a str>,
    /// The request method.
    pub method: &'a Method,
    /// The response status.
    pub status: u16,
    /// How the response used the cache; `None` when it was not an object response.
    pub cache: Option<CacheStatus>,
    /// Body bytes handed to the connection.
    pub bytes_sent: u64,
    /// From the request's arrival to the end of its body.
    pub duration: Duration,
    /// How the body ended.
    pub completion: Completion,
}

/// Receives what the proxy observed. Called on the request path: implementations must be cheap
/// and must not block (atomic counters, lock-free histograms).
pub trait MetricsRecorder: Send + Sync + std::fmt::Debug + 'static {
    /// A request finished (its body ended, failed, or was dropped).
    fn record_request(&self, record: &RequestRecord<'_>) {
        let _ = record;
    }
}

/// Records nothing (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl MetricsRecorder for NoMetrics {}
