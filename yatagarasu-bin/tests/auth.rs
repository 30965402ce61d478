//! Private buckets end to end over real sockets against an s3s-fs origin (SigV4 on): a public
//! bucket beside a JWT-guarded one in one proxy built from config, tokens from HS256 and RS256
//! keys, claim rules, and the cache shared by authorized users but never by anyone else.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use yatagarasu::Config;
use yatagarasu_testkit::TestOrigin;

const SECRET: &str = "an hmac secret of thirty-two b!!";
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt");

fn claims(role: &str, sub: &str) -> Value {
    json!({"sub": sub, "iss": "https://issuer.example", "aud": "yatagarasu", "role": role,
           "exp": jsonwebtoken::get_current_timestamp() + 600})
}

fn hs256(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(c: &Value) -> String {
    let pem = std::fs::read(format!("{DATA}/rsa-private.pem")).unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-1".into());
    encode(&h, c, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

async fn proxy(origin: &TestOrigin) -> String {
    let yaml = format!(
        r#"
buckets:
  - name: public
    path_prefix: /public
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUTH, secret_key: auth-secret}}
  - name: private
    path_prefix: /private
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUTH, secret_key: auth-secret}}
    auth: {{enabled: true}}
cache:
  cache_layers: [memory]
jwt:
  enabled: true
  algorithm: HS256
  secret: ${{JWT_SECRET}}
  keys:
    - {{id: rsa-1, algorithm: RS256, path: "{DATA}/rsa-public.pem"}}
  issuer: https://issuer.example
  audience: yatagarasu
  token_sources:
    - {{type: bearer}}
    - {{type: query, name: token}}
  claims:
    - {{claim: role, operator: in, value: [reader, admin]}}
"#,
        ep = origin.endpoint()
    );
    let config =
        Config::from_yaml_with_env(&yaml, &|n| (n == "JWT_SECRET").then(|| SECRET.to_owned()))
            .unwrap();
    let proxy = config.build_proxy().await.unwrap();
    common::serve_on_loopback(proxy).await
}

struct Answer {
    status: u16,
    cache: Option<String>,
    challenge: Option<String>,
    body: Vec<u8>,
}

async fn get(url: &str, token: Option<&str>) -> Answer {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status: r.status().as_u16(),
        cache: header("x-cache"),
        challenge: header("www-authenticate"),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

fn code(a: &Answer) -> String {
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_private_bucket_beside_a_public_one() {
    let origin = TestOrigin::start("AKIDAUTH", "auth-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"the object");
    origin.put_object("media", "b.txt", b"public object");
    let base = proxy(&origin).await;
    let private = format!("{base}/private/a.txt");

    // The public bucket needs nothing. (Both routes read one bucket, so they share cache entries:
    // a.txt is read only through the private route here.)
    assert_eq!(get(&format!("{base}/public/b.txt"), None).await.status, 200);

    // No token: 401 with a challenge; a refused token: 401 with invalid_token.
    let a = get(&private, None).await;
    assert_eq!((a.status, code(&a).as_str()), (401, "MissingToken"));
    assert_eq!(a.challenge.as_deref(), Some("Bearer"));
    let a = get(&private, Some("not.a.token")).await;
    assert_eq!((a.status, code(&a).as_str()), (401, "InvalidToken"));
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        origin.stats().gets(),
        1,
        "refused requests never reach the origin"
    );

    // A good HS256 token reads (and fills the cache); another user's RS256 token hits it.
    let a = get(&private, Some(&hs256(&claims("reader", "u1")))).await;
    assert_eq!(
        (a.status, a.cache.as_deref(), &a.body[..]),
        (200, Some("MISS"), &b"the object"[..])
    );
    let a = get(&private, Some(&rs256(&claims("admin", "u2")))).await;
    assert_eq!((a.status, a.cache.as_deref()), (200, Some("HIT")));

    // Cached or not, a token the rules refuse gets 403, and no token still 401.
    let a = get(&private, Some(&hs256(&claims("guest", "u3")))).await;
    assert_eq!((a.status, code(&a).as_str()), (403, "ClaimRuleFailed"));
    assert!(
        !String::from_utf8_lossy(&a.body).contains("guest"),
        "no claim values in errors"
    );
    assert_eq!(get(&private, None).await.status, 401);

    // The query-string source works too.
    let t = hs256(&claims("reader", "u4"));
    assert_eq!(get(&format!("{private}?token={t}"), None).await.status, 200);

    // A CORS preflight needs no token; it is never a 401.
    let pre = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &private)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_ne!(pre.status().as_u16(), 401);
}

async fn proxy_with(yaml_extra: &str, origin: &TestOrigin) -> String {
    let yaml = format!(
        r#"
{yaml_extra}
buckets:
  - name: office
    path_prefix: /office
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUTH, secret_key: auth-secret}}
    ip_filter: {{allowlist: [10.0.0.0/8, "2001:db8::/32"], blocklist: [10.0.0.50]}}
"#,
        ep = origin.endpoint()
    );
    common::serve_yaml(&yaml).await
}

