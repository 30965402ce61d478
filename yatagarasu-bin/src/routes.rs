//! The route table: which bucket serves which path prefix, and how. Immutable once built; the proxy
//! swaps a whole table at once (see `Proxy::replace_routes`), and a request keeps the table it
//! started with.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use percent_encoding::percent_decode;
use yatagarasu_core::{Error, ErrorKind};
use yatagarasu_s3::Origin;

use crate::cache::CachePolicy;
use crate::cors::CorsPolicy;
use crate::fetch::{CoalescingOptions, FetchTarget};
use crate::outcome::CacheStatus;

/// One bucket the proxy serves, and the path prefix it is served under.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BucketRoute {
    /// A name for logs, errors and stats (the config's `buckets[].name`).
    pub name: String,
    /// The URL path prefix, e.g. `/products`. `/` serves the bucket at the root.
    pub path_prefix: String,
    /// Where the bucket's objects are read from: an [`S3Client`](yatagarasu_s3::S3Client), or any
    /// [`Origin`] decorator around one.
    pub origin: Arc<dyn Origin>,
    /// Whether `x-amz-meta-*` user metadata is passed to clients.
    pub expose_user_metadata: bool,
    /// CORS rules for browsers; `None` sends no CORS headers.
    pub cors: Option<CorsPolicy>,
    /// Sharing of origin fetches between concurrent requests.
    pub coalescing: CoalescingOptions,
    /// Caching of this bucket's objects (when the proxy has a cache).
    pub cache: CachePolicy,
    /// Tokens required to read this bucket (`None`: public). Checked on every request, cache hits
    /// included; CORS preflights need none.
    pub auth: Option<crate::auth::JwtAuth>,
    /// Which client addresses may read this bucket (`None`: any). The address is the socket's, or
    /// a forwarded one behind the proxy's trusted proxies (`ProxyBuilder::trusted_proxies`).
    pub ip_filter: Option<crate::auth::IpFilter>,
    /// A policy that decides each request after the token check (`None`: the token, if any,
    /// suffices). CORS preflights are not asked about.
    pub policy: Option<crate::auth::Policy>,
    /// A limit on this bucket's requests, all clients together (429 past it).
    pub rate_limit: Option<Arc<crate::ratelimit::RateLimit>>,
}

impl BucketRoute {
    /// Serve the bucket of `origin` under `path_prefix`, with defaults: no user metadata, no CORS,
    /// coalescing on, caching on (when the proxy has a cache).
    pub fn new(
        name: impl Into<String>,
        path_prefix: impl Into<String>,
        origin: impl Origin,
    ) -> Self {
        Self {
            name: name.into(),
            path_prefix: path_prefix.into(),
            origin: Arc::new(origin),
            expose_user_metadata: false,
            cors: None,
            coalescing: CoalescingOptions::default(),
            cache: CachePolicy::default(),
            auth: None,
            policy: None,
            rate_limit: None,
            ip_filter: None,
        }
    }

    /// Require tokens verified by `auth` for this bucket.
    pub fn with_auth(mut self, auth: crate::auth::JwtAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Let `policy` decide each request (after the token check, when the route has one).
    pub fn with_policy(mut self, policy: crate::auth::Policy) -> Self {
        self.policy = Some(policy);
        self
    }
}

/// A route as the table holds it: the route, what shared fetches need of it, and its counters.
#[derive(Debug)]
pub(crate) struct MountedRoute {
    pub(crate) route: BucketRoute,
    pub(crate) target: FetchTarget,
    pub(crate) counters: Arc<BucketCounters>,
}

/// Per-bucket cache outcomes. Lives beside the route table and survives a swap (carried over by
/// bucket name), so counters do not reset when routes change.
#[derive(Debug, Default)]
pub(crate) struct BucketCounters {
    hit: AtomicU64,
    miss: AtomicU64,
    revalidated: AtomicU64,
    stale: AtomicU64,
    bypass: AtomicU64,
    negative_hit: AtomicU64,
}

impl BucketCounters {
    /// Count one object response by how it used the cache.
    pub(crate) fn count(&self, status: CacheStatus) {
        let c = match status {
            CacheStatus::Hit => &self.hit,
            CacheStatus::Miss => &self.miss,
            CacheStatus::Revalidated => &self.revalidated,
            CacheStatus::Stale => &self.stale,
            CacheStatus::Bypass => &self.bypass,
            CacheStatus::NegativeHit => &self.negative_hit,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> BucketCacheStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BucketCacheStats {
            hit: l(&self.hit),
            miss: l(&self.miss),
            revalidated: l(&self.revalidated),
            stale: l(&self.stale),
            bypass: l(&self.bypass),
            negative_hit: l(&self.negative_hit),
        }
    }
}

/// How one bucket's requests used the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketCacheStats {
    /// Answered from a fresh record.
    pub hit: u64,
    /// Fetched from the origin.
    pub miss: u64,
    /// Revalidated with the origin, body from the cache.
    pub revalidated: u64,
    /// Stale copy served (stale-while-revalidate or stale-if-error).
    pub stale: u64,
    /// Cache not used.
    pub bypass: u64,
    /// Answered 404 from a remembered 404 (negative caching).
    pub negative_hit: u64,
}

/// Routes by longest prefix on a path-segment boundary. Immutable.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<MountedRoute>,
}

