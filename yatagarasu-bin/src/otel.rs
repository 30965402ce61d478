//! OpenTelemetry tracing over OTLP (the `otel` cargo feature; without it every item here is a
//! no-op the compiler removes).
//!
//! Each request gets a server span, continuing the client's W3C `traceparent` when it sends one,
//! with child spans for access control, the cache lookup and each origin request (children of the
//! request that started a shared fetch: requests joining it are not parents of its origin
//! requests). Spans are batched and exported in the background by the OpenTelemetry SDK over
//! OTLP/HTTP (protobuf) to `<otlp_endpoint>/v1/traces`; sampling is parent-based, with
//! `sample_ratio` for requests that arrive without a sampling decision.

/// What `OtelTracing::start` needs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TracingOptions {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to `/v1/traces`
    /// under it unless it names a path of its own.
    pub otlp_endpoint: String,
    /// The share of requests without a sampling decision from their client that are traced
    /// (0.0 ..= 1.0).
    pub sample_ratio: f64,
    /// `service.name` of the exported resource.
    pub service_name: String,
}

impl TracingOptions {
    /// Export to `otlp_endpoint`, tracing every request, as service `yatagarasu`.
    pub fn new(otlp_endpoint: impl Into<String>) -> Self {
        Self {
            otlp_endpoint: otlp_endpoint.into(),
            sample_ratio: 1.0,
            service_name: "yatagarasu".to_owned(),
        }
    }

    /// Trace this share of requests that arrive without a sampling decision.
    #[must_use]
    pub fn sample_ratio(mut self, ratio: f64) -> Self {
        self.sample_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    /// The spans' endpoint: the base URL with `/v1/traces` unless it has a path.
    pub fn traces_url(&self) -> String {
        let base = self.otlp_endpoint.trim_end_matches('/');
        match url::Url::parse(base) {
            Ok(u) if u.path().len() > 1 => base.to_owned(),
            _ => format!("{base}/v1/traces"),
        }
    }
}

#[cfg(not(feature = "otel"))]
pub(crate) use disabled::{Current, Kind, RequestTrace, Tracing, in_span, traced_origin};
#[cfg(feature = "otel")]
pub use enabled::OtelTracing;
#[cfg(feature = "otel")]
pub(crate) use enabled::{Current, Kind, RequestTrace, Tracing, in_span, traced_origin};

#[cfg(feature = "otel")]
mod enabled {
    use std::borrow::Cow;
    use std::future::Future;

    use opentelemetry::context::FutureExt as _;
    use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
    use opentelemetry::trace::{
        Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

    use super::TracingOptions;

    /// The tracer and its exporter. Cheap to clone. Call [`shutdown`](Self::shutdown) (or
    /// [`flush`](Self::flush)) before the process exits, or the last batch is lost.
    #[derive(Debug, Clone)]
    pub struct OtelTracing {
        provider: SdkTracerProvider,
        tracer: SdkTracer,
    }

    impl OtelTracing {
        /// Build the exporter and the batching span processor (its own thread).
        pub fn start(options: &TracingOptions) -> Result<Self, String> {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(options.traces_url())
                .with_timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?;
            let sampler =
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(options.sample_ratio)));
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(sampler)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(options.service_name.clone())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("yatagarasu");
            Ok(Self { provider, tracer })
        }

        /// Export every finished span now; `false` when the exporter failed.
        pub fn flush(&self) -> bool {
            self.provider.force_flush().is_ok()
        }

        /// Export what is left and stop the exporter.
        pub fn shutdown(&self) -> bool {
            self.provider.shutdown().is_ok()
        }
    }

    /// The proxy's handle on its tracer.
    pub(crate) type Tracing = OtelTracing;