async fn from(url: &str, forwarded_for: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(f) = forwarded_for {
        r = r.header("x-forwarded-for", f);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

#[tokio::test]
async fn ip_filters_use_forwarded_addresses_only_from_trusted_proxies() {
    let origin = TestOrigin::start("AKIDAUTH", "auth-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"office only");

    // The test client (127.0.0.1) is a trusted proxy: the forwarded address decides.
    let base = proxy_with("server:\n  trusted_proxies: [127.0.0.1/32]", &origin).await;
    let url = format!("{base}/office/a.txt");
    assert_eq!(from(&url, Some("10.1.2.3")).await.0, 200);
    assert_eq!(
        from(&url, Some("10.0.0.50")).await,
        (403, "IpNotAllowed".into()),
        "blocklist wins"
    );
    assert_eq!(from(&url, Some("2001:db8::9")).await.0, 200);
    // A client-written entry on the left is not believed past the hop the proxy added.
    assert_eq!(from(&url, Some("10.1.2.3, 192.0.2.1")).await.0, 403);
    // No forwarded address: the proxy itself is the client, and 127.0.0.1 is not allowed.
    assert_eq!(from(&url, None).await.0, 403);

    // Without trusted proxies, X-Forwarded-For is ignored: anyone could write it.
    let base = proxy_with("", &origin).await;
    let url = format!("{base}/office/a.txt");
    assert_eq!(
        from(&url, Some("10.1.2.3")).await,
        (403, "IpNotAllowed".into())
    );
}

/// Serve bucket `media` of `origin` under `/media`, guarded by `auth`; the base URL.
async fn serve_media_with(origin: &TestOrigin, auth: yatagarasu::auth::JwtAuth) -> String {
    let client = yatagarasu_s3::S3Client::builder("media")
        .endpoint(origin.endpoint())
        .credentials(yatagarasu_s3::Credentials::new("AKIDAUTH", "auth-secret"))
        .build()
        .unwrap();
    let proxy = yatagarasu::Proxy::builder()
        .route(yatagarasu::BucketRoute::new("media", "/media", client).with_auth(auth))
        .build();
    common::serve_on_loopback(proxy).await
}

fn rs256_with(private: &str, kid: &str, sub: &str) -> String {
    let pem = std::fs::read(format!("{DATA}/{private}")).unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.into());
    encode(
        &h,
        &claims("reader", sub),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn keys_from_a_jwks_endpoint_that_goes_down_rotates_and_serves_garbage() {
    use std::sync::{Arc, Mutex};
    use yatagarasu_testkit::{StubServer, response};

    let origin = TestOrigin::start("AKIDAUTH", "auth-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"the object");
    // What the issuer answers, switched by the test: down, k1, k1+k2, garbage.
    let answer = Arc::new(Mutex::new((503u16, String::new())));
    let shared = Arc::clone(&answer);
    let issuer = StubServer::start(move |_| {
        let (status, body) = shared.lock().unwrap().clone();
        response(status, &[("content-type", "application/json")], body)
    })
    .await;
    let set = |status: u16, file: &str| {
        let body = if file.is_empty() {
            String::new()
        } else {
            std::fs::read_to_string(format!("{DATA}/{file}")).unwrap_or_else(|_| file.to_owned())
        };
        *answer.lock().unwrap() = (status, body);
    };
    let auth = yatagarasu::auth::JwtAuth::builder()
        .jwks(
            format!("{}/jwks.json", issuer.url()),
            std::time::Duration::from_secs(3600),
            std::time::Duration::ZERO, // the test's refetches are never throttled
        )
        .issuer("https://issuer.example")
        .build();
    let url = format!("{}/media/a.txt", serve_media_with(&origin, auth).await);
    let k1 = rs256_with("rsa-private.pem", "k1", "u1");
    let k2 = rs256_with("rsa2-private.pem", "k2", "u1");

    // The issuer is down: no keys yet, so 503 (not 401: the token may well be good).
    let a = get(&url, Some(&k1)).await;
    assert_eq!(a.status, 503);
    // It comes up: the next request fetches the set and passes.
    set(200, "jwks-k1.json");
    assert_eq!(get(&url, Some(&k1)).await.status, 200);
    // A token of a key rotated in since: its unknown kid makes the proxy fetch again.
    assert_eq!(
        get(&url, Some(&k2)).await.status,
        401,
        "k2 is not published yet"
    );
    set(200, "jwks-k1-k2.json");
    assert_eq!(get(&url, Some(&k2)).await.status, 200);
    // Garbage, or an error, from the issuer: the last good set stays.
    set(200, "{\"keys\": \"not a list\"}");
    let k2_again = rs256_with("rsa2-private.pem", "k2", "u2"); // a new token (not remembered)
    let unknown = rs256_with("rsa2-private.pem", "k3", "u1"); // forces a fetch of the garbage
    assert_eq!(get(&url, Some(&unknown)).await.status, 401);
    assert_eq!(get(&url, Some(&k2_again)).await.status, 200);
    assert!(issuer.requests().len() >= 4);
}

#[tokio::test]
async fn random_kids_cannot_flood_the_issuer() {
    use yatagarasu_testkit::{StubServer, response};
    let jwks = std::fs::read_to_string(format!("{DATA}/jwks-k1.json")).unwrap();
    let issuer = StubServer::start(move |_| response(200, &[], jwks.clone())).await;
    let auth = yatagarasu::auth::JwtAuth::builder()
        .jwks(
            format!("{}/jwks.json", issuer.url()),
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(60),
        )
        .build();
    let k1 = rs256_with("rsa-private.pem", "k1", "u1");
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {k1}").parse().unwrap());
    // The first request fetches the set (or finds the background fetch done).
    auth.authenticate_async(&headers, None).await.unwrap();
    let fetched = issuer.requests().len();
    for i in 0..50 {
        let t = rs256_with("rsa-private.pem", &format!("random-{i}"), "u1");
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {t}").parse().unwrap());
        assert!(auth.authenticate_async(&h, None).await.is_err());
    }
    assert!(
        issuer.requests().len() <= fetched + 1,
        "{} fetches for 50 unknown kids",
        issuer.requests().len() - fetched
    );
}

#[tokio::test]
async fn admin_claims_open_the_admin_api_to_tokens_that_pass_them() {
    let origin = TestOrigin::start("AKIDAUTH", "auth-secret").await;
    origin.create_bucket("media");
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUTH, secret_key: auth-secret}}
admin:
  enabled: true
  port: 0
  token: static-admin-token-0123
jwt:
  enabled: true
  algorithm: HS256
  secret: "{SECRET}"
  issuer: https://issuer.example
  admin_claims:
    - {{claim: role, operator: equals, value: admin}}
    - {{claim: sub, operator: glob, value: "ops-*"}}
"#,
        ep = origin.endpoint()
    );
    let config = Config::from_yaml_with_env(&yaml, &|_| None).unwrap();
    let proxy = config.build_proxy().await.unwrap();
    let api = yatagarasu::AdminApi::new(proxy, "static-admin-token-0123")
        .with_jwt(config.build_admin_jwt().unwrap().unwrap());
    let stats = format!("{}/admin/stats", common::serve_admin_on_loopback(api).await);
    let call = |token: Option<String>| {
        let stats = stats.clone();
        async move { get(&stats, token.as_deref()).await }
    };
    // The static token, and a token whose claims pass every admin rule.
    assert_eq!(
        call(Some("static-admin-token-0123".into())).await.status,
        200
    );
    assert_eq!(
        call(Some(hs256(&claims("admin", "ops-alice"))))
            .await
            .status,
        200
    );
    // Valid tokens that fail a rule: 403, naming the claim.
    let a = call(Some(hs256(&claims("admin", "dev-bob")))).await;
    assert_eq!((a.status, code(&a).as_str()), (403, "ClaimRuleFailed"));
    assert_eq!(
        call(Some(hs256(&claims("reader", "ops-carol"))))
            .await
            .status,
        403
    );
    // Forged, expired, missing: 401 with a challenge.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims("admin", "ops-eve"),
        &EncodingKey::from_secret(b"another secret of thirty-two b!!"),
    )
    .unwrap();
    let mut expired = claims("admin", "ops-alice");
    expired["exp"] = json!(jsonwebtoken::get_current_timestamp() - 3600);
    for t in [
        Some(forged),
        Some(hs256(&expired)),
        Some("static".into()),
        None,
    ] {
        let a = call(t).await;
        assert_eq!(a.status, 401);
        assert!(a.challenge.is_some());
    }

    // Without admin.token, JWTs alone open it; an empty list of rules is refused.
    let jwt_only = yaml.replace("  token: static-admin-token-0123\n", "");
    assert!(Config::from_yaml_with_env(&jwt_only, &|_| None).is_ok());
    let no_rules = jwt_only.replace(
        "    - {claim: role, operator: equals, value: admin}\n    - {claim: sub, operator: glob, value: \"ops-*\"}\n",
        "",
    ).replace("  admin_claims:\n", "  admin_claims: []\n");
    let err = Config::from_yaml_with_env(&no_rules, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("jwt.admin_claims: needs at least one rule"),
        "{err}"
    );
}

#[tokio::test]
async fn the_attack_battery_over_real_sockets() {
    use base64::Engine as _;
    let origin = TestOrigin::start("AKIDAUTH", "auth-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"the object");
    let base = proxy(&origin).await;
    let private = format!("{base}/private/a.txt");
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let with = |k: &str, v: Value| {
        let mut c = claims("reader", "u1");
        c[k] = v;
        hs256(&c)
    };
    let good = hs256(&claims("reader", "u1"));
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims("admin", "u1");
    evil["sub"] = json!("root");
    let rsa_public = std::fs::read(format!("{DATA}/rsa-public.pem")).unwrap();
    let signed = |h: Header, secret: &[u8]| {
        encode(
            &h,
            &claims("admin", "u1"),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some("rsa-1".into());
    let mut jku = Header::new(Algorithm::HS256);
    jku.jku = Some("https://evil.example/jwks.json".into());
    let mut traversal = Header::new(Algorithm::RS256);
    traversal.kid = Some("../../etc/passwd".into());
    let mut no_role = claims("reader", "u1");
    no_role.as_object_mut().unwrap().remove("role");
    let attacks: Vec<(&str, String, u16)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none"})),
                b64(&claims("admin", "u1"))
            ),
            401,
        ),
        (
            "HS256 keyed with the RSA public key",
            signed(confused, &rsa_public),
            401,
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], b64(&evil), parts[2]),
            401,
        ),
        ("truncated", good[..good.len() / 2].to_owned(), 401),
        ("expired", with("exp", json!(1_000_000)), 401),
        (
            "nbf in the future",
            with("nbf", json!(jsonwebtoken::get_current_timestamp() + 3600)),
            401,
        ),
        ("wrong iss", with("iss", json!("https://evil.example")), 401),
        ("wrong aud", with("aud", json!("someone-else")), 401),
        (
            "unknown kid",
            rs256_with("rsa2-private.pem", "k9", "u1"),
            401,
        ),
        (
            "kid with path characters",
            encode(
                &traversal,
                &claims("admin", "u1"),
                &EncodingKey::from_rsa_pem(
                    &std::fs::read(format!("{DATA}/rsa-private.pem")).unwrap(),
                )
                .unwrap(),
            )
            .unwrap(),
            401,
        ),
        (
            "jku elsewhere",
            signed(jku, b"the attacker's own secret......."),
            401,
        ),
        ("claim rule on a missing claim", hs256(&no_role), 403),
    ];
    for (name, token, want) in &attacks {
        let a = get(&private, Some(token)).await;
        assert_eq!(a.status, *want, "{name}");
        let body = String::from_utf8_lossy(&a.body);
        assert!(body.starts_with("{\"error\":"), "{name}: {body}");
        assert!(
            !body.contains(token.as_str()),
            "{name}: the token is echoed"
        );
    }
    // Empty bearer: no token at all.
    let a = get(&private, Some("")).await;
    assert_eq!((a.status, code(&a).as_str()), (401, "MissingToken"));
    // A 64 KiB token: refused by the header limits or the token limit, never a crash.
    let huge = "a".repeat(64 * 1024);
    let r = reqwest::Client::new()
        .get(&private)
        .bearer_auth(&huge)
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 431), "{}", r.status());
    // Two different tokens in two sources: refused, though each is good alone (the same token
    // twice is not ambiguous, and passes).
    let other = hs256(&claims("admin", "u2"));
    let r = reqwest::Client::new()
        .get(format!("{private}?token={other}"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // None of it reached the origin; the proxy still serves a good token.
    assert_eq!(origin.stats().gets(), 0);
    assert_eq!(get(&private, Some(&good)).await.status, 200);
}

#[tokio::test]
async fn cache_authenticated_false_keeps_a_private_bucket_out_of_the_cache() {
    let origin = TestOrigin::start("AKIDAUTH", "auth-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"the object");
    let yaml = format!(
        r#"
buckets:
  - name: shared
    path_prefix: /shared
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUTH, secret_key: auth-secret}}
    auth: {{enabled: true}}
  - name: uncached
    path_prefix: /uncached
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDAUTH, secret_key: auth-secret}}
    auth: {{enabled: true}}
    cache: {{cache_authenticated: false}}
