//! The YAML configuration: parsing, `${VAR}` substitution, validation with precise errors, and
//! turning it into a [`Proxy`].
//!
//! Key names follow the earlier proxy of this name where a feature exists in both (`server.address`,
//! `server.port`, `buckets[].name`, `buckets[].path_prefix`, `buckets[].s3.{bucket, region, endpoint,
//! access_key, secret_key, timeout}`, `buckets[].auth.enabled`), so its users can bring their files.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};
use yatagarasu_s3::{
    AddressingStyle, Credentials, CredentialsSource, RetryPolicy, S3Client, Timeouts,
};

use std::sync::Arc;

use yatagarasu_cache::{CacheTier, DiskTier, MemoryTier, RedisOptions, RedisTier, TieredCache};

use crate::cache::CachePolicy;
use crate::cors::CorsPolicy;
use crate::fetch::{CoalescingOptions, FetchOptions};
use crate::proxy::Proxy;
use crate::router::{BucketRoute, RESERVED_PATHS, normalize_prefix};
use crate::server::ServerOptions;

/// Everything wrong with a configuration, one problem per line, each naming the key's full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }

    /// The problems, each `path: message`.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// The buckets served, each under a path prefix.
    pub buckets: Vec<BucketConfig>,
    /// Sliced, shared origin fetches.
    #[serde(default)]
    pub coalescing: CoalescingConfig,
    /// JWT authentication (not available yet: only `enabled: false` is accepted).
    #[serde(default)]
    pub jwt: Option<Value>,
    /// Caching in memory, on disk and in Redis.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// The admin API (purge, stats) on its own listener.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
}

/// `server`: the listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub address: String,
    /// Port to listen on.
    #[serde(deserialize_with = "lenient")]
    pub port: u16,
    /// Most concurrent client connections; further ones wait in the kernel's accept queue.
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        let o = ServerOptions::default();
        Self {
            address: "0.0.0.0".into(),
            port: 8080,
            max_connections: o.max_connections,
            max_header_bytes: o.max_header_bytes,
            max_headers: o.max_headers,
            max_uri_bytes: o.max_uri_bytes,
            shutdown_grace_seconds: o.grace_period.as_secs(),
            ready_cache_seconds: 5,
        }
    }
}

/// `admin`: the admin API listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    pub token: Option<String>,
}

fn loopback() -> String {
    "127.0.0.1".to_owned()
}

fn admin_port() -> u16 {
    9091
}

/// `cache`: the cache tiers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Seconds a 404 (NoSuchKey) is remembered; 0 (the default) never caches errors.
    #[serde(default, deserialize_with = "lenient")]
    pub negative_ttl_seconds: u64,
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

fn one_day() -> u64 {
    86_400
}

/// `cache.memory`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryCacheConfig {
    /// Capacity in MiB.
    #[serde(deserialize_with = "lenient")]
    pub max_cache_size_mb: u64,
    /// Largest entry in MiB (larger entries skip memory but still go to disk and Redis).
    #[serde(deserialize_with = "lenient")]
    pub max_item_size_mb: u64,
    /// Freshness when an object's `Cache-Control` gives none (buckets may override).
    #[serde(deserialize_with = "lenient")]
    pub default_ttl_seconds: u64,
}

impl Default for MemoryCacheConfig {
    fn default() -> Self {
        Self {
            max_cache_size_mb: 256,
            max_item_size_mb: 16,
            default_ttl_seconds: 3600,
        }
    }
}

/// `cache.disk`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskCacheConfig {
    /// Directory of the disk tier (created if missing).
    pub cache_dir: String,
    /// Capacity in MiB.
    #[serde(default = "one_gib_in_mb", deserialize_with = "lenient")]
    pub max_disk_cache_size_mb: u64,
    /// Largest entry in MiB.
    #[serde(default = "default_item_mb", deserialize_with = "lenient")]
    pub max_item_size_mb: u64,
}

fn one_gib_in_mb() -> u64 {
    1024
}

fn default_item_mb() -> u64 {
    64
}

/// `cache.redis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCacheConfig {
    /// `redis://host:port/db`.
    pub redis_url: String,
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
}

fn default_prefix() -> String {
    "yatagarasu:".to_owned()
}

