//! Whole-object reads: slice after slice with one slice of read-ahead, metadata first.

use std::sync::Arc;

use futures_util::StreamExt as _;
use yatagarasu_core::{EntityTag, Error, ErrorKind, Result};
use yatagarasu_s3::{GetObjectOutput, GetObjectRequest, ObjectBody, Origin};

use super::body::{AbortOnDrop, Audience, BodyStream, Head, object_body_stream};
use super::claims::{fetch_claimed, settle};
use super::slices::{Fill, SliceSink, fetch_slice, slice_request};

/// What a whole-object read needs besides the origin and key.
#[derive(Clone)]
pub(super) struct WholeRead {
    pub(super) slice_size: u64,
    pub(super) fill: Option<Fill>,
    /// The shared flight's audience, when the read is one: once nobody reads, the read stops
    /// (after finishing a slice for the cache when at most `abandoned_fill` bytes of it are left).
    pub(super) audience: Option<Audience>,
    pub(super) abandoned_fill: u64,
    pub(super) budget: Arc<yatagarasu_coalesce::BufferBudget>,
}

/// Fetch a whole object slice by slice with one slice of read-ahead. Yields the metadata first.
pub(super) async fn whole_object(
    origin: Arc<dyn Origin>,
    key: String,
    read: WholeRead,
) -> Result<(Head, BodyStream)> {
    let WholeRead {
        slice_size,
        fill,
        audience,
        abandoned_fill,
        budget,
    } = read;
    // Cold objects are claimed for the fleet at their first slice (when there is a cache to
    // share them through).
    let first_request = slice_request(0, slice_size, None, None);
    let first = fetch_claimed(fill.as_ref(), &key, 0, slice_size, None, None, || {
        origin.get_object(&key, &first_request)
    })
    .await;
    let (first, lease) = match first {
        Ok(answer) => answer,
        // An empty object has no byte 0: S3 answers a ranged GET with 416. Fetch it plainly.
        Err(e) if e.kind() == ErrorKind::InvalidRange => {
            let out = origin
                .get_object(&key, &GetObjectRequest::default())
                .await?;
            if let Some(f) = &fill
                && out.meta.size == 0
            {
                f.record(&out.meta).await;
            }
            return Ok((Arc::new(out.meta), object_body_stream(out.body)));
        }
        Err(e) => return Err(e),
    };
    let size = first.meta.size;
    let head = Arc::new(first.meta.clone());
    let slices = size.div_ceil(slice_size).max(1);
    let sink = match (&fill, &first.meta.etag) {
        (Some(f), Some(etag)) => f.record(&first.meta).await.map(|keep| SliceSink {
            fill: f.clone(),
            etag: etag.clone(),
            keep,
            size,
            slice_size,
            index: 0,
            buf: Vec::new(),
            budget: Arc::clone(&budget),
            held: Vec::new(),
        }),
        _ => None,
    };
    let first = settle(first, lease, sink.is_some());
    let Some(etag) = first.meta.etag.clone() else {
        if slices == 1 {
            return Ok((head, object_body_stream(first.body)));
        }
        // No ETag to pin later slices to: fetch the object in one piece instead.
        drop(first);
        let out = origin
            .get_object(&key, &GetObjectRequest::default())
            .await?;
        return Ok((Arc::new(out.meta), object_body_stream(out.body)));
    };
    struct State {
        origin: Arc<dyn Origin>,
        key: String,
        etag: EntityTag,
        size: u64,
        slice_size: u64,
        slices: u64,
        next: u64,
        current: Option<ObjectBody>,
        ahead: Option<AbortOnDrop<Result<GetObjectOutput>>>,
        failed: bool,
        sink: Option<SliceSink>,
        audience: Option<Audience>,
        abandoned_fill: u64,
        /// Nobody reads any more: finish the current slice for the cache, then stop.
        last_slice: bool,
        /// Bytes of the current slice still to come.
        slice_left: u64,
    }
    let state = State {
        origin,
        key,
        etag,
        size,
        slice_size,
        slices,
        next: 1,
        current: Some(first.body),
        ahead: None,
        failed: false,
        sink,
        audience,
        abandoned_fill,
        last_slice: false,
        slice_left: slice_size.min(size),
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.failed {
            return None;
        }
        loop {
            if !st.last_slice && st.audience.as_ref().is_some_and(Audience::is_gone) {
                // Every reader left. Without a cache fill there is nothing to finish; with one,
                // finish the slice in progress only when little of it is left.
                if st.sink.is_some() && st.slice_left <= st.abandoned_fill {
                    st.last_slice = true;
                    st.ahead = None; // aborts the read-ahead request
                } else if st.audience.as_ref().is_some_and(Audience::close_if_unread) {
                    return None;
                }
            }
            if let Some(body) = st.current.as_mut() {
                if st.ahead.is_none() && !st.last_slice && st.next < st.slices {
                    // Read-ahead: the next slice's request goes out while this one streams.
                    let (origin, key, etag) =
                        (Arc::clone(&st.origin), st.key.clone(), st.etag.clone());
                    let (i, s, size) = (st.next, st.slice_size, st.size);
                    let fill = st.sink.as_ref().map(|k| k.fill.clone());
                    let trace = crate::otel::Current::capture();
                    st.ahead = Some(AbortOnDrop(tokio::spawn(trace.wrap(async move {
                        next_slice(fill.as_ref(), &*origin, &key, i, s, size, &etag).await
                    }))));
                }
                match body.next().await {
                    Some(Ok(chunk)) => {
                        st.slice_left = st.slice_left.saturating_sub(chunk.len() as u64);
                        if let Some(sink) = st.sink.as_mut() {
                            sink.push(&chunk).await;
                        }
                        return Some((Ok(chunk), st));
                    }
                    Some(Err(e)) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                    None => st.current = None,
                }
            }
            if st.next >= st.slices {
                return None;
            }
            if st.last_slice {
                // The slice for the cache is done: stop, unless someone joined meanwhile.
                if st.audience.as_ref().is_none_or(Audience::close_if_unread) {
                    return None;
                }
                st.last_slice = false;
            }
            let next = match st.ahead.take() {
                Some(mut task) => match (&mut task.0).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Internal,
                        "slice read-ahead task failed",
                    )),
                },
                None => {
                    let fill = st.sink.as_ref().map(|k| k.fill.clone());
                    next_slice(
                        fill.as_ref(),
                        &*st.origin,
                        &st.key,
                        st.next,
                        st.slice_size,
                        st.size,
                        &st.etag,
                    )
                    .await
                }
            };
            match next {
                Ok(out) => {
                    st.next += 1;
                    st.slice_left = out.content_length;
                    st.current = Some(out.body);
                }
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    });
    Ok((head, Box::pin(stream)))
}

/// Slice `index` (not the first) of the version `etag`: claimed for the fleet when it will be
/// stored (`fill`), the claim settled with its body.
async fn next_slice(
    fill: Option<&Fill>,
    origin: &dyn Origin,
    key: &str,
    index: u64,
    slice_size: u64,
    size: u64,
    etag: &EntityTag,
) -> Result<GetObjectOutput> {
    let (out, lease) = fetch_claimed(fill, key, index, slice_size, Some(size), Some(etag), || {
        fetch_slice(origin, key, index, slice_size, Some(size), Some(etag))
    })
    .await?;
    Ok(settle(out, lease, fill.is_some()))
}
