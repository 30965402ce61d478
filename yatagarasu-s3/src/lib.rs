//! # yatagarasu-s3
//!
//! A lean, async S3 client for reading objects, built for proxies and caches:
//!
//! - **SigV4** written here ([`sigv4`]), passing every case of the official AWS test suite, for headers
//!   and presigned URLs; derived signing keys cached per day. S3's rules: no path normalisation, keys
//!   encoded byte for byte (spaces, `+`, `%`, `~`, unicode, `//`).
//! - **Credentials** as a provider chain ([`credentials`]): static, environment, shared profile files,
//!   web identity (STS), ECS container credentials, EC2 IMDSv2; refreshed before expiry; failures never
//!   cached. Anonymous access for public buckets.
//! - **Operations**: [`S3Client::get_object`] (streaming body, Range, conditional headers, full
//!   metadata), [`S3Client::head_object`], [`S3Client::list_objects_v2`] / [`S3Client::list_all`],
//!   [`S3Client::probe`] (HeadBucket), [`S3Client::presign_get`].
//! - **[`Origin`]**: the trait a proxy reads through (get, head, probe). [`S3Client`] implements it;
//!   decorators wrap any `Origin`: [`CircuitBreaker`], [`ConcurrencyLimit`], [`ReplicaSet`]
//!   (failover across replicas of one bucket), or your own.
//! - **Failure handling**: connect / first-byte / idle timeouts; retries ([`retry`]) with exponential
//!   backoff and full jitter within a total deadline for connection errors, 5xx and throttling; a body that breaks
//!   mid-stream is resumed with `Range` + `If-Match`, or fails loudly: never a silent truncation or a
//!   splice of two object versions.
//! - **Errors** are [`yatagarasu_core::Error`]: S3 XML error bodies parsed into a kind (NotFound,
//!   AccessDenied, ...) with the S3 code, bucket, key and operation in context; no URL, signature or
//!   secret ever appears in one.
//!
//! Works with AWS S3 and S3-compatible stores (MinIO, R2, Ceph, Garage, s3s): path-style addressing for
//! custom endpoints, virtual-hosted for AWS.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use yatagarasu_s3::{Credentials, GetObjectRequest, S3Client};
//!
//! # async fn run() -> yatagarasu_s3::Result<()> {
//! let client = S3Client::builder("media")
//!     .endpoint("http://127.0.0.1:9000")
//!     .region("us-east-1")
//!     .credentials(Credentials::new("minioadmin", "minioadmin"))
//!     .build()?;
//!
//! let mut object = client.get_object("cats/1.jpg", &GetObjectRequest::range(0, 1023)).await?;
//! println!("{} bytes of {}", object.content_length, object.meta.size);
//! while let Some(chunk) = object.body.next().await {
//!     let chunk = chunk?;
//!     // write the chunk somewhere
//! #   let _ = chunk;
//! }
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod breaker;
mod builder;
mod client;
mod config;
pub mod credentials;
mod errors;
mod headers;
mod http;
mod limit;
mod list;
#[cfg(any(test, feature = "test-util"))]
mod memory;
mod op;
mod origin;
mod replica;
pub mod retry;
pub mod sigv4;
mod time;
mod xml;

pub use body::ObjectBody;
pub use breaker::{BreakerOptions, BreakerState, BreakerStats, CircuitBreaker};
pub use builder::S3ClientBuilder;
pub use client::{ClientStats, GetObjectOutput, GetObjectRequest, HeadObjectRequest, S3Client};
pub use config::{AddressingStyle, CredentialsSource, Timeouts};
pub use credentials::{Credentials, Env, ProvideCredentials};
pub use errors::{kind_for_code, kind_for_status};
pub use http::{HttpClient, HttpOptions};
pub use limit::{ConcurrencyLimit, ConcurrencyStats};
pub use list::{ListObjectsV2Page, ListObjectsV2Request, ObjectSummary};
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use memory::MemoryOrigin;
pub use origin::{Origin, OriginFuture, OriginStats};
pub use replica::{Replica, ReplicaSet, ReplicaSetStats, ReplicaStats};
pub use retry::RetryPolicy;
// Types that appear in this crate's signatures, so users need no direct dependency on the core crate.
pub use yatagarasu_core::{
    ByteRange, ContentRange, EntityTag, Error, ErrorKind, ObjectMeta, RangeSpec, Result,
};

/// Render a transport error and its causes on one line, with any URL removed (URLs can carry
/// presigned signatures or tokens).
pub(crate) fn describe_transport_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
