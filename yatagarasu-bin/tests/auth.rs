//! Private buckets end to end over real sockets against an s3s-fs origin (SigV4 on): a public
//! bucket beside a JWT-guarded one in one proxy built from config, tokens from HS256 and RS256
//! keys, claim rules, and the cache shared by authorized users but never by anyone else.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use yatagarasu::{Config, ServerOptions, serve};
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        proxy,
        ServerOptions::default(),
        std::future::pending(),
    ));
    base
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
    let config = Config::from_yaml_with_env(&yaml, &|_| None).unwrap();
    let proxy = config.build_proxy().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        proxy,
        ServerOptions::default(),
        std::future::pending(),
    ));
    base
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
