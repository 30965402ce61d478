//! The real `yatagarasu` binary as a separate process: `--check`, serving from a config file,
//! `/ready` following the origin, flat memory on a 200 MiB download, and SIGTERM letting that
//! download finish before exiting 0.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use yatagarasu_testkit::{TestOrigin, pattern_byte};

const BIN: &str = env!("CARGO_BIN_EXE_yatagarasu");

fn write_config(dir: &tempfile::TempDir, yaml: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn config_for(origin: &TestOrigin, extra_server: &str) -> String {
    format!(
        "server:\n  address: 127.0.0.1\n  port: 0\n  ready_cache_seconds: 0\n  shutdown_grace_seconds: 60\n{extra_server}buckets:\n  - name: media\n    path_prefix: /media\n    s3:\n      bucket: media\n      endpoint: {}\n      region: us-east-1\n      access_key: {}\n      secret_key: ${{TEST_ORIGIN_SECRET}}\n",
        origin.endpoint(),
        origin.access_key()
    )
}

/// `yatagarasu --config PATH --check`, run to completion.
fn check_config(path: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(path)
        .arg("--check")
        .output()
        .unwrap()
}

struct ProxyProcess {
    child: Child,
    base: String,
    /// Every line the process writes to stdout (its log), in order.
    log: std::sync::mpsc::Receiver<String>,
}

impl ProxyProcess {
    /// Start the binary and wait (bounded) for its "listening" log line to learn the port.
    fn start(config: &std::path::Path, secret: &str) -> Self {
        Self::start_with(config, &[("TEST_ORIGIN_SECRET", secret)], false).0
    }

    /// Start the binary with extra environment variables and wait (bounded) for its "listening" log
    /// lines: the proxy's address, and the admin API's when `admin` is expected.
    fn start_with(
        config: &std::path::Path,
        env: &[(&str, &str)],
        admin: bool,
    ) -> (Self, Option<String>) {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, admin)
    }

    /// Start the binary with its soft limit on open files lowered to `soft` (by the shell that
    /// then becomes it).
    fn start_with_soft_open_files_limit(config: &std::path::Path, secret: &str, soft: u64) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -S -n {soft} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .arg("--config")
            .arg(config)
            .env("TEST_ORIGIN_SECRET", secret);
        Self::spawn(cmd, false).0
    }

    fn spawn(mut cmd: Command, admin: bool) -> (Self, Option<String>) {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (log_tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = log_tx.send(line.clone());
                // Text (`address=A`) or JSON (`"address":"A"`) log lines.
                let rest = line
                    .split("address=")
                    .nth(1)
                    .or_else(|| line.split("\"address\":\"").nth(1));
                if let Some(rest) = rest.filter(|_| !line.contains("metrics listening")) {
                    let addr = rest
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send((line.contains("admin API"), addr));
                }
            }
        });
        let (mut proxy, mut admin_addr) = (None, None);
        while proxy.is_none() || (admin && admin_addr.is_none()) {
            let (is_admin, addr) = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the listeners are logged");
            if is_admin {
                admin_addr = Some(format!("http://{addr}"));
            } else {
                proxy = Some(format!("http://{addr}"));
            }
        }
        let base = proxy.unwrap_or_default();
        (Self { child, base, log }, admin_addr)
    }

    /// The log lines written until `want` lines matching `pred` have been seen (bounded).
    fn log_until(&self, want: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        let mut seen = 0;
        while seen < want {
            let line = self
                .log
                .recv_timeout(Duration::from_secs(30))
                .expect("the expected log lines are written");
            seen += usize::from(pred(&line));
            lines.push(line);
        }
        lines
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        kb * 1024
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Wait for the process to exit, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn check_names_the_misspelt_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "buckets:\n  - name: a\n    path_prefix: /a\n    s3:\n      bucket: a\n  - name: b\n    path_prefix: /b\n    s3:\n      bucket: b\n      acess_key: x\n",
    );
    let out = check_config(&cfg);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("buckets[1].s3.acess_key: unknown field, did you mean access_key?"),
        "{stderr}"
    );
}

