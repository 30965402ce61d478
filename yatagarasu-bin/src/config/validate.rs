//! Semantic checks of a parsed [`Config`]: every problem is collected, each naming its key.

use std::collections::BTreeMap;

use super::schema::{AuthorizationConfig, CacheConfig, ReplicaConfig, redact_url};
use super::{Config, ConfigError};
use crate::cache::MAX_DIRECTIVE_SECONDS;
use crate::cors::CorsPolicy;
use crate::routes::{RESERVED_PATHS, normalize_prefix};

/// Most `server.worker_threads` accepted (far beyond any core count: a typo guard).
const MAX_WORKER_THREADS: usize = 1024;

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        for (key, v) in [
            ("header_read_timeout_seconds", s.header_read_timeout_seconds),
            ("idle_timeout_seconds", s.idle_timeout_seconds),
            ("send_timeout_seconds", s.send_timeout_seconds),
            (
                "http2_keep_alive_interval_seconds",
                s.http2_keep_alive_interval_seconds,
            ),
            (
                "http2_keep_alive_timeout_seconds",
                s.http2_keep_alive_timeout_seconds,
            ),
        ] {
            if !(1..=86_400).contains(&v) {
                p.push(format!("server.{key}: {v} is outside 1 ..= 86400 seconds"));
            }
        }
        if s.worker_threads > MAX_WORKER_THREADS {
            p.push(format!(
                "server.worker_threads: {} is more than {MAX_WORKER_THREADS}",
                s.worker_threads
            ));
        }
        if s.max_header_bytes < 8192 {
            p.push("server.max_header_bytes: must be at least 8192".to_owned());
        }
        if let Some(c) = self.cache.as_ref().filter(|c| c.enabled) {
            validate_cache(c, &mut p);
        }
        let admin_claims = self
            .jwt
            .as_ref()
            .is_some_and(|j| j.enabled && j.admin_claims.is_some());
        if let Some(a) = self.admin.as_ref().filter(|a| a.enabled) {
            if a.address.parse::<std::net::IpAddr>().is_err() {
                p.push(format!(
                    "admin.address: `{}` is not an IP address",
                    a.address
                ));
            }
            match &a.token {
                None if !admin_claims => p.push(
                    "admin.token: required when the admin API is enabled (or set jwt.admin_claims)"
                        .to_owned(),
                ),
                None => {}
                Some(t) if t.expose().trim().len() < 16 => {
                    p.push("admin.token: must be at least 16 characters".to_owned())
                }
                _ => {}
            }
            if a.address == self.server.address && a.port == self.server.port && a.port != 0 {
                p.push("admin.port: must differ from server.port".to_owned());
            }
        }
        if let Some(m) = self.metrics.as_ref().filter(|m| m.enabled) {
            if m.address.parse::<std::net::IpAddr>().is_err() {
                p.push(format!(
                    "metrics.address: `{}` is not an IP address",
                    m.address
                ));
            }
            if let Some(port) = m.port.filter(|p| *p != 0) {
                if port == self.server.port {
                    p.push("metrics.port: must differ from server.port".to_owned());
                }
                if self
                    .admin
                    .as_ref()
                    .is_some_and(|a| a.enabled && a.port == port)
                {
                    p.push("metrics.port: must differ from admin.port".to_owned());
                }
            }
        }
        if let Some(l) = &self.logging {
            if !matches!(l.format.as_str(), "text" | "json") {
                p.push(format!(
                    "logging.format: `{}` is not one of text, json",
                    l.format
                ));
            }
            if let Some(e) = log_level_problem(&l.level) {
                p.push(format!("logging.level: `{}`: {e}", l.level));
            }
        }
        if let Some(t) = self
            .observability
            .as_ref()
            .and_then(|o| o.tracing.as_ref())
            .filter(|t| t.enabled)
        {
            if !cfg!(feature = "otel") {
                p.push("observability.tracing.enabled: this build has no OpenTelemetry support (build with `--features otel`)".to_owned());
            }
            match url::Url::parse(&t.otlp_endpoint) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => p.push(format!(
                    "observability.tracing.otlp_endpoint: `{}` is not an http(s) URL",
                    t.otlp_endpoint
                )),
            }
            if !(0.0..=1.0).contains(&t.sample_ratio) {
                p.push(format!(
                    "observability.tracing.sample_ratio: {} is not between 0 and 1",
                    t.sample_ratio
                ));
            }
        }
        if let Some(a) = self.audit_log.as_ref().filter(|a| a.enabled) {
            validate_audit_log(a, &mut p);
        }
        if let Some(r) = s.rate_limit.as_ref().filter(|r| r.enabled) {
            if r.global.is_none() && r.per_ip.is_none() {
                p.push("server.rate_limit: enabled without a global or per_ip limit".to_owned());
            }
            for (key, rate) in [("global", &r.global), ("per_ip", &r.per_ip)] {
                if let Some(rate) = rate {
                    validate_rate(&format!("server.rate_limit.{key}"), rate, &mut p);
                }
            }
            if r.max_tracked_clients == 0 {
                p.push("server.rate_limit.max_tracked_clients: must be at least 1".to_owned());
            }
        }
        if let Some(t) = &s.tls {
            for (key, v) in [("cert_path", &t.cert_path), ("key_path", &t.key_path)] {
                if v.trim().is_empty() {
                    p.push(format!("server.tls.{key}: must not be empty"));
                }
            }
        }
        for (i, n) in s.trusted_proxies.iter().enumerate() {
            if crate::auth::parse_net(n).is_none() {
                p.push(format!(
                    "server.trusted_proxies[{i}]: `{n}` is not an address or CIDR network"
                ));
            }
        }
        let jwt_on = self.jwt.as_ref().is_some_and(|j| j.enabled);
        if let Some(j) = self.jwt.as_ref().filter(|j| j.enabled) {
            if j.admin_claims.as_ref().is_some_and(Vec::is_empty) {
                p.push(
                    "jwt.admin_claims: needs at least one rule (none would open the admin API to \
                     every valid token)"
                        .to_owned(),
                );
            }
            if let Some(u) = &j.jwks_url {
                match url::Url::parse(u) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                    _ => p.push(format!(
                        "jwt.jwks_url: `{u}` must be an http:// or https:// URL"
                    )),
                }
            } else if j.jwks_refresh_interval_secs.is_some() {
                p.push("jwt.jwks_refresh_interval_secs: only with jwt.jwks_url".to_owned());
            }
            if j.jwks_refresh_interval_secs == Some(0) {
                p.push("jwt.jwks_refresh_interval_secs: must be at least 1".to_owned());
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
        if c.buffer_budget_bytes < c.buffer_bytes {
            p.push(format!(
                "coalescing.buffer_budget_bytes: must be at least buffer_bytes ({})",
                c.buffer_bytes
            ));
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
            if let Some(f) = &b.ip_filter {
                for (list, nets) in [("allowlist", &f.allowlist), ("blocklist", &f.blocklist)] {
                    for (j, n) in nets.iter().enumerate() {
                        if crate::auth::parse_net(n).is_none() {
                            p.push(format!(
                                "{at}.ip_filter.{list}[{j}]: `{n}` is not an address or CIDR network"
                            ));
                        }
                    }
                }
            }
            if let Some(a) = &b.authorization {
                validate_authorization(a, &format!("{at}.authorization"), b.auth.enabled, &mut p);
            }
            if b.auth.enabled && !jwt_on {
                p.push(format!(
                    "{at}.auth.enabled: needs the `jwt` section with `enabled: true`"
                ));
            }
            let s3 = &b.s3;
            if s3.replicas.is_empty() && s3.bucket.is_none() {
                p.push(format!(
                    "{at}.s3.bucket: missing field (or give s3.replicas)"
                ));
            }
            if !s3.replicas.is_empty() {
                for key in s3.single_origin_fields() {
                    p.push(format!(
                        "{at}.s3.{key}: cannot be used with s3.replicas; give it in each replica"
                    ));
                }
            }
            for (j, r) in s3.replicas.iter().enumerate() {
                if r.name.trim().is_empty() {
                    p.push(format!("{at}.s3.replicas[{j}].name: must not be empty"));
                } else if let Some(k) = s3.replicas[..j].iter().position(|o| o.name == r.name) {
                    p.push(format!(
                        "{at}.s3.replicas[{j}].name: `{}` is already the name of replicas[{k}]",
                        r.name
                    ));
                }
                if r.timeout == Some(0) {
                    p.push(format!(
                        "{at}.s3.replicas[{j}].timeout: must be at least 1 second"
                    ));
                }
            }
            for (key_at, o) in s3.origins() {
                let at = format!("{at}.{key_at}");
                validate_origin(
                    &at,
                    &o,
                    s3.bucket.is_some() || !s3.replicas.is_empty(),
                    &mut p,
                );
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
            if let Some(t) = b.cache.as_ref().and_then(|c| c.ttl_seconds) {
                ttl_in_range(&format!("{at}.cache.ttl_seconds"), t, &mut p);
            }
            if let Some(cb) = &s3.circuit_breaker {
                for (key, v) in [
                    ("failure_threshold", cb.failure_threshold),
                    ("success_threshold", cb.success_threshold),
                    ("half_open_max_requests", cb.half_open_max_requests),
                ] {
                    if v == 0 {
                        p.push(format!("{at}.s3.circuit_breaker.{key}: must be at least 1"));
                    }
                }
                if !(1..=3600).contains(&cb.timeout_seconds) {
                    p.push(format!(
                        "{at}.s3.circuit_breaker.timeout_seconds: {} is not within 1 ..= 3600",
                        cb.timeout_seconds
                    ));
                }
            }
            if s3.max_concurrent_requests == Some(0) {
                p.push(format!(
                    "{at}.s3.max_concurrent_requests: must be at least 1"
                ));
            }
            if !(1..=600_000).contains(&s3.queue_timeout_ms) {
                p.push(format!(
                    "{at}.s3.queue_timeout_ms: {} is not within 1 ..= 600000",
                    s3.queue_timeout_ms
                ));
            }
            if let Some(rate) = &s3.rate_limit {
                validate_rate(&format!("{at}.s3.rate_limit"), rate, &mut p);
            }
            if let Some(r) = &s3.retry {
                if s3.max_attempts.is_some() {
                    p.push(format!(
                        "{at}.s3.max_attempts: set retry.max_attempts instead when a retry section is present"
                    ));
                }
                if !(1..=10).contains(&r.max_attempts) {
                    p.push(format!(
                        "{at}.s3.retry.max_attempts: {} is not within 1 ..= 10",
                        r.max_attempts
                    ));
                }
                if r.max_backoff_ms > 60_000 {
                    p.push(format!(
                        "{at}.s3.retry.max_backoff_ms: {} is over 60000",
                        r.max_backoff_ms
                    ));
                }
                if r.initial_backoff_ms > r.max_backoff_ms {
                    p.push(format!(
                        "{at}.s3.retry.initial_backoff_ms: {} is more than max_backoff_ms ({})",
                        r.initial_backoff_ms, r.max_backoff_ms
                    ));
                }
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
    for (key, v) in [
        ("stale_retention_seconds", Some(c.stale_retention_seconds)),
        ("default_ttl_seconds", Some(c.default_ttl_seconds)),
        ("negative_ttl_seconds", Some(c.negative_ttl_seconds)),
        ("memory.default_ttl_seconds", c.memory.default_ttl_seconds),
        (
            "redis.redis_ttl_seconds",
            c.redis.as_ref().and_then(|r| r.redis_ttl_seconds),
        ),
    ] {
        if let Some(v) = v {
            ttl_in_range(&format!("cache.{key}"), v, p);
        }
    }
    if c.record_secret
        .as_ref()
        .is_some_and(|s| s.expose().len() < 16)
    {
        p.push("cache.record_secret: must be at least 16 characters".to_owned());
    }
    let m = &c.memory;
    if m.default_ttl_seconds == Some(0) {
        p.push(
            "cache.memory.default_ttl_seconds: must be at least 1 (leave it out for no limit)"
                .to_owned(),
        );
    }
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
            Some(d) if !(1..=600_000).contains(&d.io_timeout_ms) => {
                p.push(format!(
                    "cache.disk.io_timeout_ms: {} is outside 1 ..= 600000",
                    d.io_timeout_ms
                ));
            }
            _ => {}
        }
    }
    if seen.iter().any(|l| l == "redis") {
        match &c.redis {
            None => p.push("cache.redis: required when cache_layers lists redis".to_owned()),
            Some(r) => {
                let given = [
                    r.redis_url.is_some(),
                    !r.cluster_nodes.is_empty(),
                    r.sentinel.is_some(),
                ];
                match given.iter().filter(|g| **g).count() {
                    0 => {
                        p.push("cache.redis: give redis_url, cluster_nodes or sentinel".to_owned())
                    }
                    1 => {}
                    _ => p.push(
                        "cache.redis: give only one of redis_url, cluster_nodes, sentinel"
                            .to_owned(),
                    ),
                }
                let mut urls: Vec<(String, &String)> = Vec::new();
                if let Some(u) = &r.redis_url {
                    urls.push(("cache.redis.redis_url".to_owned(), u));
                }
                for (i, u) in r.cluster_nodes.iter().enumerate() {
                    urls.push((format!("cache.redis.cluster_nodes[{i}]"), u));
                }
                if let Some(s) = &r.sentinel {
                    if s.master_name.trim().is_empty() {
                        p.push("cache.redis.sentinel.master_name: must not be empty".to_owned());
                    }
                    if s.nodes.is_empty() {
                        p.push("cache.redis.sentinel.nodes: list at least one".to_owned());
                    }
                    for (i, u) in s.nodes.iter().enumerate() {
                        urls.push((format!("cache.redis.sentinel.nodes[{i}]"), u));
                    }
                }
                for (at, u) in urls {
                    if redis_url_problem(u).is_some() {
                        p.push(format!(
                            "{at}: `{}` is not a redis:// or rediss:// URL",
                            redact_url(u)
                        ));
                    }
                }
                if r.operation_timeout_ms == 0 {
                    p.push("cache.redis.operation_timeout_ms: must be at least 1".to_owned());
                }
                if !(100..=600_000).contains(&r.fleet_lease_ms) {
                    p.push(format!(
                        "cache.redis.fleet_lease_ms: {} is not within 100 ..= 600000",
                        r.fleet_lease_ms
                    ));
                }
                if !(1..=600_000).contains(&r.fleet_wait_ms) {
                    p.push(format!(
                        "cache.redis.fleet_wait_ms: {} is not within 1 ..= 600000",
                        r.fleet_wait_ms
                    ));
                }
                if !(1..=3600).contains(&r.fleet_resync_seconds) {
                    p.push(format!(
                        "cache.redis.fleet_resync_seconds: {} is not within 1 ..= 3600",
                        r.fleet_resync_seconds
                    ));
                }
            }
        }
    }
}

/// Every TTL is bounded by a year, the longest freshness a `Cache-Control` directive is taken at.
/// One engine's keys, all others absent; required keys present; numbers and modes in range.
fn validate_authorization(a: &AuthorizationConfig, at: &str, auth_on: bool, p: &mut Vec<String>) {
    let keys: [(&str, &str, bool); 18] = [
        ("opa", "opa_url", a.opa_url.is_some()),
        ("opa", "opa_policy_path", a.opa_policy_path.is_some()),
        ("opa", "opa_timeout_ms", a.opa_timeout_ms.is_some()),
        (
            "opa",
            "opa_cache_ttl_seconds",
            a.opa_cache_ttl_seconds.is_some(),
        ),
        ("opa", "opa_fail_mode", a.opa_fail_mode.is_some()),
        ("openfga", "openfga_endpoint", a.openfga_endpoint.is_some()),
        ("openfga", "openfga_store_id", a.openfga_store_id.is_some()),
        (
            "openfga",
            "openfga_authorization_model_id",
            a.openfga_authorization_model_id.is_some(),
        ),
        (
            "openfga",
            "openfga_api_token",
            a.openfga_api_token.is_some(),
        ),
        (
            "openfga",
            "openfga_timeout_ms",
            a.openfga_timeout_ms.is_some(),
        ),
        (
            "openfga",
            "openfga_cache_ttl_seconds",
            a.openfga_cache_ttl_seconds.is_some(),
        ),
        (
            "openfga",
            "openfga_fail_mode",
            a.openfga_fail_mode.is_some(),
        ),
        (
            "openfga",
            "openfga_user_claim",
            a.openfga_user_claim.is_some(),
        ),
        ("rego", "policy_path", a.policy_path.is_some()),
        ("rego", "query", a.query.is_some()),
        ("rego", "rego_timeout_ms", a.rego_timeout_ms.is_some()),
        (
            "rego",
            "rego_cache_ttl_seconds",
            a.rego_cache_ttl_seconds.is_some(),
        ),
        ("rego", "rego_fail_mode", a.rego_fail_mode.is_some()),
    ];
    let kind = a.kind.as_str();
    if !matches!(kind, "opa" | "openfga" | "rego") {
        p.push(format!(
            "{at}.type: `{kind}` is not one of opa, openfga, rego"
        ));
        return;
    }
    let required: &[&str] = match kind {
        "opa" => &["opa_url", "opa_policy_path"],
        "openfga" => &["openfga_endpoint", "openfga_store_id"],
        _ => &["policy_path", "query"],
    };
    for (engine, key, set) in keys {
        if set && engine != kind {
            p.push(format!("{at}.{key}: only with type: {engine}"));
        }
        if !set && required.contains(&key) {
            p.push(format!("{at}.{key}: required with type: {kind}"));
        }
    }
    let (timeout, ttl, mode) = match kind {
        "opa" => (a.opa_timeout_ms, a.opa_cache_ttl_seconds, &a.opa_fail_mode),
        "openfga" => (
            a.openfga_timeout_ms,
            a.openfga_cache_ttl_seconds,
            &a.openfga_fail_mode,
        ),
        _ => (
            a.rego_timeout_ms,
            a.rego_cache_ttl_seconds,
            &a.rego_fail_mode,
        ),
    };
    if let Some(t) = timeout.filter(|t| !(1..=60_000).contains(t)) {
        p.push(format!(
            "{at}.{kind}_timeout_ms: {t} is outside 1 ..= 60000"
        ));
    }
    if let Some(t) = ttl.filter(|t| *t > 86_400) {
        p.push(format!(
            "{at}.{kind}_cache_ttl_seconds: {t} is more than a day (86400)"
        ));
    }
    if let Some(m) = mode.as_deref().filter(|m| !matches!(*m, "open" | "closed")) {
        p.push(format!(
            "{at}.{kind}_fail_mode: `{m}` is not one of closed, open"
        ));
    }
    if kind == "openfga" && !auth_on {
        p.push(format!(
            "{at}.type: openfga needs auth.enabled: true on the bucket (the user comes from the token)"
        ));
    }
}

fn ttl_in_range(at: &str, v: u64, p: &mut Vec<String>) {
    if v > MAX_DIRECTIVE_SECONDS {
        p.push(format!(
            "{at}: {v} is more than a year ({MAX_DIRECTIVE_SECONDS} seconds)"
        ));
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

/// `audit_log` (when enabled): its outputs and each output's section.
fn validate_audit_log(a: &super::AuditLogConfig, p: &mut Vec<String>) {
    if a.outputs.is_empty() {
        p.push("audit_log.outputs: name at least one of file, syslog".to_owned());
    }
    for (i, o) in a.outputs.iter().enumerate() {
        if !matches!(o.as_str(), "file" | "syslog") {
            p.push(format!(
                "audit_log.outputs[{i}]: `{o}` is not one of file, syslog"
            ));
        }
    }
    let wants = |o: &str| a.outputs.iter().any(|x| x == o);
    match (&a.file, wants("file")) {
        (None, true) => p.push("audit_log.file: required when outputs include file".to_owned()),
        (Some(_), false) => {
            p.push("audit_log.file: configured but `file` is not in audit_log.outputs".to_owned())
        }
        (Some(f), true) => {
            let path = std::path::Path::new(&f.path);
            if f.path.trim().is_empty() {
                p.push("audit_log.file.path: must not be empty".to_owned());
            } else if path.is_dir() {
                p.push(format!("audit_log.file.path: `{}` is a directory", f.path));
            } else {
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                if !dir.is_dir() {
                    p.push(format!(
                        "audit_log.file.path: directory `{}` does not exist",
                        dir.display()
                    ));
                }
            }
            if f.max_file_size_mb == 0 {
                p.push("audit_log.file.max_file_size_mb: must be at least 1".to_owned());
            }
            if !matches!(f.rotation_policy.as_str(), "size" | "daily") {
                p.push(format!(
                    "audit_log.file.rotation_policy: `{}` is not one of size, daily",
                    f.rotation_policy
                ));
            }
        }
        (None, false) => {}
    }
    match (&a.syslog, wants("syslog")) {
        (None, true) => {
            p.push("audit_log.syslog: required when outputs include syslog".to_owned());
        }
        (Some(_), false) => p.push(
            "audit_log.syslog: configured but `syslog` is not in audit_log.outputs".to_owned(),
        ),
        (Some(s), true) => {
            let port_ok = s
                .address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                p.push(format!(
                    "audit_log.syslog.address: `{}` is not host:port",
                    s.address
                ));
            }
            if !matches!(s.protocol.as_str(), "udp" | "tcp") {
                p.push(format!(
                    "audit_log.syslog.protocol: `{}` is not one of udp, tcp",
                    s.protocol
                ));
            }
            if crate::audit::facility_code(&s.facility).is_none() {
                let names: Vec<&str> = crate::audit::FACILITIES.iter().map(|(n, _)| *n).collect();
                p.push(format!(
                    "audit_log.syslog.facility: `{}` is not one of {}",
                    s.facility,
                    names.join(", ")
                ));
            }
        }
        (None, false) => {}
    }
    if a.queue_capacity == 0 {
        p.push("audit_log.queue_capacity: must be at least 1".to_owned());
    }
}

/// A rate: positive and finite requests per second, a burst of at least 1.
fn validate_rate(at: &str, rate: &super::RateConfig, p: &mut Vec<String>) {
    let rps = rate.requests_per_second;
    if !(rps.is_finite() && rps > 0.0 && rps <= 1e9) {
        p.push(format!(
            "{at}.requests_per_second: {rps} is not a rate above 0 (at most 1e9)"
        ));
    }
    if rate.burst == Some(0) {
        p.push(format!("{at}.burst: must be at least 1"));
    }
}

/// The fields that say where one origin is and how to sign for it (`s3` itself, or a replica).
fn validate_origin(at: &str, o: &ReplicaConfig, bucket_given: bool, p: &mut Vec<String>) {
    if bucket_given && o.bucket.trim().is_empty() {
        p.push(format!("{at}.bucket: must not be empty"));
    }
    if let Some(e) = &o.endpoint {
        match url::Url::parse(e) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => p.push(format!(
                "{at}.endpoint: `{e}` must be an http:// or https:// URL"
            )),
            Err(err) => p.push(format!("{at}.endpoint: `{e}` is not a URL ({err})")),
        }
    }
    match (&o.access_key, &o.secret_key) {
        (Some(_), None) => p.push(format!("{at}.secret_key: required when access_key is set")),
        (None, Some(_)) => p.push(format!("{at}.access_key: required when secret_key is set")),
        (Some(_), Some(_)) if o.anonymous => {
            p.push(format!(
                "{at}.anonymous: cannot be true when access_key/secret_key are set"
            ));
        }
        _ => {}
    }
    if o.session_token.is_some() && o.access_key.is_none() {
        p.push(format!(
            "{at}.session_token: needs access_key and secret_key"
        ));
    }
    if let Some(a) = &o.addressing
        && !matches!(a.as_str(), "auto" | "path" | "virtual")
    {
        p.push(format!(
            "{at}.addressing: `{a}` is not one of auto, path, virtual"
        ));
    }
}

/// What is wrong with a `logging.level` filter, if anything. Only the binary (feature `cli`)
/// installs a log subscriber and reads the level; a library build does not check it.
fn log_level_problem(level: &str) -> Option<String> {
    #[cfg(feature = "cli")]
    {
        tracing_subscriber::EnvFilter::try_new(level)
            .err()
            .map(|e| e.to_string())
    }
    #[cfg(not(feature = "cli"))]
    {
        let _ = level;
        None
    }
}
