//! The access-control stage: who may read what. Checks run in order after routing and before
//! anything touches the cache or the origin; the first refusal ends the request with its error
//! (401, 403, 429). Empty today: authentication (JWT, JWKS), authorization (claims, OPA, OpenFGA),
//! IP filters and rate limits are added here as [`AccessCheck`]s.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use yatagarasu_core::Error;

use super::routing::RequestContext;

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
    checks: Vec<Arc<dyn AccessCheck>>,
}

impl AccessControl {
    /// Run every check; the first refusal wins.
    pub(crate) async fn check(&self, ctx: &RequestContext<'_>, req: &Parts) -> Result<(), Error> {
        for c in &self.checks {
            c.check(ctx, req).await?;
        }
        Ok(())
    }
}
