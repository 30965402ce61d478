//! The access-control stage: who may read what. Checks run in order after routing and before
//! anything touches the cache or the origin; the first refusal ends the request with its error
//! (401, 403, 429, 503). First the rate limits (per client address, global, the bucket's; see
//! [`crate::ratelimit`]), then the bucket's IP filter, its token check (JWT and claim rules), its
//! policy (OPA, OpenFGA, Rego; see [`crate::auth`]), then any further [`AccessCheck`]s.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use yatagarasu_core::Error;

use super::routing::RequestContext;
use crate::auth::PolicyInput;

/// The future an [`AccessCheck`] returns.
pub(crate) type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// One access rule.
pub(crate) trait AccessCheck: Send + Sync + std::fmt::Debug {
    /// `Ok` lets the request through to the next check; an error refuses it.
    fn check<'a>(&'a self, ctx: &'a RequestContext<'_>, req: &'a Parts) -> CheckFuture<'a>;
}

/// The checks, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessControl {
    /// Peers whose `Forwarded` / `X-Forwarded-For` are believed.
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Proxy-wide rate limits, checked first (they are the cheapest refusal).
    pub(crate) limits: Arc<crate::ratelimit::ProxyLimits>,
    checks: Vec<Arc<dyn AccessCheck>>,
}

impl AccessControl {
    /// No checks yet, believing forwarded addresses from `trusted_proxies` only.
    pub(crate) fn with_trusted_proxies(trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Self {
            trusted_proxies,
            limits: Arc::default(),
            checks: Vec::new(),
        }
    }

    /// The client's address: the peer's, or the one forwarded through trusted proxies.
    pub(crate) fn client_ip(
        &self,
        peer: Option<std::net::SocketAddr>,
        headers: &http::HeaderMap,
    ) -> Option<std::net::IpAddr> {
        crate::auth::client_ip(peer.map(|a| a.ip()), headers, &self.trusted_proxies)
    }

    /// Run every check; the first refusal wins. Returns the token's claims when the bucket checks
    /// tokens.
    pub(crate) async fn check(
        &self,
        ctx: &RequestContext<'_>,
        req: &Parts,
    ) -> Result<Option<Arc<serde_json::Value>>, Error> {
        let route = &ctx.route.route;
        let ip = (route.ip_filter.is_some()
            || route.policy.is_some()
            || self.limits.per_client.is_some())
        .then(|| self.client_ip(ctx.client_addr, &req.headers))
        .flatten();
        // Rate limits first: a flood is refused before it costs a token check or a policy call.
        if !self.limits.is_empty() {
            self.limits
                .check(ip)
                .map_err(|(scope, wait)| crate::ratelimit::refusal(scope, wait))?;
        }
        if let Some(limit) = &route.rate_limit {
            limit
                .check()
                .map_err(|wait| crate::ratelimit::refusal(crate::ratelimit::Scope::Bucket, wait))?;
        }
        if let Some(filter) = &route.ip_filter {
            // No known address with a filter configured: refused (fail closed).
            if !ip.is_some_and(|ip| filter.permits(ip)) {
                return Err(Error::new(
                    yatagarasu_core::ErrorKind::AccessDenied,
                    "this client address may not read this bucket",
                )
                .with_upstream_code("IpNotAllowed"));
            }
        }
        // A CORS preflight carries no credentials by design, and reads nothing.
        let mut claims = None;
        if req.method != http::Method::OPTIONS {
            if let Some(auth) = &route.auth {
                claims = Some(
                    auth.authenticate_async(&req.headers, req.uri.query())
                        .await?,
                );
            }
            if let Some(policy) = &route.policy {
                let input = PolicyInput::new(req.method.as_str(), &route.name, &ctx.key)
                    .path(req.uri.path())
                    .client_ip(ip)
                    .claims(
                        claims
                            .clone()
                            .unwrap_or_else(|| Arc::new(serde_json::Value::Null)),
                    )
                    .headers(&req.headers);
                policy.authorize(&input).await?;
            }
        }
        for c in &self.checks {
            c.check(ctx, req).await?;
        }
        Ok(claims)
    }
}
