//! The configuration's shape: one struct per section, strict (unknown keys are errors), with the
//! defaults the README documents.

use serde::Deserialize;
use serde_json::Value;

pub use crate::cors::CorsConfig;
use crate::fetch::{CoalescingOptions, FetchOptions};
use crate::lenient::{lenient, lenient_opt};
use crate::server::ServerOptions;

/// A configuration value that must never show up in logs, errors or debug output (keys, tokens,
/// secrets): `Debug` prints `<redacted>`; [`expose`](Self::expose) hands the value to the code
/// that uses it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `url` with its password (if any) replaced by `***`, for messages and debug output.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not a URL: show nothing that could be a password (`scheme://user:pass@...`).
        Err(_) if url.contains('@') => "<unparsable URL with credentials>".to_owned(),
        Err(_) => url.to_owned(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// The buckets served, each under a path prefix.
    pub buckets: Vec<BucketConfig>,
    /// Sliced, shared origin fetches.
    #[serde(default)]
    pub coalescing: CoalescingConfig,
    /// JWT authentication for buckets with `auth.enabled`.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Caching in memory, on disk and in Redis.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// The admin API (purge, stats) on its own listener.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Prometheus metrics at `/metrics`.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Log format and level.
    #[serde(default)]
    pub logging: Option<LoggingConfig>,
    /// One JSON record per request to a file and/or syslog.
    #[serde(default)]
    pub audit_log: Option<AuditLogConfig>,
    /// Tracing export.
    #[serde(default)]
    pub observability: Option<ObservabilityConfig>,
}

/// `observability`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ObservabilityConfig {
    /// OpenTelemetry tracing over OTLP/HTTP (needs the `otel` cargo feature).
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
}

/// `observability.tracing`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TracingConfig {
    /// Export spans (default off).
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
    /// The collector's OTLP/HTTP URL (`http://collector:4318`).
    #[serde(default)]
    pub otlp_endpoint: String,
    /// Share of requests traced when the client sent no sampling decision (default 1.0).
    #[serde(default = "default_sample_ratio", deserialize_with = "lenient")]
    pub sample_ratio: f64,
}

fn default_sample_ratio() -> f64 {
    1.0
}

/// `audit_log`: one JSON record per request (see `yatagarasu::audit`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditLogConfig {
    /// Write audit records (default off).
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
    /// `file`, `syslog`, or both.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// The file output.
    #[serde(default)]
    pub file: Option<AuditFileConfig>,
    /// The syslog output.
    #[serde(default)]
    pub syslog: Option<AuditSyslogConfig>,
    /// Records that may wait for the writer before new ones are dropped (and counted).
    #[serde(default = "default_audit_queue", deserialize_with = "lenient")]
    pub queue_capacity: usize,
}

fn default_audit_queue() -> usize {
    16 * 1024
}

/// `audit_log.file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditFileConfig {
    /// The file appended to; its directory must exist.
    pub path: String,
    /// Rotate before the file would pass this size (default 100).
    #[serde(default = "default_audit_file_mb", deserialize_with = "lenient")]
    pub max_file_size_mb: u64,
    /// Rotated files kept, `path.1` the newest (default 10).
    #[serde(default = "default_audit_backups", deserialize_with = "lenient")]
    pub max_backup_files: usize,
    /// `size` (default) or `daily` (at UTC midnight, and at the size limit too).
    #[serde(default = "default_rotation")]
    pub rotation_policy: String,
}

fn default_audit_file_mb() -> u64 {
    100
}

fn default_audit_backups() -> usize {
    10
}

fn default_rotation() -> String {
    "size".to_owned()
}

/// `audit_log.syslog`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditSyslogConfig {
    /// `host:port` of the syslog server.
    pub address: String,
    /// `udp` (default) or `tcp`.
    #[serde(default = "default_syslog_protocol")]
    pub protocol: String,
    /// A facility name (default `local0`).
    #[serde(default = "default_facility")]
    pub facility: String,
}

fn default_syslog_protocol() -> String {
    "udp".to_owned()
}

fn default_facility() -> String {
    "local0".to_owned()
}

/// `logging`: how the binary writes its log (request lines included) to stdout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LoggingConfig {
    /// `text` (default) or `json` (one object per line).
    pub format: String,
    /// A level (`info`) or `tracing` filter directives (`warn,yatagarasu=info`); `RUST_LOG` wins
    /// when set. Request lines are `info`.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
            level: "info".to_owned(),
        }
    }
}

