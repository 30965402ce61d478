//! A fleet of proxies sharing one Redis tier, acting as one cache: a purge on any instance reaches
//! every instance's own tiers (memory, disk), and an instance that may have missed purges drops
//! what it can no longer trust.
//!
//! - **Announce**: after a purge has removed its entries from this instance's tiers and from
//!   Redis, the instance bumps the purge's *scope generation* in Redis (`HINCRBY
//!   {prefix}fleet:generations SCOPE 1`; the scope is the origin's identity, or `*` for a purge of
//!   everything) and publishes the purge with that generation on `{prefix}fleet:purge`.
//! - **Listen**: every instance subscribes; a purge from another instance is applied to its local
//!   tiers at once (pub/sub latency: milliseconds). A generation that skips a number means a
//!   message was missed: the whole scope is dropped locally.
//! - **Resync**: after (re)subscribing, and every `resync_interval` while subscribed, the instance
//!   reads every generation and drops each scope whose generation is not the one it knows (a purge
//!   it missed while disconnected, or a Redis that lost its data). Known generations are kept in a
//!   file beside the disk tier, so a restarted instance also drops what was purged while it was
//!   down; without such a file (first start) it adopts the current generations.
//! - Redis being down never fails a request or a purge: the purge still clears this instance and
//!   the announcement failure is counted (and said in the admin answer); others catch up by resync
//!   once Redis is back and the purge is repeated, or when their generation check notices.
//!
//! Entries are never checked against Redis on a hit: a hit stays a local read. The price is that
//! another instance serves a purged object until the message arrives (milliseconds) or, if its
//! subscription is down, until its next resync.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use yatagarasu_cache::RedisConnection;
use yatagarasu_core::{Error, ErrorKind};

use crate::cache::ObjectCache;

/// Settings of a [`Fleet`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetOptions {
    /// The shared Redis: one server, a Cluster, or a Sentinel-managed primary.
    pub target: yatagarasu_cache::RedisTarget,
    /// Prefix of the fleet's keys and channel (the Redis tier's prefix, so fleets sharing a Redis
    /// stay apart).
    pub key_prefix: String,
    /// This instance's name in messages, logs, metrics and stats.
    pub instance_id: String,
    /// Where known generations are kept across restarts (beside the disk tier); `None`: nowhere.
    pub state_file: Option<PathBuf>,
    /// How often generations are checked while subscribed (default 5 s).
    pub resync_interval: Duration,
    /// Fleet-wide purges: announce this instance's, apply the others' (default on).
    pub invalidation: bool,
    /// Fleet-wide coalescing: one instance fetches a cold slice, the others wait for it to land in
    /// Redis (default on).
    pub coalescing: bool,
    /// How long a claim on a slice lasts unless renewed (renewed every third of it while the
    /// fetch runs; default 5 s): an instance that dies holding one delays the others this long.
    pub lease_ttl: Duration,
    /// Longest a request waits for another instance's fetch before fetching on its own
    /// (default 10 s).
    pub wait_limit: Duration,
}

impl FleetOptions {
    /// Defaults for one Redis and one instance name.
    pub fn new(target: yatagarasu_cache::RedisTarget, instance_id: impl Into<String>) -> Self {
        Self {
            target,
            key_prefix: "yatagarasu:".to_owned(),
            instance_id: instance_id.into(),
            state_file: None,
            resync_interval: Duration::from_secs(5),
            invalidation: true,
            coalescing: true,
            lease_ttl: Duration::from_secs(5),
            wait_limit: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for FleetOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetOptions")
            .field("target", &self.target)
            .field("key_prefix", &self.key_prefix)
            .field("instance_id", &self.instance_id)
            .field("state_file", &self.state_file)
            .field("resync_interval", &self.resync_interval)
            .field("invalidation", &self.invalidation)
            .field("coalescing", &self.coalescing)
            .field("lease_ttl", &self.lease_ttl)
            .field("wait_limit", &self.wait_limit)
            .finish()
    }
}

/// What a [`Fleet`] has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetStats {
    /// Whether the purge subscription is up now.
    pub subscribed: bool,
    /// Purges this instance announced.
    pub announced: u64,
    /// Purges it could not announce (Redis unreachable).
    pub announce_failures: u64,
    /// Purges from other instances applied here.
    pub applied: u64,
    /// Scopes dropped whole because a purge may have been missed.
    pub resynced_scopes: u64,
    /// Slices this instance claimed and fetched for the fleet.
    pub leases_taken: u64,
    /// Slices read from the shared tier after waiting for another instance's fetch.
    pub waits_served: u64,
    /// Waits that gave up (the claim's holder died, was too slow, or stored nothing) and fetched
    /// alone.
    pub waits_abandoned: u64,
}

