//! Reading object metadata from S3 response headers.

use http::HeaderMap;
use yatagarasu_core::{EntityTag, ObjectMeta};

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// Object metadata from S3 response headers (everything but the size).
pub(crate) fn meta_from_headers(h: &HeaderMap) -> ObjectMeta {
    let owned = |n: &str| header_str(h, n).map(str::to_owned);
    let mut meta = ObjectMeta::default();
    meta.etag = header_str(h, "etag").and_then(EntityTag::parse_lenient);
    meta.last_modified = header_str(h, "last-modified").and_then(yatagarasu_core::parse_http_date);
    meta.content_type = owned("content-type");
    meta.cache_control = owned("cache-control");
    meta.content_encoding = owned("content-encoding");
    meta.content_disposition = owned("content-disposition");
    meta.content_language = owned("content-language");
    meta.expires = owned("expires");
    meta.version_id = owned("x-amz-version-id");
    for (name, value) in h {
        if let Some(k) = name.as_str().strip_prefix("x-amz-meta-")
            && let Ok(v) = value.to_str()
        {
            meta.user_metadata.insert(k.to_owned(), v.to_owned());
        }
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("etag", "\"abc\"".parse().unwrap());
        h.insert(
            "last-modified",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        h.insert("content-type", "image/png".parse().unwrap());
        h.insert("x-amz-meta-owner", "alice".parse().unwrap());
        h.insert("x-amz-version-id", "v9".parse().unwrap());
        let m = meta_from_headers(&h);
        assert_eq!(m.etag.unwrap().opaque(), "abc");
        assert!(m.last_modified.is_some());
        assert_eq!(m.content_type.as_deref(), Some("image/png"));
        assert_eq!(m.user_metadata["owner"], "alice");
        assert_eq!(m.version_id.as_deref(), Some("v9"));
    }
}
