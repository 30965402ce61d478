//! Behaviour that s3s-fs does not exercise, against small local servers that speak the real wire
//! formats: S3's conditional GET answers (304 / 412), and the HTTP credential providers (STS web
//! identity, ECS container credentials, EC2 IMDSv2), including their use for signing against a real
//! s3s origin.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use yatagarasu_core::{ErrorKind, format_http_date, parse_http_date};
use yatagarasu_s3::credentials::{
    CachingProvider, EcsProvider, Env, ImdsProvider, WebIdentityProvider,
};
use yatagarasu_s3::{
    CredentialsSource, GetObjectRequest, HeadObjectRequest, ProvideCredentials, S3Client,
};
use yatagarasu_testkit::{StubServer, TestOrigin, response};

const ETAG: &str = "\"5d41402abc4b2a76b9719d911017c592\"";
const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

/// Answers GET/HEAD of one object like S3 does, evaluating conditional headers.
fn conditional_s3(req: &yatagarasu_testkit::StubRequest) -> http::Response<bytes::Bytes> {
    let lm = parse_http_date(LAST_MODIFIED).unwrap();
    let validators: &[(&str, &str)] = &[("etag", ETAG), ("last-modified", LAST_MODIFIED)];
    let precondition_failed = || {
        response(
            412,
            &[("content-type", "application/xml")],
            "<?xml version=\"1.0\"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
        )
    };
    if let Some(m) = req.header("if-match")
        && m != ETAG
    {
        return precondition_failed();
    }
    if let Some(d) = req.header("if-unmodified-since").and_then(parse_http_date)
        && lm > d
    {
        return precondition_failed();
    }
    if req.header("if-none-match") == Some(ETAG) {
        return response(304, validators, "");
    }
    if let Some(d) = req.header("if-modified-since").and_then(parse_http_date)
        && lm <= d
    {
        return response(304, validators, "");
    }
    let mut headers = validators.to_vec();
    headers.push(("content-type", "text/plain"));
    response(200, &headers, "hello")
}

fn anon(url: String) -> S3Client {
    S3Client::builder("b")
        .endpoint(url)
        .anonymous()
        .build()
        .unwrap()
}

#[tokio::test]
async fn conditional_get_sends_headers_and_maps_304_and_412() {
    let stub = StubServer::start(conditional_s3).await;
    let c = anon(stub.url());

    let req = GetObjectRequest::default().with_if_none_match(ETAG);
    let err = c.get_object("k", &req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotModified);
    assert_eq!(err.code(), "NotModified");

    let req = GetObjectRequest::default().with_if_match("\"other\"");
    let err = c.get_object("k", &req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PreconditionFailed);
    assert_eq!(err.code(), "PreconditionFailed");

    let lm = parse_http_date(LAST_MODIFIED).unwrap();
    let req = GetObjectRequest::default().with_if_modified_since(lm);
    assert_eq!(
        c.get_object("k", &req).await.unwrap_err().kind(),
        ErrorKind::NotModified
    );

    let req = GetObjectRequest::default().with_if_unmodified_since(lm - Duration::from_secs(1));
    assert_eq!(
        c.get_object("k", &req).await.unwrap_err().kind(),
        ErrorKind::PreconditionFailed
    );

    let req = GetObjectRequest::default()
        .with_if_match(ETAG)
        .with_if_modified_since(lm - Duration::from_secs(60));
    let out = c.get_object("k", &req).await.unwrap();
    assert_eq!(out.body.collect().await.unwrap(), "hello");

    // The headers went out in S3's expected form.
    let sent = stub.requests();
    assert_eq!(sent[0].header("if-none-match"), Some(ETAG));
    assert_eq!(sent[1].header("if-match"), Some("\"other\""));
    assert_eq!(sent[2].header("if-modified-since"), Some(LAST_MODIFIED));
    assert_eq!(
        sent[3].header("if-unmodified-since").map(str::to_owned),
        Some(format_http_date(lm - Duration::from_secs(1)))
    );
    assert_eq!(sent.len(), 5, "304 and 412 are answers, not retried");

    // HEAD has no body to read the code from: the status decides.
    let head = c
        .head_object("k", &HeadObjectRequest::default().with_if_none_match(ETAG))
        .await
        .unwrap_err();
    assert_eq!(head.kind(), ErrorKind::NotModified);
}

