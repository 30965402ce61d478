//! Prometheus metrics: a [`MetricsRecorder`] counting every finished request, plus what the proxy
//! knows at scrape time (cache tiers, coalescing, connections, policies), rendered in the
//! Prometheus text format or OpenMetrics.
//!
//! Labels have bounded cardinality: a bucket's config name, a method out of `GET`, `HEAD`,
//! `OPTIONS`, `other`, a status class, a cache outcome, a tier, an error kind. Never an object key,
//! a client address or a token.
//!
//! ```
//! use yatagarasu::{Proxy, PrometheusMetrics};
//!
//! let metrics = PrometheusMetrics::new();
//! let proxy = Proxy::builder().prometheus(metrics.clone()).build();
//! let (content_type, text) = metrics.render(&proxy, false);
//! assert!(content_type.starts_with("text/plain"));
//! assert!(text.contains("yatagarasu_in_flight_requests 0"));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::{MetricsRecorder, RequestRecord};
use crate::outcome::CacheStatus;
use crate::proxy::Proxy;

/// Seconds: 0.5 ms to 60 s.
const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

const METHODS: [&str; 4] = ["GET", "HEAD", "OPTIONS", "other"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    bucket: String,
    method: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabel {
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    bucket: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    bucket: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    bucket: String,
    operation: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// One bucket's metrics, resolved once so a request touches atomics, not label maps.
struct BucketHandles {
    requests: [OnceLock<Counter>; METHODS.len() * CLASSES.len()],
    cache: [OnceLock<Counter>; 6],
    completions: [OnceLock<Counter>; 3],
    duration: Histogram,
    time_to_head: Histogram,
    bytes: Counter,
}

/// Prometheus metrics for a [`Proxy`]: give it to
/// [`ProxyBuilder::prometheus`](crate::ProxyBuilder::prometheus), then [`render`](Self::render) on
/// each scrape. Cheap to clone.
#[derive(Clone)]
pub struct PrometheusMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    cache: Family<OutcomeLabels, Counter>,
    completions: Family<OutcomeLabels, Counter>,
    duration: HistogramFamily<BucketLabel>,
    time_to_head: HistogramFamily<BucketLabel>,
    bytes: Family<BucketLabel, Counter>,
    origin_requests: Family<OriginLabels, Counter>,
    origin_duration: HistogramFamily<OperationLabels>,
    buckets: RwLock<HashMap<Box<str>, Arc<BucketHandles>>>,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `bucket` label of requests that matched no bucket (`/health`, `/ready`, `/metrics`, 404s).
const NO_BUCKET: &str = "";

impl PrometheusMetrics {
    /// Empty metrics, every name prefixed `yatagarasu_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("yatagarasu");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by bucket, method and status class",
            requests.clone(),
        );
        let duration: HistogramFamily<BucketLabel> = Family::new_with_constructor(histogram);
        registry.register(
            "request_duration_seconds",
            "From a request's arrival to the end of its response body",
            duration.clone(),
        );
        let time_to_head: HistogramFamily<BucketLabel> = Family::new_with_constructor(histogram);
        registry.register(
            "response_head_seconds",
            "From a request's arrival to its response head being ready (time to first byte)",
            time_to_head.clone(),
        );
        let bytes = Family::<BucketLabel, Counter>::default();
        registry.register(
            "response_body_bytes",
            "Response body bytes handed to connections",
            bytes.clone(),
        );
        let cache = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cache_requests",
            "Object requests by how they used the cache (hit, miss, revalidated, stale, bypass, negative_hit)",
            cache.clone(),
        );
        let completions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "responses_ended",
            "Response bodies by how they ended (complete, aborted, client_gone)",
            completions.clone(),
        );
        let origin_requests = Family::<OriginLabels, Counter>::default();
        registry.register(
            "origin_requests",
            "Requests to origins by bucket, operation (get, head) and outcome (ok or the error kind)",
            origin_requests.clone(),
        );
        let origin_duration: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(histogram);
        registry.register(
            "origin_response_head_seconds",
            "Time for an origin to answer with a response head (or an error)",
            origin_duration.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                cache,
                completions,
                duration,
                time_to_head,
                bytes,
                origin_requests,
                origin_duration,
                buckets: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn handles(&self, bucket: &str) -> Arc<BucketHandles> {
        if let Some(h) = self
            .inner
            .buckets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(bucket)
        {
            return Arc::clone(h);
        }
        let label = BucketLabel {
            bucket: bucket.to_owned(),
        };
        let h = Arc::new(BucketHandles {
            requests: std::array::from_fn(|_| OnceLock::new()),
            cache: std::array::from_fn(|_| OnceLock::new()),
            completions: std::array::from_fn(|_| OnceLock::new()),
            duration: self.inner.duration.get_or_create(&label).clone(),
            time_to_head: self.inner.time_to_head.get_or_create(&label).clone(),
            bytes: self.inner.bytes.get_or_create(&label).clone(),
        });
        let mut map = self
            .inner
            .buckets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(bucket.into()).or_insert(h))
    }

    /// Count an origin request of `bucket`: `operation` (`get`, `head`), `outcome` (`ok` or an
    /// error kind's code), and how long the origin took to answer.
    pub(crate) fn record_origin(
        &self,
        bucket: &str,
        operation: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        self.inner
            .origin_requests
            .get_or_create(&OriginLabels {
                bucket: bucket.to_owned(),
                operation,
                outcome,
            })
            .inc();
        self.inner
            .origin_duration
            .get_or_create(&OperationLabels {
                bucket: bucket.to_owned(),
                operation,
            })
            .observe(seconds);
    }

    /// The metrics now, with `proxy`'s scrape-time state: `(content type, text)`. OpenMetrics when
    /// `openmetrics`, else the Prometheus text format 0.0.4.
    pub fn render(&self, proxy: &Proxy, openmetrics: bool) -> (&'static str, String) {
        let mut now = Registry::with_prefix("yatagarasu");
        now.register_collector(Box::new(Snapshot::of(proxy)));
        let mut out = String::with_capacity(16 * 1024);
        if openmetrics {
            use prometheus_client::encoding::text;
            let _ = text::encode_registry(&mut out, &self.inner.registry);
            let _ = text::encode_registry(&mut out, &now);
            let _ = text::encode_eof(&mut out);
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                out,
            )
        } else {
            use prometheus_client::encoding::prometheus_text;
            let _ = prometheus_text::encode(&mut out, &self.inner.registry);
            let _ = prometheus_text::encode(&mut out, &now);
            (prometheus_text::CONTENT_TYPE, out)
        }
    }
}

fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::OPTIONS => 2,
        _ => 3,
    }
}

fn cache_outcome(s: CacheStatus) -> (usize, &'static str) {
    let index = match s {
        CacheStatus::Hit => 0,
        CacheStatus::Miss => 1,
        CacheStatus::Revalidated => 2,
        CacheStatus::Stale => 3,
        CacheStatus::Bypass => 4,
        CacheStatus::NegativeHit => 5,
    };
    (index, s.as_str())
}

impl MetricsRecorder for PrometheusMetrics {
    fn record_request(&self, r: &RequestRecord<'_>) {
        let bucket = r.bucket.unwrap_or(NO_BUCKET);
        let h = self.handles(bucket);
        let m = method_index(r.method);
        let class = usize::from((r.status / 100).clamp(1, 5)) - 1;
        h.requests[m * CLASSES.len() + class]
            .get_or_init(|| {
                self.inner
                    .requests
                    .get_or_create(&RequestLabels {
                        bucket: bucket.to_owned(),
                        method: METHODS[m],
                        status: CLASSES[class],
                    })
                    .clone()
            })
            .inc();
        if let Some(status) = r.cache {
            let (i, outcome) = cache_outcome(status);
            h.cache[i]
                .get_or_init(|| {
                    self.inner
                        .cache
                        .get_or_create(&OutcomeLabels {
                            bucket: bucket.to_owned(),
                            outcome,
                        })
                        .clone()
                })
                .inc();
        }
        let (i, outcome) = match r.completion {
            crate::outcome::Completion::Complete => (0, "complete"),
            crate::outcome::Completion::Aborted => (1, "aborted"),
            crate::outcome::Completion::ClientGone => (2, "client_gone"),
        };
        h.completions[i]
            .get_or_init(|| {
                self.inner
                    .completions
                    .get_or_create(&OutcomeLabels {
                        bucket: bucket.to_owned(),
                        outcome,
                    })
                    .clone()
            })
            .inc();
        h.duration.observe(r.duration.as_secs_f64());
        h.time_to_head.observe(r.time_to_head.as_secs_f64());
        h.bytes.inc_by(r.bytes_sent);
    }
}

