//! Where a Redis tier connects: one server, a Redis (or Valkey) Cluster, or the primary a set of
//! Sentinels names. One connection type over the three, for the tier and for anything else that
//! shares its Redis (a proxy fleet's messages and claims).

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Where to connect.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTarget {
    /// One server: `redis://host:port/db`.
    Single {
        /// Its URL.
        url: String,
    },
    /// A Redis Cluster, found from any of these `redis://host:port` seed nodes; keys spread over
    /// its slots, moved slots and failed-over primaries followed by the client.
    Cluster {
        /// Seed nodes.
        nodes: Vec<String>,
    },
    /// The primary that these Sentinels (`redis://host:port`) name for `master_name`, asked
    /// again after every failure (so a failover is followed on the next operation).
    Sentinel {
        /// The monitored primary's name.
        master_name: String,
        /// Sentinel nodes.
        nodes: Vec<String>,
    },
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single { url } => f
                .debug_struct("Single")
                .field("url", &crate::redis_tier::redact_password(url))
                .finish(),
            Self::Cluster { nodes } => f
                .debug_struct("Cluster")
                .field("nodes", &redacted(nodes))
                .finish(),
            Self::Sentinel { master_name, nodes } => f
                .debug_struct("Sentinel")
                .field("master_name", master_name)
                .field("nodes", &redacted(nodes))
                .finish(),
        }
    }
}

fn redacted(nodes: &[String]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| crate::redis_tier::redact_password(n))
        .collect()
}

/// A connection to a [`RedisTarget`]: cheap to clone, usable with `query_async` like any
/// `redis` connection.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server, reconnecting by itself.
    Single(ConnectionManager),
    /// A cluster, following its topology by itself.
    Cluster(ClusterConnection),
    /// The primary a Sentinel named (drop it after a failure: the next connection asks again).
    Sentinel(MultiplexedConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
            Self::Sentinel(_) => "RedisConnection::Sentinel",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}

impl RedisTarget {
    /// Check the URLs without connecting.
    ///
    /// # Errors
    /// The first URL that is not a Redis URL, or an empty node list.
    pub fn check(&self) -> RedisResult<()> {
        let urls: Vec<&String> = match self {
            Self::Single { url } => vec![url],
            Self::Cluster { nodes } | Self::Sentinel { nodes, .. } => nodes.iter().collect(),
        };
        if urls.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "no nodes given",
            )));
        }
        for u in urls {
            redis::Client::open(u.as_str())?;
        }
        Ok(())
    }

    /// Connect (for a Sentinel target: to the primary the Sentinels name now).
    ///
    /// # Errors
    /// When no node answers.
    pub async fn connect(&self) -> RedisResult<RedisConnection> {
        Ok(match self {
            Self::Single { url } => RedisConnection::Single(
                redis::Client::open(url.as_str())?
                    .get_connection_manager()
                    .await?,
            ),
            // Short retries: the tier bounds every operation (200 ms by default) and treats a
            // failure as a miss, so the client's defaults (waits from 1.28 s, 16 retries) would
            // only be cut off; quick ones let it learn a failover's new primary in time.
            Self::Cluster { nodes } => RedisConnection::Cluster(
                redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .retries(3)
                    .min_retry_wait(5)
                    .max_retry_wait(100)
                    .connection_timeout(std::time::Duration::from_secs(1))
                    .build()?
                    .get_async_connection()
                    .await?,
            ),
            Self::Sentinel { .. } => RedisConnection::Sentinel(
                self.sentinel_primary()
                    .await?
                    .get_multiplexed_async_connection()
                    .await?,
            ),
        })
    }

    /// A connection for `SUBSCRIBE`: to the server, to the first cluster node that answers
    /// (published messages reach every node of a cluster), or to the Sentinels' primary.
    ///
    /// # Errors
    /// When no node answers.
    pub async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        match self {
            Self::Single { url } => redis::Client::open(url.as_str())?.get_async_pubsub().await,
            Self::Cluster { nodes } => {
                let mut last = None;
                for n in nodes {
                    match redis::Client::open(n.as_str())?.get_async_pubsub().await {
                        Ok(p) => return Ok(p),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    (redis::ErrorKind::InvalidClientConfig, "no nodes given").into()
                }))
            }
            Self::Sentinel { .. } => self.sentinel_primary().await?.get_async_pubsub().await,
        }
    }

    /// Whether a connection must be dropped after a failure to find the current primary again.
    pub fn reconnect_after_failure(&self) -> bool {
        matches!(self, Self::Sentinel { .. })
    }

    async fn sentinel_primary(&self) -> RedisResult<redis::Client> {
        let Self::Sentinel { master_name, nodes } = self else {
            return Err((
                redis::ErrorKind::InvalidClientConfig,
                "not a Sentinel target",
            )
                .into());
        };
        let mut sentinel = redis::sentinel::SentinelClient::build(
            nodes.clone(),
            master_name.clone(),
            None,
            redis::sentinel::SentinelServerType::Master,
        )?;
        sentinel.async_get_client().await
    }
}

