//! The proxy's object cache on top of `yatagarasu-cache` tiers.
//!
//! Two kinds of entries:
//! - an object *record* per (bucket, key): the object's metadata and its freshness, no body;
//! - body *slices* per (bucket, key, ETag, slice index), exactly the slices origin fetches use.
//!
//! Slices are keyed by ETag, so a new version of an object never mixes with cached slices of the old
//! one. Freshness lives in the record only: revalidating an object (a HEAD whose ETag still matches)
//! refreshes one small record and moves no body bytes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use yatagarasu_cache::{CacheEntry, TieredCache};
use yatagarasu_core::{EntityTag, ObjectMeta};

/// Per-bucket cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachePolicy {
    /// Whether this bucket's objects are cached.
    pub enabled: bool,
    /// Freshness when the object's `Cache-Control` gives none.
    pub ttl: Duration,
    /// For a bucket with access control (`auth` or `policy`): whether its objects are cached, and
    /// shared by every request that passes access control (on by default). Off keeps them out of
    /// every tier. Buckets without access control ignore it.
    pub cache_authenticated: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: Duration::from_secs(3600),
            cache_authenticated: true,
        }
    }
}

/// An object's cached metadata and freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) meta: ObjectMeta,
    pub(crate) fresh_until: SystemTime,
    /// Until when a stale record may be served while it is revalidated in the background (RFC 5861).
    pub(crate) stale_while_revalidate_until: SystemTime,
    /// Until when a stale record may be served when revalidation fails (RFC 5861).
    pub(crate) stale_if_error_until: SystemTime,
    /// A cached 404: the object did not exist.
    pub(crate) missing: bool,
}

impl Record {
    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
    }
}

/// `stale-while-revalidate` and `stale-if-error` of an object's `Cache-Control`, in seconds (RFC 5861).
pub(crate) fn stale_windows(meta: &ObjectMeta) -> (Duration, Duration) {
    let mut swr = Duration::ZERO;
    let mut sie = Duration::ZERO;
    for directive in meta.cache_control.as_deref().unwrap_or("").split(',') {
        if let Some((name, value)) = directive.trim().split_once('=')
            && let Some(secs) = delta_seconds(value.trim().trim_matches('"'))
        {
            match name.trim().to_ascii_lowercase().as_str() {
                "stale-while-revalidate" => swr = Duration::from_secs(secs),
                "stale-if-error" => sie = Duration::from_secs(secs),
                _ => {}
            }
        }
    }
    (swr, sie)
}

/// How long an object may be served without asking the origin, from its `Cache-Control`
/// (RFC 9111 5.2.2): `no-store` and `private` are never stored by this shared cache (`None`);
/// `no-cache` is stored but revalidated on every use; `s-maxage` wins over `max-age`, which wins over
/// the configured TTL.
pub(crate) fn freshness(meta: &ObjectMeta, default_ttl: Duration) -> Option<Duration> {
    let Some(cc) = meta.cache_control.as_deref() else {
        return Some(default_ttl);
    };
    let mut max_age = None;
    let mut s_maxage = None;
    for directive in cc.split(',') {
        let d = directive.trim();
        let (name, value) = match d.split_once('=') {
            Some((n, v)) => (
                n.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (d.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("no-store" | "private", _) => return None,
            ("no-cache", None) => return Some(Duration::ZERO),
            ("max-age", Some(v)) => max_age = delta_seconds(v),
            ("s-maxage", Some(v)) => s_maxage = delta_seconds(v),
            _ => {}
        }
    }
    Some(
        s_maxage
            .or(max_age)
            .map_or(default_ttl, Duration::from_secs),
    )
}

/// The cache as the proxy uses it.
#[derive(Debug, Clone)]
pub(crate) struct ObjectCache {
    tiers: TieredCache,
    /// The fleet this instance coordinates cold fetches with (fleet-wide coalescing).
    fleet: Option<crate::fleet::Fleet>,
    /// The slices this process's flights are fetching for the cache now.
    claims: Arc<crate::fetch::LocalClaims>,
    /// How long a 404 is remembered (zero: never).
    negative_ttl: Duration,
    /// How long stale records and their slices are kept for revalidation.
    stale_retention: Duration,
}

// Keys are built by hand, not with `format!`: they are built on every hit, and the formatting
// machinery was a visible share of a small hit's CPU.

fn record_key(origin: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + origin.len() + key.len());
    for part in [&b"r\0"[..], origin.as_bytes(), b"\0", key.as_bytes()] {
        k.extend_from_slice(part);
    }
    k
}

fn slice_key(origin: &str, key: &str, etag: &EntityTag, index: u64) -> Vec<u8> {
    let opaque = etag.opaque().as_bytes();
    let mut k = Vec::with_capacity(32 + origin.len() + key.len() + opaque.len());
    let weak: &[u8] = if etag.is_weak() { b"W/\"" } else { b"\"" };
    for part in [
        &b"s\0"[..],
        origin.as_bytes(),
        b"\0",
        key.as_bytes(),
        b"\0",
        weak,
        opaque,
        b"\"\0",
    ] {
        k.extend_from_slice(part);
    }
    k.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    k
}

fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// `t + d`, or the far future when the clock cannot hold it: no deadline computation panics.
pub(crate) fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .or_else(|| t.checked_add(MAX_DIRECTIVE_SECONDS_DURATION))
        .unwrap_or(t)
}

