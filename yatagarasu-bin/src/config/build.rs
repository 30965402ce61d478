//! Turning a validated [`Config`] into the running parts: S3 clients, cache tiers, routes, the proxy.
//! Start-up and `--check` run this same code; only binding sockets is left to the caller.

use std::sync::Arc;
use std::time::Duration;

use yatagarasu_cache::{
    CacheTier, DiskOptions, DiskTier, MemoryTier, RecordCheck, RedisOptions, RedisTier, TieredCache,
};
use yatagarasu_s3::{
    AddressingStyle, BreakerOptions, Credentials, CredentialsSource, HttpClient, HttpOptions,
    Origin, Replica, ReplicaSet, RetryPolicy, S3Client, Timeouts,
};

use jsonwebtoken::Algorithm;

use super::schema::{AuthorizationConfig, S3Config};
use super::{Config, ConfigError};
use crate::auth::{self, ClaimRule, IpFilter, JwtAuth, TokenSource};
use crate::cache::CachePolicy;
use crate::cors::CorsPolicy;
use crate::fetch::{CoalescingOptions, FetchOptions};
use crate::proxy::Proxy;
use crate::routes::BucketRoute;
use crate::server::ServerOptions;

/// Connect timeout of the origin connection pools built here.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Config {
    /// The listener settings.
    pub fn server_options(&self) -> ServerOptions {
        let s = &self.server;
        ServerOptions {
            grace_period: Duration::from_secs(s.shutdown_grace_seconds),
            max_header_bytes: s.max_header_bytes,
            max_headers: s.max_headers,
            max_uri_bytes: s.max_uri_bytes,
            max_connections: s.max_connections,
            header_read_timeout: Duration::from_secs(s.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(s.idle_timeout_seconds),
            send_timeout: Duration::from_secs(s.send_timeout_seconds),
            http2_keep_alive_interval: Duration::from_secs(s.http2_keep_alive_interval_seconds),
            http2_keep_alive_timeout: Duration::from_secs(s.http2_keep_alive_timeout_seconds),
        }
    }

    /// Build the cache tiers named in `cache.cache_layers`, fastest first (`None` without a cache).
    pub async fn build_cache(&self) -> Result<Option<TieredCache>, ConfigError> {
        let Some(c) = self.cache.as_ref().filter(|c| c.enabled) else {
            return Ok(None);
        };
        let mib = |n: u64| n.saturating_mul(1024 * 1024);
        let check = c
            .record_secret
            .as_ref()
            .map_or_else(RecordCheck::default, |s| RecordCheck::hmac(s.expose()));
        let mut tiers: Vec<Arc<dyn CacheTier>> = Vec::new();
        for layer in &c.cache_layers {
            match layer.as_str() {
                "memory" => {
                    let mut memory = MemoryTier::builder(mib(c.memory.max_cache_size_mb))
                        .max_item_bytes(mib(c.memory.max_item_size_mb));
                    if let Some(ttl) = c.memory.default_ttl_seconds {
                        memory = memory.max_ttl(Duration::from_secs(ttl));
                    }
                    tiers.push(Arc::new(memory.build()));
                }
                "disk" => {
                    let d = c
                        .disk
                        .as_ref()
                        .ok_or_else(|| ConfigError::one("cache.disk: required"))?;
                    let tier = DiskTier::builder(&d.cache_dir, mib(d.max_disk_cache_size_mb))
                        .max_item_bytes(mib(d.max_item_size_mb))
                        .options(
                            DiskOptions::default()
                                .with_record_check(check.clone())
                                .with_io_timeout(Duration::from_millis(d.io_timeout_ms)),
                        )
                        .open()
                        .await
                        .map_err(|e| {
                            ConfigError::one(format!(
                                "cache.disk.cache_dir: `{}`: {e}",
                                d.cache_dir
                            ))
                        })?;
                    tiers.push(Arc::new(tier));
                }
                "redis" => {
                    let r = c
                        .redis
                        .as_ref()
                        .ok_or_else(|| ConfigError::one("cache.redis: required"))?;
                    let target = r
                        .target()
                        .ok_or_else(|| ConfigError::one("cache.redis: no server given"))?;
                    let mut o = RedisOptions::new(String::new());
                    o.target = target;
                    o.key_prefix = r.redis_key_prefix.clone();
                    o.default_ttl = r.redis_ttl_seconds.map(Duration::from_secs);
                    o.op_timeout = Duration::from_millis(r.operation_timeout_ms);
                    o.max_item_bytes = mib(r.max_item_size_mb);
                    o.record_check = check.clone();
                    let tier = RedisTier::new(o)
                        .map_err(|e| ConfigError::one(format!("{}: {e}", r.target_key())))?;
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

    /// Build the token verifier of the `jwt` section (`None` when it is off): keys read and
    /// parsed now, so a bad key fails start-up (and `--check`) naming its key.
    pub fn build_jwt(&self) -> Result<Option<JwtAuth>, ConfigError> {
        let Some(j) = self.jwt.as_ref().filter(|j| j.enabled) else {
            return Ok(None);
        };
        let alg = |at: &str, name: &str| {
            name.parse::<Algorithm>().map_err(|_| {
                ConfigError::one(format!(
                    "{at}: `{name}` is not a JWT algorithm (HS256, RS256, ES256, ...)"
                ))
            })
        };
        let pem = |at: &str, algorithm: Algorithm, path: &str| {
            let bytes = std::fs::read(path)
                .map_err(|e| ConfigError::one(format!("{at}: cannot read `{path}`: {e}")))?;
            auth::pem_key(algorithm, &bytes)
                .map_err(|e| ConfigError::one(format!("{at}: `{path}`: {}", e.message())))
        };
        let mut b = JwtAuth::builder().leeway_seconds(j.leeway_seconds);
        let single = [
            ("jwt.secret", j.secret.is_some()),
            ("jwt.rsa_public_key_path", j.rsa_public_key_path.is_some()),
            (
                "jwt.ecdsa_public_key_path",
                j.ecdsa_public_key_path.is_some(),
            ),
        ];
        let given: Vec<&str> = single.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
        if given.len() > 1 {
            return Err(ConfigError::one(format!(
                "jwt: give one of {} (several keys go under jwt.keys)",
                given.join(", ")
            )));
        }
        if let Some(&key) = given.first() {
            let name = j
                .algorithm
                .as_deref()
                .ok_or_else(|| ConfigError::one(format!("jwt.algorithm: required with {key}")))?;
            let a = alg("jwt.algorithm", name)?;
            b = match (&j.secret, &j.rsa_public_key_path, &j.ecdsa_public_key_path) {
                (Some(s), _, _) if name.starts_with("HS") => b.hmac_key(a, s.expose().as_bytes()),
                (None, Some(p), _) => b.key(a, pem(key, a, p)?),
                (None, None, Some(p)) => b.key(a, pem(key, a, p)?),
                _ => {
                    return Err(ConfigError::one(format!(
                        "jwt.algorithm: `{name}` does not go with {key}"
                    )));
                }
            };
        } else if j.keys.is_empty() && j.jwks_url.is_none() {
            return Err(ConfigError::one(
                "jwt: no key (give secret, rsa_public_key_path, ecdsa_public_key_path, keys or jwks_url)",
            ));
        }
        if let Some(url) = &j.jwks_url {
            let interval = Duration::from_secs(j.jwks_refresh_interval_secs.unwrap_or(3600));
            b = b.jwks(url.clone(), interval, Duration::from_secs(5));
        }
        for (i, k) in j.keys.iter().enumerate() {
            let at = format!("jwt.keys[{i}]");
            let a = alg(&format!("{at}.algorithm"), &k.algorithm)?;
            let key = match (&k.secret, &k.path) {
                (Some(s), None) if k.algorithm.starts_with("HS") => {
                    jsonwebtoken::DecodingKey::from_secret(s.expose().as_bytes())
                }
                (None, Some(p)) if !k.algorithm.starts_with("HS") => {
                    pem(&format!("{at}.path"), a, p)?
                }
                _ => {
                    return Err(ConfigError::one(format!(
                        "{at}: an HS* key takes `secret`, other algorithms take `path`"
                    )));
                }
            };
            b = b.key_with_id(k.id.clone(), a, key);
        }
        if let Some(iss) = &j.issuer {
            b = b.issuer(iss.clone());
        }
        for aud in &j.audience {
            b = b.audience(aud.clone());
        }
        for (i, s) in j.token_sources.iter().enumerate() {
            let at = format!("jwt.token_sources[{i}]");
            let name = || {
                s.name
                    .clone()
                    .ok_or_else(|| ConfigError::one(format!("{at}.name: required for {}", s.kind)))
            };
            b = b.source(match s.kind.as_str() {
                "bearer" => TokenSource::Bearer,
                "header" => TokenSource::Header {
                    name: http::HeaderName::try_from(name()?)
                        .map_err(|_| ConfigError::one(format!("{at}.name: not a header name")))?,
                    prefix: s.prefix.clone(),
                },
                "query" => TokenSource::Query { name: name()? },
                other => {
                    return Err(ConfigError::one(format!(
                        "{at}.type: `{other}` is not one of bearer, header, query"
                    )));
                }
            });
        }
        for r in &j.claims {
            b = b.rule(ClaimRule::new(r.claim.clone(), r.operator, r.value.clone()));
        }
        Ok(Some(b.build()))
    }

    /// The admin API's JWT verifier (`None` without `jwt.admin_claims`): the `jwt` section's keys and
    /// checks, bearer tokens only, and the admin rules instead of `jwt.claims`.
    pub fn build_admin_jwt(&self) -> Result<Option<JwtAuth>, ConfigError> {
        let Some(rules) = self
            .jwt
            .as_ref()
            .filter(|j| j.enabled)
            .and_then(|j| j.admin_claims.as_ref())
        else {
            return Ok(None);
        };
        let Some(jwt) = self.build_jwt()? else {
            return Ok(None);
        };
        let rules = rules
            .iter()
            .map(|r| ClaimRule::new(r.claim.clone(), r.operator, r.value.clone()))
            .collect();
        Ok(Some(jwt.with_rules(vec![TokenSource::Bearer], rules)))
    }

    /// Build the proxy: one S3 client per bucket sharing one connection pool, and the cache tiers.
    pub async fn build_proxy(&self) -> Result<Proxy, ConfigError> {
        let co = &self.coalescing;
        let mut builder = Proxy::builder()
            .fetch_options(FetchOptions {
                slice_size: co.slice_size,
                buffer_bytes: co.buffer_bytes,
                max_subscribers: co.max_subscribers,
                buffer_budget_bytes: co.buffer_budget_bytes,
                abandoned_fill_bytes: co.abandoned_fill_bytes,
            })
            .max_uri_bytes(self.server.max_uri_bytes)
            .trusted_proxies(
                self.server
                    .trusted_proxies
                    .iter()
                    .filter_map(|n| auth::parse_net(n))
                    .collect(),
            )
            .ready_cache(Duration::from_secs(self.server.ready_cache_seconds));
        if let Some(r) = self.server.rate_limit.as_ref().filter(|r| r.enabled) {
            if let Some(g) = &r.global {
                builder = builder.global_rate_limit(g.rate());
            }
            if let Some(c) = &r.per_ip {
                builder = builder.per_client_rate_limit(c.rate(), r.max_tracked_clients);
            }
        }
        if self.metrics.as_ref().is_some_and(|m| m.enabled) {
            builder = builder.prometheus(crate::PrometheusMetrics::new());
        }
        if let Some(audit) = self.build_audit_log()? {
            builder = builder.audit(audit);
        }
        #[cfg(feature = "otel")]
        if let Some(t) = self
            .observability
            .as_ref()
            .and_then(|o| o.tracing.as_ref())
            .filter(|t| t.enabled)
        {
            let options =
                crate::otel::TracingOptions::new(&t.otlp_endpoint).sample_ratio(t.sample_ratio);
            let tracing = crate::otel::OtelTracing::start(&options).map_err(|e| {
                ConfigError::one(format!(
                    "observability.tracing: cannot start the exporter: {e}"
                ))
            })?;
            builder = builder.tracing(tracing);
        }
        let instance_id = self
            .server
            .instance_id
            .clone()
            .unwrap_or_else(crate::fleet::default_instance_id);
        builder = builder.instance_id(instance_id.clone());
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
            if let Some(fleet) = self.build_fleet(instance_id)? {
                builder = builder.fleet(fleet);
            }
        }
        for route in self.build_routes()? {
            builder = builder.route(route);
        }
        Ok(builder.build())
    }

    /// Fleet-wide purges and coalescing (`None` unless the cache has a Redis layer with
    /// `fleet_invalidation` or `fleet_coalescing`): known generations are kept beside the disk
    /// tier when there is one.
    pub fn build_fleet(
        &self,
        instance_id: String,
    ) -> Result<Option<crate::fleet::Fleet>, ConfigError> {
        let Some(c) = self.cache.as_ref().filter(|c| c.enabled) else {
            return Ok(None);
        };
        let Some(r) = c.redis.as_ref().filter(|r| {
            (r.fleet_invalidation || r.fleet_coalescing)
                && c.cache_layers.iter().any(|l| l == "redis")
        }) else {
            return Ok(None);
        };
        let Some(target) = r.target() else {
            return Ok(None);
        };
        let mut options = crate::fleet::FleetOptions::new(target, instance_id);
        options.key_prefix = r.redis_key_prefix.clone();
        options.resync_interval = Duration::from_secs(r.fleet_resync_seconds);
        options.invalidation = r.fleet_invalidation;
        options.coalescing = r.fleet_coalescing;
        options.lease_ttl = Duration::from_millis(r.fleet_lease_ms);
        options.wait_limit = Duration::from_millis(r.fleet_wait_ms);
        options.state_file = c
            .disk
            .as_ref()
            .filter(|_| c.cache_layers.iter().any(|l| l == "disk"))
            .map(|d| std::path::Path::new(&d.cache_dir).join("fleet-generations.json"));
        crate::fleet::Fleet::new(options)
            .map(Some)
            .map_err(|e| ConfigError::one(format!("{}: {}", r.target_key(), e.message())))
    }

    /// The proxy listener's TLS certificate and key, read and checked (`None` without
    /// `server.tls`).
    pub fn build_tls(&self) -> Result<Option<crate::ServerTls>, ConfigError> {
        let Some(t) = &self.server.tls else {
            return Ok(None);
        };
        crate::ServerTls::from_pem_files(&t.cert_path, &t.key_path)
            .map(Some)
            .map_err(|e| ConfigError::one(format!("server.tls.{e}")))
    }

    /// The audit log with its outputs opened and its writer started (`None` when disabled).
    pub fn build_audit_log(&self) -> Result<Option<crate::audit::AuditLog>, ConfigError> {
        use crate::audit::{AuditLog, FileOutput, Rotation, SyslogOutput, SyslogProtocol};
        let Some(a) = self.audit_log.as_ref().filter(|a| a.enabled) else {
            return Ok(None);
        };
        let mut builder = AuditLog::builder().queue_capacity(a.queue_capacity);
        let wants = |o: &str| a.outputs.iter().any(|x| x == o);
        if let Some(f) = a.file.as_ref().filter(|_| wants("file")) {
            let rotation = if f.rotation_policy == "daily" {
                Rotation::Daily
            } else {
                Rotation::Size
            };
            builder = builder.file(
                FileOutput::new(&f.path)
                    .max_file_bytes(f.max_file_size_mb.saturating_mul(1024 * 1024))
                    .max_backups(f.max_backup_files)
                    .rotation(rotation),
            );
        }
        if let Some(s) = a.syslog.as_ref().filter(|_| wants("syslog")) {
            let protocol = if s.protocol == "tcp" {
                SyslogProtocol::Tcp
            } else {
                SyslogProtocol::Udp
            };
            let output = SyslogOutput::new(&s.address, protocol)
                .facility(&s.facility)
                .ok_or_else(|| {
                    ConfigError::one(format!(
                        "audit_log.syslog.facility: `{}` is not a facility",
                        s.facility
                    ))
                })?;
            builder = builder.syslog(output);
        }
        builder
            .start()
            .map(Some)
            .map_err(|e| ConfigError::one(format!("audit_log: cannot open the outputs: {e}")))
    }

    /// The bucket routes alone: S3 clients (credentials, endpoints, timeouts), CORS, tokens,
    /// policies, IP filters, per-bucket cache and coalescing settings. What a reload swaps
    /// ([`Reloader`](crate::Reloader)); start-up builds them the same way.
    pub fn build_routes(&self) -> Result<Vec<BucketRoute>, ConfigError> {
        let jwt = self.build_jwt()?;
        let http = HttpClient::new(&HttpOptions::default().with_connect_timeout(CONNECT_TIMEOUT))
            .map_err(|e| ConfigError::one(format!("cannot build the HTTP client: {e}")))?;
        let co = &self.coalescing;
        let mut routes = Vec::with_capacity(self.buckets.len());
        let default_ttl = self.cache.as_ref().map_or(3600, |c| c.default_ttl_seconds);
        for (i, b) in self.buckets.iter().enumerate() {
            let s3 = &b.s3;
            let origin = build_origin(s3, &format!("buckets[{i}]"), &http)?;
            let cors = match &b.cors {
                Some(c) => Some(
                    CorsPolicy::from_config(c)
                        .map_err(|e| ConfigError::one(format!("buckets[{i}].cors.{e}")))?,
                ),
                None => None,
            };
            let overrides = b.coalescing.clone().unwrap_or_default();
            let mut route = BucketRoute::new(b.name.clone(), b.path_prefix.clone(), origin);
            route.expose_user_metadata = b.expose_user_metadata;
            route.cors = cors;
            let bucket_cache = b.cache.clone().unwrap_or_default();
            route.cache = CachePolicy {
                enabled: bucket_cache.enabled.unwrap_or(true),
                ttl: Duration::from_secs(bucket_cache.ttl_seconds.unwrap_or(default_ttl)),
                cache_authenticated: bucket_cache.cache_authenticated.unwrap_or(true),
            };
            if b.auth.enabled {
                route.auth = jwt.clone();
            }
            if let Some(a) = &b.authorization {
                route.policy = Some(build_policy(a).map_err(|e| {
                    ConfigError::one(format!("buckets[{i}].authorization.{}", e.message()))
                })?);
            }
            if let Some(f) = &b.ip_filter {
                let nets =
                    |list: &[String]| list.iter().filter_map(|n| auth::parse_net(n)).collect();
                route.ip_filter = Some(IpFilter::new(nets(&f.allowlist), nets(&f.blocklist)));
            }
            route.rate_limit = s3
                .rate_limit
                .as_ref()
                .map(|r| Arc::new(crate::ratelimit::RateLimit::new(r.rate())));
            route.coalescing = CoalescingOptions {
                enabled: overrides.enabled.unwrap_or(co.enabled),
                wait_timeout: Duration::from_millis(
                    overrides.wait_timeout_ms.unwrap_or(co.wait_timeout_ms),
                ),
            };
            routes.push(route);
        }
        Ok(routes)
    }
}

/// The origin a validated `s3` section describes: one S3 client, or a [`ReplicaSet`] of them, each
/// behind its decorators, innermost first: the breaker sees origin answers only (the cap's own
/// queue timeouts are not origin faults). Every replica of a set has a breaker (the section's, or
/// the defaults): the set orders replicas by it.
///
/// [`ReplicaSet`]: yatagarasu_s3::ReplicaSet
fn build_origin(
    s3: &S3Config,
    at: &str,
    shared_http: &HttpClient,
) -> Result<Arc<dyn Origin>, ConfigError> {
    let replicated = !s3.replicas.is_empty();
    let mut replicas = Vec::new();
    for (key, o) in s3.origins() {
        let http = match s3.connection_pool_size {
            // Its own pool, keeping at most this many idle connections.
            Some(n) => HttpClient::new(
                &HttpOptions::default()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_max_idle_per_host(n),
            )
            .map_err(|e| ConfigError::one(format!("cannot build the HTTP client: {e}")))?,
            None => shared_http.clone(),
        };
        let mut c = S3Client::builder(o.bucket.clone()).http_client(http);
        if let Some(r) = &o.region {
            c = c.region(r.clone());
        }
        if let Some(e) = &o.endpoint {
            c = c.endpoint(e.clone());
        }
        c = c.addressing_style(match o.addressing.as_deref() {
            Some("path") => AddressingStyle::Path,
            Some("virtual") => AddressingStyle::VirtualHosted,
            _ => AddressingStyle::Auto,
        });
        c = match (&o.access_key, &o.secret_key, o.anonymous) {
            (_, _, true) => c.anonymous(),
            (Some(ak), Some(sk), _) => {
                let mut creds = Credentials::new(ak.clone(), sk.expose());
                if let Some(t) = &o.session_token {
                    creds = creds.with_session_token(t.expose());
                }
                c.credentials(creds)
            }
            _ => c.credentials_source(CredentialsSource::DefaultChain),
        };
        let mut timeouts = Timeouts::default();
        if let Some(t) = o.timeout.or(s3.timeout) {
            timeouts.first_byte = Duration::from_secs(t);
            timeouts.idle = Duration::from_secs(t);
        }
        if let Some(t) = s3.connect_timeout {
            timeouts.connect = Duration::from_secs(t);
        }
        c = c.timeouts(timeouts);
        if let Some(r) = &s3.retry {
            c = c.retry_policy(
                RetryPolicy::default()
                    .with_max_attempts(r.max_attempts)
                    .with_base_delay(Duration::from_millis(r.initial_backoff_ms))
                    .with_max_delay(Duration::from_millis(r.max_backoff_ms)),
            );
        } else if let Some(n) = s3.max_attempts {
            c = c.retry_policy(RetryPolicy::default().with_max_attempts(n));
        }
        let client = c
            .build()
            .map_err(|e| ConfigError::one(format!("{at}.{key}: {}", e.message())))?;
        let mut origin: Arc<dyn Origin> = Arc::new(client);
        let breaker = match &s3.circuit_breaker {
            Some(cb) => Some(
                BreakerOptions::default()
                    .failure_threshold(cb.failure_threshold)
                    .success_threshold(cb.success_threshold)
                    .open_timeout(Duration::from_secs(cb.timeout_seconds))
                    .half_open_max_requests(cb.half_open_max_requests),
            ),
            None => replicated.then(BreakerOptions::default),
        };
        if let Some(options) = breaker {
            origin = Arc::new(yatagarasu_s3::CircuitBreaker::new(origin, options));
        }
        if let Some(n) = s3.max_concurrent_requests {
            origin = Arc::new(yatagarasu_s3::ConcurrencyLimit::new(
                origin,
                n,
                Duration::from_millis(s3.queue_timeout_ms),
            ));
        }
        if !replicated {
            return Ok(origin);
        }
        replicas.push(Replica::new(o.name, o.priority, origin));
    }
    let set = ReplicaSet::new(replicas)
        .map_err(|e| ConfigError::one(format!("{at}.s3.replicas: {}", e.message())))?;
    Ok(Arc::new(set))
}

/// The policy a validated `authorization` section describes. Errors start with the key at fault.
fn build_policy(a: &AuthorizationConfig) -> Result<auth::Policy, yatagarasu_core::Error> {
    let config = |m: String| yatagarasu_core::Error::new(yatagarasu_core::ErrorKind::Config, m);
    let missing = |key: &str| config(format!("{key}: required"));
    let (engine, timeout, ttl, mode): (auth::PolicyEngine, _, _, _) = match a.kind.as_str() {
        "opa" => (
            auth::Opa::new(
                a.opa_url.as_deref().ok_or_else(|| missing("opa_url"))?,
                a.opa_policy_path
                    .as_deref()
                    .ok_or_else(|| missing("opa_policy_path"))?,
            )?
            .into(),
            a.opa_timeout_ms,
            a.opa_cache_ttl_seconds,
            a.opa_fail_mode.as_deref(),
        ),
        "openfga" => {
            let mut f = auth::OpenFga::new(
                a.openfga_endpoint
                    .as_deref()
                    .ok_or_else(|| missing("openfga_endpoint"))?,
                a.openfga_store_id
                    .as_deref()
                    .ok_or_else(|| missing("openfga_store_id"))?,
            )?;
            if let Some(id) = &a.openfga_authorization_model_id {
                f = f.authorization_model_id(id.clone());
            }
            if let Some(t) = &a.openfga_api_token {
                f = f.api_token(t.expose().to_owned());
            }
            if let Some(c) = &a.openfga_user_claim {
                f = f.user_claim(c.clone());
            }
            (
                f.into(),
                a.openfga_timeout_ms,
                a.openfga_cache_ttl_seconds,
                a.openfga_fail_mode.as_deref(),
            )
        }
        _ => {
            let path = a
                .policy_path
                .as_deref()
                .ok_or_else(|| missing("policy_path"))?;
            let source = std::fs::read_to_string(path)
                .map_err(|e| config(format!("policy_path: cannot read `{path}`: {e}")))?;
            let query = a.query.as_deref().ok_or_else(|| missing("query"))?;
            let rego = auth::Rego::new(path, &source, query)
                .map_err(|e| config(format!("policy_path: {}", e.message())))?;
            (
                rego.into(),
                a.rego_timeout_ms,
                a.rego_cache_ttl_seconds,
                a.rego_fail_mode.as_deref(),
            )
        }
    };
    let mut b = auth::Policy::builder(engine)
        .timeout(Duration::from_millis(timeout.unwrap_or(100)))
        .cache_ttl(Duration::from_secs(ttl.unwrap_or(60)));
    if mode == Some("open") {
        b = b.fail_mode(auth::FailMode::Open);
    }
    Ok(b.build())
}
