//! The routing stage: the proxy's own endpoints (`/health`, `/ready`), or a bucket route and an object
//! key, checked once; the request context is built here and passed down.

use std::net::SocketAddr;

use yatagarasu_core::{Error, ErrorKind};

use crate::routes::{MountedRoute, RouteTable};

/// Where a request goes.
#[derive(Debug)]
pub(crate) enum Routed<'t> {
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
    /// `GET /metrics`.
    Metrics,
    /// An object (or a bucket root) of a bucket.
    Bucket(RequestContext<'t>),
}

/// What every stage after routing knows about a request. Built once.
#[derive(Debug)]
pub(crate) struct RequestContext<'t> {
    /// The request id (see the request-id stage).
    pub(crate) id: &'t str,
    /// The bucket route.
    pub(crate) route: &'t MountedRoute,
    /// The object key, percent-decoded once; may be empty (the bucket root). Shared, not copied,
    /// by what outlives the request (cache fills).
    pub(crate) key: std::sync::Arc<str>,
    /// The socket peer's address, when the server knows it (the client's own may be forwarded:
    /// see `auth::client_ip`).
    pub(crate) client_addr: Option<SocketAddr>,
}

/// Route `path` through `table`. An error may still name the route it matched (for CORS headers).
pub(crate) fn route<'t>(
    table: &'t RouteTable,
    path: &str,
    id: &'t str,
    client_addr: Option<SocketAddr>,
) -> Result<Routed<'t>, Error> {
    match path {
        "/health" => return Ok(Routed::Health),
        "/ready" => return Ok(Routed::Ready),
        "/metrics" => return Ok(Routed::Metrics),
        _ => {}
    }
    match table.resolve(path)? {
        Some((route, key)) => Ok(Routed::Bucket(RequestContext {
            id,
            route,
            key,
            client_addr,
        })),
        None => Err(Error::new(
            ErrorKind::NotFound,
            "no bucket is served under this path",
        )),
    }
}
