//! One origin fetch per cold slice: within this process, and across a fleet sharing Redis.
//!
//! Before asking the origin for a slice that will be cached, a fetch *claims* it: first in this
//! process (so two flights of one object, say a late joiner that started its own once the first
//! was past its buffer, never fetch the same slice twice), then, with fleet-wide coalescing, in
//! Redis (see [`crate::fleet`]). The claim's holder fetches and stores the slice as usual; the
//! others wait for it to land in the cache (this process's tiers, or Redis) and read it from
//! there. A waiter whose holder failed, was dropped, stores nothing, died (a fleet claim expires
//! when no longer renewed) or takes longer than the wait limit fetches on its own. Slices that
//! will not be cached are not claimed: there is nothing to share.
//!
//! The trade-off: a waiter's clients get their first byte of a slice when the whole slice has
//! landed (one slice of latency, 4 MiB by default), not as its bytes stream in.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use yatagarasu_core::{ByteRange, ContentRange, EntityTag, ObjectMeta, Result};
use yatagarasu_s3::{GetObjectOutput, ObjectBody};

use super::slices::Fill;
use crate::fleet::{Claim, Lease};

/// Longest a fetch waits for another flight of this process to land a slice.
const LOCAL_WAIT: Duration = Duration::from_secs(30);

/// A waiter gives up on a holder whose body has started but not moved for this long: its flight
/// is held back by a slow reader (backpressure), and waiting on it would make every other
/// reader of the object as slow. Long enough that a busy machine's pauses are not taken for a
/// stall (with 0.5 s here and 0.5 s of landing grace, a loaded CI run made 28 origin GETs for 16
/// slices).
const STALLED: Duration = Duration::from_secs(2);

/// The slices this process is fetching for its cache now, each with the waiters to wake when it
/// lands (or its fetch gives up) and the bytes it has read so far.
#[derive(Debug, Default)]
pub(crate) struct LocalClaims {
    held: Mutex<HashMap<Vec<u8>, Arc<Held>>>,
}

#[derive(Debug, Default)]
struct Held {
    landed: Notify,
    progress: std::sync::atomic::AtomicU64,
}

/// This process's claim on one slice; released (waking its waiters) when dropped.
pub(super) struct LocalClaim {
    claims: Arc<LocalClaims>,
    name: Vec<u8>,
    held: Arc<Held>,
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        self.claims
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.name);
        self.held.landed.notify_waiters();
    }
}

impl LocalClaims {
    /// The claim on `name`, or the holder's state to wait on.
    fn claim(self: &Arc<Self>, name: &[u8]) -> std::result::Result<LocalClaim, Arc<Held>> {
        let mut map = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = map.get(name) {
            return Err(Arc::clone(h));
        }
        let held = Arc::new(Held::default());
        map.insert(name.to_vec(), Arc::clone(&held));
        Ok(LocalClaim {
            claims: Arc::clone(self),
            name: name.to_vec(),
            held,
        })
    }

    fn is_held(&self, name: &[u8]) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(name)
    }
}

/// Wait until the holder `held` of `name` lands its slice or gives up (true), or until it stalls
/// or `limit` passes (false: fetch alone).
async fn wait_for_holder(claims: &LocalClaims, name: &[u8], held: &Held, limit: Instant) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let mut seen = held.progress.load(Relaxed);
    loop {
        let woken = held.landed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if !claims.is_held(name) {
            return true;
        }
        let now = Instant::now();
        if now >= limit {
            return false;
        }
        if tokio::time::timeout(STALLED.min(limit - now), woken)
            .await
            .is_ok()
        {
            return true;
        }
        let progress = held.progress.load(Relaxed);
        if progress > 0 && progress == seen {
            return false;
        }
        seen = progress;
    }
}

/// What a fetch holds while it fetches a slice for others: its claim in this process, and its
/// claim in the fleet. [`settle`] ties them to the slice's body.
pub(super) struct Claims {
    local: Option<LocalClaim>,
    fleet: Option<Lease>,
}

impl Claims {
    /// This process's claim alone (no fleet, or the fleet could not be asked).
    fn local(local: LocalClaim) -> Self {
        Self {
            local: Some(local),
            fleet: None,
        }
    }
}

fn claim_name(origin: &str, key: &str, index: u64) -> Vec<u8> {
    format!("{origin}\0{key}\0{index}").into_bytes()
}