/// Delete every key matching `pattern` (a `SCAN MATCH` glob) on `conn`: on each primary of a
/// cluster (`SCAN` walks one node), else on the server. Returns how many were deleted.
///
/// # Errors
/// The first Redis error.
pub async fn delete_matching(conn: &mut RedisConnection, pattern: &[u8]) -> RedisResult<u64> {
    let nodes: Vec<Option<(String, u16)>> = match conn {
        RedisConnection::Cluster(c) => {
            let text: String = redis::from_redis_value(
                c.route_command(
                    redis::cmd("CLUSTER").arg("NODES").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await?,
            )
            .map_err(redis::RedisError::from)?;
            primaries(&text).into_iter().map(Some).collect()
        }
        _ => vec![None],
    };
    let mut removed = 0;
    for node in nodes {
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<Vec<u8>>) = match (&node, &mut *conn) {
                (Some((host, port)), RedisConnection::Cluster(c)) => redis::from_redis_value(
                    c.route_command(
                        scan,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )
                    .await?,
                )
                .map_err(redis::RedisError::from)?,
                _ => scan.query_async(&mut *conn).await?,
            };
            if !keys.is_empty() {
                removed += keys.len() as u64;
                if matches!(conn, RedisConnection::Cluster(_)) {
                    // Keys of different slots cannot share one command (or pipeline) in a
                    // cluster: one UNLINK each, sent together.
                    let unlinks = keys.iter().map(|k| {
                        let mut c = conn.clone();
                        async move { redis::cmd("UNLINK").arg(k).query_async::<()>(&mut c).await }
                    });
                    for r in futures_util::future::join_all(unlinks).await {
                        r?;
                    }
                } else {
                    redis::cmd("UNLINK")
                        .arg(keys)
                        .query_async::<()>(&mut *conn)
                        .await?;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(removed)
}

/// Delete every key starting with `prefix` (glob characters in it match literally), as
/// [`delete_matching`] does.
///
/// # Errors
/// The first Redis error.
pub async fn delete_prefixed(conn: &mut RedisConnection, prefix: &[u8]) -> RedisResult<u64> {
    let mut pattern = glob_escape(prefix);
    pattern.push(b'*');
    delete_matching(conn, &pattern).await
}

/// Escape glob characters so a prefix matches literally in `SCAN MATCH`.
fn glob_escape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 1);
    for &c in b {
        if matches!(c, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out
}

/// The primaries' `(host, port)` in `CLUSTER NODES` output (failed ones left out).
fn primaries(cluster_nodes: &str) -> Vec<(String, u16)> {
    cluster_nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let hostport = addr.split('@').next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(
            glob_escape(b"a*b?c[d]e\\"),
            b"a\\*b\\?c\\[d\\]e\\\\".to_vec()
        );
    }

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let text = "\
07c37 127.0.0.1:30004@31004 slave e7d1e 0 1426238317239 4 connected
67ed2 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
6ec23 127.0.0.1:30005@31005 master,fail - 0 1426238316232 5 disconnected
e7d1e 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            primaries(text),
            [
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
    }
}