fn default_redis_timeout() -> u64 {
    200
}

/// `buckets[].cache`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketCacheConfig {
    /// Cache this bucket's objects (default: on when `cache.enabled`).
    #[serde(default, deserialize_with = "lenient_opt")]
    pub enabled: Option<bool>,
    /// Freshness when an object's `Cache-Control` gives none.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub ttl_seconds: Option<u64>,
    /// Cache responses to requests that carry credentials (`Authorization`, cookies).
    #[serde(default, deserialize_with = "lenient")]
    pub cache_authenticated: bool,
}

/// `coalescing`: how origin fetches are sliced and shared between concurrent requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
        }
    }
}

/// `buckets[].coalescing`: per-bucket overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketCoalescingConfig {
    /// Overrides `coalescing.enabled`.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub enabled: Option<bool>,
    /// Overrides `coalescing.wait_timeout_ms`.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub wait_timeout_ms: Option<u64>,
}

/// `buckets[]`: one bucket and the prefix it is served under.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// A name for logs, errors and `/ready`.
    pub name: String,
    /// URL path prefix, e.g. `/products`.
    pub path_prefix: String,
    /// The origin.
    pub s3: S3Config,
    /// Authentication (not available yet: only `enabled: false` is accepted).
    #[serde(default)]
    pub auth: AuthConfig,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket's name at the origin.
    pub bucket: String,
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
    pub secret_key: Option<String>,
    /// Session token for temporary keys.
    #[serde(default)]
    pub session_token: Option<String>,
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
}

/// `buckets[].auth`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether requests must carry a valid JWT.
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
}

/// `buckets[].cors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed (`*` for any).
    pub allowed_origins: Vec<String>,
    /// Methods allowed (default GET, HEAD).
    #[serde(default)]
    pub allowed_methods: Option<Vec<String>>,
    /// Request headers allowed in preflight (`*` for any).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Seconds a preflight answer may be cached.
    #[serde(default, deserialize_with = "lenient_opt")]
    pub max_age_seconds: Option<u64>,
    /// Allow credentialed requests (cookies, Authorization).
    #[serde(default, deserialize_with = "lenient")]
    pub allow_credentials: bool,
}

/// Numbers and booleans may come from `${VAR}` substitution as strings.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    match &v {
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a valid value here"))),
        _ => serde_json::from_value(v).map_err(serde::de::Error::custom),
    }
}

fn lenient_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + serde::de::DeserializeOwned,
{
    lenient(d).map(Some)
}

