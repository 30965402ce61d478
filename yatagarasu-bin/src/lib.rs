//! # yatagarasu
//!
//! A read-only S3 proxy (placeholder while the serving layer is built).

/// The version of this crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
