//! Authorization policies end to end, over real sockets, in one proxy built from config: a public
//! bucket beside a JWT bucket (keys from a JWKS endpoint) beside an OPA-guarded one, a Rego one
//! (no tokens, no server) and an OpenFGA one. The OPA server evaluates real Rego; OpenFGA answers
//! from a tuple store; both are stopped for real to see the fail modes.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use yatagarasu::Config;
use yatagarasu_testkit::{PolicyServer, StubServer, TestOrigin, response};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt");

const OPA_POLICY: &str = r#"
package yatagarasu.authz

default allow := false

allow if {
    input.method in {"GET", "HEAD"}
    input.claims.role == "reader"
    startswith(input.key, "public/")
}

allow if input.claims.role == "admin"
"#;

const REGO_POLICY: &str = r#"
package yatagarasu.authz

default allow := false

# No tokens on this bucket: the key and the client decide.
allow if {
    startswith(input.key, "open/")
    input.client_ip == "127.0.0.1"
}
"#;

/// An RS256 token signed with the key the JWKS publishes as `k1`.
fn token(sub: &str, role: &str) -> String {
    let pem = std::fs::read(format!("{DATA}/rsa-private.pem")).unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("k1".into());
    let claims = json!({"sub": sub, "role": role, "iss": "https://issuer.example",
                        "exp": jsonwebtoken::get_current_timestamp() + 600});
    encode(&h, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

struct Answer {
    status: u16,
    code: String,
    cache: Option<String>,
    body: Vec<u8>,
}

async fn get(url: &str, token: Option<&str>) -> Answer {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let cache = r
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = r.bytes().await.unwrap().to_vec();
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Answer {
        status,
        code,
        cache,
        body,
    }
}

struct Fixture {
    base: String,
    admin: String,
    origin: TestOrigin,
    opa: PolicyServer,
    fga: PolicyServer,
    _issuer: StubServer,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let origin = TestOrigin::start("AKIDPOLICY", "policy-secret").await;
    origin.create_bucket("media");
    for key in [
        "a.txt",
        "public/a.txt",
        "secret/a.txt",
        "open/a.txt",
        "closed/a.txt",
    ] {
        origin.put_object("media", key, format!("object {key}").as_bytes());
    }
    let jwks = std::fs::read_to_string(format!("{DATA}/jwks-k1.json")).unwrap();
    let issuer = StubServer::start(move |_| response(200, &[], jwks.clone())).await;
    let opa = PolicyServer::opa(OPA_POLICY).await;
    let fga = PolicyServer::openfga(
        "01HSTORE",
        Some("fga-preshared-key"),
        &[("user:alice", "viewer", "object:fga/a.txt")],
    )
    .await;
    // A port nothing listens on: an OPA server that is down from the start.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let rego = dir.path().join("authz.rego");
    std::fs::write(&rego, REGO_POLICY).unwrap();
    let s3 = format!(
        r#"{{bucket: media, endpoint: "{}", access_key: AKIDPOLICY, secret_key: policy-secret}}"#,
        origin.endpoint()
    );
    let yaml = format!(
        r#"
buckets:
  - name: public
    path_prefix: /public
    s3: {s3}
  - name: private
    path_prefix: /private
    s3: {s3}
    auth: {{enabled: true}}
  - name: opa
    path_prefix: /opa
    s3: {s3}
    auth: {{enabled: true}}
    authorization:
      type: opa
      opa_url: {opa}
      opa_policy_path: yatagarasu/authz/allow
      opa_timeout_ms: 2000
      opa_cache_ttl_seconds: 60
  - name: opa-open
    path_prefix: /opa-open
    s3: {s3}
    auth: {{enabled: true}}
    authorization: {{type: opa, opa_url: "{down}", opa_policy_path: yatagarasu/authz/allow, opa_fail_mode: open}}
  - name: opa-closed
    path_prefix: /opa-closed
    s3: {s3}
    auth: {{enabled: true}}
    authorization: {{type: opa, opa_url: "{down}", opa_policy_path: yatagarasu/authz/allow}}
  - name: rego
    path_prefix: /rego
    s3: {s3}
    authorization: {{type: rego, policy_path: "{rego}", query: data.yatagarasu.authz.allow}}
  - name: fga
    path_prefix: /fga
    s3: {s3}
    auth: {{enabled: true}}
    authorization:
      type: openfga
      openfga_endpoint: {fga}
      openfga_store_id: 01HSTORE
      openfga_api_token: ${{FGA_KEY}}
      openfga_timeout_ms: 2000
cache:
  cache_layers: [memory]
jwt:
  enabled: true
  jwks_url: {issuer}/jwks.json
  jwks_refresh_interval_secs: 3600
  issuer: https://issuer.example
"#,
        opa = opa.url(),
        fga = fga.url(),
        issuer = issuer.url(),
        rego = rego.display(),
    );
    let config = Config::from_yaml_with_env(&yaml, &|n| {
        (n == "FGA_KEY").then(|| "fga-preshared-key".to_owned())
    })
    .unwrap();
    let proxy = config.build_proxy().await.unwrap();
    let admin = common::serve_admin_on_loopback(yatagarasu::AdminApi::new(
        proxy.clone(),
        "policy-admin-token-0123",
    ))
    .await;
    let base = common::serve_on_loopback(proxy).await;
    Fixture {
        base,
        admin,
        origin,
        opa,
        fga,
        _issuer: issuer,
        _dir: dir,
    }
}

#[tokio::test]
async fn public_jwt_opa_rego_and_openfga_buckets_through_one_proxy() {
    let f = fixture().await;
    let url = |p: &str| format!("{}{p}", f.base);
    let reader = token("alice", "reader");
    let admin = token("root", "admin");

    // Public: nothing needed. JWT only: a token from the JWKS issuer.
    assert_eq!(get(&url("/public/a.txt"), None).await.status, 200);
    assert_eq!(get(&url("/private/a.txt"), None).await.code, "MissingToken");
    assert_eq!(get(&url("/private/a.txt"), Some(&reader)).await.status, 200);

    // OPA: the token first (no token never reaches the policy server), then the policy.
    assert_eq!(get(&url("/opa/public/a.txt"), None).await.status, 401);
    assert_eq!(f.opa.calls(), 0);
    let a = get(&url("/opa/public/a.txt"), Some(&reader)).await;
    assert_eq!((a.status, &a.body[..]), (200, &b"object public/a.txt"[..]));
    let a = get(&url("/opa/secret/a.txt"), Some(&reader)).await;
    assert_eq!((a.status, a.code.as_str()), (403, "PolicyDenied"));
    assert!(
        !String::from_utf8_lossy(&a.body).contains("reader"),
        "no claim values in errors"
    );
    // The admin reads the secret object and fills the cache; the reader is still refused on the
    // cached copy (access control runs before the cache, on hits too).
    let a = get(&url("/opa/secret/a.txt"), Some(&admin)).await;
    assert_eq!((a.status, a.cache.as_deref()), (200, Some("MISS")));
    assert_eq!(
        get(&url("/opa/secret/a.txt"), Some(&admin))
            .await
            .cache
            .as_deref(),
        Some("HIT")
    );
    let gets = f.origin.stats().gets();
    assert_eq!(
        get(&url("/opa/secret/a.txt"), Some(&reader)).await.status,
        403
    );
    assert_eq!(
        f.origin.stats().gets(),
        gets,
        "a refused request reads nothing"
    );
    // Decisions are remembered: three distinct (token, object) inputs so far, three calls.
    assert_eq!(f.opa.calls(), 3);
    assert_eq!(
        get(&url("/opa/public/a.txt"), Some(&reader)).await.status,
        200
    );
    assert_eq!(f.opa.calls(), 3);
    // The input document the server saw.
    let input = &f.opa.last_body().unwrap()["input"];
    assert_eq!(
        (
            &input["bucket"],
            &input["key"],
            &input["method"],
            &input["client_ip"]
        ),
        (
            &json!("opa"),
            &json!("secret/a.txt"),
            &json!("GET"),
            &json!("127.0.0.1")
        )
    );
    assert_eq!(input["path"], "/opa/secret/a.txt");
    assert!(input["headers"]["host"].is_string());
    assert!(
        input["headers"].get("authorization").is_none(),
        "no token in the input"
    );

    // A policy server that is down: 503 when failing closed, through when failing open.
    let a = get(&url("/opa-closed/public/a.txt"), Some(&reader)).await;
    assert_eq!((a.status, a.code.as_str()), (503, "PolicyUnavailable"));
    assert_eq!(
        get(&url("/opa-open/secret/a.txt"), Some(&reader))
            .await
            .status,
        200
    );

    // Rego in the process, no token: the key and the client address decide.
    assert_eq!(get(&url("/rego/open/a.txt"), None).await.status, 200);
    assert_eq!(
        get(&url("/rego/closed/a.txt"), None).await.code,
        "PolicyDenied"
    );

    // OpenFGA: alice is a viewer of fga/a.txt; root is not (a role does not matter there).
    assert_eq!(get(&url("/fga/a.txt"), Some(&reader)).await.status, 200);
    assert_eq!(
        get(&url("/fga/a.txt"), Some(&admin)).await.code,
        "PolicyDenied"
    );
    assert_eq!(
        f.fga.last_body().unwrap()["tuple_key"],
        json!({"user": "user:root", "relation": "viewer", "object": "object:fga/a.txt"})
    );
    // The tuple written, the next (uncached) user sees it; the cached denial stays for its TTL.
    f.fga
        .write_tuple("user:carol", "viewer", "object:fga/a.txt");
    assert_eq!(
        get(&url("/fga/a.txt"), Some(&token("carol", "x")))
            .await
            .status,
        200
    );

    // Health needs no token, whatever the buckets say.
    assert_eq!(get(&url("/health"), None).await.status, 200);

    // The admin stats count each bucket's decisions: OPA allowed the reader's public object twice
    // (once from the cache), the admin's secret one twice (once cached), denied the reader's secret
    // one twice (once cached); 3 calls.
    let stats = get(
        &format!("{}/admin/stats", f.admin),
        Some("policy-admin-token-0123"),
    )
    .await;
    let stats: Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(
        stats["policies"]["opa"],
        json!({"allowed": 4, "denied": 2, "cache_hits": 3, "engine_calls": 3, "unavailable": 0})
    );
    assert_eq!(stats["policies"]["opa-closed"]["unavailable"], 1);
    assert!(
        stats["policies"].get("public").is_none(),
        "buckets without a policy are not listed"
    );
}

#[tokio::test]
async fn a_policy_server_going_away_mid_run_turns_new_questions_into_503s_only() {
    let f = fixture().await;
    let url = |p: &str| format!("{}{p}", f.base);
    let reader = token("alice", "reader");
    assert_eq!(
        get(&url("/opa/public/a.txt"), Some(&reader)).await.status,
        200
    );
    f.opa.stop();
    f.fga.stop();
    // A decision made before is still good for its TTL.
    assert_eq!(
        get(&url("/opa/public/a.txt"), Some(&reader)).await.status,
        200
    );
    // A new question cannot be answered: 503, never 200 or 403, and never cached.
    for _ in 0..2 {
        let a = get(&url("/opa/public/other.txt"), Some(&reader)).await;
        assert_eq!((a.status, a.code.as_str()), (503, "PolicyUnavailable"));
        let a = get(&url("/fga/a.txt"), Some(&reader)).await;
        assert_eq!((a.status, a.code.as_str()), (503, "PolicyUnavailable"));
    }
    // Buckets without a policy do not notice.
    assert_eq!(get(&url("/public/a.txt"), None).await.status, 200);
    assert_eq!(get(&url("/rego/open/a.txt"), None).await.status, 200);
}