/// One purge, as announced to the fleet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FleetPurge {
    /// Everything.
    All,
    /// Objects of an origin (by identity) whose key starts with `prefix` ("" for all of them).
    Prefix { origin: String, prefix: String },
    /// One object.
    Object { origin: String, key: String },
}

impl FleetPurge {
    /// The start of the names of the slice claims this purge covers (see `fetch::claims`).
    pub(crate) fn claims_prefix(&self) -> Vec<u8> {
        match self {
            Self::All => Vec::new(),
            Self::Prefix { origin, prefix } => format!("{origin}\0{prefix}").into_bytes(),
            Self::Object { origin, key } => format!("{origin}\0{key}\0").into_bytes(),
        }
    }

    fn scope(&self) -> &str {
        match self {
            Self::All => "*",
            Self::Prefix { origin, .. } | Self::Object { origin, .. } => origin,
        }
    }

    /// Apply to `cache` (this instance's local tiers).
    async fn apply(&self, cache: &ObjectCache) {
        let _removed = match self {
            Self::All => cache.purge_all().await,
            Self::Prefix { origin, prefix } => cache.purge_prefix(origin, prefix).await,
            Self::Object { origin, key } => cache.purge_object(origin, key).await,
        };
    }

    /// Drop everything of `scope` from `cache`.
    async fn drop_scope(scope: &str, cache: &ObjectCache) {
        if scope == "*" {
            cache.purge_all().await;
        } else {
            cache.purge_prefix(scope, "").await;
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Message {
    /// The announcing instance's id (for logs), and a number drawn at its start that tells this
    /// process's own messages apart even when two instances share an id.
    from: String,
    sender: u64,
    generation: u64,
    purge: FleetPurge,
}

/// This instance's membership of a fleet (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: FleetOptions,
    conn: tokio::sync::Mutex<Option<RedisConnection>>,
    /// Drawn at start: this process's mark on its messages.
    sender: u64,
    channel: String,
    generations_key: String,
    /// Generations known per scope; `None` until the first resync.
    known: Mutex<Option<HashMap<String, u64>>>,
    /// Scopes a periodic resync found behind, with the generation known then: a message may just
    /// be on its way, so they are dropped only if still there at the next resync.
    behind: Mutex<HashMap<String, u64>>,
    subscribed: AtomicBool,
    /// Becomes true after the first resync.
    synced: tokio::sync::watch::Sender<bool>,
    announced: AtomicU64,
    announce_failures: AtomicU64,
    applied: AtomicU64,
    resynced_scopes: AtomicU64,
    leases_taken: AtomicU64,
    waits_served: AtomicU64,
    waits_abandoned: AtomicU64,
}

/// A Redis operation's time limit: a fleet announcement never holds an admin call for long.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

impl Fleet {
    /// Join the fleet sharing `options.target`. Connects lazily (see [`Fleet::listen`]).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when a URL is not a Redis URL.
    pub fn new(options: FleetOptions) -> Result<Self, Error> {
        options
            .target
            .check()
            .map_err(|e| Error::new(ErrorKind::Config, format!("fleet: not a Redis URL: {e}")))?;
        let channel = format!("{}fleet:purge", options.key_prefix);
        let generations_key = format!("{}fleet:generations", options.key_prefix);
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                conn: tokio::sync::Mutex::new(None),
                sender: process_mark(),
                channel,
                generations_key,
                known: Mutex::new(None),
                behind: Mutex::new(HashMap::new()),
                subscribed: AtomicBool::new(false),
                synced: tokio::sync::watch::channel(false).0,
                announced: AtomicU64::new(0),
                announce_failures: AtomicU64::new(0),
                applied: AtomicU64::new(0),
                resynced_scopes: AtomicU64::new(0),
                leases_taken: AtomicU64::new(0),
                waits_served: AtomicU64::new(0),
                waits_abandoned: AtomicU64::new(0),
            }),
        })
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.inner.options.instance_id
    }

    /// Its counters.
    pub fn stats(&self) -> FleetStats {
        let i = &self.inner;
        FleetStats {
            subscribed: i.subscribed.load(Ordering::Relaxed),
            announced: i.announced.load(Ordering::Relaxed),
            announce_failures: i.announce_failures.load(Ordering::Relaxed),
            applied: i.applied.load(Ordering::Relaxed),
            resynced_scopes: i.resynced_scopes.load(Ordering::Relaxed),
            leases_taken: i.leases_taken.load(Ordering::Relaxed),
            waits_served: i.waits_served.load(Ordering::Relaxed),
            waits_abandoned: i.waits_abandoned.load(Ordering::Relaxed),
        }
    }

    /// Whether purges are shared across the fleet.
    pub fn invalidation(&self) -> bool {
        self.inner.options.invalidation
    }

    /// Whether cold slices are coordinated across the fleet.
    pub fn coalescing(&self) -> bool {
        self.inner.options.coalescing
    }

    /// Longest a request waits for another instance's fetch.
    pub(crate) fn wait_limit(&self) -> Duration {
        self.inner.options.wait_limit
    }

    pub(crate) fn count_wait(&self, served: bool) {
        let c = if served {
            &self.inner.waits_served
        } else {
            &self.inner.waits_abandoned
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Claim the fetch of `name` (a slice) for the fleet: `Mine` with a lease renewed until it is
    /// settled, `Taken` when another instance holds it, `Unavailable` when Redis cannot say (then
    /// fetch alone).
    pub(crate) async fn claim(&self, name: &[u8]) -> Claim {
        let key = self.lease_key(name);
        let ttl = millis(self.inner.options.lease_ttl);
        let inner = Arc::clone(&self.inner);
        let mark = self.inner.sender.to_string();
        let claimed = tokio::time::timeout(self.inner.options.lease_ttl, async {
            let mut conn = inner.connection().await?;
            redis::cmd("SET")
                .arg(&key)
                .arg(&mark)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query_async::<Option<String>>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        match claimed {
            Ok(Ok(Some(_))) => {
                self.inner.leases_taken.fetch_add(1, Ordering::Relaxed);
                Claim::Mine(Lease::start(Arc::clone(&self.inner), key))
            }
            Ok(Ok(None)) => Claim::Taken,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "fleet: cannot claim a slice; fetching alone");
                self.inner.failed().await;
                Claim::Unavailable
            }
            Err(_) => {
                self.inner.failed().await;
                Claim::Unavailable
            }
        }
    }

    /// Whether another instance still holds the claim on `name` (`None`: Redis cannot say).
    pub(crate) async fn claimed(&self, name: &[u8]) -> Option<bool> {
        let key = self.lease_key(name);
        let inner = Arc::clone(&self.inner);
        tokio::time::timeout(OP_TIMEOUT, async move {
            let mut conn = inner.connection().await.ok()?;
            redis::cmd("EXISTS")
                .arg(&key)
                .query_async::<bool>(&mut conn)
                .await
                .ok()
        })
        .await
        .ok()
        .flatten()
    }

    /// Drop every claim whose name starts with `prefix` (a purge: a claim kept while its slice
    /// lands would make the next reader wait for a slice that is gone).
    pub(crate) async fn drop_claims(&self, prefix: &[u8]) {
        let claims = self.lease_key(prefix);
        let inner = Arc::clone(&self.inner);
        let dropped = tokio::time::timeout(OP_TIMEOUT, async move {
            let mut conn = inner.connection().await?;
            yatagarasu_cache::delete_prefixed(&mut conn, &claims)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        if !matches!(dropped, Ok(Ok(_))) {
            tracing::debug!("fleet: could not drop the claims of a purge");
        }
    }

    fn lease_key(&self, name: &[u8]) -> Vec<u8> {
        let mut k = format!("{}fleet:lease:", self.inner.options.key_prefix).into_bytes();
        k.extend_from_slice(name);
        k
    }

    /// Wait (at most `limit`) until the first resync after start has dropped whatever was purged
    /// while this instance was away; whether it has. A server should not answer from its disk
    /// tier before that (the binary waits up to 2 s, then serves anyway: Redis may be down).
    pub async fn wait_synced(&self, limit: Duration) -> bool {
        let mut rx = self.inner.synced.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Tell the fleet about a purge already applied here (and to the shared tier). `Err` names
    /// why it could not be told; the failure is counted.
    pub(crate) async fn announce(&self, purge: FleetPurge) -> Result<(), String> {
        let r = tokio::time::timeout(OP_TIMEOUT, self.inner.announce(purge))
            .await
            .unwrap_or_else(|_| Err(format!("redis did not answer within {OP_TIMEOUT:?}")));
        if r.is_err() {
            self.inner.failed().await;
        }
        match &r {
            Ok(()) => self.inner.announced.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, "could not announce a purge to the fleet");
                self.inner.announce_failures.fetch_add(1, Ordering::Relaxed)
            }
        };
        r
    }

    /// Apply other instances' purges to `cache`'s local tiers, for as long as the runtime runs:
    /// subscribe, resync, apply messages and resync every `resync_interval`; reconnect with
    /// backoff (100 ms doubling to 5 s) when Redis goes away.
    pub(crate) fn listen(&self, cache: &ObjectCache) -> tokio::task::JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        let local = cache.local_only();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut was_up = true;
            loop {
                let r = inner.subscribe_and_apply(&local).await;
                inner.subscribed.store(false, Ordering::Relaxed);
                inner.failed().await;
                match r {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) if was_up => {
                        tracing::warn!(error = %e, "fleet purge subscription down; retrying");
                    }
                    Err(_) => {}
                }
                was_up = false;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }
}

impl Inner {
    async fn connection(&self) -> Result<RedisConnection, String> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .options
            .target
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// After a failed operation: with Sentinels, ask again for the primary next time.
    async fn failed(&self) {
        if self.options.target.reconnect_after_failure() {
            *self.conn.lock().await = None;
        }
    }

    async fn announce(&self, purge: FleetPurge) -> Result<(), String> {
        let mut conn = self.connection().await?;
        let generation: u64 = redis::cmd("HINCRBY")
            .arg(&self.generations_key)
            .arg(purge.scope())
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let scope = purge.scope().to_owned();
        let message = Message {
            from: self.options.instance_id.clone(),
            sender: self.sender,
            generation,
            purge,
        };
        let payload = serde_json::to_string(&message).map_err(|e| e.to_string())?;
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        // Our own purge: already applied here.
        self.note(&scope, generation);
        Ok(())
    }

    /// One subscription's life: returns when the connection ends.
    async fn subscribe_and_apply(&self, cache: &ObjectCache) -> Result<(), String> {
        let mut pubsub = self
            .options
            .target
            .pubsub()
            .await
            .map_err(|e| e.to_string())?;
        pubsub
            .subscribe(&self.channel)
            .await
            .map_err(|e| e.to_string())?;
        // Subscribed first, then read the generations: a purge in between is seen by both, and
        // applying it twice is harmless.
        self.resync(cache, false).await?;
        self.subscribed.store(true, Ordering::Relaxed);
        self.synced.send_replace(true);
        tracing::info!(instance = %self.options.instance_id, "fleet purge subscription up");
        let mut messages = pubsub.into_on_message();
        let mut tick = tokio::time::interval(self.options.resync_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                m = messages.next() => {
                    let Some(m) = m else {
                        return Err("the subscription's connection closed".to_owned());
                    };
                    let payload: Vec<u8> = m.get_payload_bytes().to_vec();
                    match serde_json::from_slice::<Message>(&payload) {
                        Ok(msg) => self.on_message(msg, cache).await,
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed fleet message"),
                    }
                }
                _ = tick.tick() => self.resync(cache, true).await?,
            }
        }
    }

    async fn on_message(&self, msg: Message, cache: &ObjectCache) {
        if msg.sender == self.sender {
            return;
        }
        tracing::debug!(from = %msg.from, purge = ?msg.purge, "fleet: applying a purge");
        let scope = msg.purge.scope().to_owned();
        let previous = self.known_generation(&scope);
        msg.purge.apply(cache).await;
        self.applied.fetch_add(1, Ordering::Relaxed);
        if previous.is_some_and(|p| msg.generation > p + 1) {
            // A purge of this scope went by unseen: drop all of it.
            FleetPurge::drop_scope(&scope, cache).await;
            self.resynced_scopes.fetch_add(1, Ordering::Relaxed);
        }
        self.note(&scope, msg.generation);
    }

    /// Compare every generation with the known ones; drop the scopes that moved. Right after
    /// subscribing every moved scope is dropped (its messages are lost); a `periodic` check gives
    /// a scope that is ahead one interval for its message to arrive first.
    async fn resync(&self, cache: &ObjectCache, periodic: bool) -> Result<(), String> {
        let mut conn = self.connection().await?;
        let current: HashMap<String, u64> = tokio::time::timeout(
            OP_TIMEOUT,
            redis::cmd("HGETALL")
                .arg(&self.generations_key)
                .query_async(&mut conn),
        )
        .await
        .map_err(|_| "HGETALL timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        let known = {
            let guard = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            guard.clone().or_else(|| self.load_state())
        };
        let Some(known) = known else {
            // First start with nothing remembered: adopt what is there.
            self.adopt(current);
            return Ok(());
        };
        let mut next = known.clone();
        let mut moved = Vec::new();
        {
            let mut behind = self.behind.lock().unwrap_or_else(PoisonError::into_inner);
            for (scope, &g) in &current {
                let k = known.get(scope).copied().unwrap_or(0);
                if g == k {
                    behind.remove(scope);
                    continue;
                }
                if periodic && g > k && behind.get(scope) != Some(&k) {
                    behind.insert(scope.clone(), k);
                    continue;
                }
                behind.remove(scope);
                next.insert(scope.clone(), g);
                moved.push(scope.clone());
            }
            // Generations Redis no longer has (it lost its data): nothing can be trusted.
            for scope in known.keys().filter(|s| !current.contains_key(*s)) {
                next.remove(scope);
                moved.push(scope.clone());
            }
        }
        for scope in &moved {
            tracing::info!(scope = %scope, "fleet: a purge may have been missed; dropping the scope here");
            FleetPurge::drop_scope(scope, cache).await;
            self.resynced_scopes.fetch_add(1, Ordering::Relaxed);
        }
        // Keep what this instance noted meanwhile (its own announcements).
        let merged = {
            let mut guard = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(now) = guard.as_ref() {
                for (scope, &g) in now {
                    if known.get(scope) != Some(&g) {
                        let v = next.entry(scope.clone()).or_insert(0);
                        *v = (*v).max(g);
                    }
                }
            }
            *guard = Some(next.clone());
            next
        };
        self.save_state(&merged);
        Ok(())
    }

    fn known_generation(&self, scope: &str) -> Option<u64> {
        let guard = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(|k| k.get(scope).copied().unwrap_or(0))
    }

    fn note(&self, scope: &str, generation: u64) {
        let snapshot = {
            let mut guard = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            let known = guard.get_or_insert_with(HashMap::new);
            let g = known.entry(scope.to_owned()).or_insert(0);
            *g = (*g).max(generation);
            known.clone()
        };
        self.save_state(&snapshot);
    }

    fn adopt(&self, current: HashMap<String, u64>) {
        self.save_state(&current);
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = Some(current);
    }

    fn load_state(&self) -> Option<HashMap<String, u64>> {
        let path = self.options.state_file.as_ref()?;
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn save_state(&self, known: &HashMap<String, u64>) {
        let Some(path) = &self.options.state_file else {
            return;
        };
        let Ok(text) = serde_json::to_vec(known) else {
            return;
        };
        // Write then rename: a crash leaves the old file or the new one, never half of one.
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep fleet generations");
        }
    }
}

