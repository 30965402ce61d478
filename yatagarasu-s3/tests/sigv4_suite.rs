//! Every case of the official AWS SigV4 test suite (tests/data/sigv4-test-suite, Apache-2.0, from
//! awslabs/aws-c-auth), for both header signing and presigned URLs.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use yatagarasu_s3::Credentials;
use yatagarasu_s3::sigv4::{
    SessionTokenPlacement, SignableRequest, Signer, SigningSettings, normalize_path, uri_encode,
};

struct Case {
    name: String,
    request: SignableRequest,
    creds: Credentials,
    region: String,
    service: String,
    time: std::time::SystemTime,
    sign_body: bool,
    token_placement: SessionTokenPlacement,
    expires: u64,
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn parse_case(dir: &Path) -> Case {
    let ctx: serde_json::Value = serde_json::from_str(&read(dir, "context.json")).unwrap();
    let raw = read(dir, "request.txt");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let mut lines = head.lines();
    let first = lines.next().unwrap();
    let (method, rest) = first.split_once(' ').unwrap();
    let target = &rest[..rest.rfind(" HTTP/").unwrap()];
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // obs-fold: a continuation of the previous header's value.
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.to_owned(), v.to_owned()));
        }
    }
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let normalize = ctx["normalize"].as_bool().unwrap();
    let path = if normalize {
        normalize_path(path)
    } else {
        path.to_owned()
    };
    let c = &ctx["credentials"];
    let mut creds = Credentials::new(
        c["access_key_id"].as_str().unwrap(),
        c["secret_access_key"].as_str().unwrap(),
    );
    if let Some(t) = c["token"].as_str() {
        creds = creds.with_session_token(t);
    }
    let ts = ctx["timestamp"].as_str().unwrap();
    assert_eq!(ts, "2015-08-30T12:36:00Z", "suite timestamp changed");
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        request: SignableRequest {
            method: method.to_owned(),
            canonical_uri: uri_encode(&path, true),
            query,
            headers,
            payload_hash: hex::encode(Sha256::digest(body.as_bytes())),
        },
        creds,
        region: ctx["region"].as_str().unwrap().to_owned(),
        service: ctx["service"].as_str().unwrap().to_owned(),
        time: std::time::UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        sign_body: ctx["sign_body"].as_bool().unwrap(),
        token_placement: if ctx["omit_session_token"].as_bool().unwrap_or(false) {
            SessionTokenPlacement::AppendedUnsigned
        } else {
            SessionTokenPlacement::Signed
        },
        expires: ctx["expiration_in_seconds"].as_u64().unwrap(),
    }
}

fn authorization_line(signed_request: &str) -> String {
    signed_request
        .lines()
        .find_map(|l| l.strip_prefix("Authorization:"))
        .unwrap()
        .to_owned()
}

#[test]
fn every_suite_case_signs_exactly_as_aws_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigv4-test-suite");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 38, "expected all 38 suite cases");

    let mut failures = Vec::new();
    for dir in &dirs {
        let case = parse_case(dir);
        let settings = SigningSettings {
            region: &case.region,
            service: &case.service,
            time: case.time,
            session_token: case.token_placement,
            content_sha256_header: case.sign_body,
        };
        let signer = Signer::new();

        let header = signer.sign_headers(&case.request, &case.creds, &settings);
        let checks = [
            (
                "header-canonical-request",
                header.canonical_request.clone(),
                read(dir, "header-canonical-request.txt"),
            ),
            (
                "header-string-to-sign",
                header.string_to_sign.clone(),
                read(dir, "header-string-to-sign.txt"),
            ),
            (
                "header-signature",
                header.signature.clone(),
                read(dir, "header-signature.txt"),
            ),
            (
                "authorization",
                header
                    .params
                    .iter()
                    .find(|(n, _)| *n == "authorization")
                    .unwrap()
                    .1
                    .clone(),
                authorization_line(&read(dir, "header-signed-request.txt")),
            ),
        ];
        let query = signer.presign(
            &case.request,
            &case.creds,
            &settings,
            Duration::from_secs(case.expires),
        );
        let qchecks = [
            (
                "query-canonical-request",
                query.canonical_request.clone(),
                read(dir, "query-canonical-request.txt"),
            ),
            (
                "query-string-to-sign",
                query.string_to_sign.clone(),
                read(dir, "query-string-to-sign.txt"),
            ),
            (
                "query-signature",
                query.signature.clone(),
                read(dir, "query-signature.txt"),
            ),
        ];
        for (what, got, want) in checks.into_iter().chain(qchecks) {
            if got.trim_end() != want.trim_end() {
                failures.push(format!(
                    "{} {what}:\n--- got\n{got}\n--- want\n{want}",
                    case.name
                ));
            }
        }
        // A session token, when present, is sent in both forms.
        if case.creds.session_token().is_some() {
            assert!(
                header
                    .params
                    .iter()
                    .any(|(n, _)| *n == "x-amz-security-token"),
                "{}",
                case.name
            );
            assert!(
                query
                    .params
                    .iter()
                    .any(|(n, _)| *n == "X-Amz-Security-Token"),
                "{}",
                case.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
