//! The `yatagarasu` binary: `yatagarasu --config FILE [--check]`.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use yatagarasu::{AdminApi, Config, Reloader, serve, serve_admin, serve_tls};

const USAGE: &str = "\
usage: yatagarasu --config FILE [--check]

  --config FILE   the YAML configuration (see the README's configuration reference)
  --check         validate the configuration and exit: 0 when valid, 1 with one line per problem
  --version       print the version
  --help          print this help

Logs go to stdout; RUST_LOG sets the level (default: info).";

enum Command {
    Run { config: PathBuf, check: bool },
    Print(String),
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut config = None;
    let mut check = false;
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?));
            }
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            "--check" => check = true,
            "--version" | "-V" => {
                return Ok(Command::Print(format!(
                    "yatagarasu {}",
                    yatagarasu::VERSION
                )));
            }
            "--help" | "-h" => return Ok(Command::Print(USAGE.to_owned())),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let config = config.ok_or("--config FILE is required")?;
    Ok(Command::Run { config, check })
}

fn main() -> ExitCode {
    let (config_path, check) = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run { config, check }) => (config, check),
        Ok(Command::Print(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_file(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration {}:", config_path.display());
            for p in e.problems() {
                eprintln!("  {p}");
            }
            return ExitCode::FAILURE;
        }
    };
    // Flushes the log writer when main returns.
    let _log = (!check).then(|| init_logging(&config));
    if !check {
        raise_open_files_limit();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        // The same building as start-up (clients, cache tiers, routes), short of binding sockets.
        return match runtime.block_on(async {
            config.build_proxy().await?;
            config.build_tls()
        }) {
            Ok(_) => {
                println!(
                    "configuration OK: {} bucket(s), listening on {}:{}",
                    config.buckets.len(),
                    config.server.address,
                    config.server.port
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: invalid configuration {}:", config_path.display());
                for p in e.problems() {
                    eprintln!("  {p}");
                }
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(config, config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raise the soft limit on open files to the hard limit, as Go's runtime does at start: every
/// connection takes a descriptor, and so does every record file the disk tier keeps open (it keeps
/// at most an eighth of the soft limit), while service managers commonly start processes at a soft
/// 1024 with a far higher hard limit. Before the cache is built, so the disk tier sees the result.
fn raise_open_files_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        // `None` is "unlimited"; an unlimited hard limit cannot be set for open files, so a soft
        // limit is only raised to a finite hard one.
        let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
            return;
        };
        if soft >= hard {
            return;
        }
        let raised = Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(limit = soft, error = %e, "cannot raise the open-file limit"),
        }
    }
}

/// Reload the configuration on every `SIGHUP` (logged: what changed, or every problem).
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload through the admin API only");
        return;
    };
    while hangups.recv().await.is_some() {
        let r = Arc::clone(&reloader);
        match tokio::task::spawn_blocking(move || r.reload()).await {
            Ok(Ok(done)) if done.restart_needed.is_empty() => {
                tracing::info!(buckets = done.buckets, "configuration reloaded (SIGHUP)");
            }
            Ok(Ok(done)) => tracing::warn!(
                buckets = done.buckets,
                restart_needed = ?done.restart_needed,
                "configuration reloaded (SIGHUP); these sections changed but need a restart"
            ),
            Ok(Err(e)) => {
                tracing::error!(problems = ?e.problems(), "configuration reload refused (SIGHUP); the running one stays");
            }
            Err(_) => tracing::error!("configuration reload failed"),
        }
    }
}

/// Logs (request lines included) to stdout through a writer thread: a request formats its line and
/// queues it, and never waits for stdout. The queue holds 64k lines; past that, lines are dropped
/// rather than slowing requests (counted, and reported at exit). `RUST_LOG`, when set, wins over
/// `logging.level`.
fn init_logging(config: &Config) -> LogGuard {
    let logging = config.logging.clone().unwrap_or_default();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(64 * 1024)
        .thread_name("yatagarasu-log")
        .finish(PacedWriter(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        )));
    let dropped = writer.error_counter();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&logging.level));
    let json = logging.format == "json";
    // Request lines take their own, faster path to the same writer thread.
    let (lines, lines_flusher) = yatagarasu::request_lines::RequestLines::new(json, writer.clone());
    let others =
        tracing_subscriber::filter::filter_fn(|m| m.target() != yatagarasu::request_lines::TARGET);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter).with(lines);
    if json {
        registry
            .with(fmt.json().flatten_event(true).with_filter(others))
            .init();
    } else {
        registry.with(fmt.with_filter(others)).init();
    }
    LogGuard {
        lines: lines_flusher,
        _flush: guard,
        dropped,
    }
}