/// `metrics`: Prometheus metrics at `GET /metrics` on the proxy's listener, and with `port` on a
/// listener of their own as well.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Collect and serve metrics (default off).
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
    /// Address of the metrics listener (default 127.0.0.1).
    #[serde(default = "loopback")]
    pub address: String,
    /// Port of a metrics-only listener (none: `/metrics` on the proxy's listener only).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub port: Option<u16>,
}

/// `server`: the listener and its limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on.
    pub address: String,
    /// Port to listen on.
    #[serde(deserialize_with = "lenient")]
    pub port: u16,
    /// Most concurrent client connections; further ones wait in the kernel's accept queue.
    /// With `worker_threads`, each worker takes its share (rounded up).
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
    /// 0 (default): one multi-threaded runtime serves every connection, tasks moving between
    /// its threads. N: N threads, each with a single-threaded runtime and its own listening
    /// socket on the address (`SO_REUSEPORT`, the kernel spreads new connections), as nginx's
    /// workers: a connection stays on one thread, with no hand-over between threads. Faster for
    /// many small requests; set it to the number of cores. Linux and other Unix systems only.
    #[serde(deserialize_with = "lenient")]
    pub worker_threads: usize,
    /// Largest request head (request line and headers) in bytes.
    #[serde(deserialize_with = "lenient")]
    pub max_header_bytes: usize,
    /// Most request header fields.
    #[serde(deserialize_with = "lenient")]
    pub max_headers: usize,
    /// Longest request target (path and query) in bytes; longer gets 414.
    #[serde(deserialize_with = "lenient")]
    pub max_uri_bytes: usize,
    /// Seconds in-flight requests may run after SIGTERM or Ctrl-C.
    #[serde(deserialize_with = "lenient")]
    pub shutdown_grace_seconds: u64,
    /// Seconds a `/ready` probe result is reused.
    #[serde(deserialize_with = "lenient")]
    pub ready_cache_seconds: u64,
    /// Seconds a new connection has to deliver its first request (and an HTTP/1.1 head, once
    /// begun, to complete).
    #[serde(deserialize_with = "lenient")]
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection with no request in flight stays open.
    #[serde(deserialize_with = "lenient")]
    pub idle_timeout_seconds: u64,
    /// Seconds a connection may go without sending anything while responses wait for the client.
    #[serde(deserialize_with = "lenient")]
    pub send_timeout_seconds: u64,
    /// Seconds between HTTP/2 keep-alive PINGs on a quiet connection.
    #[serde(deserialize_with = "lenient")]
    pub http2_keep_alive_interval_seconds: u64,
    /// Seconds an HTTP/2 PING may go unanswered before the connection is closed.
    #[serde(deserialize_with = "lenient")]
    pub http2_keep_alive_timeout_seconds: u64,
    /// Networks of proxies in front of this one: only from them are `Forwarded` and
    /// `X-Forwarded-For` believed (for IP filters).
    pub trusted_proxies: Vec<String>,
    /// This instance's name in admin stats, metrics and fleet messages (default: the host name).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Terminate TLS on the proxy's listener.
    pub tls: Option<TlsConfig>,
    /// Limits on bucket requests, all clients together and per client address.
    pub rate_limit: Option<RateLimitConfig>,
}

/// `server.rate_limit`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Apply the limits below (default off).
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
    /// All clients together.
    #[serde(default)]
    pub global: Option<RateConfig>,
    /// Each client address (forwarded only through `trusted_proxies`).
    #[serde(default)]
    pub per_ip: Option<RateConfig>,
    /// Client addresses tracked at once for `per_ip` (default 100000).
    #[serde(default = "default_tracked_clients", deserialize_with = "lenient")]
    pub max_tracked_clients: u64,
}

fn default_tracked_clients() -> u64 {
    100_000
}

/// A rate: `requests_per_second` sustained, `burst` at once.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateConfig {
    /// Sustained requests per second (may be fractional: 0.5 is one every two seconds).
    #[serde(deserialize_with = "lenient")]
    pub requests_per_second: f64,
    /// Requests allowed at once (default: the per-second rate, rounded up, at least 1).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub burst: Option<u32>,
}

