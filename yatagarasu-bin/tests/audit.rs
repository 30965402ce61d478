//! The audit log end to end: requests over real sockets through a proxy with an s3s-fs origin
//! (SigV4 on), records read back from the file it wrote and from syslog listeners (UDP and TCP)
//! bound by the test.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use yatagarasu::Config;
use yatagarasu::audit::{AuditLog, FileOutput, SyslogOutput, SyslogProtocol};
use yatagarasu_testkit::TestOrigin;

const SECRET: &str = "an hmac secret of thirty-two b!!";

fn token(role: &str, sub: &str) -> String {
    let claims =
        json!({"sub": sub, "role": role, "exp": jsonwebtoken::get_current_timestamp() + 600});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn origin_yaml(origin: &TestOrigin) -> String {
    format!(
        r#"
server:
  trusted_proxies: [127.0.0.1/32]
buckets:
  - name: public
    path_prefix: /public
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUDIT, secret_key: audit-secret}}
  - name: private
    path_prefix: /private
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUDIT, secret_key: audit-secret}}
    auth: {{enabled: true}}
cache:
  cache_layers: [memory]
jwt:
  enabled: true
  algorithm: HS256
  secret: "{SECRET}"
  claims:
    - {{claim: role, operator: equals, value: reader}}
"#,
        ep = origin.endpoint()
    )
}