/// The largest delta-seconds a `Cache-Control` directive is taken at: one year. RFC 9111 1.2.2
/// lets a cache treat larger values as 2^31 s; a year is what a shared cache needs, and keeps every
/// deadline far from the clock's limits.
pub(crate) const MAX_DIRECTIVE_SECONDS: u64 = 365 * 24 * 3600;
const MAX_DIRECTIVE_SECONDS_DURATION: Duration = Duration::from_secs(MAX_DIRECTIVE_SECONDS);

/// A directive's delta-seconds (RFC 9111 1.2.2): digits only, clamped to
/// [`MAX_DIRECTIVE_SECONDS`] (also when too long for any integer type); `None` when not a number.
fn delta_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(MAX_DIRECTIVE_SECONDS, |n| n.min(MAX_DIRECTIVE_SECONDS)),
    )
}

/// Records are read on every cache hit, so they use a compact binary layout rather than JSON:
/// `R2`, four u64 times (ms since the epoch; fresh, stale-while-revalidate, stale-if-error, last
/// modified with `u64::MAX` for none), a missing flag, the size, eight optional strings (u32 length,
/// `u32::MAX` for none), then the user metadata as a count and pairs.
pub(crate) fn encode_record(r: &Record) -> Bytes {
    let m = &r.meta;
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"R2");
    for t in [
        millis(r.fresh_until),
        millis(r.stale_while_revalidate_until),
        millis(r.stale_if_error_until),
        m.last_modified.map_or(u64::MAX, millis),
    ] {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out.push(u8::from(r.missing));
    out.extend_from_slice(&m.size.to_le_bytes());
    let etag = m.etag.as_ref().map(ToString::to_string);
    let mut put = |v: Option<&str>| match v {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(v) => {
            out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    };
    for v in [
        etag.as_deref(),
        m.content_type.as_deref(),
        m.cache_control.as_deref(),
        m.content_encoding.as_deref(),
        m.content_disposition.as_deref(),
        m.content_language.as_deref(),
        m.expires.as_deref(),
        m.version_id.as_deref(),
    ] {
        put(v);
    }
    put(Some(&m.user_metadata.len().to_string()));
    for (k, v) in &m.user_metadata {
        put(Some(k));
        put(Some(v));
    }
    Bytes::from(out)
}

/// Reads what [`encode_record`] wrote; `None` for anything else (a record from another version is a miss).
pub(crate) fn decode_record(b: &[u8]) -> Option<Record> {
    struct Cursor<'a>(&'a [u8]);
    impl Cursor<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        fn str(&mut self) -> Option<Option<&str>> {
            let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
            if len == u32::MAX {
                return Some(None);
            }
            let bytes = self.take(usize::try_from(len).ok()?)?;
            Some(Some(std::str::from_utf8(bytes).ok()?))
        }
        fn string(&mut self) -> Option<Option<String>> {
            Some(self.str()?.map(str::to_owned))
        }
    }
    let mut c = Cursor(b);
    if c.take(2)? != b"R2" {
        return None;
    }
    let (fresh, swr, sie, lm) = (c.u64()?, c.u64()?, c.u64()?, c.u64()?);
    let missing = c.take(1)?[0] == 1;
    let mut meta = ObjectMeta::with_size(c.u64()?);
    meta.etag = c.str()?.and_then(EntityTag::parse);
    meta.last_modified = (lm != u64::MAX).then(|| from_millis(lm));
    meta.content_type = c.string()?;
    meta.cache_control = c.string()?;
    meta.content_encoding = c.string()?;
    meta.content_disposition = c.string()?;
    meta.content_language = c.string()?;
    meta.expires = c.string()?;
    meta.version_id = c.string()?;
    let pairs: usize = c.str()??.parse().ok()?;
    for _ in 0..pairs {
        let (k, v) = (c.string()??, c.string()??);
        meta.user_metadata.insert(k, v);
    }
    if !c.0.is_empty() {
        return None;
    }
    Some(Record {
        meta,
        fresh_until: from_millis(fresh),
        stale_while_revalidate_until: from_millis(swr),
        stale_if_error_until: from_millis(sie),
        missing,
    })
}

