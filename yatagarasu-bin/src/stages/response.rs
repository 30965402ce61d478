//! The response stage: object responses (headers from metadata, 200 / 206 / 304 / HEAD), and the one
//! place where an [`Error`] becomes an HTTP response: its status and its JSON body.

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use yatagarasu_core::{ContentRange, EntityTag, Error, ErrorKind, ObjectMeta, http_date_bytes};

use crate::fetch::BodyStream;

/// The body type of every proxy response.
pub type ProxyBody = UnsyncBoxBody<Bytes, Error>;

/// The methods a read-only proxy answers.
pub(crate) const ALLOW: &str = "GET, HEAD, OPTIONS";

pub(crate) fn body_response(body: BodyStream) -> Response<ProxyBody> {
    let mut resp = Response::new(StreamBody::new(body.map_ok(Frame::data)).boxed_unsync());
    // Room for what an object response carries (validators, type, length, x-cache,
    // x-request-id, CORS): growing the map from empty reallocates it twice per request.
    *resp.headers_mut() = HeaderMap::with_capacity(OBJECT_RESPONSE_HEADERS);
    resp
}

/// Header fields an object response usually ends up with, to size its map once.
const OBJECT_RESPONSE_HEADERS: usize = 16;

pub(crate) fn full_response(
    head: &ObjectMeta,
    user_metadata: bool,
    body: BodyStream,
) -> Response<ProxyBody> {
    let mut resp = body_response(body);
    object_headers(resp.headers_mut(), head, user_metadata);
    set_u64(resp.headers_mut(), header::CONTENT_LENGTH, head.size);
    resp
}

pub(crate) fn partial_response(
    head: &ObjectMeta,
    user_metadata: bool,
    start: u64,
    end: u64,
    body: BodyStream,
) -> Response<ProxyBody> {
    let mut resp = body_response(body);
    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = resp.headers_mut();
    object_headers(h, head, user_metadata);
    set_u64(h, header::CONTENT_LENGTH, end - start + 1);
    let cr = ContentRange::Bytes {
        range: yatagarasu_core::ByteRange::new(start, end),
        complete: Some(head.size),
    };
    if let Ok(v) = HeaderValue::from_str(&cr.to_string()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

pub(crate) fn set_u64(h: &mut HeaderMap, name: HeaderName, v: u64) {
    // `HeaderValue::from(u64)` allocates twice (a growing buffer, then its shared form).
    if let Ok(v) = HeaderValue::from_bytes(itoa::Buffer::new().format(v).as_bytes()) {
        h.insert(name, v);
    }
}

fn set_str(h: &mut HeaderMap, name: HeaderName, v: Option<&str>) {
    if let Some(v) = v
        && let Ok(v) = HeaderValue::from_str(v)
    {
        h.insert(name, v);
    }
}

/// The validators a 304 must carry (RFC 9110 15.4.5). Built on every hit, so without the
/// formatting machinery and with one allocation each at most.
fn validator_headers(h: &mut HeaderMap, meta: &ObjectMeta) {
    if let Some(tag) = &meta.etag
        && let Some(v) = etag_value(tag)
    {
        h.insert(header::ETAG, v);
    }
    if let Some(t) = meta.last_modified
        && let Ok(v) = HeaderValue::from_bytes(&http_date_bytes(t))
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    set_str(h, header::CACHE_CONTROL, meta.cache_control.as_deref());
    set_str(h, header::EXPIRES, meta.expires.as_deref());
}

/// `"opaque"` or `W/"opaque"`, written into a buffer of exactly its length, which the header
/// value then owns (no copy).
fn etag_value(tag: &EntityTag) -> Option<HeaderValue> {
    let opaque = tag.opaque().as_bytes();
    let weak: &[u8] = if tag.is_weak() { b"W/\"" } else { b"\"" };
    let mut v = Vec::with_capacity(weak.len() + opaque.len() + 1);
    v.extend_from_slice(weak);
    v.extend_from_slice(opaque);
    v.push(b'"');
    HeaderValue::from_maybe_shared(Bytes::from(v)).ok()
}

pub(crate) fn object_headers(h: &mut HeaderMap, meta: &ObjectMeta, user_metadata: bool) {
    validator_headers(h, meta);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set_str(
        h,
        header::CONTENT_TYPE,
        Some(
            meta.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        ),
    );
    set_str(
        h,
        header::CONTENT_ENCODING,
        meta.content_encoding.as_deref(),
    );
    set_str(
        h,
        header::CONTENT_DISPOSITION,
        meta.content_disposition.as_deref(),
    );
    set_str(
        h,
        header::CONTENT_LANGUAGE,
        meta.content_language.as_deref(),
    );
    if user_metadata {
        for (k, v) in &meta.user_metadata {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(name, value);
            }
        }
    }
}

pub(crate) fn not_modified(meta: &ObjectMeta) -> Response<ProxyBody> {
    let mut resp = empty_response(StatusCode::NOT_MODIFIED);
    validator_headers(resp.headers_mut(), meta);
    resp
}

pub(crate) fn empty_response(status: StatusCode) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp
}

pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let body: Bytes = body.into();
    let len = body.len() as u64;
    let mut resp = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    set_u64(resp.headers_mut(), header::CONTENT_LENGTH, len);
    resp
}

/// The HTTP status for an error kind.
pub(crate) fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AccessDenied => StatusCode::FORBIDDEN,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Upstream | ErrorKind::ObjectChanged => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body for an error:
/// `{"error":{"code":"…","message":"…","bucket":"…","key":"…","operation":"…","request_id":"…"}}`
/// (absent context left out).
pub(crate) fn error_json(err: &Error) -> String {
    let ctx = err.context();
    let mut body = serde_json::Map::new();
    body.insert("code".into(), err.code().into());
    body.insert("message".into(), client_message(err).into());
    if let Some(b) = &ctx.bucket {
        body.insert("bucket".into(), b.clone().into());
    }
    if let Some(k) = &ctx.key {
        body.insert("key".into(), k.clone().into());
    }
    if let Some(op) = ctx.operation {
        body.insert("operation".into(), op.into());
    }
    if let Some(id) = &ctx.request_id {
        body.insert("request_id".into(), id.clone().into());
    }
    serde_json::json!({ "error": body }).to_string()
}

/// Whether an error came from (or on the way to) the origin rather than from the proxy's own
/// checks: its message may then carry what clients must not see (AWS AccessDenied messages name
/// account ids and role ARNs; transport errors name internal addresses).
fn from_origin(err: &Error) -> bool {
    // Every error of an origin operation names it (GetObject, HeadObject, ...).
    err.context().operation.is_some()
}

/// The message a client sees: the proxy's own words for its own checks (they say what to fix);
/// for origin errors and internal failures, a message written here from the kind alone. The
/// original goes to the log.
pub(crate) fn client_message(err: &Error) -> &str {
    if !from_origin(err) && err.kind() != ErrorKind::Internal {
        return err.message();
    }
    match err.kind() {
        ErrorKind::NotFound => "the object does not exist",
        ErrorKind::AccessDenied => "the origin refused access to this object",
        ErrorKind::Unauthenticated => "the origin did not accept the proxy's credentials",
        ErrorKind::InvalidRange => "the requested range is not satisfiable",
        ErrorKind::PreconditionFailed => "a precondition of the request did not hold",
        ErrorKind::NotModified => "not modified",
        ErrorKind::BadRequest => "the origin rejected the request",
        ErrorKind::MethodNotAllowed => "method not allowed",
        ErrorKind::UriTooLong => "request target too long",
        ErrorKind::TooManyRequests => "the origin is throttling requests; retry later",
        ErrorKind::UpstreamTimeout => "the origin did not answer in time",
        ErrorKind::Unavailable => "the origin is unavailable",
        ErrorKind::Upstream => "the origin answered with an error",
        ErrorKind::ObjectChanged => "the object changed while it was being read; retry",
        ErrorKind::Internal | ErrorKind::Config => "internal error",
        _ => "the request failed",
    }
}

