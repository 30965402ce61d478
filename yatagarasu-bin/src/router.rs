//! Mapping request paths to buckets and object keys.

use percent_encoding::percent_decode;
use yatagarasu_core::{Error, ErrorKind};
use yatagarasu_s3::S3Client;

use crate::cache::CachePolicy;
use crate::cors::CorsPolicy;
use crate::fetch::CoalescingOptions;

/// One bucket the proxy serves, and the path prefix it is served under.
#[derive(Debug, Clone)]
pub struct BucketRoute {
    /// A name for logs and errors (the config's `buckets[].name`).
    pub name: String,
    /// The URL path prefix, e.g. `/products`. `/` serves the bucket at the root.
    pub path_prefix: String,
    /// The S3 client for the bucket.
    pub client: S3Client,
    /// Whether `x-amz-meta-*` user metadata is passed to clients.
    pub expose_user_metadata: bool,
    /// CORS rules for browsers; `None` sends no CORS headers.
    pub cors: Option<CorsPolicy>,
    /// Sharing of origin fetches between concurrent requests.
    pub coalescing: CoalescingOptions,
    /// Caching of this bucket's objects (when the proxy has a cache).
    pub cache: CachePolicy,
}

impl BucketRoute {
    /// Serve the bucket of `client` under `path_prefix`, with defaults: no user metadata, no CORS,
    /// coalescing on.
    pub fn new(name: impl Into<String>, path_prefix: impl Into<String>, client: S3Client) -> Self {
        Self {
            name: name.into(),
            path_prefix: path_prefix.into(),
            client,
            expose_user_metadata: false,
            cors: None,
            coalescing: CoalescingOptions::default(),
            cache: CachePolicy::default(),
        }
    }
}

/// Routes by longest prefix on a path-segment boundary.
#[derive(Debug, Clone, Default)]
pub(crate) struct Router {
    routes: Vec<BucketRoute>,
}

/// Paths the proxy answers itself; no bucket prefix may shadow them.
pub const RESERVED_PATHS: &[&str] = &["/health", "/ready", "/metrics"];

/// A prefix in canonical form: leading slash, no trailing slash (except the root `/`).
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    format!("/{trimmed}")
}

impl Router {
    pub(crate) fn new(mut routes: Vec<BucketRoute>) -> Self {
        for r in &mut routes {
            r.path_prefix = normalize_prefix(&r.path_prefix);
        }
        // Longest prefix first, so the first match is the most specific.
        routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        Self { routes }
    }

    pub(crate) fn routes(&self) -> &[BucketRoute] {
        &self.routes
    }

    /// The route and decoded object key for a raw (still percent-encoded) request path.
    ///
    /// `Ok(None)`: no bucket is mounted there. `Err`: a path that could address something outside
    /// a bucket or that S3 would interpret differently: `..`/`.` segments, encoded slashes, NUL,
    /// invalid UTF-8.
    pub(crate) fn resolve(&self, raw_path: &str) -> Result<Option<(&BucketRoute, String)>, Error> {
        for route in &self.routes {
            let rest = if route.path_prefix == "/" {
                raw_path.strip_prefix('/')
            } else {
                match raw_path.strip_prefix(route.path_prefix.as_str()) {
                    Some("") => Some(""),
                    Some(r) => r.strip_prefix('/'),
                    None => None,
                }
            };
            let Some(raw_key) = rest else { continue };
            let key = decode_key(raw_key).map_err(|e| e.with_bucket(route.name.clone()))?;
            return Ok(Some((route, key)));
        }
        Ok(None)
    }
}

fn bad(message: &str) -> Error {
    Error::new(ErrorKind::BadRequest, message)
}

fn decode_key(raw: &str) -> Result<String, Error> {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(bad("encoded slashes are not allowed in object paths"));
    }
    let decoded = percent_decode(raw.as_bytes())
        .decode_utf8()
        .map_err(|_| bad("object path is not valid UTF-8 after percent-decoding"))?;
    if decoded.contains('\0') {
        return Err(bad("object path contains a NUL byte"));
    }
    if decoded.split('/').any(|s| s == ".." || s == ".") {
        return Err(bad("object path contains a `.` or `..` segment"));
    }
    if decoded.contains('\\') && decoded.split('\\').any(|s| s == "..") {
        return Err(bad("object path contains a `..` segment"));
    }
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, prefix: &str) -> BucketRoute {
        BucketRoute::new(
            name,
            prefix,
            S3Client::builder(name).anonymous().build().unwrap(),
        )
    }

    fn resolve(r: &Router, p: &str) -> Option<(String, String)> {
        r.resolve(p).unwrap().map(|(r, k)| (r.name.clone(), k))
    }

    #[test]
    fn longest_prefix_on_segment_boundary() {
        let r = Router::new(vec![
            route("products", "/products"),
            route("images", "/products/images/"),
            route("root", "/"),
        ]);
        assert_eq!(
            resolve(&r, "/products/a.txt"),
            Some(("products".into(), "a.txt".into()))
        );
        assert_eq!(
            resolve(&r, "/products/images/x.png"),
            Some(("images".into(), "x.png".into()))
        );
        assert_eq!(
            resolve(&r, "/productsX/a"),
            Some(("root".into(), "productsX/a".into()))
        );
        assert_eq!(
            resolve(&r, "/products"),
            Some(("products".into(), String::new()))
        );
        let no_root = Router::new(vec![route("products", "/products")]);
        assert_eq!(resolve(&no_root, "/productsX/a"), None);
        assert_eq!(resolve(&no_root, "/other"), None);
    }

    #[test]
    fn keys_are_decoded_once() {
        let r = Router::new(vec![route("b", "/b")]);
        assert_eq!(resolve(&r, "/b/a%20b+c.txt").unwrap().1, "a b+c.txt");
        assert_eq!(resolve(&r, "/b/%E6%97%A5.txt").unwrap().1, "日.txt");
        assert_eq!(resolve(&r, "/b/100%2525").unwrap().1, "100%25");
        assert_eq!(resolve(&r, "/b/deep/a//b").unwrap().1, "deep/a//b");
    }

    #[test]
    fn traversal_and_smuggling_are_rejected() {
        let r = Router::new(vec![route("b", "/b")]);
        for p in [
            "/b/../secret",
            "/b/a/../../x",
            "/b/%2e%2e/x",
            "/b/a%2Fb",
            "/b/a%2fb",
            "/b/%00",
            "/b/./x",
            "/b/%ff",
            "/b/a%5C..%5Cx",
        ] {
            let err = r.resolve(p).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{p}");
        }
    }
}
