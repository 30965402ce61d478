//! The metrics seam: the proxy reports each finished request to a [`MetricsRecorder`] given to the
//! builder ([`ProxyBuilder::metrics`](crate::ProxyBuilder::metrics)), from typed outcomes. The
//! default records nothing; an exporter (Prometheus, OpenTelemetry, ...) implements the trait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// From the request's arrival to its response head being ready to send (time to first byte,
    /// as far as the proxy can tell).
    pub time_to_head: Duration,
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

/// Gauges the proxy keeps itself: requests in flight, and open connections by the protocol of
/// their first request.
#[derive(Debug, Default)]
pub(crate) struct Live {
    in_flight: AtomicU64,
    /// Accepted, no request yet.
    pending: AtomicU64,
    http1: AtomicU64,
    http2: AtomicU64,
}

/// What [`Proxy::live_stats`](crate::Proxy::live_stats) reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveStats {
    /// Requests whose response has not ended.
    pub in_flight: u64,
    /// Open connections whose first request was HTTP/1.x.
    pub connections_http1: u64,
    /// Open connections whose first request was HTTP/2.
    pub connections_http2: u64,
    /// Open connections that have not sent a request yet.
    pub connections_pending: u64,
}

impl Live {
    pub(crate) fn snapshot(&self) -> LiveStats {
        LiveStats {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            connections_http1: self.http1.load(Ordering::Relaxed),
            connections_http2: self.http2.load(Ordering::Relaxed),
            connections_pending: self.pending.load(Ordering::Relaxed),
        }
    }

    fn by_protocol(&self, protocol: u8) -> &AtomicU64 {
        match protocol {
            1 => &self.http1,
            2 => &self.http2,
            _ => &self.pending,
        }
    }

    /// A connection was accepted.
    pub(crate) fn connection_opened(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Its first request came in `protocol` (1 or 2).
    pub(crate) fn connection_identified(&self, protocol: u8) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        self.by_protocol(protocol).fetch_add(1, Ordering::Relaxed);
    }

    /// It closed (`protocol` 0: before any request).
    pub(crate) fn connection_closed(&self, protocol: u8) {
        self.by_protocol(protocol).fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request in flight: counted from its arrival until this is dropped (its body ended, or the
/// request was abandoned before a response).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Live>);

impl InFlight {
    pub(crate) fn enter(live: &Arc<Live>) -> Self {
        live.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(live))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