/// Paths the proxy answers itself; no bucket prefix may shadow them.
pub const RESERVED_PATHS: &[&str] = &["/health", "/ready", "/metrics"];

/// The id cache entries of `origin`'s objects are keyed by: a digest of its
/// [`identity`](Origin::identity) (endpoint, addressing, bucket), so two deployments that share a
/// Redis tier and both call a route `media` never read each other's entries unless they read the
/// same bucket, and a route re-pointed at another bucket starts from an empty cache.
pub(crate) fn cache_id(origin: &dyn Origin) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(origin.identity().as_bytes());
    hex::encode(&digest[..12])
}

/// A prefix in canonical form: leading slash, no trailing slash (except the root `/`).
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    format!("/{trimmed}")
}

impl RouteTable {
    /// A table of `routes`; counters of buckets that `previous` also has (by name) carry over.
    pub(crate) fn new(routes: Vec<BucketRoute>, previous: Option<&RouteTable>) -> Self {
        let carried: HashMap<&str, &Arc<BucketCounters>> = previous
            .map(|p| {
                p.routes
                    .iter()
                    .map(|m| (m.route.name.as_str(), &m.counters))
                    .collect()
            })
            .unwrap_or_default();
        let mut routes: Vec<MountedRoute> = routes
            .into_iter()
            .map(|mut route| {
                route.path_prefix = normalize_prefix(&route.path_prefix);
                let counters = carried
                    .get(route.name.as_str())
                    .map_or_else(Arc::default, |c| Arc::clone(c));
                let target = FetchTarget {
                    id: cache_id(route.origin.as_ref()).into(),
                    origin: Arc::clone(&route.origin),
                    coalescing: route.coalescing,
                };
                MountedRoute {
                    route,
                    target,
                    counters,
                }
            })
            .collect();
        routes.sort_by_key(|m| std::cmp::Reverse(m.route.path_prefix.len()));
        Self { routes }
    }

    /// The same table, its origins counted and timed by `metrics` (the routes keep their own).
    pub(crate) fn measured(
        mut self,
        metrics: Option<&crate::prometheus::PrometheusMetrics>,
    ) -> Self {
        if let Some(metrics) = metrics {
            for m in &mut self.routes {
                m.target.origin = crate::prometheus::MeasuredOrigin::wrap(
                    Arc::clone(&m.route.origin),
                    &m.route.name,
                    metrics,
                );
            }
        }
        self
    }

    /// Every route's origin requests traced (a client span each), when tracing is on.
    pub(crate) fn traced(mut self, tracing: Option<&crate::otel::Tracing>) -> Self {
        if let Some(t) = tracing {
            for m in &mut self.routes {
                m.target.origin = crate::otel::traced_origin(Arc::clone(&m.target.origin), t);
            }
        }
        self
    }

