//! Object metadata shared by the S3 client, the cache and the proxy.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::conditional::Validators;
use crate::etag::EntityTag;

/// What is known about a stored object, independent of any byte range that was fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The full length of the object in bytes.
    pub size: u64,
    /// The object's entity tag.
    pub etag: Option<EntityTag>,
    /// When the object was last modified.
    pub last_modified: Option<SystemTime>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Expires`, verbatim.
    pub expires: Option<String>,
    /// The version id, on versioned buckets.
    pub version_id: Option<String>,
    /// User metadata (`x-amz-meta-*`), keyed by the lowercase name without the prefix.
    pub user_metadata: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// Metadata with only the size set.
    pub fn with_size(size: u64) -> Self {
        Self {
            size,
            ..Self::default()
        }
    }

    /// The validators conditional requests are evaluated against.
    pub fn validators(&self) -> Validators<'_> {
        Validators {
            etag: self.etag.as_ref(),
            last_modified: self.last_modified,
        }
    }
}
