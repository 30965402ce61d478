//! # yatagarasu-coalesce
//!
//! Request coalescing for the Yatagarasu S3 proxy: when many callers ask for the same thing at once, one
//! of them does the work and the others share its result.
//!
//! This crate is being built (see the project's issue tracker): today it holds only the key type the
//! proxy uses to name a flight.
//!
//! ```
//! use yatagarasu_coalesce::FlightKey;
//!
//! let key = FlightKey::new("media", "cats/1.jpg", Some(0));
//! assert_eq!(key.slice, Some(0));
//! ```

/// The identity of one origin fetch: bucket, object key and, for sliced fetches, the slice index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlightKey {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The slice index, for fetches of one fixed-size slice of the object.
    pub slice: Option<u64>,
}

impl FlightKey {
    /// A key for `bucket`/`key`, optionally one slice of it.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>, slice: Option<u64>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            slice,
        }
    }
}
