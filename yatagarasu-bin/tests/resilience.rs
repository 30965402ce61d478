//! Origin resilience end to end, proxies built from config in front of s3s-fs origins: the circuit
//! breaker (the origin stopped, replaced by a socket that accepts and never answers, and started
//! again on the same port) and per-bucket retry policies against injected 503s.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use yatagarasu_testkit::{TestOrigin, bind_when_free};

struct Answer {
    status: u16,
    code: Option<String>,
    retry_after: Option<u64>,
}

async fn get(http: &reqwest::Client, url: &str) -> Answer {
    let r = tokio::time::timeout(Duration::from_secs(20), http.get(url).send())
        .await
        .expect("no request hangs")
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = r.bytes().await.unwrap();
    let code = (status >= 400).then(|| {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["error"]["code"].as_str().unwrap().to_owned()
    });
    Answer {
        status,
        code,
        retry_after,
    }
}

#[tokio::test]
async fn a_dead_origin_opens_the_breaker_which_fails_fast_and_closes_after_recovery() {
    let root = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_in(root.path(), "AKIDCB", "cb-secret", 0).await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"still here");
    let port = origin.addr().port();
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3:
      bucket: media
      endpoint: "{ep}"
      access_key: AKIDCB
      secret_key: cb-secret
      max_attempts: 1
      circuit_breaker: {{failure_threshold: 3, success_threshold: 1, timeout_seconds: 3, half_open_max_requests: 1}}
metrics: {{enabled: true}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let url = format!("{base}/media/a.txt");
    let http = reqwest::Client::new();
    assert_eq!(get(&http, &url).await.status, 200);

    // The origin dies: three faults (connection refused), then the breaker is open.
    origin.stop();
    let hung = bind_when_free(port).await;
    drop(hung); // refused from here on
    for _ in 0..3 {
        let a = get(&http, &url).await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (503, Some("ServiceUnavailable"))
        );
    }
    // /ready names the breaker's state (its probe bypasses the breaker).
    let ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let ready: serde_json::Value = serde_json::from_slice(&ready).unwrap();
    assert_eq!(ready["buckets"]["media"]["breaker"], "open", "{ready}");
    // While open, a hung origin on the port is never even connected to: requests fail at once,
    // with CircuitOpen and a Retry-After.
    let hung = bind_when_free(port).await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = Arc::clone(&accepted);
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            counting.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let mut wait = 0;
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let a = get(&http, &url).await;
        latencies.push(started.elapsed());
        assert_eq!((a.status, a.code.as_deref()), (503, Some("CircuitOpen")));
        wait = a.retry_after.expect("a Retry-After header");
        assert!((1..=3).contains(&wait), "Retry-After: {wait}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no connection while open"
    );
    eprintln!(
        "fail-fast while open, one client: p50 {:?}, max {:?}",
        percentile(latencies.clone(), 0.5),
        percentile(latencies, 1.0)
    );
    // Operators see it: /metrics counts it.
    common::assert_metrics(
        &base,
        &[
            r#"yatagarasu_origin_breaker_state{bucket="media",state="open"} 1"#,
            r#"yatagarasu_origin_breaker_state{bucket="media",state="closed"} 0"#,
            r#"yatagarasu_origin_breaker_opened_total{bucket="media"} 1"#,
            r#"yatagarasu_origin_breaker_rejected_total{bucket="media"} 20"#,
        ],
    )
    .await;
    hold.abort();
    let _ = hold.await;

    // The origin comes back on the same port; after Retry-After one probe goes through, succeeds
    // and closes the breaker.
    let _back = TestOrigin::restart_in(root.path(), "AKIDCB", "cb-secret", port).await;
    // A client doing what Retry-After says: by then the open time is over (it is rounded up).
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        get(&http, &url).await.status,
        200,
        "the probe reached the origin"
    );
    for _ in 0..5 {
        assert_eq!(get(&http, &url).await.status, 200);
    }
}