impl RateConfig {
    /// As a [`crate::ratelimit::Rate`].
    pub fn rate(&self) -> crate::ratelimit::Rate {
        let burst = self.burst.unwrap_or_else(|| {
            self.requests_per_second
                .ceil()
                .clamp(1.0, f64::from(u32::MAX)) as u32
        });
        crate::ratelimit::Rate::new(self.requests_per_second, burst)
    }
}

/// `server.tls`: the certificate the proxy's listener serves TLS with (re-read on reload).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_path: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key_path: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let o = ServerOptions::default();
        Self {
            address: "0.0.0.0".into(),
            port: 8080,
            max_connections: o.max_connections,
            worker_threads: 0,
            max_header_bytes: o.max_header_bytes,
            max_headers: o.max_headers,
            max_uri_bytes: o.max_uri_bytes,
            shutdown_grace_seconds: o.grace_period.as_secs(),
            ready_cache_seconds: 5,
            header_read_timeout_seconds: o.header_read_timeout.as_secs(),
            idle_timeout_seconds: o.idle_timeout.as_secs(),
            send_timeout_seconds: o.send_timeout.as_secs(),
            http2_keep_alive_interval_seconds: o.http2_keep_alive_interval.as_secs(),
            http2_keep_alive_timeout_seconds: o.http2_keep_alive_timeout.as_secs(),
            trusted_proxies: Vec::new(),
            instance_id: None,
            tls: None,
            rate_limit: None,
        }
    }
}

/// `jwt`: how tokens are verified (keys, issuer, audience), where they are found, and the claim
/// rules every token must satisfy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// Verify tokens at all (buckets opt in with `auth.enabled`).
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
    /// The algorithm of the single key below (`secret`, `rsa_public_key_path` or
    /// `ecdsa_public_key_path`).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// HMAC secret (HS256/384/512).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// PEM file of an RSA public key (RS*/PS*).
    #[serde(default)]
    pub rsa_public_key_path: Option<String>,
    /// PEM file of an EC public key (ES256/ES384).
    #[serde(default)]
    pub ecdsa_public_key_path: Option<String>,
    /// Several keys, chosen by the token's `kid`.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// A JWKS endpoint to take keys (by `kid`) from.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Seconds between JWKS refreshes (default 3600).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub jwks_refresh_interval_secs: Option<u64>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values (one string or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Clock skew allowed for `exp` and `nbf`, seconds (default 60).
    #[serde(default = "default_leeway", deserialize_with = "lenient")]
    pub leeway_seconds: u64,
    /// Where tokens are found, in order (default: bearer).
    #[serde(default)]
    pub token_sources: Vec<TokenSourceConfig>,
    /// Rules every token's claims must satisfy.
    #[serde(default)]
    pub claims: Vec<ClaimRuleConfig>,
    /// Rules that open the admin API to a bearer token (signed by the keys above) whose claims
    /// pass them all; beside `admin.token`, or instead of it.
    #[serde(default)]
    pub admin_claims: Option<Vec<ClaimRuleConfig>>,
}

fn default_leeway() -> u64 {
    60
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// `jwt.keys[]`: a key chosen by the token's `kid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtKeyConfig {
    /// The `kid` that selects this key.
    pub id: String,
    /// The key's algorithm.
    pub algorithm: String,
    /// PEM file (RSA, EC or Ed25519 public key).
    #[serde(default)]
    pub path: Option<String>,
    /// HMAC secret.
    #[serde(default)]
    pub secret: Option<Secret>,
}

/// `jwt.token_sources[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenSourceConfig {
    /// `bearer`, `header` or `query`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Header or query parameter name.
    #[serde(default)]
    pub name: Option<String>,
    /// Text before the token in a header (e.g. `"Token "`).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `jwt.claims[]`: `{claim, operator, value}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClaimRuleConfig {
    /// The claim (dots reach nested objects).
    pub claim: String,
    /// equals, not_equals, in, not_in, contains, exists, gt, lt, gte, lte, glob.
    pub operator: crate::auth::Operator,
    /// The value compared with.
    #[serde(default)]
    pub value: Value,
}

