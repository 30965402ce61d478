//! Slices: the fixed-size ranged GETs every origin read is made of, pinned to one version by ETag;
//! storing complete slices in the cache; windows over a body; range reads slice by slice.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use yatagarasu_coalesce::StreamGroup;
use yatagarasu_core::{ContentRange, EntityTag, Error, ErrorKind, ObjectMeta, Result};
use yatagarasu_s3::{GetObjectRequest, Origin};

use super::FetchTarget;
use super::body::{
    AbortOnDrop, Audience, BodyStream, Head, SliceKey, flight_error, object_body_stream, sub_stream,
};
use crate::cache::{ObjectCache, freshness};

/// The range request for slice `index` of an object of `size` bytes.
pub(super) fn slice_request(
    index: u64,
    slice_size: u64,
    size: Option<u64>,
    etag: Option<&EntityTag>,
) -> GetObjectRequest {
    let start = index * slice_size;
    let mut end = start + slice_size - 1;
    if let Some(size) = size {
        end = end.min(size.saturating_sub(1));
    }
    let mut request = GetObjectRequest::range(start, end);
    request.if_match = etag.map(ToString::to_string);
    request
}

/// Fetch one slice; when `etag` is given, the slice must belong to that version.
pub(super) async fn fetch_slice(
    origin: &dyn Origin,
    key: &str,
    index: u64,
    slice_size: u64,
    size: Option<u64>,
    etag: Option<&EntityTag>,
) -> Result<yatagarasu_s3::GetObjectOutput> {
    let out = match origin
        .get_object(key, &slice_request(index, slice_size, size, etag))
        .await
    {
        Ok(out) => out,
        // The origin refused the proxy's own If-Match: the object changed since the read began.
        // That is never the client's precondition failing.
        Err(e) if etag.is_some() && e.kind() == ErrorKind::PreconditionFailed => {
            return Err(changed_mid_read(origin, key));
        }
        Err(e) => return Err(e),
    };
    if let Some(expected) = etag
        && !out
            .meta
            .etag
            .as_ref()
            .is_some_and(|t| t.strong_eq(expected))
    {
        tracing::warn!(
            bucket = origin.bucket(),
            key,
            slice = index,
            "object changed while it was being read"
        );
        return Err(changed_mid_read(origin, key));
    }
    match out.content_range {
        Some(ContentRange::Bytes { range, .. }) if range.start == index * slice_size => Ok(out),
        _ => Err(Error::new(
            ErrorKind::Upstream,
            format!("the origin did not answer slice {index} with its range"),
        )
        .with_bucket(origin.bucket())
        .with_key(key)),
    }
}

pub(super) fn changed_mid_read(origin: &dyn Origin, key: &str) -> Error {
    Error::new(
        ErrorKind::ObjectChanged,
        "the object changed while it was being read; not splicing versions",
    )
    .with_bucket(origin.bucket())
    .with_key(key)
}

/// Where a fetch stores what it reads: the object's record once its metadata is known, and every
/// complete slice as it finishes. A slice cut short by an error is never stored.
#[derive(Debug, Clone)]
pub(crate) struct Fill {
    pub(crate) cache: ObjectCache,
    pub(crate) origin: Arc<str>,
    pub(crate) key: Arc<str>,
    pub(crate) default_ttl: Duration,
}

impl Fill {
    /// Store the record; returns how long slices of this version are kept, or `None` when the object
    /// must not be stored (`no-store`, `private`).
    pub(crate) async fn record(&self, meta: &ObjectMeta) -> Option<Duration> {
        let fresh_for = freshness(meta, self.default_ttl)?;
        self.cache
            .store_record(&self.origin, &self.key, meta, fresh_for)
            .await;
        Some(self.cache.slice_retention(fresh_for))
    }
}