/// `--check` builds what start-up builds (clients, cache tiers), so what would fail at start fails
/// here, each problem naming its key.
#[test]
fn check_runs_the_start_up_build_short_of_binding_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let bucket = |s3: &str| {
        format!(
            "buckets:\n  - name: a\n    path_prefix: /a\n    s3: {{bucket: a, access_key: k, secret_key: s, {s3}}}\n"
        )
    };
    let cases = [
        (
            bucket("endpoint: 'http://127.0.0.1:9000/?x=1'"),
            "buckets[0].s3",
            "must not have a query",
        ),
        (
            "buckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: Not_A_Label, access_key: k, secret_key: s, addressing: virtual}\n".to_owned(),
            "buckets[0].s3",
            "not a valid host name label",
        ),
        (
            format!(
                "{}cache:\n  cache_layers: [redis]\n  redis: {{redis_url: 'rediss://127.0.0.1:6380'}}\n",
                bucket("endpoint: 'http://127.0.0.1:9000'")
            ),
            "cache.redis.redis_url",
            "TLS",
        ),
        (
            format!(
                "{}cache:\n  cache_layers: [disk]\n  disk: {{cache_dir: '{}'}}\n",
                bucket("endpoint: 'http://127.0.0.1:9000'"),
                not_a_dir.join("cache").display()
            ),
            "cache.disk.cache_dir",
            "",
        ),
    ];
    for (yaml, key, detail) in cases {
        let cfg = write_config(&dir, &yaml);
        let out = check_config(&cfg);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}\n{stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(detail),
            "{yaml}\n{stderr}"
        );
    }
}

