//! Client settings: addressing, timeouts, retries, credentials source.

use std::sync::Arc;
use std::time::Duration;

use crate::credentials::{Credentials, ProvideCredentials};

/// How the bucket appears in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AddressingStyle {
    /// Path-style for custom endpoints (MinIO, Ceph, R2, s3s expect it) and for bucket names that are
    /// not DNS-safe; virtual-hosted for AWS.
    #[default]
    Auto,
    /// `https://endpoint/bucket/key`.
    Path,
    /// `https://bucket.endpoint/key`.
    VirtualHosted,
}

/// Time limits for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Establishing a TCP (and TLS) connection. Only applies when the client builds its own HTTP client.
    pub connect: Duration,
    /// From sending a request to receiving the response headers.
    pub first_byte: Duration,
    /// Longest pause between two chunks of a response body.
    pub idle: Duration,
    /// Deadline for one operation including all its retries, up to the response headers.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// Set [`Self::connect`].
    #[must_use]
    pub fn with_connect(mut self, connect: Duration) -> Self {
        self.connect = connect;
        self
    }

    /// Set [`Self::first_byte`].
    #[must_use]
    pub fn with_first_byte(mut self, first_byte: Duration) -> Self {
        self.first_byte = first_byte;
        self
    }

    /// Set [`Self::idle`].
    #[must_use]
    pub fn with_idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Set [`Self::total`].
    #[must_use]
    pub fn with_total(mut self, total: Duration) -> Self {
        self.total = total;
        self
    }
}

/// Where the client's credentials come from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum CredentialsSource {
    /// The AWS default chain (environment, profile files, web identity, ECS, IMDSv2).
    #[default]
    DefaultChain,
    /// Fixed keys.
    Static(Credentials),
    /// Any provider (cached by the client).
    Provider(Arc<dyn ProvideCredentials>),
    /// Unsigned requests, for public buckets.
    Anonymous,
}

impl std::fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DefaultChain => f.write_str("DefaultChain"),
            Self::Static(c) => f.debug_tuple("Static").field(c).finish(),
            Self::Provider(p) => f.debug_tuple("Provider").field(p).finish(),
            Self::Anonymous => f.write_str("Anonymous"),
        }
    }
}
