//! Hot reload: re-read the configuration file and swap, while serving, everything that a route
//! table holds.
//!
//! What reloads: buckets (added, removed, re-pointed), their credentials, endpoints, timeouts,
//! CORS, tokens (the `jwt` section, keys re-read from disk), policies (Rego files re-read), IP
//! filters, per-bucket cache and coalescing settings. Requests already running finish on the routes
//! they started with. Cache entries are keyed by origin, so the entries of a bucket whose origin did
//! not change stay valid; a re-pointed bucket starts from an empty cache.
//!
//! What needs a restart: `server` (listeners and their limits, trusted proxies), `cache` (tiers and
//! their sizes), `coalescing` (slice and buffer sizes), `admin`, `metrics`, `logging`, `audit_log` and `observability`. A reload
//! that changes any of them still applies the rest, and says which were left as they are.
//!
//! The listener's TLS certificate and key (`server.tls`) are re-read from their files on every
//! reload, so a renewed certificate needs no restart.
//!
//! A file that does not parse, validate or build is refused whole: the running routes keep serving.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::config::{Config, ConfigError};
use crate::proxy::Proxy;

/// Reloads a [`Proxy`]'s routes from its configuration file ([`Reloader::reload`]; the binary calls
/// it on `SIGHUP` and `POST /admin/reload`).
pub struct Reloader {
    path: PathBuf,
    proxy: Proxy,
    /// The configuration the proxy was started with: what restart-only sections are compared to.
    started: Config,
    /// One reload at a time.
    busy: Mutex<()>,
    /// The listener's certificate, re-read on every reload.
    tls: Option<crate::ServerTls>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    /// Buckets served now.
    pub buckets: usize,
    /// Sections that differ from the running configuration but need a restart to take effect
    /// (`server`, `cache`, `coalescing`, `admin`, `metrics`, `logging`).
    pub restart_needed: Vec<&'static str>,
}

impl Reloader {
    /// Reload `proxy` from the file at `path`; `started` is the configuration it was built from.
    pub fn new(path: impl Into<PathBuf>, started: Config, proxy: Proxy) -> Self {
        Self {
            path: path.into(),
            proxy,
            started,
            busy: Mutex::new(()),
            tls: None,
        }
    }

    /// Also re-read this listener certificate's files on every reload (a renewed certificate
    /// takes effect for new connections; a file that does not load refuses the reload whole).
    #[must_use]
    pub fn with_tls(mut self, tls: crate::ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Re-read the file and swap the routes. On error nothing changed; the error lists every
    /// problem, one line each, as start-up would.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let _one = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = Config::from_file(&self.path)?;
        let routes = next.build_routes()?;
        if let Some(tls) = &self.tls {
            // From the files the listener was started with (a changed path needs a restart).
            tls.reload()
                .map_err(|e| ConfigError::one(format!("server.tls.{e}")))?;
        }
        let s = &self.started;
        let restart_needed: Vec<&'static str> = [
            ("server", s.server != next.server),
            ("cache", s.cache != next.cache),
            ("coalescing", s.coalescing != next.coalescing),
            ("admin", s.admin != next.admin),
            ("metrics", s.metrics != next.metrics),
            ("logging", s.logging != next.logging),
            ("audit_log", s.audit_log != next.audit_log),
            ("observability", s.observability != next.observability),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        let buckets = routes.len();
        self.proxy.replace_routes(routes);
        Ok(Reloaded {
            buckets,
            restart_needed,
        })
    }
}