/// Keeps the log writer threads until exit, then flushes them (request lines first).
struct LogGuard {
    lines: yatagarasu::request_lines::RequestLinesFlusher,
    _flush: tracing_appender::non_blocking::WorkerGuard,
    dropped: tracing_appender::non_blocking::ErrorCounter,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let n =
            u64::try_from(self.dropped.dropped_lines()).unwrap_or(u64::MAX) + self.lines.dropped();
        if n > 0 {
            eprintln!("{n} log lines were dropped: stdout did not keep up");
        }
    }
}

/// The log thread's writer: buffered, and after each flush (the thread flushes when it has
/// drained the queue) it pauses 5 ms instead of going back to sleep on the queue at once. A thread
/// asleep on the queue must be woken (a futex call) by the next request that logs, i.e. by nearly
/// every request under load; a pausing one is not, and takes the lines queued meanwhile in one go.
/// Lines reach stdout at most about 5 ms late.
struct PacedWriter<W: std::io::Write>(std::io::BufWriter<W>);

impl<W: std::io::Write> std::io::Write for PacedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(5));
        Ok(())
    }
}

async fn run(config: Config, path: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let proxy = config.build_proxy().await?;
    if let Some(fleet) = proxy.fleet().filter(|f| f.invalidation()) {
        // Drop what was purged while this instance was away before answering from its tiers.
        if fleet.wait_synced(std::time::Duration::from_secs(2)).await {
            tracing::info!(instance = %proxy.instance_id(), "fleet: in step with the other instances");
        } else {
            tracing::warn!(instance = %proxy.instance_id(), "fleet: Redis not reachable within 2 s; serving anyway, purges made elsewhere meanwhile reach this instance when it is");
        }
    }
    let tls = config.build_tls()?;
    let mut reloader = Reloader::new(path, config.clone(), proxy.clone());
    if let Some(tls) = &tls {
        reloader = reloader.with_tls(tls.clone());
    }
    let reloader = Arc::new(reloader);
    tokio::spawn(reload_on_sighup(Arc::clone(&reloader)));
    let routes = proxy.routes();
    let addr = (config.server.address.as_str(), config.server.port);
    let workers = config.server.worker_threads;
    let listener = bind(addr, workers > 0)
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", addr.0, addr.1))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme, buckets = routes.len(), instance = %proxy.instance_id(), "yatagarasu listening");
    for r in &routes {
        tracing::info!(bucket = %r.name, prefix = %r.path_prefix, "serving bucket");
    }
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(admin) = config.admin.as_ref().filter(|a| a.enabled) {
        let token = admin
            .token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .unwrap_or_default();
        let addr = (admin.address.as_str(), admin.port);
        let admin_listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!(
                "cannot listen on {}:{} for the admin API: {e}",
                addr.0, addr.1
            )
        })?;
        tracing::info!(address = %admin_listener.local_addr()?, "admin API listening");
        let mut api = AdminApi::new(proxy.clone(), token).with_reloader(Arc::clone(&reloader));
        if let Some(jwt) = config.build_admin_jwt()? {
            api = api.with_jwt(jwt);
        }
        // The admin listener: the proxy's timeouts, and few connections (operators, not clients).
        let mut options = config.server_options();
        options.max_connections = 64;
        tokio::spawn(serve_admin(admin_listener, api, options, async {
            let _ = admin_stopped.await;
        }));
    }
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some((m, port)) = config
        .metrics
        .as_ref()
        .filter(|m| m.enabled)
        .and_then(|m| Some((m, m.port?)))
    {
        let metrics_listener = tokio::net::TcpListener::bind((m.address.as_str(), port))
            .await
            .map_err(|e| format!("cannot listen on {}:{port} for metrics: {e}", m.address))?;
        tracing::info!(address = %metrics_listener.local_addr()?, "metrics listening");
        let mut options = config.server_options();
        options.max_connections = 64;
        tokio::spawn(yatagarasu::serve_metrics(
            metrics_listener,
            proxy.clone(),
            options,
            async {
                let _ = metrics_stopped.await;
            },
        ));
    }
    let audit = proxy.audit_log().cloned();
    #[cfg(feature = "otel")]
    let tracing = proxy.otel_tracing().cloned();
    let options = config.server_options();
    if workers > 0 {
        serve_on_workers(listener, workers, proxy, options, tls).await?;
    } else {
        match tls {
            Some(tls) => serve_tls(listener, proxy, options, tls, shutdown_signal()).await?,
            None => serve(listener, proxy, options, shutdown_signal()).await?,
        }
    }
    let _ = stop_admin.send(());
    let _ = stop_metrics.send(());
    #[cfg(feature = "otel")]
    if let Some(tracing) = tracing {
        // Export the last batch of spans.
        let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
    }
    if let Some(audit) = audit {
        // Every request has ended: write what is queued before the process goes.
        let flushed = tokio::task::spawn_blocking(move || {
            let ok = audit.flush(std::time::Duration::from_secs(10));
            (ok, audit.stats())
        })
        .await;
        match flushed {
            Ok((true, s)) if s.dropped == 0 && s.failed == 0 => {}
            Ok((ok, s)) => tracing::warn!(
                flushed = ok,
                written = s.written,
                dropped = s.dropped,
                failed = s.failed,
                "audit log: not every record was written"
            ),
            Err(_) => tracing::warn!("audit log: flush failed"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Listen on `addr`; with `shared`, with `SO_REUSEPORT` so that worker threads can each listen
/// on the same address.
async fn bind(addr: (&str, u16), shared: bool) -> std::io::Result<tokio::net::TcpListener> {
    if !shared {
        return tokio::net::TcpListener::bind(addr).await;
    }
    let at = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the address resolves to nothing",
        )
    })?;
    bind_shared(at)
}

