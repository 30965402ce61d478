//! Cost of signing one S3 GET with a cached signing key (target: well under 5 µs).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use yatagarasu_s3::Credentials;
use yatagarasu_s3::sigv4::{
    EMPTY_PAYLOAD_SHA256, SessionTokenPlacement, SignableRequest, Signer, SigningSettings,
    uri_encode,
};

fn bench_sign(c: &mut Criterion) {
    let signer = Signer::new();
    let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let session = creds
        .clone()
        .with_session_token("FQoGZXIvYXdzEJr//////////wEaDOW3j0aG7jQUPnEXAMPLE");
    let settings = SigningSettings {
        region: "us-east-1",
        service: "s3",
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        session_token: SessionTokenPlacement::Signed,
        content_sha256_header: true,
    };
    let key = "photos/2024/summer holiday/IMG 0001+final.jpg";
    let req = SignableRequest {
        method: "GET".into(),
        canonical_uri: format!("/media/{}", uri_encode(key, true)),
        query: vec![],
        headers: vec![
            ("host".into(), "s3.us-east-1.amazonaws.com".into()),
            ("range".into(), "bytes=0-4194303".into()),
        ],
        payload_hash: EMPTY_PAYLOAD_SHA256.into(),
    };
    c.bench_function("sigv4/sign_get_cached_key", |b| {
        b.iter(|| signer.sign_headers(std::hint::black_box(&req), &creds, &settings))
    });
    c.bench_function("sigv4/sign_get_session_token", |b| {
        b.iter(|| signer.sign_headers(std::hint::black_box(&req), &session, &settings))
    });
    c.bench_function("sigv4/presign_get", |b| {
        b.iter(|| {
            signer.presign(
                std::hint::black_box(&req),
                &creds,
                &settings,
                Duration::from_secs(3600),
            )
        })
    });
    c.bench_function("sigv4/uri_encode_key", |b| {
        b.iter(|| uri_encode(std::hint::black_box(key), true))
    });
}

criterion_group!(benches, bench_sign);
criterion_main!(benches);