/// The default instance id: the host name (from the kernel, else `HOSTNAME`), else `yatagarasu`.
pub fn default_instance_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "yatagarasu".to_owned())
}

/// A number unlikely to be drawn by another process: the standard library's per-process random
/// hash keys over the time and the process id.
fn process_mark() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The answer to [`Fleet::claim`].
pub(crate) enum Claim {
    /// This instance fetches; settle the lease when done.
    Mine(Lease),
    /// Another instance is fetching.
    Taken,
    /// Redis cannot say: fetch alone.
    Unavailable,
}

/// This instance's claim on fetching one slice, renewed in the background until settled. Dropped
/// unsettled (the fetch failed or was abandoned), it is released at once so a waiting instance
/// takes over.
pub(crate) struct Lease {
    inner: Arc<Inner>,
    key: Vec<u8>,
    renew: tokio::task::JoinHandle<()>,
    settled: bool,
}

/// Deletes a claim only while it is still this process's.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl Lease {
    fn start(inner: Arc<Inner>, key: Vec<u8>) -> Self {
        let ttl = inner.options.lease_ttl;
        let renew = {
            let (inner, key) = (Arc::clone(&inner), key.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let Ok(mut conn) = inner.connection().await else {
                        continue;
                    };
                    let _ = redis::cmd("PEXPIRE")
                        .arg(&key)
                        .arg(millis(ttl))
                        .query_async::<()>(&mut conn)
                        .await;
                }
            })
        };
        Self {
            inner,
            key,
            renew,
            settled: false,
        }
    }

    /// The slice was fetched and is being stored: keep the claim one lease time longer, so nobody
    /// fetches it again before its background write lands in Redis, however loaded the machine
    /// (waiters see it there and stop waiting at once; a purge drops the claims it covers, so a
    /// purged slice is never waited for; only a failed Redis write costs waiters this long).
    pub(crate) fn landed(mut self) {
        self.settled = true;
        self.renew.abort();
        let (inner, key) = (Arc::clone(&self.inner), std::mem::take(&mut self.key));
        tokio::spawn(async move {
            if let Ok(mut conn) = inner.connection().await {
                let _ = redis::cmd("PEXPIRE")
                    .arg(&key)
                    .arg(millis(inner.options.lease_ttl))
                    .query_async::<()>(&mut conn)
                    .await;
            }
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.renew.abort();
        let (inner, key) = (Arc::clone(&self.inner), std::mem::take(&mut self.key));
        let mark = inner.sender.to_string();
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(async move {
                if let Ok(mut conn) = inner.connection().await {
                    let _ = redis::cmd("EVAL")
                        .arg(RELEASE)
                        .arg(1)
                        .arg(&key)
                        .arg(&mark)
                        .query_async::<i64>(&mut conn)
                        .await;
                }
            });
        }
    }
}