/// `admin`: the admin API listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AdminConfig {
    /// Serve the admin API (default off).
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
    /// Listen address (default 127.0.0.1: keep it off public interfaces).
    #[serde(default = "loopback")]
    pub address: String,
    /// Listen port.
    #[serde(default = "admin_port", deserialize_with = "lenient")]
    pub port: u16,
    /// Bearer token every admin request must carry (at least 16 characters).
    #[serde(default)]
    pub token: Option<Secret>,
}

fn loopback() -> String {
    "127.0.0.1".to_owned()
}

fn admin_port() -> u16 {
    9091
}

/// `cache`: the cache tiers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Cache at all.
    #[serde(default = "yes", deserialize_with = "lenient")]
    pub enabled: bool,
    /// Tiers, fastest first: any of `memory`, `disk`, `redis`.
    #[serde(default = "memory_only")]
    pub cache_layers: Vec<String>,
    /// Seconds stale records and slices are kept past freshness, for revalidation without bodies.
    #[serde(default = "one_day", deserialize_with = "lenient")]
    pub stale_retention_seconds: u64,
    /// Freshness when an object's `Cache-Control` gives none, for every bucket without its own
    /// `buckets[].cache.ttl_seconds` (default 3600), whichever tiers hold the object.
    #[serde(default = "one_hour", deserialize_with = "lenient")]
    pub default_ttl_seconds: u64,
    /// Seconds a 404 (NoSuchKey) is remembered; 0 (the default) never caches errors.
    #[serde(default, deserialize_with = "lenient")]
    pub negative_ttl_seconds: u64,
    /// A secret (at least 16 characters) with which disk and Redis records are authenticated
    /// (HMAC-SHA256 instead of a CRC): entries written without it are rejected and removed.
    #[serde(default)]
    pub record_secret: Option<Secret>,
    /// The memory tier.
    #[serde(default)]
    pub memory: MemoryCacheConfig,
    /// The disk tier.
    #[serde(default)]
    pub disk: Option<DiskCacheConfig>,
    /// The Redis tier.
    #[serde(default)]
    pub redis: Option<RedisCacheConfig>,
}

fn yes() -> bool {
    true
}

fn memory_only() -> Vec<String> {
    vec!["memory".to_owned()]
}

fn one_hour() -> u64 {
    3600
}

fn one_day() -> u64 {
    86_400
}

/// `cache.memory`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MemoryCacheConfig {
    /// Capacity in MiB.
    #[serde(deserialize_with = "lenient")]
    pub max_cache_size_mb: u64,
    /// Largest entry in MiB (larger entries skip memory but still go to disk and Redis).
    #[serde(deserialize_with = "lenient")]
    pub max_item_size_mb: u64,
    /// Longest an entry stays in the memory tier (it may live on in disk and Redis); unset: as long
    /// as the entry itself. This is a memory bound, not freshness: see `cache.default_ttl_seconds`.
    #[serde(deserialize_with = "lenient_opt")]
    pub default_ttl_seconds: Option<u64>,
}

impl Default for MemoryCacheConfig {
    fn default() -> Self {
        Self {
            max_cache_size_mb: 256,
            max_item_size_mb: 16,
            default_ttl_seconds: None,
        }
    }
}

/// `cache.disk`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DiskCacheConfig {
    /// Directory of the disk tier (created if missing).
    pub cache_dir: String,
    /// Capacity in MiB.
    #[serde(default = "one_gib_in_mb", deserialize_with = "lenient")]
    pub max_disk_cache_size_mb: u64,
    /// Largest entry in MiB.
    #[serde(default = "default_item_mb", deserialize_with = "lenient")]
    pub max_item_size_mb: u64,
    /// Milliseconds one disk read or write may take before it counts as a miss (a hung disk never
    /// stalls a response longer than this).
    #[serde(default = "default_disk_io_timeout", deserialize_with = "lenient")]
    pub io_timeout_ms: u64,
}

fn default_disk_io_timeout() -> u64 {
    5000
}

fn one_gib_in_mb() -> u64 {
    1024
}

fn default_item_mb() -> u64 {
    64
}

