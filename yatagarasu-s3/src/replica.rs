//! Replica failover: one logical bucket served by several origins holding the same objects (S3
//! cross-region replication, a MinIO mirror, a second provider), read from the best one that works.
//!
//! - **Which replica**: the best priority (lowest number) first, ties in the order given; replicas
//!   whose circuit breaker is open go last. A replica that failed is therefore not even connected
//!   to while its breaker is open, and takes traffic back when its open time is over: the next
//!   request probes it (a real request; if it fails, the request moves on to the next replica, so
//!   no reader notices), and once the breaker closes it is first again.
//! - **Before the first byte**: a request that fails with an origin fault (connect error, timeout,
//!   5xx, throttling, a breaker that is open) is sent to the next replica in the same call. An
//!   answer that is not a fault (404, 403, 412, 304, 416) is the answer: it is returned as is.
//! - **After the first byte**: a body that breaks (after the replica's own client has resumed it as
//!   far as it could) continues from another replica with `Range` + `If-Match` on the ETag already
//!   being sent. A replica holding another version (a different ETag, or a 412) ends the body with an
//!   error instead: two versions are never spliced. Replicas must therefore report the same ETag for
//!   the same object, as S3 replication does.
//!
//! Give each replica its own [`CircuitBreaker`](crate::CircuitBreaker) (and, if wanted, its own
//! [`ConcurrencyLimit`](crate::ConcurrencyLimit)): the set reads each replica's breaker state from
//! [`Origin::origin_stats`] to order them. Without a breaker a failed replica is still failed over,
//! but it is asked first every time.
//!
//! ```
//! use std::time::Duration;
//! use yatagarasu_s3::{BreakerOptions, CircuitBreaker, Replica, ReplicaSet, S3Client};
//!
//! let primary = S3Client::builder("media").region("us-west-2").anonymous().build()?;
//! let backup = S3Client::builder("media-replica").region("eu-west-1").anonymous().build()?;
//! let breaker = || BreakerOptions::default().open_timeout(Duration::from_secs(10));
//! let origin = ReplicaSet::new(vec![
//!     Replica::new("us", 1, CircuitBreaker::new(primary, breaker())),
//!     Replica::new("eu", 2, CircuitBreaker::new(backup, breaker())),
//! ])?;
//! assert_eq!(origin.stats().replicas[0].name, "us");
//! # Ok::<(), yatagarasu_s3::Error>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt as _;
use yatagarasu_core::{ContentRange, EntityTag, Error, ErrorKind, ObjectMeta, RangeSpec, Result};

use crate::breaker::is_fault;
use crate::{
    BreakerState, GetObjectOutput, GetObjectRequest, HeadObjectRequest, ObjectBody, Origin,
    OriginFuture, OriginStats,
};

/// One origin of a [`ReplicaSet`], with its name and priority.
#[derive(Debug)]
pub struct Replica {
    name: String,
    priority: u32,
    origin: Arc<dyn Origin>,
}

impl Replica {
    /// A replica called `name` (for logs, metrics and stats) of priority `priority` (lower is
    /// preferred), reading through `origin`.
    pub fn new(name: impl Into<String>, priority: u32, origin: impl Origin) -> Self {
        Self {
            name: name.into(),
            priority,
            origin: Arc::new(origin),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its priority (lower is preferred).
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// The origin it reads through.
    pub fn origin(&self) -> &Arc<dyn Origin> {
        &self.origin
    }
}

/// What a [`ReplicaSet`] reports (see [`OriginStats::replicas`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaSetStats {
    /// Each replica, best priority first.
    pub replicas: Vec<ReplicaStats>,
    /// Times a request moved on to the next replica after a fault, before its first byte.
    pub failovers: u64,
    /// Bodies that broke and continued from another replica.
    pub body_failovers: u64,
    /// Bodies ended with an error because the next replica held another version.
    pub version_mismatches: u64,
}

/// One replica's part of [`ReplicaSetStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaStats {
    /// Its name.
    pub name: String,
    /// Its priority.
    pub priority: u32,
    /// Requests sent to it (GETs, HEADs and body continuations).
    pub requests: u64,
    /// Whether its last readiness probe ([`Origin::probe`] on the set) reached it; `None` before
    /// the first.
    pub reachable: Option<bool>,
    /// What its own decorators report: its breaker's state, its client's retries, its cap's load.
    pub origin: OriginStats,
}

#[derive(Debug)]
struct Slot {
    replica: Replica,
    requests: AtomicU64,
    /// 0 unknown, 1 reachable, 2 unreachable (last probe).
    reachable: AtomicU8,
}

#[derive(Debug)]
struct Inner {
    /// Best priority first; ties in the order given.
    slots: Vec<Slot>,
    failovers: AtomicU64,
    body_failovers: AtomicU64,
    version_mismatches: AtomicU64,
}