#[tokio::test]
async fn answers_that_are_not_faults_never_open_the_breaker() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"here");
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3:
      bucket: media
      endpoint: "{ep}"
      access_key: AKIDCB
      secret_key: cb-secret
      circuit_breaker: {{failure_threshold: 2, timeout_seconds: 60}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let http = reqwest::Client::new();
    // 404s, a 412 and a 416 are the origin answering: ten of them leave the breaker closed.
    for i in 0..10 {
        let a = get(&http, &format!("{base}/media/missing-{i}.txt")).await;
        assert_eq!(a.status, 404);
    }
    let r = http
        .get(format!("{base}/media/a.txt"))
        .header("if-match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = http
        .get(format!("{base}/media/a.txt"))
        .header("range", "bytes=100-200")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(get(&http, &format!("{base}/media/a.txt")).await.status, 200);
}

#[tokio::test]
async fn each_bucket_retries_as_its_retry_section_says() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"after retries");
    let bucket = |name: &str, retry: &str| {
        format!(
            "  - name: {name}\n    path_prefix: /{name}\n    s3: {{bucket: media, endpoint: \"{}\", access_key: AKIDCB, secret_key: cb-secret, retry: {retry}}}\n",
            origin.endpoint()
        )
    };
    let yaml = format!(
        "buckets:\n{}{}",
        bucket(
            "patient",
            "{max_attempts: 4, initial_backoff_ms: 1, max_backoff_ms: 5}"
        ),
        bucket("hasty", "{max_attempts: 1}")
    );
    let base = common::serve_yaml(&yaml).await;
    let http = reqwest::Client::new();
    // Three 503s in a row: four attempts get through, one does not.
    origin.inject(
        yatagarasu_testkit::Fault::status(503, "ServiceUnavailable"),
        3,
    );
    let before = origin.stats().gets();
    assert_eq!(
        get(&http, &format!("{base}/patient/a.txt")).await.status,
        200
    );
    assert_eq!(origin.stats().gets() - before, 4);
    origin.inject(
        yatagarasu_testkit::Fault::status(503, "ServiceUnavailable"),
        1,
    );
    let before = origin.stats().gets();
    let a = get(&http, &format!("{base}/hasty/a.txt")).await;
    assert_eq!(a.status, 503);
    assert_eq!(origin.stats().gets() - before, 1);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_client_per_bucket_and_in_metrics() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"limited");
    // Per client: 3 at once, then one a minute; the forwarded address counts (trusted proxy).
    // Bucket `slow`: 2 at once for everyone, then one a minute.
    let yaml = format!(
        r#"
server:
  trusted_proxies: [127.0.0.1/32]
  rate_limit:
    enabled: true
    per_ip: {{requests_per_second: 0.0167, burst: 3}}
    global: {{requests_per_second: 10000, burst: 10000}}
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCB, secret_key: cb-secret}}
  - name: slow
    path_prefix: /slow
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCB, secret_key: cb-secret, rate_limit: {{requests_per_second: 0.0167, burst: 2}}}}
metrics: {{enabled: true}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let http = reqwest::Client::new();
    let from = |client: &'static str, path: &'static str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            let r = http
                .get(url)
                .header("x-forwarded-for", client)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = r.bytes().await.unwrap();
            (status, retry_after, body)
        }
    };
    for _ in 0..3 {
        assert_eq!(from("203.0.113.1", "/media/a.txt").await.0, 200);
    }
    let (status, retry_after, body) = from("203.0.113.1", "/media/a.txt").await;
    assert_eq!(status, 429);
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((50..=61).contains(&wait), "Retry-After {wait}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "RateLimited");
    // Another client is not held back by the first one's flood.
    assert_eq!(from("203.0.113.2", "/media/a.txt").await.0, 200);
    // The bucket limit holds across clients.
    assert_eq!(from("198.51.100.1", "/slow/a.txt").await.0, 200);
    assert_eq!(from("198.51.100.2", "/slow/a.txt").await.0, 200);
    assert_eq!(from("198.51.100.3", "/slow/a.txt").await.0, 429);
    // /health is never limited.
    for _ in 0..5 {
        assert_eq!(from("203.0.113.1", "/health").await.0, 200);
    }
    common::assert_metrics(
        &base,
        &[
            r#"yatagarasu_rate_limited_total{scope="per_ip",bucket=""} 1"#,
            r#"yatagarasu_rate_limited_total{scope="global",bucket=""} 0"#,
            r#"yatagarasu_rate_limited_total{scope="bucket",bucket="slow"} 1"#,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_keys_never_has_more_requests_at_the_origin_than_the_cap() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    for i in 0..500 {
        origin.put_object("media", &format!("k{i}"), b"one of many");
    }
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCB, secret_key: cb-secret, max_attempts: 1, max_concurrent_requests: 4, queue_timeout_ms: 300, connection_pool_size: 4}}
metrics: {{enabled: true}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    // A stalled origin: every request is held until released.
    origin.inject(yatagarasu_testkit::Fault::Hold, 1000);
    let http = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..500 {
        let (http, url, tx) = (http.clone(), format!("{base}/media/k{i}"), tx.clone());
        tokio::spawn(async move {
            let a = get(&http, &url).await;
            let _ = tx.send(a);
        });
    }
    // 496 wait their queue timeout out and get 503 OriginBusy with a Retry-After.
    for _ in 0..496 {
        let a = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("queued requests time out")
            .unwrap();
        assert_eq!((a.status, a.code.as_deref()), (503, Some("OriginBusy")));
        assert_eq!(a.retry_after, Some(1));
    }
    assert_eq!(
        origin.stats().requests(),
        4,
        "never more than the cap at the origin"
    );
    common::assert_metrics(
        &base,
        &[
            r#"yatagarasu_origin_in_flight{bucket="media"} 4"#,
            r#"yatagarasu_origin_concurrency_limit{bucket="media"} 4"#,
            r#"yatagarasu_origin_queue_timeouts_total{bucket="media"} 496"#,
        ],
    )
    .await;
    // The origin answers again: the four in flight complete.
    origin.clear_faults();
    origin.release_held();
    for _ in 0..4 {
        let a = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.status, 200);
    }
    assert_eq!(get(&http, &format!("{base}/media/k0")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_ten_times_the_rate_admits_the_rate_plus_the_burst() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"limited");
    let yaml = format!(
        r#"
server:
  rate_limit:
    enabled: true
    global: {{requests_per_second: 100, burst: 10}}
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCB, secret_key: cb-secret}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/media/a.txt");
    // 1,000 requests a second for two seconds, each on its own task (answers do not pace it).
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut requests = tokio::task::JoinSet::new();
    let started = tokio::time::Instant::now();
    for _ in 0..2000 {
        tick.tick().await;
        let (http, url) = (http.clone(), url.clone());
        requests.spawn(async move {
            let sent = tokio::time::Instant::now();
            (sent, get(&http, &url).await.status)
        });
    }
    let offered = started.elapsed();
    let mut admitted = 0u32;
    let mut refused = 0u32;
    while let Some(r) = requests.join_next().await {
        match r.unwrap().1 {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let answered = started.elapsed();
    // GCRA: the burst at once, then one per 10 ms over the time the flood lasted at the proxy:
    // at least the time it took to send, at most the time until the last answer.
    let expected = |d: Duration| 10.0 + 100.0 * d.as_secs_f64();
    let (low, high) = (expected(offered), expected(answered));
    eprintln!(
        "rate limit: {admitted} admitted, {refused} refused; flood sent over {offered:?} (expect {low:.0}), answered by {answered:?} (expect {high:.0}); {:+.1}% off the first",
        100.0 * (f64::from(admitted) - low) / low
    );
    assert_eq!(admitted + refused, 2000);
    assert!(
        f64::from(admitted) >= 0.95 * low && f64::from(admitted) <= 1.05 * high,
        "{admitted} admitted, expected {low:.0} ..= {high:.0}"
    );
}

/// One request of a load run, as the client saw it.
#[derive(Debug, Clone)]
struct Outcome {
    /// Which client sent it, and when.
    client: usize,
    started: std::time::Instant,
    /// 0 when the request hung past its bound or the body broke.
    status: u16,
    code: Option<String>,
    latency: Duration,
    /// Whether the bytes were the object's (checked against the pattern).
    intact: bool,
}

/// Clients reading through the proxy in a loop until stopped: full GETs and ranges of pattern
/// objects, every body checked byte for byte.
struct LoadRun {
    stop: Arc<std::sync::atomic::AtomicBool>,
    outcomes: Arc<std::sync::Mutex<Vec<Outcome>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl LoadRun {
    fn start(clients: usize, base: &str, keys: &[&str], len: u64) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let http = reqwest::Client::new();
        let urls: Vec<String> = keys.iter().map(|k| format!("{base}/media/{k}")).collect();
        let workers = (0..clients)
            .map(|w| {
                let (stop, outcomes, http, urls) = (
                    Arc::clone(&stop),
                    Arc::clone(&outcomes),
                    http.clone(),
                    urls.clone(),
                );
                tokio::spawn(async move {
                    let mut n = w;
                    while !stop.load(Ordering::SeqCst) {
                        // Even turns read the whole object, odd ones a range inside it.
                        let range = (n % 2 == 1).then_some((n as u64 * 7919) % (len / 2));
                        let mut o = read_once(&http, &urls[n % urls.len()], range, len).await;
                        o.client = w;
                        outcomes.lock().unwrap().push(o);
                        n += 1;
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcomes,
            workers,
        }
    }

    fn count(&self) -> usize {
        self.outcomes.lock().unwrap().len()
    }

    /// Wait (bounded) until `more` further requests have completed.
    async fn until_more(&self, more: usize) {
        let target = self.count() + more;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.count() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the load run stalled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("no request hangs")
                .unwrap();
        }
        Arc::try_unwrap(self.outcomes)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// GET the object (or `from..from+64 KiB`), checking status and every byte.
async fn read_once(http: &reqwest::Client, url: &str, from: Option<u64>, len: u64) -> Outcome {
    let started = std::time::Instant::now();
    let mut req = http.get(url);
    let (first, want_len, want_status) = match from {
        Some(f) => {
            req = req.header("range", format!("bytes={f}-{}", f + 65_535));
            (f, 65_536, 206)
        }
        None => (0, len, 200),
    };
    let fetched = tokio::time::timeout(Duration::from_secs(20), async {
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body = r.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    })
    .await;
    let latency = started.elapsed();
    let (status, body) = match fetched {
        Ok(Ok(answer)) => answer,
        // A hang, or a body cut short: both are failures a reader notices.
        _ => {
            return Outcome {
                client: 0,
                started,
                status: 0,
                code: None,
                latency,
                intact: false,
            };
        }
    };
    let code = (status >= 400)
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    let intact = status == want_status
        && body.len() as u64 == want_len
        && body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == yatagarasu_testkit::pattern_byte(first + i as u64));
    Outcome {
        client: 0,
        started,
        status,
        code,
        latency,
        intact,
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

const OBJECT_LEN: u64 = 256 * 1024;
const KEYS: [&str; 4] = ["o0.bin", "o1.bin", "o2.bin", "o3.bin"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_killed_under_load_opens_the_breaker_within_its_threshold_and_closes_after_recovery()
 {
    let root = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_in(root.path(), "AKIDCB", "cb-secret", 0).await;
    origin.create_bucket("media");
    for k in KEYS {
        origin.put_pattern_object("media", k, OBJECT_LEN);
    }
    let port = origin.addr().port();
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3:
      bucket: media
      endpoint: "{ep}"
      access_key: AKIDCB
      secret_key: cb-secret
      retry: {{max_attempts: 1}}
      circuit_breaker: {{failure_threshold: 5, success_threshold: 1, timeout_seconds: 1}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    const CLIENTS: usize = 16;
    let load = LoadRun::start(CLIENTS, &base, &KEYS, OBJECT_LEN);
    load.until_more(200).await;
    let before = load.count();

    // The origin dies mid-run (connections cut, the port refuses).
    origin.stop();
    drop(origin);
    let killed = std::time::Instant::now();
    let open_after = loop {
        let snapshot = load.outcomes.lock().unwrap().clone();
        if let Some(i) = snapshot
            .iter()
            .skip(before)
            .position(|o| o.code.as_deref() == Some("CircuitOpen"))
        {
            break i;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the breaker never opened"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let time_to_open = killed.elapsed();
    // Once every client has sent a request since then (so requests let through before it opened,
    // and their bodies' resumes, are over), something on the port counts every connection the
    // proxy makes: only the breaker's probes (one a second, timeout_seconds: 1) may reach it; each
    // is accepted and dropped, so the origin still looks dead.
    let opened = std::time::Instant::now();
    common::wait_until("every client asked again since it opened", || {
        let seen = load.outcomes.lock().unwrap();
        (0..CLIENTS).all(|c| seen.iter().any(|o| o.client == c && o.started >= opened))
    })
    .await;
    let listener = bind_when_free(port).await;
    let connections = Arc::new(AtomicUsize::new(0));
    let counting = Arc::clone(&connections);
    let dead = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counting.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let open_since = std::time::Instant::now();
    load.until_more(500).await;
    dead.abort();
    let _ = dead.await;
    let open_for = open_since.elapsed();
    let touched = connections.load(Ordering::SeqCst);

    // It comes back on the same port; the breaker's probe finds it and closes.
    let back = TestOrigin::restart_in(root.path(), "AKIDCB", "cb-secret", port).await;
    common::wait_until("never probed after recovery", || back.stats().gets() > 0).await;
    load.until_more(300).await;
    let recovered_at = load.count();
    load.until_more(300).await;
    let outcomes = load.finish().await;

    let during = &outcomes[before..recovered_at];
    // The origin's own failures as clients saw them: refused connections (503) and bodies that
    // broke before the proxy sent its headers (502). One origin fault can fail several clients
    // (they shared its fetch), so this is reported, not bounded; the origin-side bound is below.
    let origin_faults = during
        .iter()
        .filter(|o| {
            matches!(
                (o.status, o.code.as_deref()),
                (503, Some("ServiceUnavailable")) | (502, Some("BadGateway"))
            )
        })
        .count();
    let fast: Vec<Duration> = during
        .iter()
        .filter(|o| o.code.as_deref() == Some("CircuitOpen"))
        .map(|o| o.latency)
        .collect();
    eprintln!(
        "breaker under load: opened {time_to_open:?} after the kill, after {open_after} answers; {origin_faults} origin faults reached clients; {} fast failures, p50 {:?}, p99 {:?}; {touched} connections in {open_for:?} open",
        fast.len(),
        percentile(fast.clone(), 0.5),
        percentile(fast.clone(), 0.99)
    );
    // Open, the proxy touched the network only to probe: at most one connection per second.
    assert!(
        touched <= open_for.as_secs() as usize + 1,
        "{touched} connections in {open_for:?} while open"
    );
    assert!(fast.len() > 100, "{}", fast.len());
    let odd: Vec<_> = during
        .iter()
        .filter(|o| !(o.intact || o.status == 503 || o.status == 502 || o.status == 0))
        .collect();
    assert!(
        odd.is_empty(),
        "every failure is a clean 502/503 or a cut body, never wrong bytes: {odd:?}"
    );
    assert!(
        outcomes[..before].iter().all(|o| o.intact),
        "all good before the kill"
    );
    let after = &outcomes[recovered_at..];
    assert!(
        after.iter().all(|o| o.intact),
        "closed again after recovery: {:?}",
        after.iter().find(|o| !o.intact)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_load_with_a_replica_fails_no_request_and_takes_its_traffic_back() {
    let root = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start_in(root.path(), "AKIDP", "primary-secret", 0).await;
    let backup = TestOrigin::start("AKIDB", "backup-secret").await;
    for o in [&primary, &backup] {
        o.create_bucket("media");
        for k in KEYS {
            o.put_pattern_object("media", k, OBJECT_LEN);
        }
    }
    let port = primary.addr().port();
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3:
      retry: {{max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 20}}
      circuit_breaker: {{failure_threshold: 3, success_threshold: 1, timeout_seconds: 1}}
      replicas:
        - {{name: backup, bucket: media, endpoint: "{b}", access_key: AKIDB, secret_key: backup-secret, priority: 2}}
        - {{name: primary, bucket: media, endpoint: "{p}", access_key: AKIDP, secret_key: primary-secret, priority: 1}}
metrics: {{enabled: true}}
"#,
        p = primary.endpoint(),
        b = backup.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    const CLIENTS: usize = 16;
    let load = LoadRun::start(CLIENTS, &base, &KEYS, OBJECT_LEN);
    load.until_more(200).await;
    assert_eq!(
        backup.stats().gets(),
        0,
        "the primary serves while it is up"
    );

    // The primary dies mid-run: bodies being sent are cut, the port refuses.
    primary.stop();
    drop(primary);
    load.until_more(600).await;
    assert!(backup.stats().gets() > 0);
    // /ready: still ready (the backup answers), and says which replica is gone.
    let ready = reqwest::get(format!("{base}/ready"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let ready: serde_json::Value = serde_json::from_slice(&ready).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    let replicas = &ready["buckets"]["media"]["replicas"];
    assert_eq!(replicas[0]["name"], "primary", "{ready}");
    assert_eq!(replicas[0]["reachable"], false, "{ready}");
    assert_eq!(replicas[1]["reachable"], true, "{ready}");

    // Restored: its breaker lets a probe through after a second, and traffic returns to it.
    let restored = TestOrigin::restart_in(root.path(), "AKIDP", "primary-secret", port).await;
    common::wait_until("traffic never returned", || restored.stats().gets() > 0).await;
    load.until_more(100).await;
    let backup_before = backup.stats().gets();
    let primary_before = restored.stats().gets();
    load.until_more(300).await;
    let outcomes = load.finish().await;
    let backup_late = backup.stats().gets() - backup_before;
    let primary_late = restored.stats().gets() - primary_before;

    let failed: Vec<_> = outcomes.iter().filter(|o| !o.intact).collect();
    eprintln!(
        "failover under load: {} requests, {} failed; backup served {} origin GETs; after recovery primary {primary_late}, backup {backup_late}",
        outcomes.len(),
        failed.len(),
        backup.stats().gets()
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(primary_late > 0, "{primary_late}");
    assert_eq!(backup_late, 0, "traffic is back on the primary");
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        r#"yatagarasu_origin_replica_breaker_state{bucket="media",replica="primary",state="closed"} 1"#,
        r#"yatagarasu_origin_replica_breaker_state{bucket="media",replica="backup",state="closed"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == want), "no {want} in:\n{text}");
    }
    assert!(
        text.lines().any(|l| l
            .starts_with(r#"yatagarasu_origin_failovers_total{bucket="media"} "#)
            && !l.ends_with(" 0")),
        "{text}"
    );
}

#[tokio::test]
async fn a_replica_holding_another_version_mid_body_aborts_the_response_never_splices() {
    let primary = TestOrigin::start("AKIDP", "primary-secret").await;
    let backup = TestOrigin::start("AKIDB", "backup-secret").await;
    const LEN: u64 = 2 * 1024 * 1024;
    for o in [&primary, &backup] {
        o.create_bucket("media");
        o.put_pattern_object("media", "same.bin", LEN);
    }
    primary.put_pattern_object("media", "other.bin", LEN);
    // Same length, other bytes (so another ETag): replication has not caught up.
    backup.put_object("media", "other.bin", &vec![0xAB; LEN as usize]);
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3:
      retry: {{max_attempts: 1}}
      timeout: 1
      replicas:
        - {{name: primary, bucket: media, endpoint: "{p}", access_key: AKIDP, secret_key: primary-secret}}
        - {{name: backup, bucket: media, endpoint: "{b}", access_key: AKIDB, secret_key: backup-secret, priority: 2}}
metrics: {{enabled: true}}
"#,
        p = primary.endpoint(),
        b = backup.endpoint()
    );
    let proxy = common::proxy_from_yaml(&yaml).await;
    let admin = common::serve_admin_on_loopback(yatagarasu::AdminApi::new(
        proxy.clone(),
        "admin-token-0123456789",
    ))
    .await;
    let base = common::serve_on_loopback(proxy).await;
    let http = reqwest::Client::new();
    // The primary's body stalls (a second later the proxy gives up on it; a stall, not a reset,
    // so the break comes after the response head), and the primary's own client cannot resume
    // it (503): the body continues from the backup, which holds the same version.
    primary.inject(yatagarasu_testkit::Fault::StallBodyAfter(500_000), 1);
    primary.inject(yatagarasu_testkit::Fault::status(503, "SlowDown"), 1);
    let ok = read_once(&http, &format!("{base}/media/same.bin"), None, LEN).await;
    assert!(ok.intact, "{ok:?}");
    assert_eq!(backup.stats().gets(), 1);

    primary.inject(yatagarasu_testkit::Fault::StallBodyAfter(500_000), 1);
    primary.inject(yatagarasu_testkit::Fault::status(503, "SlowDown"), 1);
    let r = http
        .get(format!("{base}/media/other.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "headers went out before the break");
    let mut received = Vec::new();
    let mut stream = r.bytes_stream();
    let mut broke = false;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("no hang")
    {
        match chunk {
            Ok(c) => received.extend_from_slice(&c),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the response is aborted, not ended as if complete");
    assert!((received.len() as u64) < LEN);
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, b)| *b == yatagarasu_testkit::pattern_byte(i as u64)),
        "every byte sent is the primary's version"
    );
    common::assert_metrics(
        &base,
        &[
            r#"yatagarasu_origin_body_failovers_total{bucket="media"} 1"#,
            r#"yatagarasu_origin_replica_version_mismatches_total{bucket="media"} 1"#,
        ],
    )
    .await;
    // The admin stats tell the same story per replica.
    let stats = http
        .get(format!("{admin}/admin/stats"))
        .bearer_auth("admin-token-0123456789")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
    let set = &stats["replicas"]["media"];
    assert_eq!(set["body_failovers"], 1, "{stats}");
    assert_eq!(set["version_mismatches"], 1, "{stats}");
    assert_eq!(set["replicas"][0]["name"], "primary", "{stats}");
    assert_eq!(set["replicas"][0]["breaker"]["state"], "closed", "{stats}");
    assert_eq!(set["replicas"][1]["name"], "backup", "{stats}");
    assert_eq!(set["replicas"][1]["requests"], 2, "{stats}");
}