/// The one place an error becomes an HTTP response: status from the kind, JSON body, `Allow` on
/// 405, `Content-Range: bytes */LEN` on 416, no body for HEAD or 304.
pub(crate) fn error_response(method: &Method, err: &Error) -> Response<ProxyBody> {
    let status = status_for(err.kind());
    // The whole error (origin message included) goes to the log only.
    if status.is_server_error() {
        tracing::warn!(error = %err, "request failed");
    } else if from_origin(err)
        && !matches!(
            err.kind(),
            ErrorKind::NotFound
                | ErrorKind::NotModified
                | ErrorKind::PreconditionFailed
                | ErrorKind::InvalidRange
        )
    {
        tracing::info!(error = %err, "origin refused the request");
    }
    let mut resp = if status == StatusCode::NOT_MODIFIED {
        empty_response(status)
    } else {
        json_response(status, error_json(err))
    };
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6750 3: the scheme, and `invalid_token` when a token was sent and refused.
        let challenge = if err.code() == "InvalidToken" {
            r#"Bearer error="invalid_token""#
        } else {
            "Bearer"
        };
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    if let Some(wait) = err.context().retry_after
        && matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        )
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    }
    // A 416 reports the object's length (RFC 9110 15.5.17).
    if err.kind() == ErrorKind::InvalidRange
        && let Some(len) = err.context().object_size
        && let Ok(v) =
            HeaderValue::from_str(&ContentRange::Unsatisfied { complete: len }.to_string())
    {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    if method == Method::HEAD {
        // Same status and headers, no body.
        let (mut parts, _) = resp.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, empty_body());
    }
    resp
}

/// An empty body.
pub(crate) fn empty_body() -> ProxyBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxys_own_checks_keep_their_message() {
        let err = Error::new(ErrorKind::BadRequest, "encoded slashes are not allowed");
        let v: serde_json::Value = serde_json::from_str(&error_json(&err)).unwrap();
        assert_eq!(v["error"]["message"], "encoded slashes are not allowed");
        let internal = Error::new(ErrorKind::Internal, "open /var/secret/path: denied");
        let v: serde_json::Value = serde_json::from_str(&error_json(&internal)).unwrap();
        assert_eq!(v["error"]["message"], "internal error");
    }

    #[test]
    fn json_carries_context_and_upstream_code() {
        let err = Error::new(ErrorKind::NotFound, "no such key")
            .with_bucket("b")
            .with_key("a \"quoted\" key")
            .with_operation("GetObject")
            .with_request_id("req-1")
            .with_upstream_code("NoSuchKey");
        let v: serde_json::Value = serde_json::from_str(&error_json(&err)).unwrap();
        assert_eq!(v["error"]["code"], "NoSuchKey");
        // The origin's message stays in the log; the proxy writes its own.
        assert_eq!(v["error"]["message"], "the object does not exist");
        assert_eq!(v["error"]["bucket"], "b");
        assert_eq!(v["error"]["key"], "a \"quoted\" key");
        assert_eq!(v["error"]["operation"], "GetObject");
        assert_eq!(v["error"]["request_id"], "req-1");
    }

    #[test]
    fn json_leaves_out_absent_context_and_uses_kind_code() {
        let err = Error::new(ErrorKind::Upstream, "origin sent garbage");
        let v: serde_json::Value = serde_json::from_str(&error_json(&err)).unwrap();
        assert_eq!(v["error"]["code"], "BadGateway");
        assert!(v["error"].get("bucket").is_none());
        assert!(v["error"].get("request_id").is_none());
    }

    #[test]
    fn statuses_follow_the_kind() {
        assert_eq!(status_for(ErrorKind::NotFound), 404);
        assert_eq!(status_for(ErrorKind::InvalidRange), 416);
        assert_eq!(status_for(ErrorKind::UpstreamTimeout), 504);
        assert_eq!(status_for(ErrorKind::ObjectChanged), 502);
        assert_eq!(status_for(ErrorKind::Config), 500);
    }

    #[test]
    fn head_errors_have_no_body_and_416_reports_the_length() {
        let err = Error::new(ErrorKind::InvalidRange, "no").with_object_size(10);
        let r = error_response(&Method::HEAD, &err);
        assert_eq!(r.status(), 416);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */10");
        assert!(r.headers().get(header::CONTENT_LENGTH).is_none());
        let r = error_response(&Method::GET, &Error::new(ErrorKind::MethodNotAllowed, "no"));
        assert_eq!(r.headers()[header::ALLOW], ALLOW);
    }
}
