//! Policies against real engines: Rego in the process, an OPA server evaluating the same Rego,
//! an OpenFGA server over a tuple store, and servers that are down or never answer.

use std::time::Duration;

use serde_json::json;
use yatagarasu_testkit::PolicyServer;

use super::*;

const POLICY: &str = r#"
package yatagarasu.authz

default allow := false

allow if {
    input.claims.role == "reader"
    startswith(input.key, "public/")
}

allow if input.claims.role == "admin"
"#;

fn reader(key: &str) -> PolicyInput {
    PolicyInput::new("GET", "media", key).claims(json!({"sub": "alice", "role": "reader"}))
}

fn code(r: Result<(), Error>) -> String {
    match r {
        Ok(()) => "allowed".to_owned(),
        Err(e) => e.code().to_owned(),
    }
}

#[tokio::test]
async fn rego_in_the_process_decides_by_claims_and_key() {
    let rego = Rego::new("authz.rego", POLICY, "data.yatagarasu.authz.allow").unwrap();
    let policy = Policy::builder(rego).build();
    assert_eq!(
        code(policy.authorize(&reader("public/a.txt")).await),
        "allowed"
    );
    assert_eq!(
        code(policy.authorize(&reader("secret/a.txt")).await),
        "PolicyDenied"
    );
    let admin = PolicyInput::new("GET", "media", "secret/a.txt").claims(json!({"role": "admin"}));
    assert_eq!(code(policy.authorize(&admin).await), "allowed");
    // No claims at all (a bucket without tokens): the rule is false.
    let anonymous = PolicyInput::new("GET", "media", "public/a.txt");
    assert_eq!(code(policy.authorize(&anonymous).await), "PolicyDenied");
}

#[test]
fn rego_that_does_not_parse_or_lacks_the_rule_is_refused_at_build() {
    let e = Rego::new("bad.rego", "package x\nallow if {", "data.x.allow").unwrap_err();
    assert!(e.message().starts_with("bad.rego:"), "{e}");
    let e = Rego::new("authz.rego", POLICY, "data.yatagarasu.authz.nope").unwrap_err();
    assert!(e.message().contains("data.yatagarasu.authz.nope"), "{e}");
    let e = Rego::new("authz.rego", POLICY, "allow").unwrap_err();
    assert!(e.message().contains("data.<package>.<rule>"), "{e}");
}

#[tokio::test]
async fn a_rego_rule_that_is_not_boolean_fails_by_the_fail_mode() {
    let src = "package p\nallow := \"yes\"\n";
    let closed = Policy::builder(Rego::new("p.rego", src, "data.p.allow").unwrap()).build();
    assert_eq!(
        code(closed.authorize(&reader("a")).await),
        "PolicyUnavailable"
    );
    let open = Policy::builder(Rego::new("p.rego", src, "data.p.allow").unwrap())
        .fail_mode(FailMode::Open)
        .build();
    assert_eq!(code(open.authorize(&reader("a")).await), "allowed");
    assert_eq!(open.stats().unavailable, 1);
}

#[tokio::test]
async fn opa_server_decisions_are_cached_per_input_for_the_ttl() {
    let opa = PolicyServer::opa(POLICY).await;
    let policy = Policy::builder(Opa::new(&opa.url(), "yatagarasu/authz/allow").unwrap())
        .timeout(Duration::from_secs(5))
        .build();
    for _ in 0..3 {
        assert_eq!(
            code(policy.authorize(&reader("public/a.txt")).await),
            "allowed"
        );
        assert_eq!(
            code(policy.authorize(&reader("secret/a.txt")).await),
            "PolicyDenied"
        );
    }
    // Two distinct inputs, each asked once; denials are remembered as well as grants.
    assert_eq!(opa.calls(), 2);
    let s = policy.stats();
    assert_eq!(
        (s.allowed, s.denied, s.cache_hits, s.engine_calls),
        (3, 3, 4, 2)
    );
    // The server saw the documented input document.
    let body = opa.last_body().unwrap();
    assert_eq!(body["input"]["key"], "secret/a.txt");
    assert_eq!(body["input"]["bucket"], "media");
    assert_eq!(body["input"]["claims"]["sub"], "alice");
    // With no TTL every request asks.
    let uncached = Policy::builder(Opa::new(&opa.url(), "yatagarasu/authz/allow").unwrap())
        .timeout(Duration::from_secs(5))
        .cache_ttl(Duration::ZERO)
        .build();
    for _ in 0..3 {
        uncached.authorize(&reader("public/a.txt")).await.unwrap();
    }
    assert_eq!(opa.calls(), 5);
}

