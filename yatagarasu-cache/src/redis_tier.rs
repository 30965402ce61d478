//! The Redis tier: shared between proxy instances, never allowed to fail or slow a request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::entry::{self, CacheEntry, RecordCheck};
use crate::error::CacheError;
use crate::redis_conn::{RedisConnection, RedisTarget, delete_prefixed};
use crate::stats::{Counters, TierStats};
use crate::{BoxFuture, CacheTier};

/// Settings of a [`RedisTier`]. `Debug` shows the URL without its password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Where: one server (`redis://host:port/db`, Valkey works too), a Cluster, or the primary
    /// Sentinels name.
    pub target: RedisTarget,
    /// Prefix of every key this tier writes, so several caches can share one Redis.
    pub key_prefix: String,
    /// Longest a single Redis operation may take before it counts as a failure (and a miss).
    pub op_timeout: Duration,
    /// Retention for entries without their own deadline; `None` keeps them until Redis evicts them.
    pub default_ttl: Option<Duration>,
    /// Largest entry stored.
    pub max_item_bytes: u64,
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit skips Redis entirely before trying again.
    pub open_for: Duration,
    /// How records are checked: a CRC (default), or an HMAC under a secret so that entries
    /// written by anyone else sharing the Redis are rejected.
    pub record_check: RecordCheck,
}

impl RedisOptions {
    /// Defaults for `url`: prefix `yatagarasu:`, 200 ms operations, 64 MiB items, circuit opens after
    /// 3 failures for 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self::for_target(RedisTarget::Single { url: url.into() })
    }

    /// The same defaults for a Redis Cluster found from these seed nodes (`redis://host:port`).
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::for_target(RedisTarget::Cluster {
            nodes: nodes.into_iter().map(Into::into).collect(),
        })
    }

    /// The same defaults for the primary these Sentinels (`redis://host:port`) name for
    /// `master_name`.
    pub fn sentinel(
        master_name: impl Into<String>,
        nodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::for_target(RedisTarget::Sentinel {
            master_name: master_name.into(),
            nodes: nodes.into_iter().map(Into::into).collect(),
        })
    }

    fn for_target(target: RedisTarget) -> Self {
        Self {
            target,
            key_prefix: "yatagarasu:".into(),
            op_timeout: Duration::from_millis(200),
            default_ttl: None,
            max_item_bytes: 64 * 1024 * 1024,
            failure_threshold: 3,
            open_for: Duration::from_secs(5),
            record_check: RecordCheck::default(),
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("target", &self.target)
            .field("key_prefix", &self.key_prefix)
            .field("op_timeout", &self.op_timeout)
            .field("default_ttl", &self.default_ttl)
            .field("max_item_bytes", &self.max_item_bytes)
            .field("failure_threshold", &self.failure_threshold)
            .field("open_for", &self.open_for)
            .field("record_check", &self.record_check)
            .finish()
    }
}

/// `scheme://user:password@host...` with the password replaced by `***`.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// A tier in Redis. Records use the same self-checking binary encoding as the disk tier (0-byte
/// bodies included); the TTL is set from the entry's deadline. Every operation has a timeout; after
/// `failure_threshold` consecutive failures the circuit opens and the tier answers misses without
/// touching the network for `open_for`, then tries again. Redis being down or slow therefore costs a
/// request at most one operation timeout, and usually nothing.
pub struct RedisTier {
    options: RedisOptions,
    conn: tokio::sync::Mutex<Option<RedisConnection>>,
    breaker: Mutex<Breaker>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("key_prefix", &self.options.key_prefix)
            .finish_non_exhaustive()
    }
}

fn redis_err(e: impl std::fmt::Display) -> CacheError {
    CacheError::Redis(e.to_string())
}

/// What an operation answers while the circuit is open.
fn circuit_open_error() -> CacheError {
    CacheError::Redis("circuit open: redis is being skipped after failures".into())
}

impl RedisTier {
    /// A tier for `options.url`. Connects lazily: a Redis that is down at start-up only means misses.
    pub fn new(options: RedisOptions) -> Result<Self, CacheError> {
        options.target.check().map_err(redis_err)?;
        Ok(Self {
            options,
            conn: tokio::sync::Mutex::new(None),
            breaker: Mutex::new(Breaker::default()),
            counters: Arc::new(Counters::default()),
        })
    }