/// Slice `index` of `key` through `fetch` (the origin request), unless another flight of this
/// process or another instance of the fleet is fetching it: then from the cache once it lands
/// there. The claims this fetch holds come back with the answer: [`settle`] them with its body.
pub(super) async fn fetch_claimed<F, Fut>(
    fill: Option<&Fill>,
    key: &str,
    index: u64,
    slice_size: u64,
    size: Option<u64>,
    etag: Option<&EntityTag>,
    fetch: F,
) -> Result<(GetObjectOutput, Option<Claims>)>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<GetObjectOutput>>,
{
    let Some(fill) = fill else {
        return Ok((fetch().await?, None));
    };
    let name = claim_name(&fill.origin, key, index);
    let claims = fill.cache.claims();
    let started = Instant::now();
    // Whether the slice may have landed since the caller last looked: after a wait, or for any
    // slice but the first (the first is only fetched after the caller found no record).
    let mut may_have_landed = etag.is_some();
    let local = loop {
        match claims.claim(&name) {
            Ok(local) => break local,
            Err(held) => {
                may_have_landed = true;
                if !wait_for_holder(claims, &name, &held, started + LOCAL_WAIT).await {
                    // Stalled or too slow: fetch alone, unclaimed.
                    return Ok((fetch().await?, None));
                }
                if let Some(out) = from_cache(fill, key, index, slice_size, size, etag).await {
                    return Ok((out, None));
                }
            }
        }
    };
    if may_have_landed && let Some(out) = from_cache(fill, key, index, slice_size, size, etag).await
    {
        return Ok((out, None));
    }
    let Some(fleet) = fill.cache.fleet().cloned() else {
        return fetch_holding(fetch, Claims::local(local)).await;
    };
    let deadline = Instant::now() + fleet.wait_limit();
    loop {
        match Box::pin(fleet.claim(&name)).await {
            Claim::Mine(lease) => {
                if may_have_landed
                    && let Some(out) = from_cache(fill, key, index, slice_size, size, etag).await
                {
                    return Ok((out, None));
                }
                let claims = Claims {
                    local: Some(local),
                    fleet: Some(lease),
                };
                return fetch_holding(fetch, claims).await;
            }
            Claim::Unavailable => {
                return fetch_holding(fetch, Claims::local(local)).await;
            }
            Claim::Taken => {}
        }
        // Another instance fetches it; this process's other flights wait on this one meanwhile.
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(out) = from_cache(fill, key, index, slice_size, size, etag).await {
                fleet.count_wait(true);
                return Ok((out, None));
            }
            if Instant::now() >= deadline {
                fleet.count_wait(false);
                return fetch_holding(fetch, Claims::local(local)).await;
            }
            match Box::pin(fleet.claimed(&name)).await {
                Some(true) => {}
                // Released without the slice, or expired: claim it (after one more look).
                Some(false) => {
                    may_have_landed = true;
                    break;
                }
                None => {
                    fleet.count_wait(false);
                    return fetch_holding(fetch, Claims::local(local)).await;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Fetch while holding `claims`; the answer's head counts as progress (its body may wait for
/// its flight to reach it, read-ahead, which is no progress).
async fn fetch_holding<F, Fut>(
    fetch: F,
    claims: Claims,
) -> Result<(GetObjectOutput, Option<Claims>)>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<GetObjectOutput>>,
{
    let out = fetch().await?;
    if let Some(l) = &claims.local {
        l.held
            .progress
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok((out, Some(claims)))
}

/// The slice as another flight or instance stored it, in the shape of the origin's answer.
async fn from_cache(
    fill: &Fill,
    key: &str,
    index: u64,
    slice_size: u64,
    size: Option<u64>,
    etag: Option<&EntityTag>,
) -> Option<GetObjectOutput> {
    let (meta, body) = match etag {
        // A later slice: its version is known; the record is read only once the slice is there.
        Some(e) => {
            let body = fill.cache.slice(&fill.origin, key, e, index).await?;
            let meta = match fill.cache.record(&fill.origin, key).await {
                Some(r) if r.meta.etag.as_ref().is_some_and(|t| t.strong_eq(e)) => r.meta,
                _ => {
                    let mut meta = ObjectMeta::with_size(size?);
                    meta.etag = Some(e.clone());
                    meta
                }
            };
            (meta, body)
        }
        // The first slice: the record says which version the other fetch is storing.
        None => {
            let r = fill
                .cache
                .record(&fill.origin, key)
                .await
                .filter(|r| !r.missing)?;
            let e = r.meta.etag.clone()?;
            let body = fill.cache.slice(&fill.origin, key, &e, index).await?;
            (r.meta, body)
        }
    };
    let size = size.unwrap_or(meta.size);
    let start = index * slice_size;
    let len = slice_size.min(size.checked_sub(start)?);
    if body.len() as u64 != len || len == 0 {
        return None;
    }
    Some(GetObjectOutput::partial(
        meta,
        ContentRange::Bytes {
            range: ByteRange::new(start, start + len - 1),
            complete: Some(size),
        },
        len,
        ObjectBody::from_chunks(vec![body]),
    ))
}

/// Tie the claims to the slice's body: when the body has been read to its end the slice has been
/// stored in this process's tiers (`stores`): the local claim is released (its waiters find the
/// slice) and the fleet claim kept a moment for the background write to land in Redis. A body
/// that fails, is dropped early, or is not stored gives every claim up at once.
pub(super) fn settle(
    out: GetObjectOutput,
    claims: Option<Claims>,
    stores: bool,
) -> GetObjectOutput {
    let Some(claims) = claims else {
        return out;
    };
    if !stores {
        return out; // the claims are dropped: released
    }
    out.map_body(|body| {
        ObjectBody::from_stream(futures_util::stream::unfold(
            (body, Some(claims)),
            |(mut body, mut claims)| async move {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        if let Some(l) = claims.as_ref().and_then(|c| c.local.as_ref()) {
                            l.held.progress.fetch_add(
                                chunk.len() as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                        }
                        Some((Ok(chunk), (body, claims)))
                    }
                    Some(Err(e)) => {
                        drop(claims.take());
                        Some((Err(e), (body, None)))
                    }
                    None => {
                        if let Some(Claims { local, fleet }) = claims.take() {
                            if let Some(l) = fleet {
                                l.landed();
                            }
                            drop(local);
                        }
                        None
                    }
                }
            },
        ))
    })
}