fn bind_shared(at: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if at.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(at)?;
    socket.listen(1024)
}

/// `server.worker_threads`: `workers` threads, each a single-threaded runtime serving its own
/// listening socket on the address of `first` (which the first worker takes over), until SIGTERM
/// or Ctrl-C; then each drains its connections. Each takes its share of the connection limit.
/// A worker's runtime stays up until every worker has drained: connections to the origin made
/// on one worker are pooled and may serve requests of another.
async fn serve_on_workers(
    first: tokio::net::TcpListener,
    workers: usize,
    proxy: yatagarasu::Proxy,
    mut options: yatagarasu::ServerOptions,
    tls: Option<yatagarasu::ServerTls>,
) -> Result<(), Box<dyn std::error::Error>> {
    let local = first.local_addr()?;
    options.max_connections = options.max_connections.div_ceil(workers);
    let mut listeners = vec![first.into_std()?];
    for _ in 1..workers {
        listeners.push(bind_shared(local)?.into_std()?);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let all_drained = Arc::new(tokio::sync::Barrier::new(workers));
    let mut threads = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (proxy, tls, all_drained) = (proxy.clone(), tls.clone(), Arc::clone(&all_drained));
        let mut stopped = stopped.clone();
        let worker = move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                let served = match tls {
                    Some(tls) => serve_tls(listener, proxy, options, tls, shutdown).await,
                    None => serve(listener, proxy, options, shutdown).await,
                };
                all_drained.wait().await;
                served
            })
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("yatagarasu-worker-{i}"))
                .spawn(worker)?,
        );
    }
    shutdown_signal().await;
    let _ = stop.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a worker panicked")))
            })
            .collect::<std::io::Result<Vec<()>>>()
    })
    .await?;
    joined?;
    Ok(())
}

/// SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: shutting down");
    }
}
