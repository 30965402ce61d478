//! The workspace's one error type.

use std::fmt;
use std::sync::Arc;

/// What went wrong, coarsely, and whether a retry may help. (The proxy crate maps kinds to HTTP statuses;
/// the numbers below are the ones it uses.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object or bucket does not exist (404).
    NotFound,
    /// The caller, or the proxy's own credentials at the origin, may not read this (403).
    AccessDenied,
    /// The caller did not prove who it is (401).
    Unauthenticated,
    /// No requested byte range overlaps the object (416).
    InvalidRange,
    /// An `If-Match` / `If-Unmodified-Since` precondition did not hold (412).
    PreconditionFailed,
    /// An `If-None-Match` / `If-Modified-Since` condition says the caller's copy is current (304).
    NotModified,
    /// The request itself is malformed (400).
    BadRequest,
    /// The HTTP method is not one this read-only service answers (405).
    MethodNotAllowed,
    /// The request target is longer than the server accepts (414).
    UriTooLong,
    /// Too many requests, here or at the origin (429); retrying later may help.
    TooManyRequests,
    /// The origin did not answer in time (504); retrying may help.
    UpstreamTimeout,
    /// The origin is unreachable or overloaded (503); retrying may help.
    Unavailable,
    /// The origin answered with something unusable (502); retrying may help.
    Upstream,
    /// The object changed at the origin while it was being read in pieces (its ETag no longer
    /// matches the one the read started with). Retrying reads the new version whole.
    ObjectChanged,
    /// A bug or an unexpected local failure (500).
    Internal,
    /// The configuration is invalid (500 if it ever reaches a client; normally fatal at start-up).
    Config,
}

impl ErrorKind {
    /// Whether repeating the same idempotent request may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::TooManyRequests
                | Self::UpstreamTimeout
                | Self::Unavailable
                | Self::Upstream
                | Self::ObjectChanged
        )
    }

    /// A stable name for the kind (`NotFound`, `BadGateway`, ...): the code clients see when the
    /// origin gave none.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotFound => "NotFound",
            Self::AccessDenied => "AccessDenied",
            Self::Unauthenticated => "Unauthenticated",
            Self::InvalidRange => "InvalidRange",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::NotModified => "NotModified",
            Self::BadRequest => "BadRequest",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::UriTooLong => "UriTooLong",
            Self::TooManyRequests => "TooManyRequests",
            Self::UpstreamTimeout => "UpstreamTimeout",
            Self::Unavailable => "ServiceUnavailable",
            Self::Upstream => "BadGateway",
            Self::ObjectChanged => "ObjectChanged",
            Self::Internal => "InternalError",
            Self::Config => "ConfigError",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Where an error happened: which object, which operation, which request.
///
/// Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorContext {
    /// The bucket involved.
    pub bucket: Option<String>,
    /// The object key involved.
    pub key: Option<String>,
    /// The operation, e.g. `GetObject`.
    pub operation: Option<&'static str>,
    /// The id of the client request that failed.
    pub request_id: Option<String>,
    /// The error code the origin sent (`NoSuchKey`, `SlowDown`, ...), if any.
    pub upstream_code: Option<String>,
    /// The object's full size, when known (a 416 answer reports it in `Content-Range`).
    pub object_size: Option<u64>,
    /// How long the caller should wait before trying again (sent as `Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    context: ErrorContext,
    source: Option<Source>,
}

/// The error type shared by every Yatagarasu crate.
///
/// Cheap to clone (one `Arc`), so the many waiters of a coalesced request can all receive it. Its
/// message is scrubbed of anything that looks like a credential when it is built, so it is safe to log
/// and to send to clients.
///
/// ```
/// use yatagarasu_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::NotFound, "the object does not exist")
///     .with_bucket("media")
///     .with_key("cats/1.jpg")
///     .with_operation("GetObject")
///     .with_upstream_code("NoSuchKey");
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.code(), "NoSuchKey");
/// assert!(!err.is_retryable());
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