fn sts_ok(akid: &str, secret: &str, token: &str, expires: SystemTime) -> String {
    format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::123:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>{token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{}</Expiration>
      <AccessKeyId>{akid}</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#,
        rfc3339(expires)
    )
}

fn rfc3339(t: SystemTime) -> String {
    // IMF-fixdate to RFC 3339 via the parts httpdate gives us.
    let d = format_http_date(t); // "Wed, 21 Oct 2015 07:28:00 GMT"
    let parts: Vec<&str> = d.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])
    .unwrap()
        + 1;
    format!("{}-{month:02}-{}T{}Z", parts[3], parts[1], parts[4])
}

fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[tokio::test]
async fn web_identity_assumes_role_through_sts_and_signs_for_s3s() {
    let origin = TestOrigin::start("ASIAWEBIDENTITY", "sts-issued-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "k.txt", b"via web identity");

    let expires = SystemTime::now() + Duration::from_secs(3600);
    let sts = StubServer::start(move |req| {
        let body = String::from_utf8_lossy(&req.body).into_owned();
        if form_value(&body, "WebIdentityToken").as_deref() != Some("eyJ.oidc.token") {
            return response(
                400,
                &[],
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>bad token</Message></Error></ErrorResponse>",
            );
        }
        response(200, &[("content-type", "text/xml")], sts_ok("ASIAWEBIDENTITY", "sts-issued-secret", "session-token-xyz", expires))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJ.oidc.token\n").unwrap();
    let env = Env::from_pairs([
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/reader"),
        ("AWS_ROLE_SESSION_NAME", "proxy-session"),
        ("AWS_ENDPOINT_URL_STS", sts.url().as_str()),
    ]);
    let provider = WebIdentityProvider::new(env.clone(), http());
    let creds = provider.provide_credentials().await.unwrap().unwrap();
    assert_eq!(creds.access_key_id(), "ASIAWEBIDENTITY");
    assert_eq!(creds.session_token(), Some("session-token-xyz"));
    let exp = creds.expires_at().unwrap();
    assert!(exp.duration_since(expires).unwrap_or_else(|e| e.duration()) < Duration::from_secs(1));

    let sent = &sts.requests()[0];
    assert_eq!(sent.method, http::Method::POST);
    let body = String::from_utf8_lossy(&sent.body).into_owned();
    assert_eq!(
        form_value(&body, "Action").as_deref(),
        Some("AssumeRoleWithWebIdentity")
    );
    assert_eq!(form_value(&body, "Version").as_deref(), Some("2011-06-15"));
    assert_eq!(
        form_value(&body, "RoleArn").as_deref(),
        Some("arn:aws:iam::123456789012:role/reader")
    );
    assert_eq!(
        form_value(&body, "RoleSessionName").as_deref(),
        Some("proxy-session")
    );

    // The whole default chain finds it, and the client signs with it (session token included).
    let client = S3Client::builder("media")
        .endpoint(origin.endpoint())
        .env(env)
        .build()
        .unwrap();
    let body = client
        .get_object("k.txt", &GetObjectRequest::default())
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(body, "via web identity");

    // A rejected token is an error with STS's code, never credentials.
    std::fs::write(&token_file, "forged").unwrap();
    let err = provider.provide_credentials().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    assert_eq!(err.code(), "InvalidIdentityToken");
    assert!(!err.to_string().contains("forged"));
}

#[tokio::test]
async fn ecs_container_credentials_with_authorization_token_file() {
    let expires = SystemTime::now() + Duration::from_secs(7200);
    let exp = rfc3339(expires);
    let ecs = StubServer::start(move |req| {
        if req.header("authorization") != Some("Bearer-ish token 123") {
            return response(401, &[], "unauthorized");
        }
        let body = format!(
            r#"{{"AccessKeyId":"ASIAECS","SecretAccessKey":"ecs-secret","Token":"ecs-token","Expiration":"{exp}","RoleArn":"arn:aws:iam::1:role/task"}}"#
        );
        response(200, &[("content-type", "application/json")], body)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("auth");
    std::fs::write(&token_file, "Bearer-ish token 123\n").unwrap();
    let full_uri = format!("{}/v2/credentials/abc", ecs.url());
    let env = Env::from_pairs([
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.as_str()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.to_str().unwrap(),
        ),
    ]);
    let c = EcsProvider::new(env, http())
        .provide_credentials()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.access_key_id(), "ASIAECS");
    assert_eq!(c.secret_access_key(), "ecs-secret");
    assert_eq!(c.session_token(), Some("ecs-token"));
    assert!(c.expires_at().is_some());
    assert_eq!(ecs.requests()[0].uri.path(), "/v2/credentials/abc");

    // Wrong token: an error, not credentials.
    let env = Env::from_pairs([
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.as_str()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "nope"),
    ]);
    assert!(
        EcsProvider::new(env, http())
            .provide_credentials()
            .await
            .is_err()
    );
    // Not configured: the chain moves on.
    let none = EcsProvider::new(Env::from_pairs::<&str, &str>([]), http());
    assert!(none.provide_credentials().await.unwrap().is_none());
}

#[tokio::test]
async fn imds_v2_token_flow_and_refresh() {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let served = Arc::clone(&counter);
    let imds = StubServer::start(move |req| {
        match (req.method.as_str(), req.uri.path()) {
            ("PUT", "/latest/api/token") => {
                if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                    return response(400, &[], "missing ttl");
                }
                response(200, &[], "imds-session-token")
            }
            (_, path) if req.header("x-aws-ec2-metadata-token") != Some("imds-session-token") => {
                let _ = path;
                response(401, &[], "")
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") => response(200, &[], "web-role\n"),
            ("GET", "/latest/meta-data/iam/security-credentials/web-role") => {
                let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // The first credentials expire within the refresh window, so the cache fetches again.
                let ttl = if n == 0 { 60 } else { 3600 };
                let exp = rfc3339(SystemTime::now() + Duration::from_secs(ttl));
                response(
                    200,
                    &[],
                    format!(
                        r#"{{"Code":"Success","LastUpdated":"2024-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS{n}","SecretAccessKey":"imds-secret","Token":"imds-token","Expiration":"{exp}"}}"#
                    ),
                )
            }
            _ => response(404, &[], ""),
        }
    })
    .await;
    let env = Env::from_pairs([("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())]);
    let provider: Arc<dyn ProvideCredentials> = Arc::new(ImdsProvider::new(env, http()));
    let cache = CachingProvider::new(provider);
    assert_eq!(
        cache.credentials().await.unwrap().access_key_id(),
        "ASIAIMDS0"
    );
    assert_eq!(
        cache.credentials().await.unwrap().access_key_id(),
        "ASIAIMDS1"
    );
    assert_eq!(
        cache.credentials().await.unwrap().access_key_id(),
        "ASIAIMDS1"
    );
    assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 2);
    let first = &imds.requests()[0];
    assert_eq!(
        first.method,
        http::Method::PUT,
        "IMDSv2 starts with a session token"
    );

    // Nothing listening: not on EC2, so the chain moves on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = Env::from_pairs([("AWS_EC2_METADATA_SERVICE_ENDPOINT", dead)]);
    assert!(
        ImdsProvider::new(env, http())
            .provide_credentials()
            .await
            .unwrap()
            .is_none()
    );
    let off = Env::from_pairs([("AWS_EC2_METADATA_DISABLED", "true")]);
    assert!(
        ImdsProvider::new(off, http())
            .provide_credentials()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn no_credentials_anywhere_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("HOME", empty.path().to_str().unwrap()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let c = S3Client::builder("b")
        .endpoint("http://127.0.0.1:9")
        .env(env)
        .credentials_source(CredentialsSource::DefaultChain)
        .build()
        .unwrap();
    let err = c
        .get_object("k", &GetObjectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    assert!(err.message().contains("no credentials"), "{err}");
}

fn http() -> yatagarasu_s3::HttpClient {
    yatagarasu_s3::HttpClient::new(&yatagarasu_s3::HttpOptions::default()).expect("HTTP client")
}