/// `cache.redis`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisCacheConfig {
    /// One server: `redis://host:port/db` (or `cluster_nodes`, or `sentinel`).
    #[serde(default)]
    pub redis_url: Option<String>,
    /// A Redis (or Valkey) Cluster's seed nodes, `redis://host:port` each.
    #[serde(default)]
    pub cluster_nodes: Vec<String>,
    /// A Sentinel-managed primary.
    #[serde(default)]
    pub sentinel: Option<SentinelConfig>,
    /// Prefix of every key written.
    #[serde(default = "default_prefix")]
    pub redis_key_prefix: String,
    /// Retention for entries without their own deadline.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub redis_ttl_seconds: Option<u64>,
    /// Milliseconds one Redis operation may take before it counts as a miss.
    #[serde(default = "default_redis_timeout", deserialize_with = "lenient")]
    pub operation_timeout_ms: u64,
    /// Largest entry in MiB.
    #[serde(default = "default_item_mb", deserialize_with = "lenient")]
    pub max_item_size_mb: u64,
    /// Share purges with every instance using this Redis (default true; see `yatagarasu::fleet`).
    #[serde(default = "default_true", deserialize_with = "lenient")]
    pub fleet_invalidation: bool,
    /// Seconds between checks of the fleet's purge generations (default 5; 1 ..= 3600).
    #[serde(default = "default_fleet_resync", deserialize_with = "lenient")]
    pub fleet_resync_seconds: u64,
    /// One instance fetches a cold slice, the others wait for it in Redis (default true).
    #[serde(default = "default_true", deserialize_with = "lenient")]
    pub fleet_coalescing: bool,
    /// How long a claim on a slice lasts unless renewed, in ms (default 5000; 100 ..= 600000).
    #[serde(default = "default_fleet_lease", deserialize_with = "lenient")]
    pub fleet_lease_ms: u64,
    /// Longest a request waits for another instance's fetch, in ms (default 10000; 1 ..= 600000).
    #[serde(default = "default_fleet_wait", deserialize_with = "lenient")]
    pub fleet_wait_ms: u64,
}

fn default_fleet_lease() -> u64 {
    5000
}

fn default_fleet_wait() -> u64 {
    10_000
}

fn default_fleet_resync() -> u64 {
    5
}

/// `cache.redis.sentinel`: the primary the Sentinels name.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SentinelConfig {
    /// The name the Sentinels monitor it under.
    pub master_name: String,
    /// Sentinel nodes, `redis://host:port` each.
    pub nodes: Vec<String>,
}

impl std::fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("master_name", &self.master_name)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RedisCacheConfig {
    /// The key that names the server(s), for error lines.
    pub fn target_key(&self) -> &'static str {
        if self.redis_url.is_some() {
            "cache.redis.redis_url"
        } else if !self.cluster_nodes.is_empty() {
            "cache.redis.cluster_nodes"
        } else {
            "cache.redis.sentinel.nodes"
        }
    }

    /// Where the section says to connect (`None` when it names no server).
    pub fn target(&self) -> Option<yatagarasu_cache::RedisTarget> {
        if let Some(url) = &self.redis_url {
            return Some(yatagarasu_cache::RedisTarget::Single { url: url.clone() });
        }
        if !self.cluster_nodes.is_empty() {
            return Some(yatagarasu_cache::RedisTarget::Cluster {
                nodes: self.cluster_nodes.clone(),
            });
        }
        self.sentinel
            .as_ref()
            .map(|s| yatagarasu_cache::RedisTarget::Sentinel {
                master_name: s.master_name.clone(),
                nodes: s.nodes.clone(),
            })
    }
}

impl std::fmt::Debug for RedisCacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCacheConfig")
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field(
                "cluster_nodes",
                &self
                    .cluster_nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>(),
            )
            .field("sentinel", &self.sentinel)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("redis_ttl_seconds", &self.redis_ttl_seconds)
            .field("operation_timeout_ms", &self.operation_timeout_ms)
            .field("max_item_size_mb", &self.max_item_size_mb)
            .field("fleet_invalidation", &self.fleet_invalidation)
            .field("fleet_resync_seconds", &self.fleet_resync_seconds)
            .field("fleet_coalescing", &self.fleet_coalescing)
            .field("fleet_lease_ms", &self.fleet_lease_ms)
            .field("fleet_wait_ms", &self.fleet_wait_ms)
            .finish()
    }
}

fn default_prefix() -> String {
    "yatagarasu:".to_owned()
}

fn default_redis_timeout() -> u64 {
    200
}

