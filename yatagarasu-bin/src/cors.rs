//! Per-bucket CORS (the Fetch standard's CORS protocol): preflight answers and the headers on
//! actual responses, errors included, so browser scripts can read both.

use http::Method;
use http::header::{self, HeaderMap, HeaderValue};

use serde::Deserialize;

use crate::lenient::{lenient, lenient_opt};

/// `buckets[].cors`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    Any,
    List(Vec<String>),
}

impl Allowed {
    fn allows(&self, v: &str, case_insensitive: bool) -> bool {
        match self {
            Self::Any => true,
            Self::List(l) => l.iter().any(|a| {
                if case_insensitive {
                    a.eq_ignore_ascii_case(v)
                } else {
                    a == v
                }
            }),
        }
    }
}

/// A bucket's CORS rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Allowed,
    methods: Vec<Method>,
    headers: Allowed,
    expose: Vec<String>,
    max_age: Option<u64>,
    credentials: bool,
}

/// What to do with an OPTIONS request.
#[derive(Debug)]
pub(crate) enum Preflight {
    /// Not a CORS preflight (no `Origin` or no `Access-Control-Request-Method`).
    PlainOptions,
    /// Allowed: answer 204 with these headers.
    Allowed(HeaderMap),
    /// Refused, with the reason.
    Refused(&'static str),
}

impl CorsPolicy {
    /// Validate and compile a `cors` section. Errors start with the key they are about.
    pub fn from_config(c: &CorsConfig) -> Result<Self, String> {
        if c.allowed_origins.is_empty() {
            return Err("allowed_origins: list at least one origin, or `*`".into());
        }
        let origins = if c.allowed_origins.iter().any(|o| o == "*") {
            if c.allow_credentials {
                return Err("allowed_origins: `*` cannot be combined with allow_credentials: true (browsers refuse it)".into());
            }
            Allowed::Any
        } else {
            for o in &c.allowed_origins {
                let ok = url::Url::parse(o).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.path() == "/"
                        && !o.ends_with('/')
                        && u.query().is_none()
                });
                if !ok {
                    return Err(format!(
                        "allowed_origins: `{o}` is not an origin (scheme://host[:port], no path)"
                    ));
                }
            }
            Allowed::List(c.allowed_origins.clone())
        };
        let methods = match &c.allowed_methods {
            None => vec![Method::GET, Method::HEAD],
            Some(list) => {
                let mut out = Vec::new();
                for m in list {
                    match m.to_ascii_uppercase().as_str() {
                        "GET" => out.push(Method::GET),
                        "HEAD" => out.push(Method::HEAD),
                        "OPTIONS" => out.push(Method::OPTIONS),
                        _ => {
                            return Err(format!(
                                "allowed_methods: `{m}` is not served by a read-only proxy (GET, HEAD, OPTIONS)"
                            ));
                        }
                    }
                }
                out
            }
        };
        let headers = if c.allowed_headers.iter().any(|h| h == "*") {
            Allowed::Any
        } else {
            for h in &c.allowed_headers {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(format!("allowed_headers: `{h}` is not a header name"));
                }
            }
            Allowed::List(
                c.allowed_headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
            )
        };
        for h in &c.expose_headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(format!("expose_headers: `{h}` is not a header name"));
            }
        }
        Ok(Self {
            origins,
            methods,
            headers,
            expose: c.expose_headers.clone(),
            max_age: c.max_age_seconds,
            credentials: c.allow_credentials,
        })
    }

    fn allow_origin_value(&self, origin: &str) -> Option<HeaderValue> {
        if !self.origins.allows(origin, false) {
            return None;
        }
        if self.origins == Allowed::Any && !self.credentials {
            Some(HeaderValue::from_static("*"))
        } else {
            HeaderValue::from_str(origin).ok()
        }
    }

    /// Answer an OPTIONS request.
    pub(crate) fn preflight(&self, req: &HeaderMap) -> Preflight {
        let (Some(origin), Some(method)) = (
            req.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            req.get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| v.to_str().ok()),
        ) else {
            return Preflight::PlainOptions;
        };
        let Some(allow_origin) = self.allow_origin_value(origin) else {
            return Preflight::Refused("origin not allowed");
        };
        if !self.methods.iter().any(|m| m.as_str() == method) {
            return Preflight::Refused("method not allowed");
        }
        let requested: Vec<&str> = req
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if requested.iter().any(|h| !self.headers.allows(h, true)) {
            return Preflight::Refused("request header not allowed");
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        let methods: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if !requested.is_empty()
            && let Ok(v) = HeaderValue::from_str(&requested.join(", "))
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(age) = self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Preflight::Allowed(h)
    }

    /// Add CORS headers to an actual response (GET, HEAD, or an error).
    pub(crate) fn apply(&self, req: &HeaderMap, resp: &mut HeaderMap) {
        // Responses differ by Origin whenever a list of origins is configured.
        if self.origins != Allowed::Any || self.credentials {
            resp.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        let Some(origin) = req.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return;
        };
        let Some(allow_origin) = self.allow_origin_value(origin) else {
            return;
        };
        resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            resp.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if !self.expose.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.expose.join(", "))
        {
            resp.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            allowed_methods: None,
            allowed_headers: vec!["Range".into()],
            expose_headers: vec!["ETag".into(), "Content-Range".into()],
            max_age_seconds: Some(600),
            allow_credentials: false,
        }
    }

    fn req(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn validates_config() {
        assert!(
            CorsPolicy::from_config(&cfg(&[]))
                .unwrap_err()
                .starts_with("allowed_origins")
        );
        assert!(CorsPolicy::from_config(&cfg(&["https://a.example/path"])).is_err());
        assert!(CorsPolicy::from_config(&cfg(&["a.example"])).is_err());
        let mut c = cfg(&["*"]);
        c.allow_credentials = true;
        assert!(
            CorsPolicy::from_config(&c)
                .unwrap_err()
                .contains("allow_credentials")
        );
        let mut c = cfg(&["https://a.example"]);
        c.allowed_methods = Some(vec!["PUT".into()]);
        assert!(
            CorsPolicy::from_config(&c)
                .unwrap_err()
                .starts_with("allowed_methods")
        );
    }

    #[test]
    fn preflight_allows_and_refuses() {
        let p = CorsPolicy::from_config(&cfg(&["https://app.example"])).unwrap();
        let ok = p.preflight(&req(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "range"),
        ]));
        let Preflight::Allowed(h) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert_eq!(h["access-control-allow-methods"], "GET, HEAD");
        assert_eq!(h["access-control-allow-headers"], "range");
        assert_eq!(h["access-control-max-age"], "600");
        for bad in [
            req(&[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ]),
            req(&[
                ("origin", "https://app.example"),
                ("access-control-request-method", "DELETE"),
            ]),
            req(&[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-secret"),
            ]),
        ] {
            assert!(matches!(p.preflight(&bad), Preflight::Refused(_)));
        }
        assert!(matches!(
            p.preflight(&req(&[("origin", "https://app.example")])),
            Preflight::PlainOptions
        ));
    }

    #[test]
    fn actual_responses_get_headers_only_for_allowed_origins() {
        let p = CorsPolicy::from_config(&cfg(&["https://app.example"])).unwrap();
        let mut resp = HeaderMap::new();
        p.apply(&req(&[("origin", "https://app.example")]), &mut resp);
        assert_eq!(resp["access-control-allow-origin"], "https://app.example");
        assert_eq!(resp["access-control-expose-headers"], "ETag, Content-Range");
        assert_eq!(resp["vary"], "Origin");
        let mut resp = HeaderMap::new();
        p.apply(&req(&[("origin", "https://evil.example")]), &mut resp);
        assert!(!resp.contains_key("access-control-allow-origin"));

        let any = CorsPolicy::from_config(&cfg(&["*"])).unwrap();
        let mut resp = HeaderMap::new();
        any.apply(&req(&[("origin", "https://whoever.example")]), &mut resp);
        assert_eq!(resp["access-control-allow-origin"], "*");
        assert!(!resp.contains_key("vary"));
    }
}