#[test]
fn check_accepts_a_valid_file_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "server:\n  port: ${PORT:-8081}\nbuckets:\n  - name: a\n    path_prefix: /a\n    s3: {bucket: a, endpoint: 'http://127.0.0.1:9000', access_key: k, secret_key: s}\n",
    );
    let out = check_config(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK: 1 bucket(s)"));

    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config FILE is required"));
    let out = check_config(&dir.path().join("missing.yaml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[tokio::test]
async fn serves_from_config_and_ready_follows_the_origin() {
    let origin = TestOrigin::start("AKIDBIN", "bin-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "hello.txt", b"hello from the binary");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &config_for(&origin, ""));
    let proxy = ProxyProcess::start(&cfg, "bin-secret");
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{}/media/hello.txt", proxy.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the binary");

    let r = http
        .get(format!("{}/ready", proxy.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["buckets"]["media"]["ready"], true);

    origin.stop();
    let r = http
        .get(format!("{}/ready", proxy.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["status"], "not_ready");
    assert_eq!(v["buckets"]["media"]["ready"], false);
    assert_eq!(
        http.get(format!("{}/health", proxy.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // With the origin down, object requests say so.
    let r = http
        .get(format!("{}/media/hello.txt", proxy.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn query_string_tokens_never_reach_the_log() {
    let origin = TestOrigin::start("AKIDBIN", "bin-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "hello.txt", b"hello from the binary");
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_for(&origin, "").replace(
        "buckets:\n  - name: media\n",
        "jwt:\n  enabled: true\n  algorithm: HS256\n  secret: an hmac secret of thirty-two b!!\n  \
         token_sources: [{type: query, name: token}]\nbuckets:\n  - name: media\n    auth: {enabled: true}\n",
    );
    let cfg = write_config(&dir, &yaml);
    let proxy = ProxyProcess::start(&cfg, "bin-secret");
    let claims =
        serde_json::json!({"sub": "u1", "exp": jsonwebtoken::get_current_timestamp() + 600});
    let good = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"an hmac secret of thirty-two b!!"),
    )
    .unwrap();
    let bad = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXRoYXQtZmFpbHM";
    let http = reqwest::Client::new();
    for (token, status) in [(good.as_str(), 200), (bad, 401)] {
        let r = http
            .get(format!("{}/media/hello.txt?token={token}", proxy.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
    }
    // Both request lines written (they name the path): neither token, nor any part of one.
    let lines = proxy.log_until(2, |l| l.contains("/media/hello.txt"));
    let signature = good.rsplit('.').next().unwrap();
    for line in &lines {
        assert!(
            !line.contains(signature) && !line.contains("c2lnbmF0dXJl") && !line.contains("token="),
            "a token in the log: {line}"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_file_and_json_logs_say_so() {
    let origin = TestOrigin::start("AKIDBIN", "bin-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "hello.txt", b"hello from the binary");
    let dir = tempfile::tempdir().unwrap();
    let first = config_for(&origin, "") + "logging: {format: json, level: info}\n";
    let cfg = write_config(&dir, &first);
    let proxy = ProxyProcess::start(&cfg, "bin-secret");
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{}{path}", proxy.base));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/media/hello.txt").await, 200);
    assert_eq!(get("/more/hello.txt").await, 404);
    // The request lines are JSON objects with their fields at the top level.
    let lines = proxy.log_until(2, |l| l.contains("\"message\":\"request\""));
    let request: serde_json::Value = serde_json::from_str(
        lines
            .iter()
            .find(|l| l.contains("/media/hello.txt"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&request["status"], &request["bucket"]),
        (&serde_json::json!(200), &serde_json::json!("media"))
    );

    // A second bucket in the file, then SIGHUP: it answers once the reload is logged.
    let more = first.replace(
        "buckets:\n",
        &format!(
            "buckets:\n  - name: more\n    path_prefix: /more\n    s3:\n      bucket: media\n      endpoint: {}\n      access_key: AKIDBIN\n      secret_key: ${{TEST_ORIGIN_SECRET}}\n",
            origin.endpoint()
        ),
    );
    write_config(&dir, &more);
    proxy.signal("-HUP");
    let reloaded = proxy.log_until(1, |l| l.contains("configuration reload"));
    assert!(
        reloaded.last().unwrap().contains("configuration reloaded"),
        "{reloaded:?}"
    );
    assert_eq!(get("/more/hello.txt").await, 200);
    // A broken file: refused and logged with its problem; the running routes stay.
    write_config(
        &dir,
        &more.replace("path_prefix: /more", "path_prefx: /more"),
    );
    proxy.signal("-HUP");
    let refused = proxy.log_until(1, |l| l.contains("configuration reload refused"));
    assert!(refused.last().unwrap().contains("path_prefx"));
    assert_eq!(get("/more/hello.txt").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_download_has_flat_memory_and_survives_sigterm() {
    const LEN: u64 = 200 * 1024 * 1024;
    let origin = TestOrigin::start("AKIDBIG", "big-secret").await;
    origin.create_bucket("media");
    origin.put_pattern_object("media", "big.bin", LEN);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &config_for(&origin, ""));
    let mut proxy = ProxyProcess::start(&cfg, "big-secret");

    let resp = reqwest::get(format!("{}/media/big.bin", proxy.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(LEN));
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let baseline = proxy.rss_bytes();
    let mut peak = baseline;
    let mut offset = first.len() as u64;
    let mut signalled = false;
    let mut chunks = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        for i in [0, chunk.len() - 1] {
            assert_eq!(chunk[i], pattern_byte(offset + i as u64));
        }
        offset += chunk.len() as u64;
        chunks += 1;
        if chunks.is_multiple_of(64) {
            peak = peak.max(proxy.rss_bytes());
        }
        if !signalled && offset > LEN / 4 {
            proxy.signal("-TERM");
            signalled = true;
        }
    }
    assert!(signalled);
    assert_eq!(offset, LEN, "the in-flight download finished after SIGTERM");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "proxy RSS baseline {baseline}, peak {peak}, growth {growth} while streaming 200 MiB"
    );
    assert!(
        growth < 32 * 1024 * 1024,
        "proxy RSS grew by {growth} bytes"
    );
    let status = proxy.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
}

/// Threads of process `pid` whose name starts with `prefix` (Linux truncates names to 15 bytes).
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.starts_with(prefix))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_threads_share_the_address_serve_every_connection_and_drain_on_sigterm() {
    const LEN: u64 = 64 * 1024 * 1024;
    let origin = TestOrigin::start("AKIDWORK", "work-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "small", b"small object");
    origin.put_pattern_object("media", "big.bin", LEN);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &config_for(&origin, "  worker_threads: 2\n  max_connections: 64\n"),
    );
    let mut proxy = ProxyProcess::start(&cfg, "work-secret");
    // 32 connections of their own (one client each): the kernel spreads them over both sockets.
    let answers = futures_util::future::join_all((0..32).map(|_| {
        let url = format!("{}/media/small", proxy.base);
        async move {
            let http = reqwest::Client::builder().build().unwrap();
            let r = http.get(url).send().await.unwrap();
            (r.status(), r.bytes().await.unwrap())
        }
    }))
    .await;
    for (status, body) in answers {
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"small object");
    }
    // Answered, so the workers run: two of them.
    assert_eq!(threads_named(proxy.child.id(), "yatagarasu-work"), 2);
    // A download under way when SIGTERM comes finishes; the process then exits cleanly.
    let resp = reqwest::get(format!("{}/media/big.bin", proxy.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut offset = 0u64;
    let mut signalled = false;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk[0], pattern_byte(offset));
        offset += chunk.len() as u64;
        if !signalled {
            proxy.signal("-TERM");
            signalled = true;
        }
    }
    assert_eq!(offset, LEN, "the in-flight download finished after SIGTERM");
    let status = proxy.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
}

/// The soft and hard limits on open files of process `pid`.
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[tokio::test]
async fn the_binary_raises_its_open_files_limit_to_the_hard_limit() {
    // Started the way service managers often start processes (a soft limit of 256 under a
    // higher hard one), the proxy raises the soft limit before serving: connections and the disk
    // tier's open record files take descriptors.
    let (_, hard) = open_files_limits(std::process::id());
    assert!(
        hard > 256,
        "the test needs a hard limit above 256, not {hard}"
    );
    let origin = TestOrigin::start("AKIDLIMIT", "limit-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"limits");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &config_for(&origin, ""));
    let mut proxy = ProxyProcess::start_with_soft_open_files_limit(&cfg, "limit-secret", 256);
    let body = reqwest::get(format!("{}/media/a.txt", proxy.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "limits");
    assert_eq!(open_files_limits(proxy.child.id()), (hard, hard));
    let raised = proxy.log_until(1, |l| l.contains("raised the open-file limit"));
    assert!(raised.iter().any(|l| l.contains("from=256")), "{raised:?}");
    proxy.signal("-TERM");
    assert!(proxy.wait_exit(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_tiers_from_config_and_admin_purge_across_them() {
    let origin = TestOrigin::start("AKIDADMIN", "admin-secret").await;
    origin.create_bucket("media");
    origin.put_pattern_object("media", "a.bin", 300_000);
    origin.put_pattern_object("media", "b.bin", 1000);
    let redis = yatagarasu_testkit::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("disk-cache");
    let config = format!(
        "{}cache:\n  cache_layers: [memory, disk, redis]\n  memory: {{max_cache_size_mb: 16, max_item_size_mb: 4, default_ttl_seconds: 600}}\n  disk: {{cache_dir: '{}', max_disk_cache_size_mb: 64}}\n  redis: {{redis_url: '{}', redis_key_prefix: 'bintest:'}}\nadmin:\n  enabled: true\n  port: 0\n  token: ${{ADMIN_TOKEN}}\ncoalescing:\n  slice_size: 65536\n",
        config_for(&origin, ""),
        cache_dir.display(),
        redis.url()
    );
    let cfg = write_config(&dir, &config);
    let check = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check")
        .env("TEST_ORIGIN_SECRET", "admin-secret")
        .env("ADMIN_TOKEN", "admin-token-0123456789")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let (mut guard, admin) = ProxyProcess::start_with(
        &cfg,
        &[
            ("TEST_ORIGIN_SECRET", "admin-secret"),
            ("ADMIN_TOKEN", "admin-token-0123456789"),
        ],
        true,
    );
    let admin = admin.unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", guard.base)).send();

    let r = get("/media/a.bin").await.unwrap();
    assert_eq!(r.headers()["x-cache"], "MISS");
    r.bytes().await.unwrap();
    assert_eq!(
        get("/media/b.bin").await.unwrap().headers()["x-cache"],
        "MISS"
    );
    let r = get("/media/a.bin").await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap().len(), 300_000);

    // The admin API wants its token.
    let r = http
        .post(format!("{admin}/admin/purge?bucket=media&key=a.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let auth = "Bearer admin-token-0123456789";
    let r = http
        .get(format!("{admin}/admin/stats"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let tiers: Vec<&str> = stats["cache"]["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tier"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["memory", "disk", "redis"]);
    assert_eq!(stats["cache"]["buckets"]["media"]["miss"], 2);
    assert_eq!(stats["cache"]["buckets"]["media"]["hit"], 1);

    // Redis is written in the background: wait until it holds both objects (records and slices:
    // a.bin has 5 slices of 64 KiB, b.bin 1) before purging, so no late write lands after the purge.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = http
                .get(format!("{admin}/admin/stats"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            if v["cache"]["tiers"][2]["inserts"].as_u64().unwrap_or(0) >= 8 {
                break;
            }
        }
    })
    .await
    .expect("the Redis writes complete");
    // Purge one object: gone from every tier (a hit in any of them would say HIT).
    let r = http
        .post(format!("{admin}/admin/purge?bucket=media&key=a.bin"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = origin.stats().requests();
    assert_eq!(
        get("/media/a.bin").await.unwrap().headers()["x-cache"],
        "MISS"
    );
    assert!(origin.stats().requests() > before);
    assert_eq!(
        get("/media/b.bin").await.unwrap().headers()["x-cache"],
        "HIT",
        "other objects stay"
    );
    // Purge the bucket.
    let r = http
        .post(format!("{admin}/admin/purge?bucket=media"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get("/media/b.bin").await.unwrap().headers()["x-cache"],
        "MISS"
    );
    let r = http
        .post(format!("{admin}/admin/purge?bucket=nope"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    guard.signal("-TERM");
    assert!(guard.wait_exit(Duration::from_secs(30)).success());
}

/// Admin stats' `coalescing` section.
async fn coalescing_stats(http: &reqwest::Client, admin: &str) -> serde_json::Value {
    let r = http
        .get(format!("{admin}/admin/stats"))
        .header("authorization", "Bearer admin-token-0123456789")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    v["coalescing"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_keep_memory_within_the_buffer_budget() {
    const MIB: u64 = 1024 * 1024;
    const BUDGET: u64 = 32 * MIB;
    const READERS: usize = 200;
    let origin = TestOrigin::start("AKIDSTALL", "stall-secret").await;
    origin.create_bucket("media");
    for i in 0..2 * READERS {
        origin.put_sparse_object(
            "media",
            &format!("o{i}.bin"),
            16 * MIB,
            &format!("etag-{i}"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}coalescing:\n  slice_size: 1048576\n  buffer_bytes: 4194304\n  buffer_budget_bytes: {BUDGET}\nadmin:\n  enabled: true\n  port: 0\n  token: admin-token-0123456789\n",
        config_for(
            &origin,
            "  send_timeout_seconds: 600\n  max_connections: 1000\n"
        )
    );
    let cfg = write_config(&dir, &config);
    let (proxy, admin) =
        ProxyProcess::start_with(&cfg, &[("TEST_ORIGIN_SECRET", "stall-secret")], true);
    let admin = admin.unwrap();
    let http = reqwest::Client::new();
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let baseline = proxy.rss_bytes();

    // Waits (bounded) until `started` shared fetches run and the budget is taken, then samples RSS.
    let saturated_rss = |started: u64| {
        let (http, admin) = (http.clone(), admin.clone());
        let proxy = &proxy;
        async move {
            tokio::time::timeout(Duration::from_secs(60), async {
                loop {
                    let c = coalescing_stats(&http, &admin).await;
                    let buffered = c["buffered_bytes"].as_u64().unwrap();
                    if c["objects"]["started"].as_u64().unwrap() >= started
                        && buffered >= BUDGET * 3 / 4
                    {
                        assert!(buffered <= BUDGET, "buffered {buffered} over the budget");
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the stalled fetches fill the budget");
            let mut peak = 0;
            for _ in 0..20 {
                peak = peak.max(proxy.rss_bytes());
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            peak
        }
    };

    // 200 HTTP/1.1 clients ask for a 16 MiB object each and never read.
    let mut sockets = Vec::new();
    for i in 0..READERS {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!("GET /media/o{i}.bin HTTP/1.1\r\nHost: x\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
            .await
            .unwrap();
        sockets.push(s);
    }
    let h1_peak = saturated_rss(READERS as u64).await;
    drop(sockets);

    // 200 streams on one HTTP/2 connection, none read.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut streams = Vec::new();
    for i in READERS..2 * READERS {
        streams.push(h2.get(format!("{}/media/o{i}.bin", proxy.base)).send());
    }
    let responses = futures_util::future::join_all(streams).await;
    assert!(
        responses
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
    );
    let h2_peak = saturated_rss(2 * READERS as u64).await;
    drop(responses);

    let margin = 64 * MIB;
    eprintln!(
        "RSS baseline {baseline}, with {READERS} stalled HTTP/1.1 readers {h1_peak} (+{}), with {READERS} stalled HTTP/2 streams {h2_peak} (+{}); budget {BUDGET}",
        h1_peak.saturating_sub(baseline),
        h2_peak.saturating_sub(baseline)
    );
    for peak in [h1_peak, h2_peak] {
        assert!(
            peak.saturating_sub(baseline) < BUDGET + margin,
            "RSS grew by {} with a {BUDGET}-byte budget",
            peak.saturating_sub(baseline)
        );
    }
}

#[tokio::test]
async fn every_audit_record_is_in_the_file_when_the_process_has_exited() {
    let origin = TestOrigin::start("AKIDBIN", "bin-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "hello.txt", b"hello from the binary");
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let yaml = config_for(&origin, "")
        + &format!(
            "audit_log:\n  enabled: true\n  outputs: [file]\n  file: {{path: \"{}\"}}\n",
            audit.display()
        );
    let cfg = write_config(&dir, &yaml);
    let mut proxy = ProxyProcess::start(&cfg, "bin-secret");
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for path in [
        "/media/hello.txt",
        "/media/hello.txt",
        "/media/nope.txt",
        "/elsewhere",
    ] {
        let r = http
            .get(format!("{}{path}", proxy.base))
            .send()
            .await
            .unwrap();
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
        let _ = r.bytes().await.unwrap();
    }
    proxy.signal("-TERM");
    assert!(proxy.wait_exit(Duration::from_secs(30)).success());
    let text = std::fs::read_to_string(&audit).unwrap();
    let logged: Vec<(String, u64)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["request_id"].as_str().unwrap().to_owned(),
                v["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = ids.into_iter().zip([200, 200, 404, 404]).collect();
    assert_eq!(logged, want);
}

/// One instance of a fleet test: its process, its admin URL and its cache directory's parent.
struct Member {
    process: ProxyProcess,
    admin: String,
}

fn start_member(cfg: &std::path::Path) -> Member {
    let (process, admin) = ProxyProcess::start_with(
        cfg,
        &[
            ("TEST_ORIGIN_SECRET", "fleet-secret"),
            ("ADMIN_TOKEN", "admin-token-0123456789"),
        ],
        true,
    );
    Member {
        process,
        admin: admin.unwrap(),
    }
}

/// `(x-cache, body)` of a GET.
async fn fetch(http: &reqwest::Client, url: &str) -> (String, bytes::Bytes) {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let x = r.headers()["x-cache"].to_str().unwrap().to_owned();
    (x, r.bytes().await.unwrap())
}

async fn admin_call(http: &reqwest::Client, url: String) -> serde_json::Value {
    let r = http
        .request(
            if url.contains("/purge") {
                reqwest::Method::POST
            } else {
                reqwest::Method::GET
            },
            url,
        )
        .header("authorization", "Bearer admin-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_purges_as_one_cache_and_a_restarted_instance_drops_what_it_missed() {
    let origin = TestOrigin::start("AKIDFLEET", "fleet-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "obj.txt", b"version 1");
    let redis = yatagarasu_testkit::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        let cache_dir = dir.path().join(format!("disk-{name}"));
        let yaml = format!(
            "{}cache:\n  cache_layers: [memory, disk, redis]\n  disk: {{cache_dir: '{}', max_disk_cache_size_mb: 64}}\n  redis: {{redis_url: '{}', redis_key_prefix: 'fleet:'}}\nadmin:\n  enabled: true\n  port: 0\n  token: ${{ADMIN_TOKEN}}\n",
            config_for(&origin, &format!("  instance_id: node-{name}\n")),
            cache_dir.display(),
            redis.url()
        );
        let path = dir.path().join(format!("config-{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    };
    let (cfg_a, cfg_b, cfg_c) = (config("a"), config("b"), config("c"));
    let a = start_member(&cfg_a);
    let b = start_member(&cfg_b);
    let mut c = start_member(&cfg_c);
    let http = reqwest::Client::new();
    let url = |m: &Member| format!("{}/media/obj.txt", m.process.base);
    // Each instance holds the object in its own memory tier.
    for m in [&a, &b, &c] {
        assert_eq!(fetch(&http, &url(m)).await.1, "version 1");
        assert_eq!(
            fetch(&http, &url(m)).await,
            ("HIT".into(), "version 1".into())
        );
    }
    let stats = admin_call(&http, format!("{}/admin/stats", c.admin)).await;
    assert_eq!(stats["instance"], "node-c", "{stats}");
    assert_eq!(stats["fleet"]["subscribed"], true, "{stats}");

    // A new version at the origin; purged on A: B and C serve it within a second.
    origin.put_object("media", "obj.txt", b"version 2");
    let purged = admin_call(
        &http,
        format!("{}/admin/purge?bucket=media&key=obj.txt", a.admin),
    )
    .await;
    assert_eq!(purged["fleet"]["notified"], true, "{purged}");
    let purged_at = Instant::now();
    for m in [&b, &c] {
        loop {
            if fetch(&http, &url(m)).await.1 == "version 2" {
                break;
            }
            assert!(
                purged_at.elapsed() < Duration::from_secs(1),
                "{} still serves the purged version after 1 s",
                m.process.base
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let reached = purged_at.elapsed();
    eprintln!("fleet purge reached both other instances in {reached:?}");
    assert!(
        reached < Duration::from_secs(1),
        "fresh bytes from both within a second of the purge, took {reached:?}"
    );
    let stats = admin_call(&http, format!("{}/admin/stats", b.admin)).await;
    assert_eq!(stats["fleet"]["applied"], 1, "{stats}");

    // C goes down (its disk tier keeps version 2); a purge happens while it is away.
    c.process.signal("-KILL");
    let _ = c.process.wait_exit(Duration::from_secs(10));
    origin.put_object("media", "obj.txt", b"version 3");
    let purged = admin_call(
        &http,
        format!("{}/admin/purge?bucket=media&key=obj.txt", a.admin),
    )
    .await;
    assert_eq!(purged["fleet"]["notified"], true, "{purged}");
    // Restarted over the same disk tier, it drops what it can no longer trust before serving.
    c = start_member(&cfg_c);
    assert_eq!(fetch(&http, &url(&c)).await.1, "version 3");
    let stats = admin_call(&http, format!("{}/admin/stats", c.admin)).await;
    assert!(
        stats["fleet"]["resynced_scopes"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(fetch(&http, &url(&a)).await.1, "version 3");
}

/// `n` (at most three) processes in front of `origin`, sharing `redis` (1 MiB slices, claims lasting
/// `lease_ms`, fleet-wide coalescing as `coalescing` says); each with its own memory tier.
fn fleet_of(
    n: usize,
    origin: &TestOrigin,
    redis: &yatagarasu_testkit::RedisServer,
    dir: &tempfile::TempDir,
    lease_ms: u64,
    coalescing: bool,
) -> Vec<Member> {
    ["a", "b", "c"][..n]
        .iter()
        .map(|name| {
            let yaml = format!(
                "{}cache:\n  cache_layers: [memory, redis]\n  memory: {{max_cache_size_mb: 64, max_item_size_mb: 4}}\n  redis: {{redis_url: '{}', redis_key_prefix: 'coalesce:', fleet_lease_ms: {lease_ms}, fleet_coalescing: {coalescing}}}\nadmin:\n  enabled: true\n  port: 0\n  token: ${{ADMIN_TOKEN}}\ncoalescing:\n  slice_size: 1048576\n",
                config_for(origin, &format!("  instance_id: node-{name}\n")),
                redis.url()
            );
            let path = dir.path().join(format!("coalesce-{name}.yaml"));
            std::fs::write(&path, yaml).unwrap();
            start_member(&path)
        })
        .collect()
}

/// 100 concurrent cold GETs of a 16 MiB object, round-robin across a fleet of three, every byte
/// checked: the origin's GET count, and the times to first byte (sorted).
async fn cold_reads_across_a_fleet(
    instances: usize,
    coalescing: bool,
) -> (u64, Vec<Duration>, Vec<Member>) {
    const LEN: u64 = 16 * 1024 * 1024;
    let origin = TestOrigin::start("AKIDFLEET", "fleet-secret").await;
    origin.create_bucket("media");
    origin.put_pattern_object("media", "big.bin", LEN);
    let expected: std::sync::Arc<Vec<u8>> =
        std::sync::Arc::new((0..LEN).map(pattern_byte).collect());
    let redis = yatagarasu_testkit::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet_of(instances, &origin, &redis, &dir, 5000, coalescing);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let reads: Vec<_> = (0..100)
        .map(|i| {
            let url = format!("{}/media/big.bin", fleet[i % instances].process.base);
            let (http, expected) = (http.clone(), std::sync::Arc::clone(&expected));
            tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let mut first_byte = None;
                let mut got = 0usize;
                let mut stream = r.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.unwrap();
                    first_byte.get_or_insert_with(|| started.elapsed());
                    assert!(
                        expected.get(got..got + chunk.len()) == Some(&chunk[..]),
                        "bytes at {got} are not the object's"
                    );
                    got += chunk.len();
                }
                assert_eq!(got as u64, LEN);
                first_byte.unwrap()
            })
        })
        .collect();
    let mut ttfb = Vec::new();
    for r in reads {
        ttfb.push(
            tokio::time::timeout(Duration::from_secs(60), r)
                .await
                .expect("no read hangs")
                .unwrap(),
        );
    }
    ttfb.sort();
    eprintln!(
        "{instances} instance(s), fleet coalescing {}: {} origin GETs for 16 slices; time to first byte median {:?}, p99 {:?}; all done in {:?}",
        if coalescing { "on" } else { "off" },
        origin.stats().gets(),
        ttfb[50],
        ttfb[98],
        started.elapsed()
    );
    (origin.stats().gets(), ttfb, fleet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_fetches_each_cold_slice_from_the_origin_once() {
    let (gets, _, fleet) = cold_reads_across_a_fleet(3, true).await;
    assert_eq!(gets, 16, "one origin GET per slice for the whole fleet");
    let http = reqwest::Client::new();
    let mut served_from_redis = 0;
    for m in &fleet {
        let s = admin_call(&http, format!("{}/admin/stats", m.admin)).await;
        served_from_redis += s["fleet"]["waits_served"].as_u64().unwrap();
        assert_eq!(s["fleet"]["waits_abandoned"], 0, "{s}");
    }
    assert!(served_from_redis > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fleet_coalescing_each_instance_fetches_a_cold_slice_at_most_once() {
    let (gets, _, _) = cold_reads_across_a_fleet(3, false).await;
    assert!((16..=48).contains(&gets), "{gets} origin GETs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_alone_fetches_each_cold_slice_once() {
    let (gets, _, _) = cold_reads_across_a_fleet(1, true).await;
    assert_eq!(gets, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_instance_fetching_for_the_fleet_dies_another_takes_over() {
    let origin = TestOrigin::start("AKIDFLEET", "fleet-secret").await;
    origin.create_bucket("media");
    origin.put_pattern_object("media", "cold.bin", 300_000);
    let redis = yatagarasu_testkit::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = fleet_of(3, &origin, &redis, &dir, 1000, true);
    // The first request to reach the origin is held: its instance holds the claim, then dies.
    origin.inject(yatagarasu_testkit::Fault::Hold, 1);
    let http = reqwest::Client::new();
    let doomed = tokio::spawn({
        let (http, url) = (
            http.clone(),
            format!("{}/media/cold.bin", fleet[0].process.base),
        );
        async move { http.get(url).send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.stats().gets() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first fetch never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waiting: Vec<_> = fleet[1..]
        .iter()
        .map(|m| {
            let (http, url) = (http.clone(), format!("{}/media/cold.bin", m.process.base));
            tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                (r.status().as_u16(), r.bytes().await.unwrap())
            })
        })
        .collect();
    fleet[0].process.signal("-KILL");
    let killed = Instant::now();
    let _ = fleet[0].process.wait_exit(Duration::from_secs(10));
    assert!(
        doomed.await.unwrap().is_err(),
        "its own client saw the death"
    );
    for w in waiting {
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), w)
            .await
            .expect("the others take over")
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(body.len(), 300_000);
        assert!(
            body.iter()
                .enumerate()
                .all(|(i, b)| *b == pattern_byte(i as u64))
        );
    }
    eprintln!(
        "after the claim holder died, the others were served {:?} later",
        killed.elapsed()
    );
    assert_eq!(
        origin.stats().gets(),
        2,
        "the held GET, then one for the two that waited"
    );
}