#[tokio::test]
async fn an_undefined_opa_rule_is_a_denial_and_a_missing_one_a_failure() {
    let opa = PolicyServer::opa("package p\nallow if input.claims.role == \"admin\"\n").await;
    let policy = Policy::builder(Opa::new(&opa.url(), "p/allow").unwrap())
        .timeout(Duration::from_secs(5))
        .build();
    // `allow` is undefined for a reader: OPA answers `{}`.
    assert_eq!(code(policy.authorize(&reader("a")).await), "PolicyDenied");
    let missing = Policy::builder(Opa::new(&opa.url(), "p/nope").unwrap())
        .timeout(Duration::from_secs(5))
        .build();
    assert_eq!(
        code(missing.authorize(&reader("a")).await),
        "PolicyUnavailable"
    );
}

#[tokio::test]
async fn concurrent_identical_checks_make_one_call() {
    let opa = PolicyServer::opa(POLICY).await;
    let policy = Policy::builder(Opa::new(&opa.url(), "yatagarasu/authz/allow").unwrap())
        .timeout(Duration::from_secs(10))
        .build();
    opa.hold();
    let checks: Vec<_> = (0..50)
        .map(|_| {
            let p = policy.clone();
            tokio::spawn(async move { p.authorize(&reader("public/a.txt")).await })
        })
        .collect();
    // Wait (bounded) until the one call reaches the server, then let it answer.
    tokio::time::timeout(Duration::from_secs(10), async {
        while opa.waiting() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    opa.release();
    for c in checks {
        c.await.unwrap().unwrap();
    }
    assert_eq!(opa.calls(), 1);
    assert_eq!(policy.stats().engine_calls, 1);
}

#[tokio::test]
async fn a_server_that_is_down_or_too_slow_fails_by_the_fail_mode_and_is_not_remembered() {
    let opa = PolicyServer::opa(POLICY).await;
    let url = opa.url();
    let closed = Policy::builder(Opa::new(&url, "yatagarasu/authz/allow").unwrap())
        .timeout(Duration::from_millis(200))
        .build();
    let open = Policy::builder(Opa::new(&url, "yatagarasu/authz/allow").unwrap())
        .timeout(Duration::from_millis(200))
        .fail_mode(FailMode::Open)
        .build();
    // Too slow: held answers, a 200 ms timeout.
    opa.hold();
    let e = closed.authorize(&reader("secret/a.txt")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.kind()),
        ("PolicyUnavailable", ErrorKind::Unavailable)
    );
    // Fail open lets even what the policy would deny through.
    open.authorize(&reader("secret/a.txt")).await.unwrap();
    opa.release();
    // Failures are not remembered: the server back, the real decision.
    assert_eq!(
        code(closed.authorize(&reader("secret/a.txt")).await),
        "PolicyDenied"
    );
    // Down: connection refused.
    opa.stop();
    assert_eq!(
        code(closed.authorize(&reader("public/b.txt")).await),
        "PolicyUnavailable"
    );
    assert_eq!(
        code(open.authorize(&reader("public/b.txt")).await),
        "allowed"
    );
}

#[tokio::test]
async fn openfga_checks_the_subject_claim_against_the_tuple_store() {
    let fga = PolicyServer::openfga(
        "01HSTORE",
        Some("fga-token"),
        &[("user:alice", "viewer", "object:media/reports/q1.pdf")],
    )
    .await;
    let engine = OpenFga::new(&fga.url(), "01HSTORE")
        .unwrap()
        .authorization_model_id("01HMODEL")
        .api_token("fga-token");
    let policy = Policy::builder(engine)
        .timeout(Duration::from_secs(5))
        .build();
    assert_eq!(
        code(policy.authorize(&reader("reports/q1.pdf")).await),
        "allowed"
    );
    assert_eq!(
        fga.last_body().unwrap(),
        json!({
            "tuple_key": {"user": "user:alice", "relation": "viewer", "object": "object:media/reports/q1.pdf"},
            "authorization_model_id": "01HMODEL",
        })
    );
    assert_eq!(
        code(policy.authorize(&reader("reports/q2.pdf")).await),
        "PolicyDenied"
    );
    // Another user for the same object is another question.
    let bob = PolicyInput::new("GET", "media", "reports/q1.pdf").claims(json!({"sub": "bob"}));
    assert_eq!(code(policy.authorize(&bob).await), "PolicyDenied");
    // No subject claim, or a key OpenFGA cannot name: denied without asking.
    let calls = fga.calls();
    let nobody = PolicyInput::new("GET", "media", "reports/q1.pdf").claims(json!({"role": "x"}));
    let e = policy.authorize(&nobody).await.unwrap_err();
    assert_eq!(e.code(), "PolicyDenied");
    assert!(e.message().contains("`sub` claim"), "{e}");
    assert_eq!(
        code(policy.authorize(&reader("with space.pdf")).await),
        "PolicyDenied"
    );
    assert_eq!(fga.calls(), calls);
    // A grant written later is seen once the cached denial expires (TTL zero: at once).
    let fresh = Policy::builder(
        OpenFga::new(&fga.url(), "01HSTORE")
            .unwrap()
            .api_token("fga-token"),
    )
    .cache_ttl(Duration::ZERO)
    .timeout(Duration::from_secs(5))
    .build();
    fga.write_tuple("user:bob", "viewer", "object:media/reports/q1.pdf");
    assert_eq!(code(fresh.authorize(&bob).await), "allowed");
    // A wrong API token is a failure of the server, not a denial.
    let wrong = Policy::builder(
        OpenFga::new(&fga.url(), "01HSTORE")
            .unwrap()
            .api_token("nope"),
    )
    .timeout(Duration::from_secs(5))
    .build();
    assert_eq!(
        code(wrong.authorize(&reader("reports/q1.pdf")).await),
        "PolicyUnavailable"
    );
}

#[test]
fn policy_server_settings_are_checked_when_built() {
    for (url, path) in [
        ("ftp://h", "a/b"),
        ("http://h?x=1", "a/b"),
        ("not a url", "a/b"),
        ("http://h", ""),
        ("http://h", "a/../b"),
        ("http://h", "a b"),
    ] {
        assert!(Opa::new(url, path).is_err(), "{url} {path}");
    }
    assert!(Opa::new("http://127.0.0.1:8181/", "/yatagarasu/authz/allow/").is_ok());
    assert!(OpenFga::new("http://h", "a/b").is_err());
    assert!(OpenFga::new("http://h", "").is_err());
}

#[test]
fn the_decision_cache_key_covers_every_field_of_the_input() {
    let mut h = http::HeaderMap::new();
    h.insert("user-agent", "a".parse().unwrap());
    let base = || {
        PolicyInput::new("GET", "media", "k")
            .claims(json!({"sub": "alice"}))
            .client_ip(Some([10, 0, 0, 1].into()))
    };
    let variants = [
        base(),
        PolicyInput::new("HEAD", "media", "k")
            .claims(json!({"sub": "alice"}))
            .client_ip(Some([10, 0, 0, 1].into())),
        base().path("/other/k"),
        base().client_ip(Some([10, 0, 0, 2].into())),
        base().client_ip(None),
        base().claims(json!({"sub": "bob"})),
        base().headers(&h),
        // Field boundaries matter: bucket "me" + key "diak" is not bucket "media" + key "k".
        PolicyInput::new("GET", "me", "diak")
            .path("/media/k")
            .claims(json!({"sub": "alice"}))
            .client_ip(Some([10, 0, 0, 1].into())),
    ];
    let digests: std::collections::HashSet<_> = variants.iter().map(PolicyInput::digest).collect();
    assert_eq!(digests.len(), variants.len());
    assert_eq!(base().digest(), base().digest());
}