impl ObjectCache {
    pub(crate) fn new(
        tiers: TieredCache,
        stale_retention: Duration,
        negative_ttl: Duration,
    ) -> Self {
        Self {
            tiers,
            fleet: None,
            claims: Arc::default(),
            negative_ttl,
            stale_retention,
        }
    }

    /// Coordinate cold slice fetches with `fleet`.
    pub(crate) fn with_fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// The slices this process is fetching for the cache now.
    pub(crate) fn claims(&self) -> &Arc<crate::fetch::LocalClaims> {
        &self.claims
    }

    /// The fleet cold fetches are coordinated with, when fleet-wide coalescing is on.
    pub(crate) fn fleet(&self) -> Option<&crate::fleet::Fleet> {
        self.fleet.as_ref().filter(|f| f.coalescing())
    }

    pub(crate) fn tiers(&self) -> &TieredCache {
        &self.tiers
    }

    /// The object's record, fresh or stale.
    pub(crate) async fn record(&self, origin: &str, key: &str) -> Option<Record> {
        let record_key = record_key(origin, key);
        let hit = self.tiers.get(&record_key).await?;
        let record = decode_record(&hit.entry.metadata);
        if record.is_none() {
            // Not ours to read (damaged, or written by another version): gone from every tier,
            // including the faster ones it was just promoted to.
            self.tiers.delete(&record_key).await;
        }
        record
    }

    /// Store (or refresh) an object's record, fresh for `fresh_for`, kept `stale_retention` longer.
    pub(crate) async fn store_record(
        &self,
        origin: &str,
        key: &str,
        meta: &ObjectMeta,
        fresh_for: Duration,
    ) {
        let now = SystemTime::now();
        let (swr, sie) = stale_windows(meta);
        let fresh_until = later(now, fresh_for);
        let record = Record {
            meta: meta.clone(),
            fresh_until,
            stale_while_revalidate_until: later(fresh_until, swr),
            stale_if_error_until: later(fresh_until, sie),
            missing: false,
        };
        let keep = fresh_for.saturating_add(self.stale_retention.max(swr).max(sie));
        let entry = CacheEntry::new(encode_record(&record), Bytes::new(), Some(keep));
        self.tiers.insert(&record_key(origin, key), entry).await;
    }

    /// Remember for `ttl` that an object does not exist (negative caching of 404).
    pub(crate) async fn store_missing(&self, origin: &str, key: &str) {
        if self.negative_ttl.is_zero() {
            return;
        }
        let fresh_until = later(SystemTime::now(), self.negative_ttl);
        let record = Record {
            meta: ObjectMeta::with_size(0),
            fresh_until,
            stale_while_revalidate_until: fresh_until,
            stale_if_error_until: fresh_until,
            missing: true,
        };
        let entry = CacheEntry::new(
            encode_record(&record),
            Bytes::new(),
            Some(self.negative_ttl),
        );
        self.tiers.insert(&record_key(origin, key), entry).await;
    }

    /// One body slice of a version, if cached.
    pub(crate) async fn slice(
        &self,
        origin: &str,
        key: &str,
        etag: &EntityTag,
        index: u64,
    ) -> Option<Bytes> {
        Some(
            self.tiers
                .get(&slice_key(origin, key, etag, index))
                .await?
                .entry
                .body,
        )
    }