/// The `/metrics` answer: OpenMetrics when `Accept` names it, else the Prometheus text format.
pub(crate) fn response(
    metrics: &PrometheusMetrics,
    proxy: &Proxy,
    headers: &http::HeaderMap,
) -> http::Response<crate::stages::response::ProxyBody> {
    let openmetrics = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, text) = metrics.render(proxy, openmetrics);
    let mut resp = crate::stages::response::json_response(http::StatusCode::OK, text);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

/// What the proxy knows at scrape time, copied out.
#[derive(Debug)]
struct Snapshot {
    live: crate::metrics::LiveStats,
    tiers: Vec<(&'static str, yatagarasu_cache::TierStats)>,
    coalescing: crate::fetch::CoalescingStats,
    policies: Vec<(String, crate::auth::PolicyStats)>,
    /// Each bucket's origin stats, asked once per scrape (client, breaker, concurrency cap).
    origins: Vec<(String, yatagarasu_s3::OriginStats)>,
    audit: Option<crate::audit::AuditStats>,
    instance: Arc<str>,
    fleet: Option<crate::fleet::FleetStats>,
    rate_limited: Vec<(&'static str, Option<String>, u64)>,
}

impl Snapshot {
    /// One sample per bucket whose origin reports `value` (`None`: no such part).
    fn per_origin(
        &self,
        value: impl Fn(&yatagarasu_s3::OriginStats) -> Option<u64>,
    ) -> Vec<(BucketLabel, u64)> {
        self.origins
            .iter()
            .filter_map(|(b, s)| Some((BucketLabel { bucket: b.clone() }, value(s)?)))
            .collect()
    }

    /// Buckets with `s3.replicas`: each replica's breaker state and requests, the failovers.
    fn encode_replicas(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use yatagarasu_s3::BreakerState as S;
        let (mut states, mut requests) = (Vec::new(), Vec::new());
        for (bucket, o) in &self.origins {
            let Some(set) = &o.replicas else { continue };
            for r in &set.replicas {
                let label = |state| ReplicaLabels {
                    bucket: bucket.clone(),
                    replica: r.name.clone(),
                    state,
                };
                requests.push((label(None), r.requests));
                let Some(b) = r.origin.breaker else { continue };
                for s in [S::Closed, S::Open, S::HalfOpen] {
                    states.push((label(Some(s.as_str())), u64::from(b.state == s)));
                }
            }
        }
        family(
            e,
            "origin_replica_breaker_state",
            "Circuit breaker state per replica: 1 for the state it is in",
            MetricType::Gauge,
            &states,
        )?;
        family(
            e,
            "origin_replica_requests",
            "Requests sent to each replica (GETs, HEADs and body continuations)",
            MetricType::Counter,
            &requests,
        )?;
        family(
            e,
            "origin_failovers",
            "Origin requests moved on to the next replica after a fault, before the first byte",
            MetricType::Counter,
            &self.per_origin(|o| Some(o.replicas.as_ref()?.failovers)),
        )?;
        family(
            e,
            "origin_body_failovers",
            "Object bodies that broke and continued from another replica (same ETag)",
            MetricType::Counter,
            &self.per_origin(|o| Some(o.replicas.as_ref()?.body_failovers)),
        )?;
        family(
            e,
            "origin_replica_version_mismatches",
            "Bodies ended with an error because the next replica held another version",
            MetricType::Counter,
            &self.per_origin(|o| Some(o.replicas.as_ref()?.version_mismatches)),
        )
    }

    fn of(proxy: &Proxy) -> Self {
        let routes = proxy.routes();
        Self {
            live: proxy.live_stats(),
            tiers: proxy.cache_stats().unwrap_or_default(),
            coalescing: proxy.coalescing_stats(),
            policies: routes
                .iter()
                .filter_map(|r| Some((r.name.clone(), r.policy.as_ref()?.stats())))
                .collect(),
            origins: routes
                .iter()
                .map(|r| (r.name.clone(), r.origin.origin_stats()))
                .collect(),
            audit: proxy.audit_log().map(crate::audit::AuditLog::stats),
            instance: proxy.instance_id().into(),
            fleet: proxy.fleet().map(crate::fleet::Fleet::stats),
            rate_limited: proxy.rate_limited(),
        }
    }
}

/// `value` of a bucket's origin, or for a replica set the sum over its replicas (client retries,
/// in-flight requests: the bucket's total).
fn summed(
    value: impl Fn(&yatagarasu_s3::OriginStats) -> Option<u64>,
) -> impl Fn(&yatagarasu_s3::OriginStats) -> Option<u64> {
    move |o| match &o.replicas {
        Some(set) => set
            .replicas
            .iter()
            .filter_map(|r| value(&r.origin))
            .reduce(|a, b| a + b),
        None => value(o),
    }
}

/// Write one metric family of constant samples.
fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(L, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        let e = m.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(e)?,
            _ => ConstGauge::new(i64::try_from(*v).unwrap_or(i64::MAX)).encode(e)?,
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    scope: &'static str,
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    bucket: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    bucket: String,
    replica: String,
    state: Option<&'static str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    bucket: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoLabels {}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter as C, Gauge as G};
        let e = &mut enc;
        let l = &self.live;
        family(
            e,
            "in_flight_requests",
            "Requests whose response has not ended",
            G,
            &[(NoLabels {}, l.in_flight)],
        )?;
        let p = |protocol| ProtocolLabel { protocol };
        family(
            e,
            "open_connections",
            "Open client connections by the protocol of their first request (pending: none yet)",
            G,
            &[
                (p("http1"), l.connections_http1),
                (p("http2"), l.connections_http2),
                (p("pending"), l.connections_pending),
            ],
        )?;
        let tier = |f: fn(&yatagarasu_cache::TierStats) -> u64| -> Vec<(TierLabel, u64)> {
            self.tiers
                .iter()
                .map(|(t, s)| (TierLabel { tier: t }, f(s)))
                .collect()
        };
        family(
            e,
            "cache_tier_hits",
            "Lookups that found an entry, by tier",
            C,
            &tier(|s| s.hits),
        )?;
        family(
            e,
            "cache_tier_misses",
            "Lookups that found nothing usable, by tier",
            C,
            &tier(|s| s.misses),
        )?;
        family(
            e,
            "cache_tier_inserts",
            "Entries stored, by tier",
            C,
            &tier(|s| s.inserts),
        )?;
        family(
            e,
            "cache_tier_evictions",
            "Entries dropped to make room, by tier",
            C,
            &tier(|s| s.evictions),
        )?;
        family(
            e,
            "cache_tier_errors",
            "Failed tier operations (each treated as a miss or a skipped write)",
            C,
            &tier(|s| s.errors),
        )?;
        family(
            e,
            "cache_tier_entries",
            "Entries held now, by tier (Redis: 0, unknown)",
            G,
            &tier(|s| s.entries),
        )?;
        family(
            e,
            "cache_tier_bytes",
            "Bytes held now, by tier",
            G,
            &tier(|s| s.bytes),
        )?;
        let c = &self.coalescing;
        let k = |kind| KindLabel { kind };
        family(
            e,
            "coalescing_flights",
            "Shared origin fetches started, by kind (object, slice, head)",
            C,
            &[
                (k("object"), c.objects.started),
                (k("slice"), c.slices.started),
                (k("head"), c.heads.started),
            ],
        )?;
        family(
            e,
            "coalescing_joined",
            "Requests that joined a shared fetch instead of asking the origin (origin requests saved)",
            C,
            &[
                (k("object"), c.objects.joined),
                (k("slice"), c.slices.joined),
                (k("head"), c.heads.joined),
            ],
        )?;
        family(
            e,
            "coalescing_resumed",
            "Readers that fell out of a shared fetch's window and resumed with their own origin request",
            C,
            &[(NoLabels {}, c.resumed)],
        )?;
        family(
            e,
            "coalescing_wait_timeouts",
            "Requests that waited past the wait timeout and fetched on their own",
            C,
            &[(NoLabels {}, c.wait_timeouts)],
        )?;
        family(
            e,
            "coalescing_buffered_bytes",
            "Bytes shared fetches hold now",
            G,
            &[(NoLabels {}, c.buffered_bytes)],
        )?;
        family(
            e,
            "coalescing_buffer_budget_bytes",
            "The budget shared fetches share",
            G,
            &[(NoLabels {}, c.buffer_budget_bytes)],
        )?;
        let mut decisions = Vec::new();
        let mut calls = Vec::new();
        let mut cached = Vec::new();
        for (bucket, s) in &self.policies {
            for (decision, n) in [
                ("allowed", s.allowed),
                ("denied", s.denied),
                ("unavailable", s.unavailable),
            ] {
                decisions.push((
                    DecisionLabels {
                        bucket: bucket.clone(),
                        decision,
                    },
                    n,
                ));
            }
            calls.push((
                BucketLabel {
                    bucket: bucket.clone(),
                },
                s.engine_calls,
            ));
            cached.push((
                BucketLabel {
                    bucket: bucket.clone(),
                },
                s.cache_hits,
            ));
        }
        family(
            e,
            "origin_retries",
            "Origin requests attempted again after a retryable failure (inside one origin request)",
            C,
            &self.per_origin(summed(|o| Some(o.client?.retries))),
        )?;
        family(
            e,
            "origin_body_resumes",
            "Origin bodies that broke or stalled and were resumed (Range + If-Match)",
            C,
            &self.per_origin(summed(|o| Some(o.client?.body_resumes))),
        )?;
        family(
            e,
            "policy_decisions",
            "Authorization policy decisions by bucket (cached ones included)",
            C,
            &decisions,
        )?;
        family(
            e,
            "policy_engine_calls",
            "Calls to the policy engine (each may answer many coalesced requests)",
            C,
            &calls,
        )?;
        family(
            e,
            "policy_cache_hits",
            "Policy decisions answered from the decision cache",
            C,
            &cached,
        )?;
        let mut states = Vec::new();
        for (bucket, o) in &self.origins {
            use yatagarasu_s3::BreakerState as S;
            let Some(b) = o.breaker else { continue };
            for s in [S::Closed, S::Open, S::HalfOpen] {
                let labels = BreakerLabels {
                    bucket: bucket.clone(),
                    state: s.as_str(),
                };
                states.push((labels, u64::from(b.state == s)));
            }
        }
        family(
            e,
            "origin_in_flight",
            "Requests to the bucket's origin in flight now (buckets with max_concurrent_requests)",
            G,
            &self.per_origin(summed(|o| Some(o.concurrency?.in_flight as u64))),
        )?;
        family(
            e,
            "origin_concurrency_limit",
            "The bucket's max_concurrent_requests",
            G,
            &self.per_origin(summed(|o| Some(o.concurrency?.limit as u64))),
        )?;
        family(
            e,
            "origin_queue_timeouts",
            "Requests that waited queue_timeout_ms for an origin slot and got 503 OriginBusy",
            C,
            &self.per_origin(summed(|o| Some(o.concurrency?.timed_out))),
        )?;
        family(
            e,
            "origin_breaker_state",
            "Circuit breaker state per bucket: 1 for the state it is in",
            G,
            &states,
        )?;
        family(
            e,
            "origin_breaker_opened",
            "Times the bucket's circuit breaker opened",
            C,
            &self.per_origin(|o| Some(o.breaker?.opened)),
        )?;
        family(
            e,
            "origin_breaker_rejected",
            "Requests failed at once because the bucket's circuit breaker was open",
            C,
            &self.per_origin(|o| Some(o.breaker?.rejected)),
        )?;
        self.encode_replicas(e)?;
        let limited: Vec<(LimitLabels, u64)> = self
            .rate_limited
            .iter()
            .map(|(scope, bucket, n)| {
                let labels = LimitLabels {
                    scope,
                    bucket: bucket.clone().unwrap_or_default(),
                };
                (labels, *n)
            })
            .collect();
        family(
            e,
            "rate_limited",
            "Requests refused with 429 by a rate limit: global, per_ip (bucket \"\"), or a bucket's",
            C,
            &limited,
        )?;
        if let Some(a) = self.audit {
            family(
                e,
                "audit_records",
                "Audit records: written to every output, dropped (queue full), failed (an output refused)",
                C,
                &[
                    (AuditLabel { outcome: "written" }, a.written),
                    (AuditLabel { outcome: "dropped" }, a.dropped),
                    (AuditLabel { outcome: "failed" }, a.failed),
                ],
            )?;
        }
        family(
            e,
            "instance_info",
            "This instance: its id (server.instance_id) and version; always 1",
            G,
            &[(
                InstanceLabels {
                    instance: self.instance.to_string(),
                    version: env!("CARGO_PKG_VERSION"),
                },
                1,
            )],
        )?;
        if let Some(f) = self.fleet {
            family(
                e,
                "fleet_subscribed",
                "Whether the fleet purge subscription is up (1) or not (0)",
                G,
                &[(NoLabels {}, u64::from(f.subscribed))],
            )?;
            let d = |direction| FleetLabel { direction };
            family(
                e,
                "fleet_purges",
                "Purges announced by this instance, failed to announce, or applied from others",
                C,
                &[
                    (d("announced"), f.announced),
                    (d("announce_failed"), f.announce_failures),
                    (d("applied"), f.applied),
                ],
            )?;
            let o = |outcome| FleetSliceLabel { outcome };
            family(
                e,
                "fleet_cold_slices",
                "Cold slices: fetched here under a fleet claim, read from Redis after waiting for another instance, or fetched alone after giving up waiting",
                C,
                &[
                    (o("claimed"), f.leases_taken),
                    (o("waited"), f.waits_served),
                    (o("wait_abandoned"), f.waits_abandoned),
                ],
            )?;
            family(
                e,
                "fleet_resynced_scopes",
                "Buckets (or everything) dropped locally because a fleet purge may have been missed",
                C,
                &[(NoLabels {}, f.resynced_scopes)],
            )?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FleetSliceLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FleetLabel {
    direction: &'static str,
}

/// An origin whose requests are counted and timed per bucket (wrapped around each route's origin
/// when the proxy has Prometheus metrics).
#[derive(Debug)]
pub(crate) struct MeasuredOrigin {
    inner: Arc<dyn yatagarasu_s3::Origin>,
    bucket: String,
    metrics: PrometheusMetrics,
}

impl MeasuredOrigin {
    pub(crate) fn wrap(
        inner: Arc<dyn yatagarasu_s3::Origin>,
        bucket: &str,
        metrics: &PrometheusMetrics,
    ) -> Arc<dyn yatagarasu_s3::Origin> {
        Arc::new(Self {
            inner,
            bucket: bucket.to_owned(),
            metrics: metrics.clone(),
        })
    }

    fn record<T>(
        &self,
        operation: &'static str,
        started: std::time::Instant,
        r: &Result<T, yatagarasu_core::Error>,
    ) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(e) => e.kind().code(),
        };
        self.metrics.record_origin(
            &self.bucket,
            operation,
            outcome,
            started.elapsed().as_secs_f64(),
        );
    }
}

impl yatagarasu_s3::Origin for MeasuredOrigin {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a yatagarasu_s3::GetObjectRequest,
    ) -> yatagarasu_s3::OriginFuture<'a, yatagarasu_s3::GetObjectOutput> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let r = self.inner.get_object(key, req).await;
            self.record("get", started, &r);
            r
        })
    }

    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a yatagarasu_s3::HeadObjectRequest,
    ) -> yatagarasu_s3::OriginFuture<'a, yatagarasu_core::ObjectMeta> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let r = self.inner.head_object(key, req).await;
            self.record("head", started, &r);
            r
        })
    }

    fn probe(&self) -> yatagarasu_s3::OriginFuture<'_, ()> {
        self.inner.probe()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn origin_stats(&self) -> yatagarasu_s3::OriginStats {
        self.inner.origin_stats()
    }
}

/// Serve `GET /metrics` of `proxy` (which must have been built with
/// [`ProxyBuilder::prometheus`](crate::ProxyBuilder::prometheus)) on a listener of its own until
/// `shutdown` completes; anything else is a 404.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    proxy: Proxy,
    options: crate::ServerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    crate::server::serve_with(
        listener,
        options,
        None,
        shutdown,
        None,
        move |req, _peer| {
            let proxy = proxy.clone();
            async move {
                match (proxy.prometheus_metrics(), req.uri().path()) {
                    (Some(m), "/metrics") => response(&m, &proxy, req.headers()),
                    _ => crate::stages::response::error_response(
                        req.method(),
                        &yatagarasu_core::Error::new(
                            yatagarasu_core::ErrorKind::NotFound,
                            "only /metrics is served here",
                        ),
                    ),
                }
            }
        },
    )
    .await
}
