//! Hot reload over real sockets: twenty reloads, good and bad alternating, through the admin API
//! while clients keep reading; no request fails, new routes answer after each good reload, a bad
//! file changes nothing, and restart-only changes are named.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use yatagarasu::{AdminApi, Config, Reloader};
use yatagarasu_testkit::TestOrigin;

const TOKEN: &str = "reload-admin-token-0123";

fn config(origin: &TestOrigin, extra_bucket: Option<&str>, server: &str) -> String {
    let s3 = format!(
        r#"{{bucket: media, endpoint: "{}", access_key: AKIDRELOAD, secret_key: reload-secret}}"#,
        origin.endpoint()
    );
    let extra = extra_bucket
        .map(|name| format!("  - {{name: {name}, path_prefix: /{name}, s3: {s3}}}\n"))
        .unwrap_or_default();
    format!(
        "{server}buckets:\n  - {{name: media, path_prefix: /media, s3: {s3}}}\n{extra}cache:\n  cache_layers: [memory]\n"
    )
}

/// Replace the file whole (a reader never sees half of it).
fn write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_lose_no_request() {
    let origin = TestOrigin::start("AKIDRELOAD", "reload-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"the object");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    write(&path, &config(&origin, None, ""));
    let started = Config::from_file(&path).unwrap();
    let proxy = started.build_proxy().await.unwrap();
    let reloader = Arc::new(Reloader::new(&path, started, proxy.clone()));

    let base = common::serve_on_loopback(proxy.clone()).await;
    let admin =
        common::serve_admin_on_loopback(AdminApi::new(proxy, TOKEN).with_reloader(reloader)).await;
    let reload_url = format!("{admin}/admin/reload");

    // Clients reading all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, url) = (
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
                format!("{base}/media/a.txt"),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let good = match http.get(&url).send().await {
                        Ok(r) if r.status() == 200 => {
                            r.bytes().await.is_ok_and(|b| &b[..] == b"the object")
                        }
                        _ => false,
                    };
                    let counter = if good { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let http = reqwest::Client::new();
    let reload = || {
        let (http, url) = (http.clone(), reload_url.clone());
        async move {
            let r = http.post(url).bearer_auth(TOKEN).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let mut last_good = None;
    for i in 0..20 {
        if i % 2 == 0 {
            let name = format!("extra{i}");
            write(&path, &config(&origin, Some(&name), ""));
            let (status, body) = reload().await;
            assert_eq!(
                (status, &body["buckets"]),
                (200, &serde_json::json!(2)),
                "{body}"
            );
            assert_eq!(body["restart_needed"], serde_json::json!([]));
            let r = http
                .get(format!("{base}/{name}/a.txt"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "the new route answers after reload {i}");
            if let Some(old) = last_good.replace(name) {
                let r = http
                    .get(format!("{base}/{old}/a.txt"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 404, "the route removed by reload {i} is gone");
            }
        } else {
            // A bad file: an unknown key and a bad endpoint. Refused whole, every problem named.
            let bad = config(&origin, Some("broken"), "")
                .replace("path_prefix: /broken", "path_prefx: /broken")
                .replace(
                    "cache_layers: [memory]",
                    "cache_layers: [memory]\n  colour: red",
                );
            write(&path, &bad);
            let (status, body) = reload().await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"]["code"], "InvalidConfig");
            let problems = body["error"]["problems"].to_string();
            assert!(problems.contains("path_prefx"), "{problems}");
            // The running routes stay.
            let still = last_good.as_deref().unwrap();
            let r = http
                .get(format!("{base}/{still}/a.txt"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "a refused reload changed nothing");
        }
    }
    // A change that needs a restart is applied where it can be and named.
    write(
        &path,
        &config(&origin, Some("extra-last"), "server:\n  port: 1\n"),
    );
    let (status, body) = reload().await;
    assert_eq!(status, 200);
    assert_eq!(body["restart_needed"], serde_json::json!(["server"]));
    assert_eq!(
        http.get(format!("{base}/extra-last/a.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during reloads"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
}
