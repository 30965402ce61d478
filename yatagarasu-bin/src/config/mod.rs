//! The YAML configuration: parsing, `${VAR}` substitution, validation with precise errors, and
//! turning it into a [`Proxy`].
//!
//! Key names follow the earlier proxy of this name where a feature exists in both (`server.address`,
//! `server.port`, `buckets[].name`, `buckets[].path_prefix`, `buckets[].s3.{bucket, region, endpoint,
//! access_key, secret_key, timeout}`, `buckets[].auth.enabled`), so its users can bring their files.

mod build;
mod parse;
mod schema;

mod validate;

use std::fmt;

pub use schema::*;

/// Everything wrong with a configuration, one problem per line, each naming the key's full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(crate) problems: Vec<String>,
}

impl ConfigError {
    pub(crate) fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }

    /// The problems, each `path: message`.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The same problems with every occurrence of `values` (what `${VAR}` substitution put in the
    /// file: often secrets) replaced by `<redacted>`. Values under four characters are left: they
    /// cannot be secrets and would garble the messages.
    fn redacting(mut self, values: &[String]) -> Self {
        for p in &mut self.problems {
            for v in values.iter().filter(|v| v.chars().count() >= 4) {
                if p.contains(v.as_str()) {
                    *p = p.replace(v.as_str(), "<redacted>");
                }
            }
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

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
        // Remember what substitution brought in, so no problem line echoes it.
        let substituted = std::cell::RefCell::new(Vec::new());
        let recording = |name: &str| {
            let value = env(name);
            if let Some(v) = &value {
                substituted.borrow_mut().push(v.clone());
            }
            value
        };
        parse::parse(text, &recording)
            .and_then(|config| config.validate().map(|()| config))
            .map_err(|e| e.redacting(&substituted.borrow()))
    }
}
#[cfg(test)]
mod tests {
    use super::parse::{levenshtein, substitute};
    use super::*;
    use std::time::Duration;

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
        assert_eq!(c.buckets[0].s3.bucket.as_deref(), Some("media-bucket"));
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
        assert_eq!(
            c.buckets[0].s3.secret_key.as_ref().map(Secret::expose),
            Some("s3cr3t")
        );
        assert_eq!(c.buckets[0].s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            c.buckets[0].s3.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output_or_problems() {
        let env = |n: &str| match n {
            "TOKEN" => Some("admin-token-0123456789".to_owned()),
            "SECRET" => Some("wJalrXUtnFEMI/K7MDENG".to_owned()),
            "REDIS" => Some("redis://:hunter2-redis-pass@127.0.0.1:6379/0".to_owned()),
            "RECORDS" => Some("record secret of 16+".to_owned()),
            _ => None,
        };
        let good = format!(
            "{MINIMAL}      access_key: AKID\n      secret_key: ${{SECRET}}\n      session_token: ${{SECRET}}\nadmin:\n  enabled: true\n  token: ${{TOKEN}}\ncache:\n  cache_layers: [redis]\n  record_secret: ${{RECORDS}}\n  redis:\n    redis_url: ${{REDIS}}\n"
        );
        let c = Config::from_yaml_with_env(&good, &env).unwrap();
        let debug = format!("{c:?}");
        for secret in [
            "admin-token-0123456789",
            "wJalrXUtnFEMI",
            "hunter2",
            "record secret",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("127.0.0.1:6379"), "the rest stays readable");

        // A substituted value in the wrong place is named by key, not echoed.
        let bad = "server:\n  port: ${SECRET}\nbuckets: []\ncache:\n  cache_layers: [redis]\n  redis:\n    redis_url: ${REDIS}x\n";
        let e = Config::from_yaml_with_env(bad, &env).unwrap_err();
        let all = e.problems().join("\n");
        assert!(all.contains("server.port"), "{all}");
        assert!(
            !all.contains("wJalrXUtnFEMI") && !all.contains("hunter2"),
            "{all}"
        );
        let url = "cache:\n  cache_layers: [redis]\n  redis:\n    redis_url: 'http://user:hunter2@x'\nbuckets: []\n";
        let all = parse(url).unwrap_err().problems().join("\n");
        assert!(
            all.contains("cache.redis.redis_url") && !all.contains("hunter2"),
            "{all}"
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
        assert_eq!(
            c.buckets[0].s3.bucket.as_deref(),
            Some("b\n    endpoint: http://evil")
        );
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
        assert_eq!(
            err.to_string(),
            "buckets[0].s3.bucket: missing field (or give s3.replicas)"
        );
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
            "server:\n  worker_threads: 5000\nbuckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a, endpoint: 'ftp://x', access_key: k}\n  - name: a\n    path_prefix: /a/\n    s3: {bucket: ''}\n  - name: c\n    path_prefix: /health\n    s3: {bucket: c, addressing: sideways}\n  - name: d\n    path_prefix: nope\n    s3: {bucket: d}\n    auth: {enabled: true}\n",
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
            "buckets[3].auth.enabled: needs the `jwt` section with `enabled: true`",
            "server.worker_threads: 5000 is more than 1024",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn authorization_sections_name_every_problem() {
        let bucket = |n: usize, extra: &str| {
            format!("  - name: b{n}\n    path_prefix: /b{n}\n    s3: {{bucket: x}}\n{extra}")
        };
        let yaml = [
            "buckets:\n".to_owned(),
            bucket(0, "    authorization: {type: opa, opa_policy_path: a/b, openfga_store_id: s, opa_fail_mode: maybe}\n"),
            bucket(1, "    authorization: {type: openfga, openfga_endpoint: http://f, openfga_store_id: s, openfga_timeout_ms: 0}\n"),
            bucket(2, "    authorization: {type: rego, query: data.x.allow, rego_cache_ttl_seconds: 999999}\n"),
            bucket(3, "    authorization: {type: ldap}\n"),
        ]
        .concat();
        let text = parse(&yaml).unwrap_err().to_string();
        for want in [
            "buckets[0].authorization.opa_url: required with type: opa",
            "buckets[0].authorization.openfga_store_id: only with type: openfga",
            "buckets[0].authorization.opa_fail_mode: `maybe` is not one of closed, open",
            "buckets[1].authorization.openfga_timeout_ms: 0 is outside 1 ..= 60000",
            "buckets[1].authorization.type: openfga needs auth.enabled: true",
            "buckets[2].authorization.policy_path: required with type: rego",
            "buckets[2].authorization.rego_cache_ttl_seconds: 999999 is more than a day",
            "buckets[3].authorization.type: `ldap` is not one of opa, openfga, rego",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        // Unknown keys are refused by name while parsing (before the checks above).
        let err = parse(
            &[
                "buckets:\n".to_owned(),
                bucket(4, "    authorization: {type: opa, colour: red}\n"),
            ]
            .concat(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("buckets[0].authorization") && err.contains("colour"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn authorization_engines_that_cannot_be_built_name_the_key() {
        let with = |a: &str| format!("{MINIMAL}    authorization: {a}\n");
        for (a, want) in [
            (
                "{type: opa, opa_url: 'ftp://o', opa_policy_path: a/b}",
                "buckets[0].authorization.opa_url: `ftp://o` must be an http:// or https:// URL",
            ),
            (
                "{type: opa, opa_url: 'http://o', opa_policy_path: 'a/../b'}",
                "buckets[0].authorization.opa_policy_path: `a/../b` must be a rule path",
            ),
            (
                "{type: rego, policy_path: /nonexistent/authz.rego, query: data.a.allow}",
                "buckets[0].authorization.policy_path: cannot read `/nonexistent/authz.rego`",
            ),
        ] {
            let err = parse(&with(a)).unwrap().build_proxy().await.unwrap_err();
            assert!(err.to_string().starts_with(want), "{a}: {err}");
        }
    }

    #[test]
    fn logging_and_metrics_sections_name_their_problems() {
        let err = parse(&format!(
            "{MINIMAL}logging: {{format: xml, level: \"info,[\"}}\nmetrics: {{enabled: true, address: nowhere, port: 8080}}\n"
        ))
        .unwrap_err()
        .to_string();
        for want in [
            "logging.format: `xml` is not one of text, json",
            "logging.level: `info,[`",
            "metrics.address: `nowhere` is not an IP address",
            "metrics.port: must differ from server.port",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let ok = parse(&format!(
            "{MINIMAL}logging: {{format: json, level: \"warn,yatagarasu=info\"}}\nmetrics: {{enabled: true, port: 9090}}\n"
        ))
        .unwrap();
        assert_eq!(ok.metrics.unwrap().port, Some(9090));
    }

    #[test]
    fn the_shared_redis_is_one_server_a_cluster_or_a_sentinel_primary() {
        let cache =
            |redis: &str| format!("{MINIMAL}cache:\n  cache_layers: [redis]\n  redis: {redis}\n");
        let ok = parse(&cache(
            "{cluster_nodes: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000']}",
        ))
        .unwrap();
        let target = ok.cache.unwrap().redis.unwrap().target().unwrap();
        assert!(
            matches!(target, yatagarasu_cache::RedisTarget::Cluster { ref nodes } if nodes.len() == 2)
        );
        let ok = parse(&cache(
            "{sentinel: {master_name: mymaster, nodes: ['redis://10.0.0.9:26379']}}",
        ))
        .unwrap();
        let target = ok.cache.unwrap().redis.unwrap().target().unwrap();
        assert!(
            matches!(target, yatagarasu_cache::RedisTarget::Sentinel { ref master_name, .. } if master_name == "mymaster")
        );
        for (redis, want) in [
            (
                "{}",
                "cache.redis: give redis_url, cluster_nodes or sentinel",
            ),
            (
                "{redis_url: 'redis://a', cluster_nodes: ['redis://b']}",
                "cache.redis: give only one of redis_url, cluster_nodes, sentinel",
            ),
            (
                "{cluster_nodes: ['redis://a:1', 'http://b']}",
                "cache.redis.cluster_nodes[1]: `http://b` is not a redis:// or rediss:// URL",
            ),
            (
                "{sentinel: {master_name: '', nodes: []}}",
                "cache.redis.sentinel.master_name: must not be empty",
            ),
            (
                "{sentinel: {master_name: m, nodes: []}}",
                "cache.redis.sentinel.nodes: list at least one",
            ),
            (
                "{redis_url: 'redis://a', fleet_lease_ms: 10}",
                "cache.redis.fleet_lease_ms: 10 is not within 100 ..= 600000",
            ),
        ] {
            let err = parse(&cache(redis)).unwrap_err().to_string();
            assert!(err.contains(want), "{redis}: missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn replicas_replace_the_single_origin_fields_and_name_their_problems() {
        let ok = parse(
            "buckets:\n  - name: m\n    path_prefix: /m\n    s3:\n      timeout: 7\n      replicas:\n        - {name: us, bucket: media, endpoint: 'http://127.0.0.1:9000', access_key: k, secret_key: s}\n        - {name: eu, bucket: media-eu, region: eu-west-1, anonymous: true, priority: 2, timeout: 3}\n",
        )
        .unwrap();
        let origins = ok.buckets[0].s3.origins();
        let names: Vec<_> = origins
            .iter()
            .map(|(at, r)| (at.as_str(), r.name.as_str(), r.priority, r.timeout))
            .collect();
        assert_eq!(
            names,
            [
                ("s3.replicas[0]", "us", 1, None),
                ("s3.replicas[1]", "eu", 2, Some(3))
            ]
        );
        let err = parse(
            "buckets:\n  - name: m\n    path_prefix: /m\n    s3:\n      bucket: media\n      endpoint: 'http://x'\n      replicas:\n        - {name: a, bucket: b, endpoint: 'ftp://x', access_key: k}\n        - {name: a, bucket: '', timeout: 0}\n        - {name: '', bucket: c}\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "buckets[0].s3.bucket: cannot be used with s3.replicas; give it in each replica",
            "buckets[0].s3.endpoint: cannot be used with s3.replicas",
            "buckets[0].s3.replicas[0].endpoint: `ftp://x` must be an http:// or https:// URL",
            "buckets[0].s3.replicas[0].secret_key: required when access_key is set",
            "buckets[0].s3.replicas[1].name: `a` is already the name of replicas[0]",
            "buckets[0].s3.replicas[1].bucket: must not be empty",
            "buckets[0].s3.replicas[1].timeout: must be at least 1 second",
            "buckets[0].s3.replicas[2].name: must not be empty",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = parse(
            "buckets:\n  - name: m\n    path_prefix: /m\n    s3:\n      replicas:\n        - {name: a, bucket: b, weight: 3}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("buckets[0].s3.replicas[0].weight: unknown field"),
            "{err}"
        );
    }

    #[test]
    fn circuit_breaker_problems_name_the_key() {
        let bucket = |cb: &str| {
            format!(
                "buckets:\n  - name: m\n    path_prefix: /m\n    s3: {{bucket: m, anonymous: true, circuit_breaker: {cb}}}\n"
            )
        };
        let err = parse(&bucket(
            "{failure_threshold: 0, success_threshold: 0, timeout_seconds: 0, half_open_max_requests: 0}",
        ))
        .unwrap_err()
        .to_string();
        for want in [
            "buckets[0].s3.circuit_breaker.failure_threshold: must be at least 1",
            "buckets[0].s3.circuit_breaker.success_threshold: must be at least 1",
            "buckets[0].s3.circuit_breaker.half_open_max_requests: must be at least 1",
            "buckets[0].s3.circuit_breaker.timeout_seconds: 0 is not within 1 ..= 3600",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = parse(&bucket("{threshold: 3}")).unwrap_err().to_string();
        assert!(
            err.contains("buckets[0].s3.circuit_breaker.threshold: unknown field"),
            "{err}"
        );
        let retry = |r: &str| {
            format!(
                "buckets:\n  - name: m\n    path_prefix: /m\n    s3: {{bucket: m, anonymous: true, {r}}}\n"
            )
        };
        let err = parse(&retry(
            "max_attempts: 2, retry: {max_attempts: 11, initial_backoff_ms: 500, max_backoff_ms: 100}",
        ))
        .unwrap_err()
        .to_string();
        for want in [
            "buckets[0].s3.max_attempts: set retry.max_attempts instead",
            "buckets[0].s3.retry.max_attempts: 11 is not within 1 ..= 10",
            "buckets[0].s3.retry.initial_backoff_ms: 500 is more than max_backoff_ms (100)",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = parse(&retry("retry: {max_backoff_ms: 90000}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("buckets[0].s3.retry.max_backoff_ms: 90000 is over 60000"),
            "{err}"
        );
        let err = parse(&retry("max_concurrent_requests: 0, queue_timeout_ms: 0"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("buckets[0].s3.max_concurrent_requests: must be at least 1"),
            "{err}"
        );
        assert!(
            err.contains("buckets[0].s3.queue_timeout_ms: 0 is not within 1 ..= 600000"),
            "{err}"
        );
        let ok = parse(&bucket("{failure_threshold: 3}")).unwrap();
        let cb = ok.buckets[0].s3.circuit_breaker.clone().unwrap();
        assert_eq!(
            (
                cb.failure_threshold,
                cb.success_threshold,
                cb.timeout_seconds,
                cb.half_open_max_requests
            ),
            (3, 2, 30, 1)
        );
    }

    #[test]
    fn rate_limit_problems_name_the_key() {
        let err = parse(&format!(
            "{MINIMAL}server: {{rate_limit: {{enabled: true, max_tracked_clients: 0}}}}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("server.rate_limit: enabled without a global or per_ip limit"),
            "{err}"
        );
        assert!(
            err.contains("server.rate_limit.max_tracked_clients: must be at least 1"),
            "{err}"
        );
        let err = parse(&format!(
            "{MINIMAL}server: {{rate_limit: {{enabled: true, global: {{requests_per_second: 0}}, per_ip: {{requests_per_second: 5, burst: 0}}}}}}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("server.rate_limit.global.requests_per_second: 0 is not a rate above 0"),
            "{err}"
        );
        assert!(
            err.contains("server.rate_limit.per_ip.burst: must be at least 1"),
            "{err}"
        );
        let err = parse(
            "buckets:\n  - name: m\n    path_prefix: /m\n    s3: {bucket: m, anonymous: true, rate_limit: {requests_per_second: -1}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("buckets[0].s3.rate_limit.requests_per_second: -1 is not a rate above 0"),
            "{err}"
        );
        let ok = parse(&format!(
            "{MINIMAL}server: {{rate_limit: {{enabled: true, per_ip: {{requests_per_second: 2.5}}}}}}\n"
        ))
        .unwrap();
        let rate = ok.server.rate_limit.unwrap().per_ip.unwrap().rate();
        assert_eq!(rate.burst, 3, "the burst defaults to the rate, rounded up");
    }

    #[test]
    fn tracing_problems_name_the_key() {
        let err = parse(&format!(
            "{MINIMAL}observability: {{tracing: {{enabled: true, otlp_endpoint: collector:4318, sample_ratio: 1.5}}}}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "observability.tracing.otlp_endpoint: `collector:4318` is not an http(s) URL"
            ),
            "{err}"
        );
        assert!(
            err.contains("observability.tracing.sample_ratio: 1.5 is not between 0 and 1"),
            "{err}"
        );
        let good = format!(
            "{MINIMAL}observability: {{tracing: {{enabled: true, otlp_endpoint: \"http://127.0.0.1:4318\"}}}}\n"
        );
        match parse(&good) {
            // Built with the feature: accepted.
            Ok(c) if cfg!(feature = "otel") => {
                let t = c.observability.unwrap().tracing.unwrap();
                assert!((t.sample_ratio - 1.0).abs() < f64::EPSILON);
            }
            Err(e) if !cfg!(feature = "otel") => assert!(
                e.to_string().contains(
                    "observability.tracing.enabled: this build has no OpenTelemetry support"
                ),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn otlp_endpoints_get_the_traces_path_unless_they_name_one() {
        use crate::otel::TracingOptions;
        assert_eq!(
            TracingOptions::new("http://c:4318").traces_url(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            TracingOptions::new("http://c:4318/").traces_url(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            TracingOptions::new("https://c/otlp/v1/traces").traces_url(),
            "https://c/otlp/v1/traces"
        );
    }

    #[test]
    fn tls_problems_name_the_key() {
        let err = parse(&format!("{MINIMAL}server: {{tls: {{cert_path: \" \"}}}}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.tls.key_path: missing field"), "{err}");
        let err = parse(&format!(
            "{MINIMAL}server: {{tls: {{cert_path: \"\", key_path: /k.pem}}}}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("server.tls.cert_path: must not be empty"),
            "{err}"
        );
        let config = parse(&format!(
            "{MINIMAL}server: {{tls: {{cert_path: /nonexistent/c.pem, key_path: /nonexistent/k.pem}}}}\n"
        ))
        .unwrap();
        let err = config.build_tls().unwrap_err().to_string();
        assert!(
            err.starts_with("server.tls.cert_path: cannot read `/nonexistent/c.pem`"),
            "{err}"
        );
    }

    #[test]
    fn audit_log_sections_name_their_problems() {
        for (audit, wants) in [
            (
                "{enabled: true}",
                &["audit_log.outputs: name at least one of file, syslog"][..],
            ),
            (
                "{enabled: true, outputs: [file, kafka, syslog]}",
                &[
                    "audit_log.outputs[1]: `kafka` is not one of file, syslog",
                    "audit_log.file: required when outputs include file",
                    "audit_log.syslog: required when outputs include syslog",
                ][..],
            ),
            (
                "{enabled: true, outputs: [file], file: {path: /nonexistent/dir/audit.log, max_file_size_mb: 0, rotation_policy: hourly}, syslog: {address: x:1}}",
                &[
                    "audit_log.file.path: directory `/nonexistent/dir` does not exist",
                    "audit_log.file.max_file_size_mb: must be at least 1",
                    "audit_log.file.rotation_policy: `hourly` is not one of size, daily",
                    "audit_log.syslog: configured but `syslog` is not in audit_log.outputs",
                ][..],
            ),
            (
                "{enabled: true, outputs: [syslog], syslog: {address: localhost, protocol: quic, facility: local9}, queue_capacity: 0}",
                &[
                    "audit_log.syslog.address: `localhost` is not host:port",
                    "audit_log.syslog.protocol: `quic` is not one of udp, tcp",
                    "audit_log.syslog.facility: `local9` is not one of kern, user",
                    "audit_log.queue_capacity: must be at least 1",
                ][..],
            ),
            (
                "{enabled: true, outputs: [file], file: {path: /tmp, max_size: 3}}",
                &["audit_log.file.max_size: unknown field"][..],
            ),
        ] {
            let err = parse(&format!("{MINIMAL}audit_log: {audit}\n"))
                .unwrap_err()
                .to_string();
            for want in wants {
                assert!(err.contains(want), "{audit}: missing {want:?} in:\n{err}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = parse(&format!(
            "{MINIMAL}audit_log: {{enabled: true, outputs: [file, syslog], file: {{path: \"{}/a.log\", rotation_policy: daily}}, syslog: {{address: \"127.0.0.1:514\", protocol: tcp}}}}\n",
            dir.path().display()
        ))
        .unwrap();
        let a = ok.audit_log.unwrap();
        assert_eq!(a.file.unwrap().max_backup_files, 10);
        assert_eq!(a.syslog.unwrap().facility, "local0");
        // Disabled: nothing is checked.
        parse(&format!(
            "{MINIMAL}audit_log: {{enabled: false, outputs: [kafka]}}\n"
        ))
        .unwrap();
    }

    #[test]
    fn unavailable_features_are_refused_not_ignored() {
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
    fn jwt_keys_are_checked_when_the_proxy_is_built() {
        let build = |jwt: &str| {
            let c = parse(&format!("{MINIMAL}jwt:\n  enabled: true\n{jwt}")).unwrap();
            c.build_jwt().map(|j| j.is_some())
        };
        assert_eq!(
            build("  algorithm: HS256\n  secret: a-secret-of-enough-length\n"),
            Ok(true)
        );
        let problem = |jwt: &str| build(jwt).unwrap_err().to_string();
        assert!(problem("").contains("jwt: no key"));
        assert!(problem("  secret: s\n").contains("jwt.algorithm: required with jwt.secret"));
        assert!(
            problem("  algorithm: HS999\n  secret: s\n").contains("`HS999` is not a JWT algorithm")
        );
        assert!(
            problem("  algorithm: RS256\n  rsa_public_key_path: /nonexistent.pem\n")
                .contains("jwt.rsa_public_key_path: cannot read `/nonexistent.pem`")
        );
        assert!(
            problem("  algorithm: RS256\n  secret: s\n").contains("does not go with jwt.secret")
        );
        assert!(
            problem("  keys:\n    - {id: k1, algorithm: RS256, secret: s}\n")
                .contains("jwt.keys[0]: an HS* key takes `secret`")
        );
        assert!(
            problem("  algorithm: HS256\n  secret: s\n  token_sources: [{type: cookie}]\n")
                .contains("`cookie` is not one of bearer, header, query")
        );
        let err = parse(&format!(
            "{MINIMAL}jwt:\n  enabled: true\n  claims: [{{claim: role, operator: like, value: x}}]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("jwt.claims[0].operator"), "{err}");
    }

    #[test]
    fn networks_are_checked() {
        let err = parse(&format!(
            "server:\n  trusted_proxies: [10.0.0.0/8, 300.1.1.1]\n{}    ip_filter: {{allowlist: [10.0.0.0/33], blocklist: ['::1', nope]}}\n",
            MINIMAL
        ))
        .unwrap_err()
        .to_string();
        for want in [
            "server.trusted_proxies[1]: `300.1.1.1` is not an address or CIDR network",
            "buckets[0].ip_filter.allowlist[0]: `10.0.0.0/33` is not an address or CIDR network",
            "buckets[0].ip_filter.blocklist[1]: `nope` is not an address or CIDR network",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
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

    /// Freshness comes from `cache.default_ttl_seconds` (or the bucket's own `ttl_seconds`), never
    /// from the memory tier's settings; `cache.memory.default_ttl_seconds` only bounds how long
    /// memory holds an entry.
    #[tokio::test]
    async fn default_ttl_is_the_caches_not_the_memory_tiers() {
        let yaml = "buckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a, endpoint: 'http://127.0.0.1:9', anonymous: true}\n  - name: b\n    path_prefix: /b\n    s3: {bucket: b, endpoint: 'http://127.0.0.1:9', anonymous: true}\n    cache: {ttl_seconds: 30}\ncache:\n  default_ttl_seconds: 7\n  memory: {default_ttl_seconds: 600}\n";
        let proxy = parse(yaml).unwrap().build_proxy().await.unwrap();
        let ttl = |name: &str| {
            proxy
                .routes()
                .into_iter()
                .find(|r| r.name == name)
                .unwrap()
                .cache
                .ttl
        };
        assert_eq!(ttl("a"), Duration::from_secs(7));
        assert_eq!(ttl("b"), Duration::from_secs(30));
        let without = "buckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a, endpoint: 'http://127.0.0.1:9', anonymous: true}\ncache:\n  cache_layers: [memory]\n";
        let proxy = parse(without).unwrap().build_proxy().await.unwrap();
        assert_eq!(proxy.routes()[0].cache.ttl, Duration::from_secs(3600));
        let err = parse(&format!(
            "{MINIMAL}cache:\n  memory: {{default_ttl_seconds: 0}}\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cache.memory.default_ttl_seconds: must be at least 1"),
            "{err}"
        );
    }
}