    pub(crate) fn mounted(&self) -> &[MountedRoute] {
        &self.routes
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&MountedRoute> {
        self.routes.iter().find(|m| m.route.name == name)
    }

    /// The route and decoded object key for a raw (still percent-encoded) request path.
    ///
    /// The path is percent-decoded once, then matched: `/medi%61/a.txt` is routed as
    /// `/media/a.txt`, never to another bucket that would read it differently.
    ///
    /// `Ok(None)`: no bucket is mounted there. `Err`: a path that could address something outside
    /// a bucket or that S3 would interpret differently: `..`/`.` segments, encoded slashes, NUL,
    /// invalid UTF-8 (the error names the bucket the raw path falls under, for CORS headers).
    pub(crate) fn resolve(
        &self,
        raw_path: &str,
    ) -> Result<Option<(&MountedRoute, std::sync::Arc<str>)>, Error> {
        let path = decode_path(raw_path).map_err(|e| match self.longest_match(raw_path) {
            Some((m, _)) => e.with_bucket(m.route.name.clone()),
            None => e,
        })?;
        Ok(self
            .longest_match(&path)
            .map(|(m, key)| (m, std::sync::Arc::from(key))))
    }

    /// The route with the longest prefix that matches `path` on a segment boundary, and the rest.
    fn longest_match<'p>(&self, path: &'p str) -> Option<(&MountedRoute, &'p str)> {
        self.routes.iter().find_map(|mounted| {
            let prefix = mounted.route.path_prefix.as_str();
            let rest = if prefix == "/" {
                path.strip_prefix('/')
            } else {
                match path.strip_prefix(prefix) {
                    Some("") => Some(""),
                    Some(r) => r.strip_prefix('/'),
                    None => None,
                }
            };
            rest.map(|r| (mounted, r))
        })
    }
}

fn bad(message: &str) -> Error {
    Error::new(ErrorKind::BadRequest, message)
}

/// Percent-decode a request path once, refusing what could change its segments or escape a bucket.
fn decode_path(raw: &str) -> Result<std::borrow::Cow<'_, str>, Error> {
    // Without escapes there is nothing to decode (the common case costs no allocation).
    let decoded = if raw.contains('%') {
        let lower = raw.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") {
            return Err(bad("encoded slashes are not allowed in object paths"));
        }
        percent_decode(raw.as_bytes())
            .decode_utf8()
            .map_err(|_| bad("object path is not valid UTF-8 after percent-decoding"))?
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    if decoded.contains('\0') {
        return Err(bad("object path contains a NUL byte"));
    }
    if decoded.split('/').any(|s| s == ".." || s == ".") {
        return Err(bad("object path contains a `.` or `..` segment"));
    }
    if decoded.contains('\\') && decoded.split('\\').any(|s| s == "..") {
        return Err(bad("object path contains a `..` segment"));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, prefix: &str) -> BucketRoute {
        BucketRoute::new(
            name,
            prefix,
            yatagarasu_s3::S3Client::builder(name)
                .anonymous()
                .build()
                .unwrap(),
        )
    }

    fn resolve(r: &RouteTable, p: &str) -> Option<(String, String)> {
        r.resolve(p)
            .unwrap()
            .map(|(m, k)| (m.route.name.clone(), k.to_string()))
    }

    #[test]
    fn longest_prefix_on_segment_boundary() {
        let r = RouteTable::new(
            vec![
                route("products", "/products"),
                route("images", "/products/images/"),
                route("root", "/"),
            ],
            None,
        );
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
        let no_root = RouteTable::new(vec![route("products", "/products")], None);
        assert_eq!(resolve(&no_root, "/productsX/a"), None);
        assert_eq!(resolve(&no_root, "/other"), None);
    }

    #[test]
    fn keys_are_decoded_once() {
        let r = RouteTable::new(vec![route("b", "/b")], None);
        assert_eq!(resolve(&r, "/b/a%20b+c.txt").unwrap().1, "a b+c.txt");
        assert_eq!(resolve(&r, "/b/%E6%97%A5.txt").unwrap().1, "日.txt");
        assert_eq!(resolve(&r, "/b/100%2525").unwrap().1, "100%25");
        assert_eq!(resolve(&r, "/b/deep/a//b").unwrap().1, "deep/a//b");
    }

    #[test]
    fn the_decoded_path_is_routed() {
        let r = RouteTable::new(vec![route("media", "/media"), route("root", "/")], None);
        assert_eq!(
            resolve(&r, "/medi%61/a.txt"),
            Some(("media".into(), "a.txt".into()))
        );
        assert_eq!(
            resolve(&r, "/%6Dedia"),
            Some(("media".into(), String::new()))
        );
        assert_eq!(
            resolve(&r, "/media%20x/a"),
            Some(("root".into(), "media x/a".into()))
        );
        let err = r.resolve("/media/a%2Fb").unwrap_err();
        assert_eq!(err.context().bucket.as_deref(), Some("media"));
    }

    #[test]
    fn traversal_and_smuggling_are_rejected() {
        let r = RouteTable::new(vec![route("b", "/b")], None);
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
