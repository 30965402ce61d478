//! The access-log and metrics stage: wraps the response body, counts what is sent, and when the body
//! ends (fully sent, aborted by an error, or dropped because the client left) writes the request's
//! log line and reports it to the metrics recorder.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Response, header};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use yatagarasu_core::Error;

use super::response::ProxyBody;
use crate::audit::{AuditError, AuditLog, AuditRecord};
use crate::metrics::{MetricsRecorder, RequestRecord};
use crate::outcome::{CacheStatus, Completion};

/// What the log line and the metrics record say about a request.
#[derive(Debug)]
pub(crate) struct RequestLog {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) bucket: Option<String>,
    pub(crate) request_id: String,
    pub(crate) cache: Option<CacheStatus>,
    pub(crate) started: Instant,
    /// The request's trace span, ended with the body.
    pub(crate) trace: crate::otel::RequestTrace,
    /// What the audit log needs beyond the above, when there is an audit log.
    pub(crate) audit: Option<Box<AuditDraft>>,
    /// Counts the request in flight until the log (and with it this) is dropped.
    pub(crate) _in_flight: crate::metrics::InFlight,
}

/// What only the audit log needs, gathered before the response body starts.
#[derive(Debug)]
pub(crate) struct AuditDraft {
    pub(crate) log: AuditLog,
    pub(crate) time: SystemTime,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) principal: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) error: Option<AuditError>,
}

/// Wrap `resp`'s body so its end is logged and recorded.
pub(crate) fn wrap(
    resp: Response<ProxyBody>,
    log: RequestLog,
    metrics: Arc<dyn MetricsRecorder>,
) -> Response<ProxyBody> {
    let status = resp.status().as_u16();
    let time_to_head = log.started.elapsed();
    // Bodies that hyper stops polling once their declared length is sent end complete when that
    // many bytes went out (HEAD answers declare a length but have no body: they end at once).
    let declared = (log.method != Method::HEAD)
        .then(|| {
            resp.headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .flatten();
    resp.map(|inner| {
        LoggedBody {
            inner,
            bytes: 0,
            declared,
            status,
            time_to_head,
            log: Some(log),
            metrics,
        }
        .boxed_unsync()
    })
}

struct LoggedBody {
    inner: ProxyBody,
    bytes: u64,
    declared: Option<u64>,
    status: u16,
    time_to_head: std::time::Duration,
    log: Option<RequestLog>,
    metrics: Arc<dyn MetricsRecorder>,
}

impl LoggedBody {
    fn sent_all(&self) -> bool {
        self.inner.is_end_stream() || self.declared.is_some_and(|n| self.bytes >= n)
    }

    fn finish(&mut self, completion: Completion) {
        let Some(l) = self.log.take() else { return };
        let duration = l.started.elapsed();
        let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        // Typed fields (str, u64), so a log layer can write them without `fmt` (see
        // `crate::request_lines`).
        tracing::info!(
            target: crate::REQUEST_LOG_TARGET,
            method = l.method.as_str(),
            path = l.path.as_str(),
            bucket = l.bucket.as_deref().unwrap_or("-"),
            status = u64::from(self.status),
            bytes = self.bytes,
            duration_us,
            request_id = l.request_id.as_str(),
            outcome = completion.as_str(),
            "request"
        );
        self.metrics.record_request(&RequestRecord {
            bucket: l.bucket.as_deref(),
            method: &l.method,
            status: self.status,
            cache: l.cache,
            bytes_sent: self.bytes,
            duration,
            time_to_head: self.time_to_head,
            completion,
        });
        l.trace.finish(
            self.status,
            self.bytes,
            l.cache.map(CacheStatus::as_str),
            completion.as_str(),
        );
        if let Some(a) = l.audit {
            a.log.submit(AuditRecord {
                time: a.time,
                request_id: l.request_id,
                client_ip: a.client_ip,
                principal: a.principal,
                method: l.method,
                path: l.path,
                bucket: l.bucket,
                key: a.key,
                status: self.status,
                bytes: self.bytes,
                duration_us,
                cache: l.cache.map(CacheStatus::as_str),
                outcome: completion.as_str(),
                error: a.error,
            });
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        // Slices fetched as the body streams are traced as children of the request's span.
        let _trace = self.log.as_ref().and_then(|l| l.trace.enter());
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
                if self.sent_all() {
                    self.finish(Completion::Complete);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "response body aborted");
                self.finish(Completion::Aborted);
            }
            Poll::Ready(None) => self.finish(Completion::Complete),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let completion = if self.sent_all() {
            Completion::Complete
        } else {
            Completion::ClientGone
        };
        self.finish(completion);
    }
}