/// `buckets[].cache`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BucketCacheConfig {
    /// Cache this bucket's objects (default: on when `cache.enabled`).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub enabled: Option<bool>,
    /// Freshness when an object's `Cache-Control` gives none.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub ttl_seconds: Option<u64>,
    /// With `auth` or `authorization` on the bucket: whether its objects are cached, shared by
    /// every request that passes access control (default true); false keeps them out of every
    /// tier. Buckets without access control ignore it.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub cache_authenticated: Option<bool>,
}

/// `coalescing`: how origin fetches are sliced and shared between concurrent requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CoalescingConfig {
    /// Share origin fetches between concurrent requests (per bucket overridable).
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
    /// Bytes per origin request; objects are fetched slice by slice (64 KiB to 1 GiB).
    #[serde(deserialize_with = "lenient")]
    pub slice_size: u64,
    /// Milliseconds a request waits for a shared fetch's first response before fetching on its own.
    #[serde(deserialize_with = "lenient")]
    pub wait_timeout_ms: u64,
    /// Most requests sharing one fetch; more fetch on their own.
    #[serde(deserialize_with = "lenient")]
    pub max_subscribers: usize,
    /// Most bytes one shared fetch holds for its readers (at least `slice_size`).
    #[serde(deserialize_with = "lenient")]
    pub buffer_bytes: usize,
    /// Most bytes all shared fetches and cache fills hold together; at the limit origin reads
    /// wait (backpressure) and cache fills are skipped.
    #[serde(deserialize_with = "lenient")]
    pub buffer_budget_bytes: usize,
    /// When every reader of a shared fetch has left, the slice in progress is still fetched for
    /// the cache if at most this many of its bytes are left.
    #[serde(deserialize_with = "lenient")]
    pub abandoned_fill_bytes: u64,
}

impl Default for CoalescingConfig {
    fn default() -> Self {
        let f = FetchOptions::default();
        let c = CoalescingOptions::default();
        Self {
            enabled: c.enabled,
            slice_size: f.slice_size,
            wait_timeout_ms: u64::try_from(c.wait_timeout.as_millis()).unwrap_or(u64::MAX),
            max_subscribers: f.max_subscribers,
            buffer_bytes: f.buffer_bytes,
            buffer_budget_bytes: f.buffer_budget_bytes,
            abandoned_fill_bytes: f.abandoned_fill_bytes,
        }
    }
}

/// `buckets[].coalescing`: per-bucket overrides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BucketCoalescingConfig {
    /// Overrides `coalescing.enabled`.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub enabled: Option<bool>,
    /// Overrides `coalescing.wait_timeout_ms`.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub wait_timeout_ms: Option<u64>,
}

/// `buckets[]`: one bucket and the prefix it is served under.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BucketConfig {
    /// A name for logs, errors and `/ready`.
    pub name: String,
    /// URL path prefix, e.g. `/products`.
    pub path_prefix: String,
    /// The origin.
    pub s3: S3Config,
    /// Authentication: `enabled: true` requires tokens the `jwt` section accepts.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Which client addresses may read this bucket.
    #[serde(default)]
    pub ip_filter: Option<IpFilterConfig>,
    /// A policy deciding each request (OPA, OpenFGA or Rego in the process).
    #[serde(default)]
    pub authorization: Option<AuthorizationConfig>,
    /// CORS for browsers.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// Pass `x-amz-meta-*` user metadata to clients.
    #[serde(default, deserialize_with = "lenient")]
    pub expose_user_metadata: bool,
    /// Coalescing overrides for this bucket.
    #[serde(default)]
    pub coalescing: Option<BucketCoalescingConfig>,
    /// Cache settings for this bucket.
    #[serde(default)]
    pub cache: Option<BucketCacheConfig>,
}