cache:
  cache_layers: [memory]
jwt:
  enabled: true
  algorithm: HS256
  secret: "{SECRET}"
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let t = hs256(&claims("reader", "u1"));
    // Shared (the default): the second authorized request is a hit.
    assert_eq!(
        get(&format!("{base}/shared/a.txt"), Some(&t))
            .await
            .cache
            .as_deref(),
        Some("MISS")
    );
    assert_eq!(
        get(&format!("{base}/shared/a.txt"), Some(&t))
            .await
            .cache
            .as_deref(),
        Some("HIT")
    );
    let gets = origin.stats().gets();
    // Off: every request goes to the origin, cached copies of the same object notwithstanding.
    for _ in 0..2 {
        let a = get(&format!("{base}/uncached/a.txt"), Some(&t)).await;
        assert_eq!((a.status, &a.body[..]), (200, &b"the object"[..]));
        assert_ne!(a.cache.as_deref(), Some("HIT"));
    }
    assert_eq!(origin.stats().gets(), gets + 2);
}

#[tokio::test]
async fn a_jwks_issuer_too_slow_to_answer_gives_503_until_it_does() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let origin = TestOrigin::start("AKIDAUTH", "auth-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"the object");
    // An issuer that takes requests and answers none until released: a hung server, for real.
    let issuer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", issuer.local_addr().unwrap());
    let (release, released) = tokio::sync::watch::channel(false);
    let jwks = std::fs::read_to_string(format!("{DATA}/jwks-k1.json")).unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = issuer.accept().await {
            let mut released = released.clone();
            let body = jwks.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = released.wait_for(|r| *r).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    let auth = yatagarasu::auth::JwtAuth::builder()
        .jwks(
            jwks_url,
            std::time::Duration::from_secs(3600),
            std::time::Duration::ZERO,
        )
        .jwks_timeout(std::time::Duration::from_millis(300))
        .issuer("https://issuer.example")
        .build();
    let url = format!("{}/media/a.txt", serve_media_with(&origin, auth).await);
    let k1 = rs256_with("rsa-private.pem", "k1", "u1");
    // Every fetch times out: 503, bounded by the fetch timeout (not a hang), and never a 401.
    let a = tokio::time::timeout(std::time::Duration::from_secs(10), get(&url, Some(&k1)))
        .await
        .expect("answered within the fetch timeout");
    assert_eq!(
        (a.status, code(&a).as_str()),
        (503, "SigningKeysUnavailable")
    );
    // The issuer answers again: the next request fetches the set and reads.
    release.send_replace(true);
    assert_eq!(get(&url, Some(&k1)).await.status, 200);
}