/// `Result` with the workspace error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a human-readable message (one line; secrets are redacted).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message: sanitize_message(&message.into()),
                context: ErrorContext::default(),
                source: None,
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner_mut().source = Some(Arc::new(source));
        self
    }

    /// Set the bucket in the context.
    pub fn with_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.inner_mut().context.bucket = Some(bucket.into());
        self
    }

    /// Set the object key in the context.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.inner_mut().context.key = Some(key.into());
        self
    }

    /// Set the operation (`GetObject`, `HeadObject`, ...) in the context.
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.inner_mut().context.operation = Some(operation);
        self
    }

    /// Set the id of the client request in the context.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.inner_mut().context.request_id = Some(request_id.into());
        self
    }

    /// Set the error code the origin answered with.
    pub fn with_upstream_code(mut self, code: impl Into<String>) -> Self {
        self.inner_mut().context.upstream_code = Some(code.into());
        self
    }

    /// Set the object's full size in the context.
    pub fn with_object_size(mut self, size: u64) -> Self {
        self.inner_mut().context.object_size = Some(size);
        self
    }

    /// Advise the caller to wait this long before trying again (a 503 or 429 answer sends it as
    /// `Retry-After`, in whole seconds, rounded up).
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.inner_mut().context.retry_after = Some(wait);
        self
    }

    /// Replace the kind, keeping message, context and source.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.inner_mut().kind = kind;
        self
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether a retry of the same idempotent request may succeed.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind.is_retryable()
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Where the error happened.
    pub fn context(&self) -> &ErrorContext {
        &self.inner.context
    }

    /// The code for clients: the origin's code when there is one, else the kind's.
    pub fn code(&self) -> &str {
        self.inner
            .context
            .upstream_code
            .as_deref()
            .unwrap_or(self.inner.kind.code())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ctx = &self.inner.context;
        write!(f, "{}: {}", self.inner.kind, self.inner.message)?;
        let mut parts = Vec::new();
        if let Some(op) = ctx.operation {
            parts.push(format!("operation={op}"));
        }
        if let Some(b) = &ctx.bucket {
            parts.push(format!("bucket={b}"));
        }
        if let Some(k) = &ctx.key {
            parts.push(format!("key={}", k.escape_debug()));
        }
        if let Some(c) = &ctx.upstream_code {
            parts.push(format!("upstream_code={c}"));
        }
        if let Some(id) = &ctx.request_id {
            parts.push(format!("request_id={id}"));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("message", &self.inner.message)
            .field("context", &self.inner.context)
            .field("source", &self.inner.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Query parameters and headers whose values are secrets; anything after them is redacted.
const SECRET_MARKERS: &[&str] = &[
    "x-amz-signature=",
    "x-amz-credential=",
    "x-amz-security-token=",
    "awsaccesskeyid=",
    "signature=",
    "bearer ",
    "token=",
];

/// Make a message safe to log and show: one line, and no value of a known secret-bearing parameter.
fn sanitize_message(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let lower = out.to_ascii_lowercase();
    // Collect the spans to redact on the lowercase copy (same byte offsets: ASCII lowering keeps lengths).
    let mut spans = Vec::new();
    for marker in SECRET_MARKERS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(marker) {
            let start = from + pos + marker.len();
            let end = lower[start..]
                .find(['&', ' ', ',', ')', '"'])
                .map_or(lower.len(), |e| start + e);
            if end > start {
                spans.push((start, end));
            }
            from = end.max(start);
        }
    }
    spans.sort_unstable();
    for (start, end) in spans.into_iter().rev() {
        if out.is_char_boundary(start) && out.is_char_boundary(end) && start < end {
            out.replace_range(start..end, "REDACTED");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_follows_the_kind() {
        assert!(ErrorKind::Unavailable.is_retryable());
        assert!(ErrorKind::TooManyRequests.is_retryable());
        assert!(ErrorKind::ObjectChanged.is_retryable());
        assert!(!ErrorKind::NotFound.is_retryable());
        assert!(!ErrorKind::AccessDenied.is_retryable());
    }

    #[test]
    fn code_is_the_upstream_code_else_the_kind() {
        let err = Error::new(ErrorKind::NotFound, "no such key").with_upstream_code("NoSuchKey");
        assert_eq!(err.code(), "NoSuchKey");
        assert_eq!(Error::new(ErrorKind::Upstream, "x").code(), "BadGateway");
    }

    #[test]
    fn display_is_one_line_with_context() {
        let err = Error::new(ErrorKind::AccessDenied, "denied\nsecond line")
            .with_bucket("b")
            .with_key("k\n")
            .with_operation("HeadObject");
        let s = err.to_string();
        assert!(!s.contains('\n'), "{s}");
        assert_eq!(
            s,
            "AccessDenied: denied second line (operation=HeadObject, bucket=b, key=k\\n)"
        );
    }

    #[test]
    fn secrets_are_redacted_from_messages() {
        let err = Error::new(
            ErrorKind::Upstream,
            "error sending request for url (http://h/b/k?X-Amz-Credential=AKID%2F1&X-Amz-Signature=abcdef&x=1) Bearer eyJhbGciOi",
        );
        let s = err.to_string();
        assert!(!s.contains("abcdef"), "{s}");
        assert!(!s.contains("AKID"), "{s}");
        assert!(!s.contains("eyJhbGciOi"), "{s}");
        assert!(s.contains("x=1"), "{s}");
        assert!(!format!("{err:?}").contains("abcdef"));
    }

    #[test]
    fn clones_share_and_builders_do_not_disturb_clones() {
        let a = Error::new(ErrorKind::Unavailable, "down");
        let b = a.clone().with_bucket("x");
        assert!(a.context().bucket.is_none());
        assert_eq!(b.context().bucket.as_deref(), Some("x"));
    }

    #[test]
    fn source_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let err = Error::new(ErrorKind::Upstream, "broken").with_source(io);
        let src = std::error::Error::source(&err).unwrap();
        assert_eq!(src.to_string(), "reset");
    }
}