/// An [`Origin`] that reads from the best working of several replicas (see the module docs).
#[derive(Debug, Clone)]
pub struct ReplicaSet {
    inner: Arc<Inner>,
}

impl ReplicaSet {
    /// A set of `replicas` (at least one; names unique).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the list is empty or two replicas share a name.
    pub fn new(replicas: impl IntoIterator<Item = Replica>) -> Result<Self> {
        let mut slots: Vec<Slot> = replicas
            .into_iter()
            .map(|replica| Slot {
                replica,
                requests: AtomicU64::new(0),
                reachable: AtomicU8::new(0),
            })
            .collect();
        if slots.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "a replica set needs at least one replica",
            ));
        }
        for (i, s) in slots.iter().enumerate() {
            if slots[..i].iter().any(|o| o.replica.name == s.replica.name) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("two replicas are called `{}`", s.replica.name),
                ));
            }
        }
        // Stable: equal priorities keep the order given.
        slots.sort_by_key(|s| s.replica.priority);
        Ok(Self {
            inner: Arc::new(Inner {
                slots,
                failovers: AtomicU64::new(0),
                body_failovers: AtomicU64::new(0),
                version_mismatches: AtomicU64::new(0),
            }),
        })
    }

    /// The replicas, best priority first.
    pub fn replicas(&self) -> impl Iterator<Item = &Replica> {
        self.inner.slots.iter().map(|s| &s.replica)
    }

    /// Its counters and each replica's state.
    pub fn stats(&self) -> ReplicaSetStats {
        let i = &self.inner;
        ReplicaSetStats {
            replicas: i
                .slots
                .iter()
                .map(|s| ReplicaStats {
                    name: s.replica.name.clone(),
                    priority: s.replica.priority,
                    requests: s.requests.load(Ordering::Relaxed),
                    reachable: match s.reachable.load(Ordering::Relaxed) {
                        1 => Some(true),
                        2 => Some(false),
                        _ => None,
                    },
                    origin: s.replica.origin.origin_stats(),
                })
                .collect(),
            failovers: i.failovers.load(Ordering::Relaxed),
            body_failovers: i.body_failovers.load(Ordering::Relaxed),
            version_mismatches: i.version_mismatches.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// The order to try the replicas in for one request: open breakers last, then by priority
    /// (the slots are sorted by priority already; the index keeps ties in the order given).
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<(bool, u32, usize)> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let open = s
                    .replica
                    .origin
                    .origin_stats()
                    .breaker
                    .is_some_and(|b| b.state == BreakerState::Open);
                (open, s.replica.priority, i)
            })
            .collect();
        if self.slots.len() > 1 {
            order.sort_unstable();
        }
        order.into_iter().map(|(_, _, i)| i).collect()
    }

    /// Ask each replica in turn until one answers with something other than a fault.
    async fn first_answer<'a, T, F>(&'a self, key: &'a str, mut ask: F) -> Result<(usize, T)>
    where
        F: FnMut(&'a dyn Origin) -> OriginFuture<'a, T>,
    {
        let order = self.order();
        let mut last = None;
        for (n, &i) in order.iter().enumerate() {
            let slot = &self.slots[i];
            slot.requests.fetch_add(1, Ordering::Relaxed);
            match ask(&*slot.replica.origin).await {
                Ok(v) => return Ok((i, v)),
                Err(e) if is_fault(&e) && n + 1 < order.len() => {
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(replica = %slot.replica.name, key, error = %e, "replica failed; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Internal, "no replica to ask")))
    }
}

impl Origin for ReplicaSet {
    fn bucket(&self) -> &str {
        self.inner.slots[0].replica.origin.bucket()
    }

    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput> {
        Box::pin(async move {
            let (used, out) = self
                .inner
                .first_answer(key, |o| o.get_object(key, req))
                .await?;
            Ok(self.continue_on_break(used, key, req, out))
        })
    }

    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta> {
        Box::pin(async move {
            let (_, meta) = self
                .inner
                .first_answer(key, |o| o.head_object(key, req))
                .await?;
            Ok(meta)
        })
    }

    /// Probes every replica at once; ready when any of them is. Each replica's result shows in
    /// [`ReplicaStats::reachable`].
    fn probe(&self) -> OriginFuture<'_, ()> {
        Box::pin(async move {
            let probes = self.inner.slots.iter().map(|s| async move {
                let r = s.replica.origin.probe().await;
                s.reachable
                    .store(if r.is_ok() { 1 } else { 2 }, Ordering::Relaxed);
                r
            });
            let results = futures_util::future::join_all(probes).await;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Err(first_error.unwrap_or_else(|| Error::new(ErrorKind::Internal, "no replica")))
        })
    }

    /// The best-priority replica's identity: the replicas hold the same objects, so cached entries
    /// stay valid across failover (and across adding or removing other replicas).
    fn identity(&self) -> String {
        self.inner.slots[0].replica.origin.identity()
    }

    fn origin_stats(&self) -> OriginStats {
        OriginStats {
            replicas: Some(self.stats()),
            ..OriginStats::default()
        }
    }
}

/// A body being read from replica `current`, able to continue from another one.
struct Continuation {
    set: Arc<Inner>,
    key: String,
    version_id: Option<String>,
    etag: EntityTag,
    body: ObjectBody,
    /// Absolute offset of the next byte, and one past the last.
    next: u64,
    end: u64,
    /// Replicas this body was read from (never asked again for it).
    used: Vec<usize>,
    finished: bool,
}

impl ReplicaSet {
    /// Wrap `out`'s body so that a break continues from another replica, when that can be done
    /// safely: more than one replica, an ETag to pin the version, a known length.
    fn continue_on_break(
        &self,
        used: usize,
        key: &str,
        req: &GetObjectRequest,
        out: GetObjectOutput,
    ) -> GetObjectOutput {
        let (start, end) = match out.content_range {
            Some(ContentRange::Bytes { range, .. }) => (range.start, range.end + 1),
            _ => (0, out.content_length),
        };
        let Some(etag) = out.meta.etag.clone() else {
            return out;
        };
        if self.inner.slots.len() < 2 || start >= end {
            return out;
        }
        let set = Arc::clone(&self.inner);
        let key = key.to_owned();
        let version_id = req.version_id.clone();
        out.map_body(move |body| {
            let st = Continuation {
                set,
                key,
                version_id,
                etag,
                body,
                next: start,
                end,
                used: vec![used],
                finished: false,
            };
            ObjectBody::from_stream(futures_util::stream::unfold(st, continuation_step))
        })
    }
}

async fn continuation_step(mut st: Continuation) -> Option<(Result<Bytes>, Continuation)> {
    if st.finished {
        return None;
    }
    loop {
        let failure = match st.body.next().await {
            Some(Ok(chunk)) => {
                st.next += chunk.len() as u64;
                return Some((Ok(chunk), st));
            }
            None => return None,
            Some(Err(e)) if is_fault(&e) && st.next < st.end => e,
            Some(Err(e)) => {
                st.finished = true;
                return Some((Err(e), st));
            }
        };
        match continue_elsewhere(&mut st).await {
            Ok(body) => st.body = body,
            Err(e) => {
                st.finished = true;
                // No replica left to ask: the original failure says what happened.
                return Some((Err(e.unwrap_or(failure)), st));
            }
        }
    }
}

/// The rest of the body from a replica not used yet, pinned to the ETag being sent. `Err(None)`
/// when no replica could answer; `Err(Some(e))` when one answered with another version.
async fn continue_elsewhere(
    st: &mut Continuation,
) -> std::result::Result<ObjectBody, Option<Error>> {
    let req = GetObjectRequest {
        range: Some(RangeSpec::Int {
            first: st.next,
            last: Some(st.end - 1),
        }),
        if_match: Some(st.etag.to_string()),
        version_id: st.version_id.clone(),
        ..GetObjectRequest::default()
    };
    for i in st.set.order() {
        if st.used.contains(&i) {
            continue;
        }
        st.used.push(i);
        let slot = &st.set.slots[i];
        slot.requests.fetch_add(1, Ordering::Relaxed);
        let out = match slot.replica.origin.get_object(&st.key, &req).await {
            Ok(out) => out,
            Err(e) if e.kind() == ErrorKind::PreconditionFailed => {
                return Err(Some(version_mismatch(st, &slot.replica)));
            }
            Err(e) => {
                tracing::debug!(replica = %slot.replica.name, key = %st.key, error = %e, "replica could not continue the body");
                continue;
            }
        };
        // Stores that ignore If-Match still say which version they sent.
        if !out
            .meta
            .etag
            .as_ref()
            .is_some_and(|t| t.strong_eq(&st.etag))
        {
            return Err(Some(version_mismatch(st, &slot.replica)));
        }
        match out.content_range {
            Some(ContentRange::Bytes { range, .. })
                if range.start == st.next && range.end + 1 == st.end =>
            {
                st.set.body_failovers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(replica = %slot.replica.name, key = %st.key, offset = st.next, "object body continued from another replica");
                return Ok(out.body);
            }
            _ => continue,
        }
    }
    Err(None)
}

fn version_mismatch(st: &Continuation, replica: &Replica) -> Error {
    st.set.version_mismatches.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(replica = %replica.name, key = %st.key, offset = st.next, "replica holds another version; ending the body");
    Error::new(
        ErrorKind::Upstream,
        format!(
            "the body broke at byte {} and replica `{}` holds another version of the object; not splicing versions",
            st.next, replica.name
        ),
    )
    .with_upstream_code("PreconditionFailed")
    .with_bucket(replica.origin.bucket())
    .with_key(st.key.clone())
    .with_operation("GetObject")
}
