//! The attack battery at the verifier: each of these tokens is refused, and says which check failed.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use super::*;

const SECRET: &[u8] = b"an hmac secret of thirty-two b!!";
const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/data/jwt/rsa-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/data/jwt/rsa-public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../tests/data/jwt/ec-private-pk8.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/data/jwt/ec-public.pem");

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims() -> Value {
    json!({"sub": "u1", "iss": "https://issuer.example", "aud": "yatagarasu", "exp": now() + 600, "role": "reader"})
}

fn hs(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn rs(kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(str::to_owned);
    encode(&h, claims, &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap()).unwrap()
}

fn auth() -> JwtAuth {
    JwtAuth::builder()
        .hmac_key(Algorithm::HS256, SECRET)
        .key_with_id(
            "rsa-1",
            Algorithm::RS256,
            pem_key(Algorithm::RS256, RSA_PUBLIC).unwrap(),
        )
        .key_with_id(
            "ec-1",
            Algorithm::ES256,
            pem_key(Algorithm::ES256, EC_PUBLIC).unwrap(),
        )
        .issuer("https://issuer.example")
        .audience("yatagarasu")
        .leeway_seconds(5)
        .rule(ClaimRule::new(
            "role",
            Operator::In,
            json!(["reader", "admin"]),
        ))
        .build()
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

fn refusal(token: &str) -> (ErrorKind, String) {
    let e = auth().authenticate(&bearer(token), None).unwrap_err();
    (e.kind(), e.message().to_owned())
}

#[test]
fn good_tokens_of_every_key_pass() {
    let a = auth();
    assert!(a.authenticate(&bearer(&hs(&claims())), None).is_ok());
    assert!(
        a.authenticate(&bearer(&rs(Some("rsa-1"), &claims())), None)
            .is_ok()
    );
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec-1".into());
    let es = encode(
        &h,
        &claims(),
        &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
    )
    .unwrap();
    assert_eq!(a.authenticate(&bearer(&es), None).unwrap()["sub"], "u1");
}

#[test]
fn the_attack_battery_is_refused() {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    // alg: none.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims())
    );
    assert_eq!(refusal(&none).0, ErrorKind::Unauthenticated);
    // HS256 made with the RSA public key as the secret, claiming the RSA key's kid.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    let confused = encode(&h, &claims(), &EncodingKey::from_secret(RSA_PUBLIC)).unwrap();
    assert!(refusal(&confused).1.contains("algorithm"));
    // Tampered payload: the signature of one payload with another.
    let good = hs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims();
    evil["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
    assert!(refusal(&tampered).1.contains("signature"));
    // Truncated and empty.
    assert_eq!(
        refusal(&good[..good.len() / 2]).0,
        ErrorKind::Unauthenticated
    );
    let e = auth().authenticate(&bearer(""), None).unwrap_err();
    assert_eq!(e.code(), "MissingToken");
    // Expired, not yet valid, wrong issuer, wrong audience.
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        hs(&c)
    };
    assert!(
        refusal(&with("exp", json!(now() - 600)))
            .1
            .contains("expired")
    );
    assert!(
        refusal(&with("nbf", json!(now() + 600)))
            .1
            .contains("not valid yet")
    );
    assert!(
        refusal(&with("iss", json!("https://evil.example")))
            .1
            .contains("issuer")
    );
    assert!(
        refusal(&with("aud", json!("someone-else")))
            .1
            .contains("audience")
    );
    // No exp at all.
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert!(refusal(&hs(&no_exp)).1.contains("exp"));
    // Unknown kid, and a kid with path characters.
    assert!(refusal(&rs(Some("rsa-2"), &claims())).1.contains("key id"));
    assert!(
        refusal(&rs(Some("../../etc/passwd"), &claims()))
            .1
            .contains("key id")
    );
    // A 64 KiB token: refused before parsing.
    assert!(refusal(&"a".repeat(64 * 1024)).1.contains("too long"));
    // A jku pointing elsewhere, signed with a key of the attacker's: never fetched, never trusted.
    let mut h = Header::new(Algorithm::HS256);
    h.jku = Some("https://evil.example/jwks.json".into());
    let jku = encode(
        &h,
        &claims(),
        &EncodingKey::from_secret(b"the attacker's own secret......"),
    )
    .unwrap();
    assert!(refusal(&jku).1.contains("signature"));
    // A claim rule on a value outside the allowed set, and on a missing claim: 403.
    assert_eq!(
        refusal(&with("role", json!("guest"))).0,
        ErrorKind::AccessDenied
    );
    let mut no_role = claims();
    no_role.as_object_mut().unwrap().remove("role");
    let (kind, message) = refusal(&hs(&no_role));
    assert_eq!(kind, ErrorKind::AccessDenied);
    assert!(message.contains("`role`") && !message.contains("reader"));
}

#[test]
fn tokens_come_from_the_configured_sources_and_never_two_at_once() {
    let a = JwtAuth::builder()
        .hmac_key(Algorithm::HS256, SECRET)
        .source(TokenSource::Bearer)
        .source(TokenSource::Header {
            name: http::HeaderName::from_static("x-auth-token"),
            prefix: Some("Token ".into()),
        })
        .source(TokenSource::Query {
            name: "token".into(),
        })
        .build();
    let t = hs(&claims());
    let mut h = HeaderMap::new();
    h.insert("x-auth-token", format!("Token {t}").parse().unwrap());
    assert!(a.authenticate(&h, None).is_ok());
    assert!(
        a.authenticate(&HeaderMap::new(), Some(&format!("a=1&token={t}")))
            .is_ok()
    );
    // The same token twice is fine; two different tokens are ambiguous.
    assert!(
        a.authenticate(&bearer(&t), Some(&format!("token={t}")))
            .is_ok()
    );
    let other = hs(&json!({"exp": now() + 60, "sub": "u2"}));
    let e = a
        .authenticate(&bearer(&t), Some(&format!("token={other}")))
        .unwrap_err();
    assert!(e.message().contains("more than one place"));
}

#[test]
fn verified_tokens_are_remembered_until_their_exp_only() {
    let cache = VerifiedCache::default();
    let d = VerifiedCache::digest("a token");
    cache.put(d, &Arc::new(json!({"exp": now() + 600, "sub": "u1"})));
    assert_eq!(cache.get(&d).unwrap()["sub"], "u1");
    let expired = VerifiedCache::digest("an old token");
    cache.put(expired, &Arc::new(json!({"exp": now() - 1})));
    assert!(cache.get(&expired).is_none());
    // A remembered token still has the rules applied on every request.
    let a = auth();
    let guest = hs(&{
        let mut c = claims();
        c["role"] = json!("guest");
        c
    });
    for _ in 0..2 {
        assert_eq!(
            a.authenticate(&bearer(&guest), None).unwrap_err().kind(),
            ErrorKind::AccessDenied
        );
    }
    // Bounded: distinct tokens never grow it past its limit.
    for i in 0..VerifiedCache::MAX_ENTRIES + 10 {
        cache.put(
            VerifiedCache::digest(&i.to_string()),
            &Arc::new(json!({"exp": now() + 600})),
        );
    }
    assert!(cache.lock().len() <= VerifiedCache::MAX_ENTRIES);
}