impl Config {
    /// Read and validate a configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("{}: cannot read: {e}", path.display())))?;
        Self::from_yaml_with_env(&text, &|name| std::env::var(name).ok())
    }

    /// Parse and validate YAML text, substituting `${VAR}` / `${VAR:-default}` from `env`.
    pub fn from_yaml_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let docs = YamlLoader::load_from_str(text)
            .map_err(|e| ConfigError::one(format!("YAML syntax: {e}")))?;
        let doc = match docs.as_slice() {
            [one] => one,
            [] => return Err(ConfigError::one("the configuration file is empty")),
            _ => {
                return Err(ConfigError::one(
                    "the configuration file holds more than one YAML document",
                ));
            }
        };
        let mut problems = Vec::new();
        let value = to_json(doc, "", env, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let config: Config =
            serde_path_to_error::deserialize(value).map_err(|e| ConfigError::one(describe(&e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        let s = &self.server;
        if s.address.parse::<std::net::IpAddr>().is_err() && s.address != "localhost" {
            p.push(format!(
                "server.address: `{}` is not an IP address",
                s.address
            ));
        }
        for (key, v) in [
            ("max_connections", s.max_connections),
            ("max_header_bytes", s.max_header_bytes),
            ("max_headers", s.max_headers),
            ("max_uri_bytes", s.max_uri_bytes),
        ] {
            if v == 0 {
                p.push(format!("server.{key}: must be greater than 0"));
            }
        }
        if s.max_header_bytes < 8192 {
            p.push("server.max_header_bytes: must be at least 8192".to_owned());
        }
        if let Some(c) = self.cache.as_ref().filter(|c| c.enabled) {
            validate_cache(c, &mut p);
        }
        if let Some(a) = self.admin.as_ref().filter(|a| a.enabled) {
            if a.address.parse::<std::net::IpAddr>().is_err() {
                p.push(format!(
                    "admin.address: `{}` is not an IP address",
                    a.address
                ));
            }
            match &a.token {
                None => p.push("admin.token: required when the admin API is enabled".to_owned()),
                Some(t) if t.trim().len() < 16 => {
                    p.push("admin.token: must be at least 16 characters".to_owned())
                }
                _ => {}
            }
            if a.address == self.server.address && a.port == self.server.port && a.port != 0 {
                p.push("admin.port: must differ from server.port".to_owned());
            }
        }
        for (section, v) in [("jwt", &self.jwt)] {
            if let Some(v) = v
                && v.get("enabled").and_then(Value::as_bool) != Some(false)
            {
                p.push(format!(
                    "{section}: {section} is not available in this version; remove the section or set `{section}.enabled: false`"
                ));
            }
        }
        if self.buckets.is_empty() {
            p.push("buckets: at least one bucket is required".to_owned());
        }
        let c = &self.coalescing;
        if !(64 * 1024..=1024 * 1024 * 1024).contains(&c.slice_size) {
            p.push(format!(
                "coalescing.slice_size: {} is outside 65536 ..= 1073741824 bytes",
                c.slice_size
            ));
        }
        if (c.buffer_bytes as u64) < c.slice_size {
            p.push(format!(
                "coalescing.buffer_bytes: must be at least slice_size ({})",
                c.slice_size
            ));
        }
        if c.max_subscribers == 0 {
            p.push("coalescing.max_subscribers: must be at least 1".to_owned());
        }
        if c.wait_timeout_ms == 0 {
            p.push("coalescing.wait_timeout_ms: must be at least 1".to_owned());
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut prefixes: BTreeMap<String, usize> = BTreeMap::new();
        for (i, b) in self.buckets.iter().enumerate() {
            let at = format!("buckets[{i}]");
            if b.name.trim().is_empty() {
                p.push(format!("{at}.name: must not be empty"));
            } else if let Some(j) = names.insert(&b.name, i) {
                p.push(format!(
                    "{at}.name: `{}` is already the name of buckets[{j}]",
                    b.name
                ));
            }
            validate_prefix(&b.path_prefix, &format!("{at}.path_prefix"), &mut p);
            let norm = normalize_prefix(&b.path_prefix);
            if let Some(j) = prefixes.insert(norm.clone(), i) {
                p.push(format!(
                    "{at}.path_prefix: `{}` is the same prefix as buckets[{j}].path_prefix (`{norm}`)",
                    b.path_prefix
                ));
            }
            if b.auth.enabled {
                p.push(format!(
                    "{at}.auth.enabled: authentication is not available in this version; set it to false"
                ));
            }
            let s3 = &b.s3;
            if s3.bucket.trim().is_empty() {
                p.push(format!("{at}.s3.bucket: must not be empty"));
            }
            if let Some(e) = &s3.endpoint {
                match url::Url::parse(e) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                    Ok(_) => p.push(format!(
                        "{at}.s3.endpoint: `{e}` must be an http:// or https:// URL"
                    )),
                    Err(err) => p.push(format!("{at}.s3.endpoint: `{e}` is not a URL ({err})")),
                }
            }
            match (&s3.access_key, &s3.secret_key) {
                (Some(_), None) => p.push(format!(
                    "{at}.s3.secret_key: required when access_key is set"
                )),
                (None, Some(_)) => p.push(format!(
                    "{at}.s3.access_key: required when secret_key is set"
                )),
                (Some(_), Some(_)) if s3.anonymous => {
                    p.push(format!(
                        "{at}.s3.anonymous: cannot be true when access_key/secret_key are set"
                    ));
                }
                _ => {}
            }
            if s3.session_token.is_some() && s3.access_key.is_none() {
                p.push(format!(
                    "{at}.s3.session_token: needs access_key and secret_key"
                ));
            }
            if let Some(a) = &s3.addressing
                && !matches!(a.as_str(), "auto" | "path" | "virtual")
            {
                p.push(format!(
                    "{at}.s3.addressing: `{a}` is not one of auto, path, virtual"
                ));
            }
            for (key, v) in [
                ("timeout", s3.timeout),
                ("connect_timeout", s3.connect_timeout),
            ] {
                if v == Some(0) {
                    p.push(format!("{at}.s3.{key}: must be at least 1 second"));
                }
            }
            if b.coalescing.as_ref().and_then(|c| c.wait_timeout_ms) == Some(0) {
                p.push(format!(
                    "{at}.coalescing.wait_timeout_ms: must be at least 1"
                ));
            }
            if s3.max_attempts == Some(0) {
                p.push(format!("{at}.s3.max_attempts: must be at least 1"));
            }
            if let Some(c) = &b.cors
                && let Err(e) = CorsPolicy::from_config(c)
            {
                p.push(format!("{at}.cors.{e}"));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: p })
        }
    }

    /// The listener settings.
    pub fn server_options(&self) -> ServerOptions {
        let s = &self.server;
        ServerOptions {
            grace_period: Duration::from_secs(s.shutdown_grace_seconds),
            max_header_bytes: s.max_header_bytes,
            max_headers: s.max_headers,
            max_uri_bytes: s.max_uri_bytes,
            max_connections: s.max_connections,
        }
    }

    /// Build the cache tiers named in `cache.cache_layers`, fastest first (`None` without a cache).
    pub async fn build_cache(&self) -> Result<Option<TieredCache>, ConfigError> {
        let Some(c) = self.cache.as_ref().filter(|c| c.enabled) else {
            return Ok(None);
        };
        let mib = |n: u64| n.saturating_mul(1024 * 1024);
        let mut tiers: Vec<Arc<dyn CacheTier>> = Vec::new();
        for layer in &c.cache_layers {
            match layer.as_str() {
                "memory" => tiers.push(Arc::new(MemoryTier::new(
                    mib(c.memory.max_cache_size_mb),
                    mib(c.memory.max_item_size_mb),
                ))),
                "disk" => {
                    let d = c
                        .disk
                        .as_ref()
                        .ok_or_else(|| ConfigError::one("cache.disk: required"))?;
                    let tier = DiskTier::open(
                        &d.cache_dir,
                        mib(d.max_disk_cache_size_mb),
                        mib(d.max_item_size_mb),
                    )
                    .await
                    .map_err(|e| {
                        ConfigError::one(format!("cache.disk.cache_dir: `{}`: {e}", d.cache_dir))
                    })?;
                    tiers.push(Arc::new(tier));
                }
                "redis" => {
                    let r = c
                        .redis
                        .as_ref()
                        .ok_or_else(|| ConfigError::one("cache.redis: required"))?;
                    let mut o = RedisOptions::new(r.redis_url.clone());
                    o.key_prefix = r.redis_key_prefix.clone();
                    o.default_ttl = r.redis_ttl_seconds.map(Duration::from_secs);
                    o.op_timeout = Duration::from_millis(r.operation_timeout_ms);
                    o.max_item_bytes = mib(r.max_item_size_mb);
                    let tier = RedisTier::new(o)
                        .map_err(|e| ConfigError::one(format!("cache.redis.redis_url: {e}")))?;
                    tiers.push(Arc::new(tier));
                }
                other => {
                    return Err(ConfigError::one(format!(
                        "cache.cache_layers: unknown layer `{other}`"
                    )));
                }
            }
        }
        Ok(Some(TieredCache::new(tiers)))
    }

    /// Build the proxy: one S3 client per bucket sharing one connection pool, and the cache tiers.
    pub async fn build_proxy(&self) -> Result<Proxy, ConfigError> {
        let http = yatagarasu_s3::default_http_client(Duration::from_secs(5))
            .map_err(|e| ConfigError::one(format!("cannot build the HTTP client: {e}")))?;
        let co = &self.coalescing;
        let mut builder = Proxy::builder()
            .fetch_options(FetchOptions {
                slice_size: co.slice_size,
                buffer_bytes: co.buffer_bytes,
                max_subscribers: co.max_subscribers,
            })
            .max_uri_bytes(self.server.max_uri_bytes)
            .ready_cache(Duration::from_secs(self.server.ready_cache_seconds));
        if let Some(tiers) = self.build_cache().await? {
            let retention = self
                .cache
                .as_ref()
                .map_or(86_400, |c| c.stale_retention_seconds);
            let negative = self.cache.as_ref().map_or(0, |c| c.negative_ttl_seconds);
            builder = builder.cache_with_negative_ttl(
                tiers,
                Duration::from_secs(retention),
                Duration::from_secs(negative),
            );
        }
        let default_ttl = self
            .cache
            .as_ref()
            .map_or(3600, |c| c.memory.default_ttl_seconds);
        for (i, b) in self.buckets.iter().enumerate() {
            let s3 = &b.s3;
            let mut c = S3Client::builder(s3.bucket.clone()).http_client(http.clone());
            if let Some(r) = &s3.region {
                c = c.region(r.clone());
            }
            if let Some(e) = &s3.endpoint {
                c = c.endpoint(e.clone());
            }
            c = c.addressing_style(match s3.addressing.as_deref() {
                Some("path") => AddressingStyle::Path,
                Some("virtual") => AddressingStyle::VirtualHosted,
                _ => AddressingStyle::Auto,
            });
            c = match (&s3.access_key, &s3.secret_key, s3.anonymous) {
                (_, _, true) => c.anonymous(),
                (Some(ak), Some(sk), _) => {
                    let mut creds = Credentials::new(ak.clone(), sk.clone());
                    if let Some(t) = &s3.session_token {
                        creds = creds.with_session_token(t.clone());
                    }
                    c.credentials(creds)
                }
                _ => c.credentials_source(CredentialsSource::DefaultChain),
            };
            let mut timeouts = Timeouts::default();
            if let Some(t) = s3.timeout {
                timeouts.first_byte = Duration::from_secs(t);
                timeouts.idle = Duration::from_secs(t);
            }
            if let Some(t) = s3.connect_timeout {
                timeouts.connect = Duration::from_secs(t);
            }
            c = c.timeouts(timeouts);
            if let Some(n) = s3.max_attempts {
                c = c.retry_policy(RetryPolicy {
                    max_attempts: n,
                    ..RetryPolicy::default()
                });
            }
            let client = c
                .build()
                .map_err(|e| ConfigError::one(format!("buckets[{i}].s3: {}", e.message())))?;
            let cors = match &b.cors {
                Some(c) => Some(
                    CorsPolicy::from_config(c)
                        .map_err(|e| ConfigError::one(format!("buckets[{i}].cors.{e}")))?,
                ),
                None => None,
            };
            let overrides = b.coalescing.clone().unwrap_or_default();
            let mut route = BucketRoute::new(b.name.clone(), b.path_prefix.clone(), client);
            route.expose_user_metadata = b.expose_user_metadata;
            route.cors = cors;
            let bucket_cache = b.cache.clone().unwrap_or_default();
            route.cache = CachePolicy {
                enabled: bucket_cache.enabled.unwrap_or(true),
                ttl: Duration::from_secs(bucket_cache.ttl_seconds.unwrap_or(default_ttl)),
                cache_authenticated: bucket_cache.cache_authenticated,
            };
            route.coalescing = CoalescingOptions {
                enabled: overrides.enabled.unwrap_or(co.enabled),
                wait_timeout: Duration::from_millis(
                    overrides.wait_timeout_ms.unwrap_or(co.wait_timeout_ms),
                ),
            };
            builder = builder.route(route);
        }
        Ok(builder.build())
    }
}

fn validate_cache(c: &CacheConfig, p: &mut Vec<String>) {
    if c.cache_layers.is_empty() {
        p.push("cache.cache_layers: list at least one of memory, disk, redis".to_owned());
    }
    let mut seen = Vec::new();
    for (i, layer) in c.cache_layers.iter().enumerate() {
        if !matches!(layer.as_str(), "memory" | "disk" | "redis") {
            p.push(format!(
                "cache.cache_layers[{i}]: `{layer}` is not one of memory, disk, redis"
            ));
        } else if seen.contains(layer) {
            p.push(format!(
                "cache.cache_layers[{i}]: `{layer}` is listed twice"
            ));
        }
        seen.push(layer.clone());
    }
    let m = &c.memory;
    if m.max_cache_size_mb == 0 || m.max_item_size_mb == 0 {
        p.push(
            "cache.memory: max_cache_size_mb and max_item_size_mb must be greater than 0"
                .to_owned(),
        );
    }
    if seen.iter().any(|l| l == "disk") {
        match &c.disk {
            None => p.push("cache.disk: required when cache_layers lists disk".to_owned()),
            Some(d) if d.cache_dir.trim().is_empty() => {
                p.push("cache.disk.cache_dir: must not be empty".to_owned())
            }
            Some(d) if d.max_disk_cache_size_mb == 0 => {
                p.push("cache.disk.max_disk_cache_size_mb: must be greater than 0".to_owned());
            }
            _ => {}
        }
    }
    if seen.iter().any(|l| l == "redis") {
        match &c.redis {
            None => p.push("cache.redis: required when cache_layers lists redis".to_owned()),
            Some(r) => {
                if redis_url_problem(&r.redis_url).is_some() {
                    p.push(format!(
                        "cache.redis.redis_url: `{}` is not a redis:// or rediss:// URL",
                        r.redis_url
                    ));
                }
                if r.operation_timeout_ms == 0 {
                    p.push("cache.redis.operation_timeout_ms: must be at least 1".to_owned());
                }
            }
        }
    }
}

fn redis_url_problem(u: &str) -> Option<()> {
    match url::Url::parse(u) {
        Ok(url)
            if matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys")
                && url.host_str().is_some() =>
        {
            None
        }
        _ => Some(()),
    }
}

fn validate_prefix(prefix: &str, at: &str, p: &mut Vec<String>) {
    if !prefix.starts_with('/') {
        p.push(format!("{at}: `{prefix}` must start with `/`"));
        return;
    }
    if prefix.contains(['?', '#', '%', '\\']) || prefix.chars().any(char::is_control) {
        p.push(format!(
            "{at}: `{prefix}` may not contain `?`, `#`, `%`, `\\` or control characters"
        ));
    }
    if prefix.split('/').any(|s| s == "." || s == "..") {
        p.push(format!(
            "{at}: `{prefix}` may not contain `.` or `..` segments"
        ));
    }
    let norm = normalize_prefix(prefix);
    for reserved in RESERVED_PATHS {
        if norm == *reserved || norm.starts_with(&format!("{reserved}/")) {
            p.push(format!(
                "{at}: `{prefix}` would shadow the proxy's own `{reserved}` endpoint"
            ));
        }
    }
}

/// Convert the YAML tree to JSON, substituting `${VAR}` in string scalars (values only: keys and
/// comments are never touched, and a substituted value is always a single scalar, so it cannot inject
/// structure).
fn to_json(
    y: &Yaml,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Value {
    match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .map_or(Value::String(r.clone()), Value::from),
        Yaml::String(s) => match substitute(s, env) {
            Ok(v) => Value::String(v),
            Err(e) => {
                problems.push(format!("{}: {e}", display_path(path)));
                Value::Null
            }
        },
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{path}[{i}]"), env, problems))
                .collect(),
        ),
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => {
                        problems.push(format!(
                            "{}: keys must be plain names, found {other:?}",
                            display_path(path)
                        ));
                        continue;
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(key, to_json(v, &child, env, problems));
            }
            Value::Object(out)
        }
        Yaml::Alias(_) => {
            problems.push(format!(
                "{}: YAML aliases are not supported",
                display_path(path)
            ));
            Value::Null
        }
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "(top level)" } else { path }
}

