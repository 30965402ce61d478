//! # yatagarasu-cache
//!
//! Cache tiers for the Yatagarasu S3 proxy: memory, disk and Redis behind one async trait, and their
//! tiered composition.
//!
//! This crate is being built (see the project's issue tracker): today it holds only the byte-size type
//! the tiers will be configured with.
//!
//! ```
//! use yatagarasu_cache::ByteSize;
//!
//! assert_eq!(ByteSize::mib(2).bytes(), 2 * 1024 * 1024);
//! ```

/// A size in bytes, used for tier capacities and item limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// `n` bytes.
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}