/// Re-chunks a body into slices and stores each complete one.
pub(super) struct SliceSink {
    pub(super) fill: Fill,
    pub(super) etag: EntityTag,
    pub(super) keep: Duration,
    pub(super) size: u64,
    pub(super) slice_size: u64,
    pub(super) index: u64,
    pub(super) buf: Vec<u8>,
    /// The proxy's buffer budget: what `buf` holds is counted in it.
    pub(super) budget: Arc<yatagarasu_coalesce::BufferBudget>,
    pub(super) held: Vec<yatagarasu_coalesce::Reservation>,
}

impl SliceSink {
    pub(super) async fn push(&mut self, mut chunk: &[u8]) {
        if self.size == 0 {
            return; // given up (or nothing to store)
        }
        // What the slice buffer holds counts against the budget; when it is spent, the fill is
        // given up rather than waited for (responses never wait on caching).
        match self.budget.try_reserve(chunk.len()) {
            Some(r) => self.held.push(r),
            None => {
                tracing::debug!(key = %self.fill.key, "buffer budget spent; not caching the rest of this object");
                self.size = 0;
                self.buf = Vec::new();
                self.held.clear();
                return;
            }
        }
        while !chunk.is_empty() {
            let slice_len = self
                .slice_size
                .min(self.size.saturating_sub(self.index * self.slice_size));
            let room = usize::try_from(slice_len)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.buf.len());
            let take = room.min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() as u64 == slice_len && slice_len > 0 {
                let body = Bytes::from(std::mem::take(&mut self.buf));
                self.held.clear();
                let f = &self.fill;
                f.cache
                    .store_slice(&f.origin, &f.key, &self.etag, self.index, body, self.keep)
                    .await;
                self.index += 1;
            } else if take == 0 {
                return; // more bytes than the object has: never store them
            }
        }
    }
}

/// Skip the first `skip` bytes of a stream and end it after `take` more.
pub(crate) fn window(stream: BodyStream, skip: u64, take: u64) -> BodyStream {
    let s = futures_util::stream::unfold(
        (stream, skip, take),
        |(mut s, mut skip, mut take)| async move {
            loop {
                if take == 0 {
                    return None;
                }
                match s.next().await? {
                    Err(e) => return Some((Err(e), (s, 0, 0))),
                    Ok(mut chunk) => {
                        let len = chunk.len() as u64;
                        if skip >= len {
                            skip -= len;
                            continue;
                        }
                        let from = usize::try_from(skip).unwrap_or(usize::MAX);
                        chunk = chunk.slice(from..);
                        skip = 0;
                        let keep =
                            usize::try_from(take.min(chunk.len() as u64)).unwrap_or(usize::MAX);
                        chunk.truncate(keep);
                        take -= chunk.len() as u64;
                        return Some((Ok(chunk), (s, skip, take)));
                    }
                }
            }
        },
    );
    Box::pin(s)
}

/// Whether two metadata describe the same version of an object (strong ETag match, else size and
/// modification time).
pub(crate) fn same_version(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.size == b.size
        && match (&a.etag, &b.etag) {
            (Some(x), Some(y)) => x.strong_eq(y),
            (None, None) => a.last_modified == b.last_modified,
            _ => false,
        }
}

/// Where the slices of a range read come from besides the origin.
#[derive(Debug, Clone, Default)]
pub(crate) struct SliceSource {
    /// The cache to read slices from first and to store fetched slices in, and how long to keep them.
    pub(crate) cache: Option<(Fill, Duration)>,
}

/// What reading single slices needs of the fetcher: the slice flights, the slice size, the buffer
/// budget, and how much of a slice is still fetched for the cache once nobody reads it.
#[derive(Clone)]
pub(super) struct SliceReader {
    pub(super) group: StreamGroup<SliceKey, Head, Bytes, Error>,
    pub(super) slice_size: u64,
    pub(super) budget: Arc<yatagarasu_coalesce::BufferBudget>,
    pub(super) abandoned_fill: u64,
}

