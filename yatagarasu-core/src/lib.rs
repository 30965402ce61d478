//! # yatagarasu-core
//!
//! The small shared vocabulary of the [Yatagarasu](https://github.com/yatagarasu-rs/yatagarasu) S3
//! proxy crates:
//!
//! - [`Error`]: one cloneable error type with a kind that says what went wrong and whether a retry
//!   may help, and context (bucket, key, operation, request id, upstream S3 code). Presenting it over
//!   HTTP (status, JSON body) is left to the proxy crate. Messages are scrubbed of credential-looking values when built.
//! - HTTP semantics implemented once, following RFC 9110 section by section: [`RangeHeader`]
//!   (section 14), [`ContentRange`] (14.4), [`EntityTag`] comparison (8.8.3), and [`Preconditions`]
//!   (section 13), evaluated in the order of 13.2.2, with HTTP-date parsing in all three formats.
//! - [`ObjectMeta`]: what is known about a stored object.
//!
//! It has no async runtime and no HTTP library dependency: values go in as `&str`.
//!
//! ```
//! use yatagarasu_core::{
//!     ContentRange, EntityTag, ObjectMeta, Precondition, Preconditions, RangeHeader, RangeResolution,
//! };
//!
//! let mut meta = ObjectMeta::with_size(10_000);
//! meta.etag = EntityTag::parse("\"abc\"");
//!
//! // A client asks for the last 500 bytes, if its copy is still "abc".
//! let mut conditions = Preconditions::default();
//! conditions.set_if_range("\"abc\"");
//! assert_eq!(conditions.evaluate(&meta.validators(), true), Precondition::Proceed);
//! assert!(conditions.range_applies(&meta.validators()));
//!
//! let RangeResolution::Ranges(ranges) = RangeHeader::parse("bytes=-500")?.resolve(meta.size) else {
//!     unreachable!()
//! };
//! let content_range = ContentRange::Bytes { range: ranges[0], complete: Some(meta.size) };
//! assert_eq!(content_range.to_string(), "bytes 9500-9999/10000");
//! # Ok::<(), yatagarasu_core::RangeParseError>(())
//! ```

mod conditional;
mod error;
mod etag;
mod meta;
mod range;

pub use conditional::{
    IfRange, Precondition, Preconditions, Validators, format_http_date, http_date_bytes,
    parse_http_date,
};
pub use error::{Error, ErrorContext, ErrorKind, Result};
pub use etag::{EntityTag, EntityTagList};
pub use meta::ObjectMeta;
pub use range::{
    ByteRange, ContentRange, MAX_RANGES, RangeHeader, RangeParseError, RangeResolution, RangeSpec,
    coalesce_ranges,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
