//! Mapping S3 error answers (status, XML `Code`) to error kinds.

use http::StatusCode;
use yatagarasu_core::ErrorKind;

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
