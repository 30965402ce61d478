//! Authorization policy decisions per request: Rego evaluated in the process (regorus) for an input
//! seen the first time, and the same input again (answered from the decision cache).
//! `cargo bench -p yatagarasu --bench policy`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use yatagarasu::auth::{Policy, PolicyInput, Rego};

const POLICY: &str = r#"
package yatagarasu.authz

default allow := false

allow if {
    input.method in {"GET", "HEAD"}
    input.claims.role == "reader"
    startswith(input.key, "public/")
}

allow if input.claims.role == "admin"
"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rego = || Rego::new("authz.rego", POLICY, "data.yatagarasu.authz.allow").expect("policy");
    let uncached = Policy::builder(rego())
        .cache_ttl(Duration::ZERO)
        .timeout(Duration::from_secs(1))
        .build();
    let cached = Policy::builder(rego()).build();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "cdn.example".parse().expect("header"));
    headers.insert("user-agent", "curl/8.5.0".parse().expect("header"));
    let input = PolicyInput::new("GET", "media", "public/reports/q1.pdf")
        .path("/media/public/reports/q1.pdf")
        .client_ip(Some([10, 0, 0, 7].into()))
        .claims(
            json!({"sub": "alice", "role": "reader", "iss": "https://issuer.example",
                       "exp": 4_000_000_000u64}),
        )
        .headers(&headers);
    let mut group = c.benchmark_group("policy_authorize");
    group.bench_function("rego/evaluated", |b| {
        b.iter(|| {
            rt.block_on(uncached.authorize(black_box(&input)))
                .expect("allowed")
        })
    });
    group.bench_function("rego/decision_cached", |b| {
        b.iter(|| {
            rt.block_on(cached.authorize(black_box(&input)))
                .expect("allowed")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