/// Open slice `index` of the version described by `head`: from the cache when it holds it, else
/// from the origin, through a slice flight when coalescing (stored in the cache once complete).
/// Slice `index` of the object from the cache, when it is there whole: exactly as long as the
/// object's size makes that slice (anything else is fetched again).
pub(super) async fn cached_slice(
    reader: &SliceReader,
    key: &str,
    head: &Head,
    index: u64,
    source: &SliceSource,
) -> Option<Bytes> {
    let (Some((fill, _)), Some(etag)) = (&source.cache, &head.etag) else {
        return None;
    };
    let body = fill.cache.slice(&fill.origin, key, etag, index).await?;
    let slice_size = reader.slice_size;
    let expected = slice_size.min(head.size.saturating_sub(index * slice_size));
    (body.len() as u64 == expected).then_some(body)
}

pub(super) async fn open_slice(
    reader: &SliceReader,
    target: &FetchTarget,
    key: &str,
    head: &Head,
    index: u64,
    coalesce: bool,
    source: &SliceSource,
) -> Result<BodyStream> {
    if let Some(body) = cached_slice(reader, key, head, index, source).await {
        return Ok(Box::pin(futures_util::stream::iter(Some(Ok(body)))));
    }
    open_uncached_slice(reader, target, key, head, index, coalesce, source).await
}

/// Slice `index` from the origin (shared with concurrent readers when `coalesce`), stored in the
/// cache once complete when `source` has one. The caller has looked in the cache already.
pub(super) async fn open_uncached_slice(
    reader: &SliceReader,
    target: &FetchTarget,
    key: &str,
    head: &Head,
    index: u64,
    coalesce: bool,
    source: &SliceSource,
) -> Result<BodyStream> {
    let (group, slice_size) = (&reader.group, reader.slice_size);
    let origin = Arc::clone(&target.origin);
    let size = head.size;
    let etag = head.etag.clone();
    // Where the slice is stored once complete (the sink itself is made per fetch).
    let store = match (&source.cache, &etag) {
        (Some((fill, keep)), Some(etag)) => Some((fill.clone(), etag.clone(), *keep)),
        _ => None,
    };
    let budget = Arc::clone(&reader.budget);
    let abandoned_fill = reader.abandoned_fill;
    let fetch = {
        let (origin, key, etag) = (Arc::clone(&origin), key.to_owned(), etag.clone());
        move |audience: Option<Audience>| async move {
            let sink = store.map(|(fill, etag, keep)| SliceSink {
                fill,
                etag,
                keep,
                size,
                slice_size,
                index,
                buf: Vec::new(),
                budget,
                held: Vec::new(),
            });
            let fill = sink.as_ref().map(|k| k.fill.clone());
            let (out, lease) = super::claims::fetch_claimed(
                fill.as_ref(),
                &key,
                index,
                slice_size,
                Some(size),
                etag.as_ref(),
                || fetch_slice(&*origin, &key, index, slice_size, Some(size), etag.as_ref()),
            )
            .await?;
            let out = super::claims::settle(out, lease, sink.is_some());
            let left = out.content_length;
            let body = object_body_stream(out.body);
            let body: BodyStream = match sink {
                None => body,
                Some(sink) => Box::pin(futures_util::stream::unfold(
                    (body, sink, left),
                    move |(mut body, mut sink, left)| {
                        let audience = audience.clone();
                        async move {
                            // Nobody reads any more: finish the slice for the cache only when
                            // little of it is left.
                            if left > abandoned_fill
                                && audience.as_ref().is_some_and(Audience::close_if_unread)
                            {
                                return None;
                            }
                            let item = body.next().await?;
                            let mut left = left;
                            if let Ok(chunk) = &item {
                                left = left.saturating_sub(chunk.len() as u64);
                                sink.push(chunk).await;
                            }
                            Some((item, (body, sink, left)))
                        }
                    },
                )),
            };
            Ok::<_, Error>((Arc::new(out.meta), body))
        }
    };
    let opened = async {
        if coalesce
            && let Some((mut sub, _)) =
                group.subscribe_with((target.id.clone(), key.to_owned(), index), {
                    let fetch = fetch.clone();
                    let trace = crate::otel::Current::capture();
                    move |audience| trace.wrap(fetch(Some(audience)))
                })
        {
            match tokio::time::timeout(target.coalescing.wait_timeout, sub.head()).await {
                Ok(Ok(slice_head)) => {
                    if !same_version(&slice_head, head) {
                        return Err(changed_mid_read(&*origin, key));
                    }
                    return Ok(sub_stream(sub));
                }
                Ok(Err(e)) => return Err(flight_error(e)),
                Err(_) => {}
            }
        }
        fetch(None).await.map(|(_, body)| body)
    }
    .await;
    // The origin no longer has the version a cached record describes: forget the record, so the
    // next request fetches the current version instead of failing until the record expires.
    if let (Err(e), Some((fill, _))) = (&opened, &source.cache)
        && is_version_change(e)
    {
        fill.cache.purge_object(&fill.origin, key).await;
    }
    opened
}

