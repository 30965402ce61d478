//! The proxy's long-lived state: what outlives a route table (cache tiers, coalescing groups,
//! background revalidations, the metrics recorder, readiness results). Route tables come and go
//! beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use yatagarasu_core::Error;

use crate::cache::ObjectCache;
use crate::fetch::Fetcher;
use crate::metrics::MetricsRecorder;

/// One readiness check of every bucket: when, and each bucket's error if it failed.
pub(crate) type ReadyReport = (Instant, Vec<(String, Option<String>)>);

/// Shared by every request and every route table.
#[derive(Debug)]
pub(crate) struct State {
    /// This instance's id.
    pub(crate) instance_id: Arc<str>,
    /// Its fleet membership.
    pub(crate) fleet: Option<crate::fleet::Fleet>,
    /// The cache tiers, if any.
    pub(crate) cache: Option<ObjectCache>,
    /// Shared, sliced origin fetches.
    pub(crate) fetcher: Fetcher,
    /// Background revalidations (stale-while-revalidate), one per object at a time.
    pub(crate) revalidations: yatagarasu_coalesce::Group<(Arc<str>, String), (), Error>,
    /// Where finished requests are reported.
    pub(crate) metrics: Arc<dyn MetricsRecorder>,
    /// Prometheus metrics, when `/metrics` is served.
    pub(crate) prometheus: Option<crate::prometheus::PrometheusMetrics>,
    /// Where every request's audit record goes, if anywhere.
    pub(crate) audit: Option<crate::audit::AuditLog>,
    /// The OpenTelemetry tracer, when requests are traced.
    pub(crate) tracing: Option<crate::otel::Tracing>,
    /// Requests in flight and open connections.
    pub(crate) live: Arc<crate::metrics::Live>,
    /// How long a `/ready` result is reused.
    pub(crate) ready_cache: Duration,
    /// How long one readiness probe may take.
    pub(crate) probe_timeout: Duration,
    /// The last readiness report.
    pub(crate) ready: tokio::sync::Mutex<Option<ReadyReport>>,
}
