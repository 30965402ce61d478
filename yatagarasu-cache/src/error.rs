//! Tier errors. A cache error never fails a client request: callers treat it as a miss.

use std::fmt;

/// Why a tier operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// A file-system error (disk full, read-only, permissions).
    Io(String),
    /// A stored record failed its checks and was discarded.
    Corrupt(String),
    /// Redis failed, timed out, or its circuit is open.
    Redis(String),
    /// The entry is larger than the tier accepts.
    TooLarge {
        /// The entry's weight.
        size: u64,
        /// The tier's limit.
        limit: u64,
    },
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(m) => write!(f, "cache I/O error: {m}"),
            Self::Corrupt(m) => write!(f, "corrupt cache record: {m}"),
            Self::Redis(m) => write!(f, "redis: {m}"),
            Self::TooLarge { size, limit } => write!(
                f,
                "entry of {size} bytes exceeds the tier's {limit}-byte item limit"
            ),
        }
    }
}

impl std::error::Error for CacheError {}

impl From<std::io::Error> for CacheError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}