/// Whether an error says the object is no longer the version being read.
pub(crate) fn is_version_change(e: &Error) -> bool {
    e.kind() == ErrorKind::ObjectChanged
}

/// The slices after the first of a Range read. Each slice is opened (its origin request sent, or its
/// cache entry read) while the one before it streams: one slice of read-ahead, as full GETs have.
#[derive(Clone)]
pub(super) struct SliceChain {
    pub(super) target: FetchTarget,
    pub(super) key: String,
    pub(super) head: Head,
    pub(super) next: u64,
    pub(super) last: u64,
    pub(super) reader: SliceReader,
    pub(super) coalesce: bool,
    pub(super) source: SliceSource,
}

type Opening = AbortOnDrop<Result<BodyStream>>;

impl SliceChain {
    /// Start opening slice `index` in the background.
    fn open_ahead(&self, index: u64) -> Opening {
        let c = self.clone();
        let trace = crate::otel::Current::capture();
        AbortOnDrop(tokio::spawn(trace.wrap(async move {
            open_slice(
                &c.reader, &c.target, &c.key, &c.head, index, c.coalesce, &c.source,
            )
            .await
        })))
    }

    /// The stream of slices `next..=last`; the first of them starts opening now.
    pub(super) fn into_stream(self) -> BodyStream {
        let ahead = (self.next <= self.last).then(|| self.open_ahead(self.next));
        let s = futures_util::stream::unfold(Some((self, ahead)), |state| async move {
            let (st, ahead) = state?;
            let mut task = ahead?;
            let opened = match (&mut task.0).await {
                Ok(r) => r,
                Err(_) => Err(Error::new(
                    ErrorKind::Internal,
                    "slice read-ahead task failed",
                )),
            };
            let following = st.next + 1;
            let ahead = (following <= st.last).then(|| st.open_ahead(following));
            let next = SliceChain {
                next: following,
                ..st
            };
            match opened {
                Ok(body) => Some((body, Some((next, ahead)))),
                Err(e) => Some((
                    Box::pin(futures_util::stream::once(async move { Err(e) })) as BodyStream,
                    None,
                )),
            }
        })
        .flatten();
        Box::pin(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_requests_cover_the_object_exactly() {
        let r = slice_request(2, 100, Some(250), None);
        assert_eq!(r.range, GetObjectRequest::range(200, 249).range);
        let r = slice_request(0, 100, None, None);
        assert_eq!(r.range, GetObjectRequest::range(0, 99).range);
    }

    #[tokio::test]
    async fn window_cuts_across_chunk_boundaries() {
        let chunks: Vec<Result<Bytes>> = ["abc", "def", "ghi"]
            .iter()
            .map(|s| Ok(Bytes::from(*s)))
            .collect();
        let s: BodyStream = Box::pin(futures_util::stream::iter(chunks));
        let out: Vec<Bytes> = window(s, 2, 5).map(|r| r.unwrap()).collect().await;
        assert_eq!(out.concat(), b"cdefg");
    }
}