/// `buckets[].s3`: where and how to reach the bucket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket's name at the origin (required unless `replicas` are given).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Signing region (default: `AWS_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// A custom endpoint (MinIO, R2, Ceph, ...); AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id; with `secret_key`. Absent: the AWS default credential chain.
    #[serde(default)]
    pub access_key: Option<String>,
    /// Secret access key.
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// Session token for temporary keys.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Unsigned requests, for public buckets.
    #[serde(default, deserialize_with = "lenient")]
    pub anonymous: bool,
    /// `auto` (default), `path` or `virtual`.
    #[serde(default)]
    pub addressing: Option<String>,
    /// Seconds to wait for response headers, and between body chunks.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub timeout: Option<u64>,
    /// Seconds to establish a connection.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub connect_timeout: Option<u64>,
    /// Attempts per origin request (1 = no retry).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub max_attempts: Option<u32>,
    /// Fail fast while the origin is down.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Attempts and backoff per origin request (instead of `max_attempts`).
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// A limit on this bucket's requests, all clients together.
    #[serde(default)]
    pub rate_limit: Option<RateConfig>,
    /// Most requests to the origin in flight at once (a GET until its body is read); none: no cap.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub max_concurrent_requests: Option<usize>,
    /// How long a request waits for one of those slots before a 503 (default 5000).
    #[serde(default = "default_queue_timeout", deserialize_with = "lenient")]
    pub queue_timeout_ms: u64,
    /// Idle connections to the origin kept for reuse (default: the shared pool, unbounded).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub connection_pool_size: Option<usize>,
    /// Several origins holding the same objects, read from the best one that works, instead of
    /// `bucket`, `endpoint`, `region` and the credentials here. The other settings of this section
    /// (breaker, retry, cap, pool, timeouts) apply to each replica.
    #[serde(default)]
    pub replicas: Vec<ReplicaConfig>,
}

/// `buckets[].s3.replicas[]`: one origin of a replicated bucket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReplicaConfig {
    /// Its name, unique within the bucket (logs, metrics, `/ready`, admin stats).
    pub name: String,
    /// The bucket's name at this origin.
    pub bucket: String,
    /// Signing region (default: `AWS_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// A custom endpoint; AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id; with `secret_key`. Absent: the AWS default credential chain.
    #[serde(default)]
    pub access_key: Option<String>,
    /// Secret access key.
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// Session token for temporary keys.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Unsigned requests.
    #[serde(default, deserialize_with = "lenient")]
    pub anonymous: bool,
    /// `auto` (default), `path` or `virtual`.
    #[serde(default)]
    pub addressing: Option<String>,
    /// Lower is preferred (default 1); equal priorities keep the order given.
    #[serde(default = "default_priority", deserialize_with = "lenient")]
    pub priority: u32,
    /// Seconds to wait for response headers and between body chunks from this replica (default:
    /// the section's `timeout`).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub timeout: Option<u64>,
}

fn default_priority() -> u32 {
    1
}

