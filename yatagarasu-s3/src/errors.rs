//! Mapping S3 error answers (status, XML `Code`) to error kinds.

use std::time::Duration;

use http::{Method, StatusCode};
use yatagarasu_core::{Error, ErrorKind};

use crate::op::Op;
use crate::xml;

/// Largest S3 error body read; anything longer is cut (S3's are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The error an S3 error answer stands for: its XML `Code` and `Message` when it has a body, else
/// the status's.
pub(crate) async fn error_from_response(
    bucket: &str,
    op: &Op<'_>,
    resp: reqwest::Response,
    idle: Duration,
) -> Error {
    let status = resp.status();
    let body = if op.method == Method::HEAD {
        Vec::new()
    } else {
        read_body_with_timeout(resp, idle, MAX_ERROR_BODY)
            .await
            .unwrap_or_default()
    };
    let parsed = std::str::from_utf8(&body)
        .ok()
        .and_then(|t| xml::flatten(t).ok());
    let field = |n: &str| parsed.as_ref().and_then(|els| xml::first_text(els, n));
    let code = field("Code").unwrap_or_else(|| default_code(op.key.is_some(), status).to_owned());
    let message = field("Message").unwrap_or_else(|| format!("origin answered {status}"));
    let kind = kind_for_code(&code).unwrap_or_else(|| kind_for_status(status.as_u16()));
    let mut err = op.error(bucket, kind, message).with_upstream_code(code);
    if status.is_server_error() && !err.is_retryable() {
        err = err.with_kind(ErrorKind::Upstream);
    }
    err
}

/// Read a whole (small) body, each chunk within `idle`, at most `limit` bytes.
pub(crate) async fn read_body_with_timeout(
    mut resp: reqwest::Response,
    idle: Duration,
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => return Err(format!("no body bytes within {idle:?}")),
            Ok(Err(e)) => return Err(crate::describe_transport_error(&e)),
            Ok(Ok(None)) => return Ok(out),
            Ok(Ok(Some(chunk))) => {
                let take = chunk.len().min(limit - out.len());
                out.extend_from_slice(&chunk[..take]);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
}

/// The S3 code to report when an error answer has no XML body (HEAD answers never do).
pub(crate) fn default_code(has_key: bool, status: StatusCode) -> &'static str {
    match status.as_u16() {
        304 => "NotModified",
        403 => "AccessDenied",
        404 if has_key => "NoSuchKey",
        404 => "NoSuchBucket",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        429 => "SlowDown",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "UnknownError",
    }
}

/// The kind an S3 error code stands for, when the code alone decides it.
pub fn kind_for_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "NoSuchKey" | "NoSuchBucket" | "NoSuchVersion" | "NotFound" => ErrorKind::NotFound,
        "AccessDenied"
        | "SignatureDoesNotMatch"
        | "InvalidAccessKeyId"
        | "ExpiredToken"
        | "InvalidToken"
        | "TokenRefreshRequired"
        | "AllAccessDisabled"
        | "AccountProblem"
        | "InvalidObjectState"
        | "RequestTimeTooSkewed" => ErrorKind::AccessDenied,
        "InvalidRange" => ErrorKind::InvalidRange,
        "PreconditionFailed" => ErrorKind::PreconditionFailed,
        "NotModified" => ErrorKind::NotModified,
        "SlowDown"
        | "TooManyRequests"
        | "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded" => ErrorKind::TooManyRequests,
        "InternalError" | "BadGateway" => ErrorKind::Upstream,
        "ServiceUnavailable" => ErrorKind::Unavailable,
        "RequestTimeout" => ErrorKind::UpstreamTimeout,
        "InvalidArgument" | "InvalidRequest" | "KeyTooLongError" | "InvalidURI" => {
            ErrorKind::BadRequest
        }
        _ => return None,
    })
}

/// The kind an HTTP status from an origin maps to, when its code says nothing more specific.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        304 => ErrorKind::NotModified,
        400 => ErrorKind::BadRequest,
        401 | 403 => ErrorKind::AccessDenied,
        404 => ErrorKind::NotFound,
        412 => ErrorKind::PreconditionFailed,
        416 => ErrorKind::InvalidRange,
        429 => ErrorKind::TooManyRequests,
        503 => ErrorKind::Unavailable,
        504 => ErrorKind::UpstreamTimeout,
        _ => ErrorKind::Upstream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_codes_map_to_kinds() {
        assert_eq!(kind_for_code("NoSuchKey"), Some(ErrorKind::NotFound));
        assert_eq!(
            kind_for_code("SignatureDoesNotMatch"),
            Some(ErrorKind::AccessDenied)
        );
        assert_eq!(kind_for_code("SlowDown"), Some(ErrorKind::TooManyRequests));
        assert_eq!(kind_for_code("InternalError"), Some(ErrorKind::Upstream));
        assert_eq!(kind_for_code("Whatever"), None);
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_for_status(404), ErrorKind::NotFound);
        assert_eq!(kind_for_status(403), ErrorKind::AccessDenied);
        assert_eq!(kind_for_status(500), ErrorKind::Upstream);
        assert_eq!(kind_for_status(503), ErrorKind::Unavailable);
    }
}