async fn start_origin() -> TestOrigin {
    let origin = TestOrigin::start("AKIDAUDIT", "audit-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"hello");
    origin
}

/// GET `url` (with a bearer token and an `X-Forwarded-For`, when given); its status, request id
/// and, for errors, the JSON error code.
async fn get(
    url: &str,
    bearer: Option<&str>,
    forwarded_for: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    if let Some(f) = forwarded_for {
        r = r.header("x-forwarded-for", f);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    let code = (status >= 400).then(|| {
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["error"]["code"].as_str().unwrap().to_owned()
    });
    (status, id, code)
}

/// The buckets of `origin_yaml` served on a loopback port with `audit`; the base URL.
async fn serve_audited(origin: &TestOrigin, audit: &AuditLog) -> String {
    let routes = Config::from_yaml_with_env(&origin_yaml(origin), &|_| None)
        .unwrap()
        .build_routes()
        .unwrap();
    let mut builder = yatagarasu::Proxy::builder().audit(audit.clone());
    for r in routes {
        builder = builder.route(r);
    }
    common::serve_on_loopback(builder.build()).await
}

/// Wait until every record queued so far is written.
async fn flush(audit: &AuditLog) {
    let a = audit.clone();
    let flushed = tokio::task::spawn_blocking(move || a.flush(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(flushed, "the audit writer did not catch up within 10 s");
}

fn records_by_id(lines: impl IntoIterator<Item = String>) -> HashMap<String, Value> {
    lines
        .into_iter()
        .map(|l| {
            let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["request_id"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

#[tokio::test]
async fn every_request_is_audited_with_its_principal_client_and_reason_to_file_and_udp_syslog() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let syslog = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let yaml = format!(
        "{}metrics: {{enabled: true}}\naudit_log:\n  enabled: true\n  outputs: [file, syslog]\n  file: {{path: \"{}\", rotation_policy: daily}}\n  syslog: {{address: \"{}\", protocol: udp, facility: auth}}\n",
        origin_yaml(&origin),
        path.display(),
        syslog.local_addr().unwrap()
    );
    let proxy = common::proxy_from_yaml(&yaml).await;
    let audit = proxy.audit_log().unwrap().clone();
    let base = common::serve_on_loopback(proxy).await;

    let reader = token("reader", "alice");
    let guest = token("guest", "mallory");
    let miss = get(&format!("{base}/public/a.txt"), None, Some("203.0.113.9")).await;
    let hit = get(&format!("{base}/public/a.txt"), None, None).await;
    let granted = get(&format!("{base}/private/a.txt"), Some(&reader), None).await;
    let refused = get(&format!("{base}/private/a.txt"), Some(&guest), None).await;
    let anonymous = get(&format!("{base}/private/a.txt"), None, None).await;
    let missing = get(&format!("{base}/public/nope.txt"), None, None).await;
    assert_eq!(
        [miss.0, hit.0, granted.0, refused.0, anonymous.0, missing.0],
        [200, 200, 200, 403, 401, 404]
    );
    flush(&audit).await;

    let text = std::fs::read_to_string(&path).unwrap();
    let records = records_by_id(text.lines().map(str::to_owned));
    assert_eq!(records.len(), 6, "{text}");
    let r = |a: &(u16, String, Option<String>)| &records[&a.1];

    // Who: the forwarded address through a trusted proxy, else the peer; the token's subject.
    assert_eq!(r(&miss)["client_ip"], "203.0.113.9");
    assert_eq!(r(&hit)["client_ip"], "127.0.0.1");
    assert_eq!(r(&granted)["principal"], "alice");
    assert!(r(&hit).get("principal").is_none());
    // What and how: bucket, key, method, status, bytes, cache outcome, how the body ended.
    for (a, cache) in [(&miss, "miss"), (&hit, "hit"), (&granted, "hit")] {
        let v = r(a);
        assert_eq!(
            (
                &v["method"],
                &v["key"],
                &v["status"],
                &v["bytes"],
                &v["cache"],
                &v["outcome"]
            ),
            (
                &json!("GET"),
                &json!("a.txt"),
                &json!(200),
                &json!(5),
                &json!(cache),
                &json!("complete")
            ),
            "{v}"
        );
        assert!(v.get("error").is_none());
    }
    assert_eq!(r(&miss)["bucket"], "public");
    assert_eq!(r(&granted)["bucket"], "private");
    assert_eq!(r(&granted)["path"], "/private/a.txt");
    // Why not: the refusal's code and message, as the client's error body has them.
    for a in [&refused, &anonymous, &missing] {
        let v = r(a);
        assert_eq!(v["status"], a.0, "{v}");
        assert_eq!(v["error"]["code"].as_str(), a.2.as_deref(), "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    assert!(
        r(&refused).get("principal").is_none(),
        "a refused token names nobody"
    );
    assert!(r(&miss)["time"].as_str().unwrap().ends_with('Z'));
    assert!(r(&miss)["duration_us"].as_u64().unwrap() > 0);

    // Syslog got the same six records, each one RFC 5424 message (auth = 4: <38>).
    let mut from_syslog = Vec::new();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..6 {
        let n = tokio::time::timeout(Duration::from_secs(10), syslog.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
        assert!(msg.starts_with("<38>1 "), "{msg}");
        let json = &msg[msg.find(" audit - ").unwrap() + 9..];
        from_syslog.push(json.to_owned());
    }
    assert_eq!(records_by_id(from_syslog), records);
    assert_eq!(audit.stats().written, 6);
    assert_eq!(audit.stats().dropped, 0);
    common::assert_metrics(
        &base,
        &[
            "yatagarasu_audit_records_total{outcome=\"written\"} 6",
            "yatagarasu_audit_records_total{outcome=\"dropped\"} 0",
            "yatagarasu_audit_records_total{outcome=\"failed\"} 0",
        ],
    )
    .await;
}

#[tokio::test]
async fn size_rotation_under_traffic_keeps_every_record_of_the_files_kept() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // About five records per file, and three backups: 40 requests rotate seven times or so.
    let audit = AuditLog::builder()
        .file(FileOutput::new(&path).max_file_bytes(1500).max_backups(3))
        .start()
        .unwrap();
    let base = serve_audited(&origin, &audit).await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(get(&format!("{base}/public/a.txt"), None, None).await.1);
    }
    flush(&audit).await;

    let mut kept = Vec::new();
    let mut files = vec![path.clone()];
    files.extend((1..=3).map(|n| dir.path().join(format!("audit.log.{n}"))));
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.len() <= 1500,
            "{} is {} bytes",
            f.display(),
            text.len()
        );
        // Newest file first: prepend each older file's lines.
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        kept.splice(0..0, lines);
    }
    assert!(
        !dir.path().join("audit.log.4").exists(),
        "only three backups are kept"
    );
    let kept_ids: Vec<String> = kept
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // The files kept hold the newest records, in order, none missing in between.
    assert!(kept_ids.len() >= 15, "{} records kept", kept_ids.len());
    assert_eq!(kept_ids[..], ids[ids.len() - kept_ids.len()..]);
    assert_eq!(audit.stats().written, 40);
}

#[tokio::test]
async fn tcp_syslog_frames_lines_and_reconnects_after_the_server_comes_back() {
    let origin = start_origin().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let audit = AuditLog::builder()
        .syslog(SyslogOutput::new(addr.to_string(), SyslogProtocol::Tcp))
        .start()
        .unwrap();
    let base = serve_audited(&origin, &audit).await;
    let url = format!("{base}/public/a.txt");

    let first = [get(&url, None, None).await.1, get(&url, None, None).await.1];
    flush(&audit).await;
    let (conn, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(conn).lines();
    for id in &first {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // local0 (16) * 8 + info (6) = 134.
        assert!(line.starts_with("<134>1 "), "{line}");
        assert!(line.contains(&format!(r#""request_id":"{id}""#)), "{line}");
    }

    // The syslog server goes away: records cannot be delivered and are counted as failed.
    drop(lines);
    drop(listener);
    for _ in 0..3 {
        get(&url, None, None).await;
        flush(&audit).await;
    }
    assert!(audit.stats().failed >= 1, "{:?}", audit.stats());

    // It comes back on the same address: the writer reconnects (at most once a second) and the
    // records sent from then on arrive.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut sent = HashSet::new();
    let conn = loop {
        sent.insert(get(&url, None, None).await.1);
        flush(&audit).await;
        if let Ok(accepted) =
            tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
        {
            break accepted.unwrap().0;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconnect within 15 s"
        );
    };
    let mut lines = tokio::io::BufReader::new(conn).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&line[line.find(" audit - ").unwrap() + 9..]).unwrap();
    assert!(sent.contains(v["request_id"].as_str().unwrap()), "{line}");
}