impl S3Config {
    /// The origins this section describes, each with the key its fields sit under: every replica
    /// (`s3.replicas[j]`), or the one origin given by the fields of `s3` itself (`s3`, named
    /// `primary`).
    pub fn origins(&self) -> Vec<(String, ReplicaConfig)> {
        if !self.replicas.is_empty() {
            return self
                .replicas
                .iter()
                .enumerate()
                .map(|(j, r)| (format!("s3.replicas[{j}]"), r.clone()))
                .collect();
        }
        let single = ReplicaConfig {
            name: "primary".to_owned(),
            bucket: self.bucket.clone().unwrap_or_default(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            session_token: self.session_token.clone(),
            anonymous: self.anonymous,
            addressing: self.addressing.clone(),
            priority: 1,
            timeout: self.timeout,
        };
        vec![("s3".to_owned(), single)]
    }

    /// The single-origin fields set beside `replicas` (a configuration error).
    pub fn single_origin_fields(&self) -> Vec<&'static str> {
        [
            ("bucket", self.bucket.is_some()),
            ("region", self.region.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("access_key", self.access_key.is_some()),
            ("secret_key", self.secret_key.is_some()),
            ("session_token", self.session_token.is_some()),
            ("anonymous", self.anonymous),
            ("addressing", self.addressing.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

fn default_queue_timeout() -> u64 {
    5000
}

/// `buckets[].s3.retry`: how often and how patiently a failed origin request is tried again
/// (exponential backoff with full jitter, on retryable failures only).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in total, 1 = no retry (default 3).
    #[serde(default = "default_attempts", deserialize_with = "lenient")]
    pub max_attempts: u32,
    /// The first backoff's upper bound; doubles per retry (default 50).
    #[serde(default = "default_initial_backoff", deserialize_with = "lenient")]
    pub initial_backoff_ms: u64,
    /// Upper bound of any backoff (default 2000).
    #[serde(default = "default_max_backoff", deserialize_with = "lenient")]
    pub max_backoff_ms: u64,
}

fn default_attempts() -> u32 {
    3
}

fn default_initial_backoff() -> u64 {
    50
}

fn default_max_backoff() -> u64 {
    2000
}

/// `buckets[].s3.circuit_breaker`: when the bucket's origin counts as down (see
/// `yatagarasu_s3::CircuitBreaker`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Origin faults in a row that open the breaker (default 5).
    #[serde(default = "default_failure_threshold", deserialize_with = "lenient")]
    pub failure_threshold: u32,
    /// Successful probes that close it (default 2).
    #[serde(default = "default_success_threshold", deserialize_with = "lenient")]
    pub success_threshold: u32,
    /// Seconds it stays open before probing (default 30).
    #[serde(default = "default_breaker_timeout", deserialize_with = "lenient")]
    pub timeout_seconds: u64,
    /// Probes let through at a time while half-open (default 1).
    #[serde(default = "default_half_open", deserialize_with = "lenient")]
    pub half_open_max_requests: u32,
}

fn default_failure_threshold() -> u32 {
    5
}

fn default_success_threshold() -> u32 {
    2
}

fn default_breaker_timeout() -> u64 {
    30
}

fn default_half_open() -> u32 {
    1
}

/// `buckets[].ip_filter`: networks (CIDR or single addresses, IPv4 and IPv6).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IpFilterConfig {
    /// Only these may read (empty: anyone not blocked).
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// These may not read; wins over the allowlist.
    #[serde(default)]
    pub blocklist: Vec<String>,
}

/// `buckets[].authorization`: one policy engine, named by `type` (`opa`, `openfga`, `rego`), with
/// that engine's keys (prefixed by its name, as in the earlier proxy). Flat rather than tagged, so
/// a key of another engine gets an error naming it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthorizationConfig {
    /// `opa`, `openfga` or `rego`.
    #[serde(rename = "type")]
    pub kind: String,
    /// OPA: the server's base URL.
    #[serde(default)]
    pub opa_url: Option<String>,
    /// OPA: the rule, slash separated (`yatagarasu/authz/allow`).
    #[serde(default)]
    pub opa_policy_path: Option<String>,
    /// OPA: milliseconds to wait for a decision (default 100).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub opa_timeout_ms: Option<u64>,
    /// OPA: seconds a decision is remembered (default 60; 0: never).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub opa_cache_ttl_seconds: Option<u64>,
    /// OPA: `closed` (503, default) or `open` (allow) when the server cannot answer.
    #[serde(default)]
    pub opa_fail_mode: Option<String>,
    /// OpenFGA: the server's base URL.
    #[serde(default)]
    pub openfga_endpoint: Option<String>,
    /// OpenFGA: the store.
    #[serde(default)]
    pub openfga_store_id: Option<String>,
    /// OpenFGA: the authorization model (default: the store's latest).
    #[serde(default)]
    pub openfga_authorization_model_id: Option<String>,
    /// OpenFGA: preshared key sent as a bearer token.
    #[serde(default)]
    pub openfga_api_token: Option<Secret>,
    /// OpenFGA: milliseconds to wait for a decision (default 100).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub openfga_timeout_ms: Option<u64>,
    /// OpenFGA: seconds a decision is remembered (default 60; 0: never).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub openfga_cache_ttl_seconds: Option<u64>,
    /// OpenFGA: `closed` (default) or `open`.
    #[serde(default)]
    pub openfga_fail_mode: Option<String>,
    /// OpenFGA: the claim naming the user (default `sub`).
    #[serde(default)]
    pub openfga_user_claim: Option<String>,
    /// Rego: the policy file.
    #[serde(default)]
    pub policy_path: Option<String>,
    /// Rego: the rule, `data.<package>.<rule>`.
    #[serde(default)]
    pub query: Option<String>,
    /// Rego: milliseconds an evaluation may take (default 100).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub rego_timeout_ms: Option<u64>,
    /// Rego: seconds a decision is remembered (default 60; 0: never).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub rego_cache_ttl_seconds: Option<u64>,
    /// Rego: `closed` (default) or `open` when an evaluation fails.
    #[serde(default)]
    pub rego_fail_mode: Option<String>,
}

/// `buckets[].auth`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Whether requests must carry a valid JWT.
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}
