//! Token verification per request: HS256, RS256 and ES256, with the claim rule the README's
//! example uses, the first time a token is seen (signature checked) and when it is seen again
//! (remembered). `cargo bench -p yatagarasu --bench jwt`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use yatagarasu::auth::{ClaimRule, JwtAuth, Operator, pem_key};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{name}")).expect("test key")
}

fn bench(c: &mut Criterion) {
    let claims = json!({"sub": "u1", "iss": "https://issuer.example", "role": "reader",
                        "exp": jsonwebtoken::get_current_timestamp() + 3600});
    let secret = b"an hmac secret of thirty-two b!!";
    let cases = [
        (
            "HS256",
            Algorithm::HS256,
            EncodingKey::from_secret(secret),
            jsonwebtoken::DecodingKey::from_secret(secret),
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("rsa"),
            pem_key(Algorithm::RS256, &read("rsa-public.pem")).expect("rsa"),
        ),
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&read("ec-private-pk8.pem")).expect("ec"),
            pem_key(Algorithm::ES256, &read("ec-public.pem")).expect("ec"),
        ),
    ];
    let mut group = c.benchmark_group("jwt_authenticate");
    for (name, alg, enc, dec) in cases {
        let token = encode(&Header::new(alg), &claims, &enc).expect("token");
        let build = || {
            JwtAuth::builder()
                .key(alg, dec.clone())
                .issuer("https://issuer.example")
                .rule(ClaimRule::new(
                    "role",
                    Operator::In,
                    json!(["reader", "admin"]),
                ))
                .build()
        };
        let auth = build();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        group.bench_function(format!("{name}/first_seen"), |b| {
            b.iter_batched(
                build,
                |fresh| {
                    fresh
                        .authenticate(black_box(&headers), None)
                        .expect("valid")
                },
                criterion::BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("{name}/seen_again"), |b| {
            b.iter(|| auth.authenticate(black_box(&headers), None).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