    /// Whether the circuit is open now (Redis is being skipped).
    pub fn circuit_open(&self) -> bool {
        let b = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        b.open_until.is_some_and(|t| Instant::now() < t)
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = self.options.key_prefix.as_bytes().to_vec();
        k.extend_from_slice(key);
        k
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        if ok {
            *b = Breaker::default();
        } else {
            b.failures += 1;
            if b.failures >= self.options.failure_threshold {
                b.open_until = Some(Instant::now() + self.options.open_for);
            }
        }
    }

    /// The shared connection, made on first use (and again after a Sentinel failure dropped it).
    async fn connection(&self) -> Result<RedisConnection, CacheError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.options.target.connect().await.map_err(redis_err)?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Run one operation under the breaker and the timeout.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.circuit_open() {
            return Err(circuit_open_error());
        }
        let attempt = async { op(self.connection().await?).await.map_err(redis_err) };
        let result = match tokio::time::timeout(self.options.op_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Redis(format!(
                "no answer within {:?}",
                self.options.op_timeout
            ))),
        };
        self.record(result.is_ok());
        if result.is_err() {
            Counters::inc(&self.counters.errors);
            if self.options.target.reconnect_after_failure() {
                // The primary may have moved (Sentinel failover): ask again next time.
                *self.conn.lock().await = None;
            }
        }
        result
    }
}

impl CacheTier for RedisTier {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn max_item_bytes(&self) -> u64 {
        self.options.max_item_bytes
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Option<CacheEntry>, CacheError>> {
        Box::pin(async move {
            let k = self.full_key(key);
            let got: Option<Vec<u8>> = match self
                .run(|mut c| async move { redis::cmd("GET").arg(k).query_async(&mut c).await })
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    Counters::inc(&self.counters.misses);
                    return Err(e);
                }
            };
            let Some(raw) = got else {
                Counters::inc(&self.counters.misses);
                return Ok(None);
            };
            match entry::decode(&Bytes::from(raw), &self.options.record_check) {
                Ok((stored_key, e))
                    if stored_key.as_ref() == key && !e.is_expired_at(SystemTime::now()) =>
                {
                    Counters::inc(&self.counters.hits);
                    Ok(Some(e))
                }
                Ok(_) => {
                    Counters::inc(&self.counters.misses);
                    Ok(None)
                }
                Err(e) => {
                    // Never served, never promoted: remove it so the next read is a clean miss.
                    let k = self.full_key(key);
                    let _ = self
                        .run(|mut c| async move {
                            redis::cmd("DEL").arg(k).query_async::<()>(&mut c).await
                        })
                        .await;
                    Counters::inc(&self.counters.errors);
                    Counters::inc(&self.counters.misses);
                    Err(e)
                }
            }
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a [u8],
        entry: CacheEntry,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            entry.check_fits(self.options.max_item_bytes)?;
            let ttl = entry
                .ttl_from(SystemTime::now())
                .or(self.options.default_ttl);
            if ttl == Some(Duration::ZERO) {
                return Ok(());
            }
            let k = self.full_key(key);
            let record = entry::encode(key, &entry, &self.options.record_check);
            self.run(|mut c| async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(k).arg(record);
                if let Some(t) = ttl {
                    cmd.arg("PX")
                        .arg(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
                }
                cmd.query_async::<()>(&mut c).await
            })
            .await?;
            Counters::inc(&self.counters.inserts);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let k = self.full_key(key);
            self.run(
                |mut c| async move { redis::cmd("UNLINK").arg(k).query_async::<()>(&mut c).await },
            )
            .await
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a [u8]) -> BoxFuture<'a, Result<u64, CacheError>> {
        Box::pin(async move {
            if self.circuit_open() {
                return Err(circuit_open_error());
            }
            // Not one bounded operation: a scan takes as long as the keyspace needs (purges are
            // rare and off the request path), within a minute.
            let scan = async {
                let mut conn = self.connection().await?;
                delete_prefixed(&mut conn, &self.full_key(prefix))
                    .await
                    .map_err(redis_err)
            };
            tokio::time::timeout(Duration::from_secs(60), scan)
                .await
                .unwrap_or_else(|_| Err(CacheError::Redis("purge scan took over 60 s".into())))
        })
    }

    fn stats(&self) -> TierStats {
        self.counters.snapshot(0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let o = RedisOptions::new("redis://default:hunter2@10.0.0.1:6379/0");
        let d = format!("{o:?}");
        assert!(
            !d.contains("hunter2") && d.contains("redis://default:***@10.0.0.1:6379/0"),
            "{d}"
        );
        assert_eq!(redact_password("redis://:p@h/1"), "redis://:***@h/1");
        assert_eq!(redact_password("redis://h:6379"), "redis://h:6379");
    }
}