    /// Store one complete slice of a version (every tier written before this returns, so a response
    /// that has ended has its slices in the cache).
    pub(crate) async fn store_slice(
        &self,
        origin: &str,
        key: &str,
        etag: &EntityTag,
        index: u64,
        body: Bytes,
        keep: Duration,
    ) {
        let entry = CacheEntry::new(Bytes::new(), body, Some(keep));
        self.tiers
            .insert(&slice_key(origin, key, etag, index), entry)
            .await;
    }

    /// How long slices of a version fresh for `fresh_for` are kept.
    pub(crate) fn slice_retention(&self, fresh_for: Duration) -> Duration {
        fresh_for.saturating_add(self.stale_retention)
    }

    /// The same cache without its shared (remote) tiers: this instance's own copies.
    pub(crate) fn local_only(&self) -> Self {
        Self {
            tiers: self.tiers.local(),
            ..self.clone()
        }
    }

    /// Remove an object (record and all its slices).
    pub(crate) async fn purge_object(&self, origin: &str, key: &str) -> u64 {
        self.tiers.delete(&record_key(origin, key)).await;
        let removed = self
            .tiers
            .delete_prefix(format!("s\0{origin}\0{key}\0").as_bytes())
            .await;
        1 + removed
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .sum::<u64>()
    }

    /// Remove every object whose key starts with `prefix` of origin `origin` (all of it for "").
    pub(crate) async fn purge_prefix(&self, origin: &str, prefix: &str) -> u64 {
        let mut n = 0;
        for kind in ["r", "s"] {
            let removed = self
                .tiers
                .delete_prefix(format!("{kind}\0{origin}\0{prefix}").as_bytes())
                .await;
            n += removed
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok())
                .sum::<u64>();
        }
        n
    }

    /// Remove everything.
    pub(crate) async fn purge_all(&self) -> u64 {
        let mut n = 0;
        for kind in ["r\0", "s\0"] {
            let removed = self.tiers.delete_prefix(kind.as_bytes()).await;
            n += removed
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok())
                .sum::<u64>();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(cc: Option<&str>) -> ObjectMeta {
        let mut m = ObjectMeta::with_size(10);
        m.cache_control = cc.map(str::to_owned);
        m
    }

    #[test]
    fn cache_keys_keep_their_layout() {
        // Disk and Redis tiers outlive the process: entries written by earlier versions must be
        // found under the same keys.
        assert_eq!(record_key("o", "a/b.txt"), b"r\0o\0a/b.txt");
        let strong = EntityTag::strong("abc").unwrap();
        let weak = EntityTag::parse("W/\"x1\"").unwrap();
        assert_eq!(
            slice_key("o", "k", &strong, 12_345),
            b"s\0o\0k\0\"abc\"\x0012345"
        );
        assert_eq!(
            slice_key("origin-1", "dir/key", &weak, 0),
            format!("s\0origin-1\0dir/key\0{weak}\00").into_bytes()
        );
    }

    #[test]
    fn freshness_follows_cache_control() {
        let d = Duration::from_secs(100);
        assert_eq!(freshness(&meta(None), d), Some(d));
        assert_eq!(
            freshness(&meta(Some("max-age=60")), d),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            freshness(&meta(Some("max-age=60, s-maxage=5")), d),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            freshness(&meta(Some("public, no-cache")), d),
            Some(Duration::ZERO)
        );
        assert_eq!(freshness(&meta(Some("no-store")), d), None);
        assert_eq!(freshness(&meta(Some("private, max-age=60")), d), None);
        assert_eq!(freshness(&meta(Some("public")), d), Some(d));
        assert_eq!(
            freshness(&meta(Some("MAX-AGE=\"7\"")), d),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn records_round_trip() {
        let mut m = ObjectMeta::with_size(1234);
        m.etag = EntityTag::parse("\"abc\"");
        m.last_modified = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        m.content_type = Some("image/png".into());
        m.user_metadata.insert("owner".into(), "alice".into());
        let fresh_until = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let r = Record {
            meta: m,
            fresh_until,
            stale_while_revalidate_until: fresh_until + Duration::from_secs(60),
            stale_if_error_until: fresh_until + Duration::from_secs(600),
            missing: false,
        };
        assert_eq!(decode_record(&encode_record(&r)), Some(r));
        assert_eq!(decode_record(b"not json"), None);
    }
}