    /// `traceparent` / `tracestate` from request headers.
    struct Headers<'a>(&'a http::HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }

    /// A request's server span (`None` without tracing), ended when its response body ends.
    #[derive(Debug, Default)]
    pub(crate) struct RequestTrace {
        cx: Option<Context>,
    }

    impl RequestTrace {
        pub(crate) fn start(
            tracing: Option<&Tracing>,
            method: &http::Method,
            path: &str,
            headers: &http::HeaderMap,
        ) -> Self {
            let Some(t) = tracing else {
                return Self::default();
            };
            let parent = TraceContextPropagator::new().extract(&Headers(headers));
            // Attributes only once the sampler said yes: an unsampled request allocates nothing.
            let mut span = t
                .tracer
                .span_builder(Cow::Borrowed("request"))
                .with_kind(SpanKind::Server)
                .start_with_context(&t.tracer, &parent);
            if !span.is_recording() {
                return Self::default();
            }
            span.update_name(Cow::Owned(method.as_str().to_owned()));
            span.set_attribute(KeyValue::new(
                "http.request.method",
                method.as_str().to_owned(),
            ));
            span.set_attribute(KeyValue::new("url.path", path.to_owned()));
            Self {
                cx: Some(parent.with_span(span)),
            }
        }

        /// Run `f` with this span as the current one (its child spans' parent).
        pub(crate) fn instrument<F: Future>(&self, f: F) -> impl Future<Output = F::Output> {
            match &self.cx {
                Some(cx) => futures_util::future::Either::Left(f.with_context(cx.clone())),
                None => futures_util::future::Either::Right(f),
            }
        }

        /// Make this span the current one until the guard drops (for synchronous polls).
        pub(crate) fn enter(&self) -> Option<opentelemetry::ContextGuard> {
            self.cx.as_ref().map(|cx| cx.clone().attach())
        }

        /// Name the span after its route, once known (`GET /media`).
        pub(crate) fn routed(&self, method: &http::Method, prefix: &str, bucket: &str) {
            if let Some(cx) = &self.cx {
                let span = cx.span();
                span.update_name(format!("{} {prefix}", method.as_str()));
                span.set_attribute(KeyValue::new("http.route", prefix.to_owned()));
                span.set_attribute(KeyValue::new("yatagarasu.bucket", bucket.to_owned()));
            }
        }

        /// End the span with what the response was.
        pub(crate) fn finish(
            &self,
            status: u16,
            bytes: u64,
            cache: Option<&'static str>,
            outcome: &'static str,
        ) {
            let Some(cx) = &self.cx else { return };
            let span = cx.span();
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            span.set_attribute(KeyValue::new(
                "http.response.body.size",
                i64::try_from(bytes).unwrap_or(i64::MAX),
            ));
            span.set_attribute(KeyValue::new("yatagarasu.outcome", outcome));
            if let Some(c) = cache {
                span.set_attribute(KeyValue::new("yatagarasu.cache", c));
            }
            if status >= 500 || outcome == "aborted" {
                span.set_status(Status::error(outcome));
            }
            span.end();
        }
    }

    /// Run `f` in a child span of the current one, named `name` (nothing when no span is current
    /// or it is not sampled). Errors mark the span failed with the error's code.
    pub(crate) async fn in_span<T, F>(
        tracing: Option<&Tracing>,
        name: &'static str,
        kind: SpanKind,
        attributes: &[(&'static str, &str)],
        f: F,
    ) -> Result<T, yatagarasu_core::Error>
    where
        F: Future<Output = Result<T, yatagarasu_core::Error>>,
    {
        let parent = Context::current();
        let Some(t) = tracing.filter(|_| parent.span().span_context().is_sampled()) else {
            return f.await;
        };
        let span = t
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(
                attributes
                    .iter()
                    .map(|(k, v)| KeyValue::new(*k, (*v).to_owned())),
            )
            .start_with_context(&t.tracer, &parent);
        let cx = parent.with_span(span);
        let out = f.with_context(cx.clone()).await;
        let span = cx.span();
        if let Err(e) = &out {
            span.set_attribute(KeyValue::new("error.type", e.code().to_owned()));
            span.set_status(Status::error(e.message().to_owned()));
        }
        span.end();
        out
    }

    pub(crate) use opentelemetry::trace::SpanKind as Kind;

    /// `inner`, with a client span around each origin request.
    pub(crate) fn traced_origin(
        inner: std::sync::Arc<dyn yatagarasu_s3::Origin>,
        tracing: &Tracing,
    ) -> std::sync::Arc<dyn yatagarasu_s3::Origin> {
        std::sync::Arc::new(TracedOrigin {
            inner,
            tracing: tracing.clone(),
        })
    }

    #[derive(Debug)]
    struct TracedOrigin {
        inner: std::sync::Arc<dyn yatagarasu_s3::Origin>,
        tracing: Tracing,
    }

    /// `bytes=first-last` as sent to the origin (empty for a whole object).
    fn range(r: Option<&yatagarasu_core::RangeSpec>) -> String {
        match r {
            None => String::new(),
            Some(yatagarasu_core::RangeSpec::Int { first, last }) => format!(
                "bytes={first}-{}",
                last.map(|l| l.to_string()).unwrap_or_default()
            ),
            Some(yatagarasu_core::RangeSpec::Suffix(n)) => format!("bytes=-{n}"),
        }
    }

    impl yatagarasu_s3::Origin for TracedOrigin {
        fn bucket(&self) -> &str {
            self.inner.bucket()
        }

        fn get_object<'a>(
            &'a self,
            key: &'a str,
            req: &'a yatagarasu_s3::GetObjectRequest,
        ) -> yatagarasu_s3::OriginFuture<'a, yatagarasu_s3::GetObjectOutput> {
            Box::pin(async move {
                let range = range(req.range.as_ref());
                let attributes = [
                    ("aws.s3.bucket", self.inner.bucket()),
                    ("aws.s3.key", key),
                    ("yatagarasu.range", range.as_str()),
                ];
                in_span(
                    Some(&self.tracing),
                    "s3 GetObject",
                    SpanKind::Client,
                    &attributes,
                    self.inner.get_object(key, req),
                )
                .await
            })
        }

        fn head_object<'a>(
            &'a self,
            key: &'a str,
            req: &'a yatagarasu_s3::HeadObjectRequest,
        ) -> yatagarasu_s3::OriginFuture<'a, yatagarasu_core::ObjectMeta> {
            Box::pin(async move {
                let attributes = [("aws.s3.bucket", self.inner.bucket()), ("aws.s3.key", key)];
                in_span(
                    Some(&self.tracing),
                    "s3 HeadObject",
                    SpanKind::Client,
                    &attributes,
                    self.inner.head_object(key, req),
                )
                .await
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

    /// The current trace context, carried into a task spawned for it (a shared fetch, a
    /// read-ahead), so the origin requests made there are children of the request's span.
    #[derive(Debug, Clone)]
    pub(crate) struct Current(Context);

    impl Current {
        pub(crate) fn capture() -> Self {
            Self(Context::current())
        }

        pub(crate) fn wrap<F: Future>(self, f: F) -> impl Future<Output = F::Output> {
            f.with_context(self.0)
        }
    }
}

#[cfg(not(feature = "otel"))]
mod disabled {
    use std::future::Future;

    /// Without the `otel` feature there is no tracer.
    #[derive(Debug, Clone)]
    pub(crate) enum Tracing {}

    #[derive(Debug, Default)]
    pub(crate) struct RequestTrace;

    impl RequestTrace {
        pub(crate) fn start(
            _: Option<&Tracing>,
            _: &http::Method,
            _: &str,
            _: &http::HeaderMap,
        ) -> Self {
            Self
        }

        pub(crate) fn instrument<F: Future>(&self, f: F) -> F {
            f
        }

        pub(crate) fn enter(&self) -> Option<()> {
            None
        }

        pub(crate) fn routed(&self, _: &http::Method, _: &str, _: &str) {}

        pub(crate) fn finish(&self, _: u16, _: u64, _: Option<&'static str>, _: &'static str) {}
    }

    /// Span kinds, for call sites shared with the `otel` build.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Kind {
        Internal,
    }

    pub(crate) fn traced_origin(
        _: std::sync::Arc<dyn yatagarasu_s3::Origin>,
        tracing: &Tracing,
    ) -> std::sync::Arc<dyn yatagarasu_s3::Origin> {
        match *tracing {}
    }

    /// `f` itself (an `async fn` awaiting it would hold `f` twice: as its argument and as the
    /// future it awaits, doubling the size of every request's future).
    pub(crate) fn in_span<T, F>(
        _: Option<&Tracing>,
        _: &'static str,
        _: Kind,
        _: &[(&'static str, &str)],
        f: F,
    ) -> F
    where
        F: Future<Output = Result<T, yatagarasu_core::Error>>,
    {
        f
    }

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Current;

    impl Current {
        pub(crate) fn capture() -> Self {
            Self
        }

        pub(crate) fn wrap<F: Future>(self, f: F) -> F {
            f
        }
    }
}