/// Replace `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub(crate) fn substitute(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set and has no default"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `path: message`, with a suggestion for misspelt keys.
fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let msg = e.inner().to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let base = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        let full = if path.ends_with(field) {
            path.clone()
        } else {
            format!("{base}{field}")
        };
        let suggestion = candidates
            .iter()
            .map(|c| (levenshtein(field, c), *c))
            .filter(|(d, c)| *d <= 2.max(c.len() / 3))
            .min()
            .map(|(_, c)| format!(", did you mean {c}?"))
            .unwrap_or_else(|| {
                if candidates.is_empty() {
                    String::new()
                } else {
                    format!(" (expected one of: {})", candidates.join(", "))
                }
            });
        return format!("{full}: unknown field{suggestion}");
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let base = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        return format!("{base}{field}: missing field");
    }
    let path = if path == "." {
        "(top level)".to_owned()
    } else {
        path
    };
    format!("{path}: {msg}")
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with_env(yaml, &|n| match n {
            "SECRET" => Some("s3cr3t".into()),
            "PORT" => Some("9090".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        })
    }

    const MINIMAL: &str =
        "buckets:\n  - name: media\n    path_prefix: /media\n    s3:\n      bucket: media-bucket\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.server.address, "0.0.0.0");
        assert_eq!(c.buckets[0].s3.bucket, "media-bucket");
        assert!(
            futures_util::FutureExt::now_or_never(c.build_proxy())
                .expect("no cache: builds without awaiting")
                .is_ok()
        );
    }

    #[test]
    fn env_substitution_in_values() {
        let c = parse(
            "server:\n  port: ${PORT}\n# ${NOT_SET} in a comment is ignored\nbuckets:\n  - name: m\n    path_prefix: /m\n    s3:\n      bucket: b\n      access_key: AKID\n      secret_key: ${SECRET}\n      region: ${REGION:-eu-west-1}\n      endpoint: \"${ENDPOINT:-http://127.0.0.1:9000}\"\n",
        )
        .unwrap();
        assert_eq!(c.server.port, 9090);
        assert_eq!(c.buckets[0].s3.secret_key.as_deref(), Some("s3cr3t"));
        assert_eq!(c.buckets[0].s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            c.buckets[0].s3.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn substitution_rules() {
        let env = |n: &str| (n == "A").then(|| "x: [1]".to_owned());
        assert_eq!(
            substitute("pre-${A}-post", &env).unwrap(),
            "pre-x: [1]-post"
        );
        assert_eq!(substitute("$${A}", &env).unwrap(), "${A}");
        assert_eq!(substitute("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(substitute("${B:-}", &env).unwrap(), "");
        assert!(
            substitute("${B}", &env)
                .unwrap_err()
                .contains("B is not set")
        );
        assert!(substitute("${A", &env).is_err());
        assert!(substitute("${A B}", &env).is_err());
    }

    #[test]
    fn substituted_yaml_is_not_interpreted() {
        let c = Config::from_yaml_with_env(
            "buckets:\n  - name: m\n    path_prefix: /m\n    s3:\n      bucket: ${B}\n",
            &|_| Some("b\n    endpoint: http://evil".to_owned()),
        )
        .unwrap();
        assert_eq!(c.buckets[0].s3.bucket, "b\n    endpoint: http://evil");
        assert!(c.buckets[0].s3.endpoint.is_none());
    }

    #[test]
    fn unset_variable_names_it_and_the_key() {
        let err = parse("buckets:\n  - name: m\n    path_prefix: /m\n    s3:\n      bucket: b\n      secret_key: ${MISSING}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "buckets[0].s3.secret_key: environment variable MISSING is not set and has no default"
        );
    }

    #[test]
    fn typo_gets_path_and_suggestion() {
        let err = parse(
            "buckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a}\n  - name: b\n    path_prefix: /b\n    s3:\n      bucket: b\n      acess_key: x\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "buckets[1].s3.acess_key: unknown field, did you mean access_key?"
        );
        let err = parse("sever:\n  port: 1\nbuckets: []\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sever: unknown field, did you mean server?"
        );
        let err = parse("server:\n  prot: 1\nbuckets: []\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "server.prot: unknown field, did you mean port?"
        );
    }

    #[test]
    fn missing_and_mistyped_fields() {
        let err = parse("buckets:\n  - name: a\n    path_prefix: /a\n    s3: {}\n").unwrap_err();
        assert_eq!(err.to_string(), "buckets[0].s3.bucket: missing field");
        let err = parse("server:\n  port: http\nbuckets: []\n").unwrap_err();
        assert!(err.to_string().starts_with("server.port: "), "{err}");
        let err = parse("server:\n  port: 70000\nbuckets: []\n").unwrap_err();
        assert!(err.to_string().starts_with("server.port: "), "{err}");
        let err = parse("buckets: nope\n").unwrap_err();
        assert!(err.to_string().starts_with("buckets: "), "{err}");
    }

    #[test]
    fn semantic_checks_report_every_problem() {
        let err = parse(
            "buckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a, endpoint: 'ftp://x', access_key: k}\n  - name: a\n    path_prefix: /a/\n    s3: {bucket: ''}\n  - name: c\n    path_prefix: /health\n    s3: {bucket: c, addressing: sideways}\n  - name: d\n    path_prefix: nope\n    s3: {bucket: d}\n    auth: {enabled: true}\n",
        )
        .unwrap_err();
        let text = err.to_string();
        for want in [
            "buckets[0].s3.endpoint: `ftp://x` must be an http:// or https:// URL",
            "buckets[0].s3.secret_key: required when access_key is set",
            "buckets[1].name: `a` is already the name of buckets[0]",
            "buckets[1].path_prefix: `/a/` is the same prefix as buckets[0].path_prefix (`/a`)",
            "buckets[1].s3.bucket: must not be empty",
            "buckets[2].path_prefix: `/health` would shadow the proxy's own `/health` endpoint",
            "buckets[2].s3.addressing: `sideways` is not one of auto, path, virtual",
            "buckets[3].path_prefix: `nope` must start with `/`",
            "buckets[3].auth.enabled: authentication is not available in this version; set it to false",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn unavailable_features_are_refused_not_ignored() {
        let err = parse(&format!("{MINIMAL}jwt:\n  enabled: true\n")).unwrap_err();
        assert!(
            err.to_string().starts_with("jwt: jwt is not available"),
            "{err}"
        );
        let err = parse(&format!(
            "{MINIMAL}cache:\n  cache_layers: [memory, tape, memory]\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cache.cache_layers[1]: `tape` is not one of memory, disk, redis"),
            "{text}"
        );
        assert!(
            text.contains("cache.cache_layers[2]: `memory` is listed twice"),
            "{text}"
        );
        let err = parse(&format!("{MINIMAL}cache:\n  cache_layers: [disk, redis]\n")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cache.disk: required when cache_layers lists disk"),
            "{text}"
        );
        assert!(
            text.contains("cache.redis: required when cache_layers lists redis"),
            "{text}"
        );
        let err = parse(&format!(
            "{MINIMAL}cache:\n  cache_layers: [redis]\n  redis: {{redis_url: 'http://x'}}\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cache.redis.redis_url: `http://x` is not a redis://"),
            "{err}"
        );
        let err = parse(&format!(
            "{MINIMAL}cache:\n  memory: {{max_cache_size: 1}}\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cache.memory.max_cache_size: unknown field, did you mean max_cache_size_mb?"
        );
        assert!(parse(&format!("{MINIMAL}cache:\n  enabled: false\n")).is_ok());
    }

    #[test]
    fn syntax_errors_and_odd_documents() {
        assert!(
            parse("buckets: [")
                .unwrap_err()
                .to_string()
                .starts_with("YAML syntax:")
        );
        assert!(parse("").unwrap_err().to_string().contains("empty"));
        assert!(
            parse("a: 1\na: 2\n")
                .unwrap_err()
                .to_string()
                .contains("duplicated key")
        );
        assert!(
            parse("---\na: 1\n---\nb: 2\n")
                .unwrap_err()
                .to_string()
                .contains("more than one")
        );
    }

    #[test]
    fn coalescing_config_and_overrides() {
        let c = parse(&format!(
            "{MINIMAL}coalescing:\n  slice_size: 1048576\n  wait_timeout_ms: 500\n"
        ))
        .unwrap();
        assert_eq!(c.coalescing.slice_size, 1_048_576);
        assert!(c.coalescing.enabled);
        let proxy = futures_util::FutureExt::now_or_never(c.build_proxy())
            .unwrap()
            .unwrap();
        assert_eq!(
            proxy.routes()[0].coalescing.wait_timeout,
            Duration::from_millis(500)
        );
        let c = parse("buckets:\n  - name: m\n    path_prefix: /m\n    s3: {bucket: b}\n    coalescing: {enabled: false}\n").unwrap();
        assert!(
            !futures_util::FutureExt::now_or_never(c.build_proxy())
                .unwrap()
                .unwrap()
                .routes()[0]
                .coalescing
                .enabled
        );
        let err = parse(&format!("{MINIMAL}coalescing:\n  slice_size: 100\n")).unwrap_err();
        assert!(
            err.to_string()
                .contains("coalescing.slice_size: 100 is outside"),
            "{err}"
        );
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("acess_key", "access_key"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
