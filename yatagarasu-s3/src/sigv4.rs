//! AWS Signature Version 4, for headers (`Authorization`) and presigned URLs (query string).
//!
//! Written for S3 first: the caller passes the canonical URI exactly as it is sent (S3 neither
//! normalises nor double-encodes paths), which [`uri_encode`] builds from a key. For other services,
//! [`normalize_path`] gives the normalised form the generic SigV4 rules ask for. Every case of the
//! official AWS SigV4 test suite passes (see `tests/sigv4_suite.rs`).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;
use crate::time::amz_date;

/// The payload hash S3 accepts in place of a real one.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string: the payload hash of a GET or HEAD.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Everything but the unreserved characters `A-Z a-z 0-9 - _ . ~` is encoded.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// As [`STRICT`], but `/` is kept: for paths.
const PATH: &AsciiSet = &STRICT.remove(b'/');

/// Percent-encode as SigV4 requires: every byte except `A-Za-z0-9-_.~` becomes `%XX` (uppercase hex),
/// UTF-8 first. With `keep_slash`, `/` is left as is (for paths and object keys).
///
/// ```
/// use yatagarasu_s3::sigv4::uri_encode;
///
/// assert_eq!(uri_encode("photos/a b+c%~.jpg", true), "photos/a%20b%2Bc%25~.jpg");
/// assert_eq!(uri_encode("a/b", false), "a%2Fb");
/// ```
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let set = if keep_slash { PATH } else { STRICT };
    utf8_percent_encode(s, set).to_string()
}

/// Normalise a path the way generic SigV4 does (not S3): remove `.` and `..` segments and empty
/// segments, keep a trailing slash.
pub fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for seg in &segments {
        match *seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = path.len() > 1
        && (path.ends_with('/') || matches!(segments.last(), Some(&".") | Some(&"..")));
    let mut s = String::with_capacity(path.len());
    s.push('/');
    s.push_str(&out.join("/"));
    if trailing && !out.is_empty() {
        s.push('/');
    }
    s
}

/// Where the session token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionTokenPlacement {
    /// Sent as `X-Amz-Security-Token` and included in the signature (what S3 requires).
    #[default]
    Signed,
    /// Added after signing, outside the signature (some services, e.g. IoT, want this).
    AppendedUnsigned,
}

/// What a signature is made for.
#[derive(Debug, Clone)]
pub struct SigningSettings<'a> {
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service name: `s3` for S3.
    pub service: &'a str,
    /// The signing time.
    pub time: SystemTime,
    /// Where the session token goes, if the credentials have one.
    pub session_token: SessionTokenPlacement,
    /// Whether header signing adds and signs an `x-amz-content-sha256` header (S3 requires it).
    pub content_sha256_header: bool,
}

/// A request as far as the signature is concerned.
#[derive(Debug, Clone, Default)]
pub struct SignableRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// The path exactly as it goes on the wire (already percent-encoded).
    pub canonical_uri: String,
    /// Query parameters, *not* encoded: the signer encodes them.
    pub query: Vec<(String, String)>,
    /// Headers to sign, names in any case. `host` must be among them.
    pub headers: Vec<(String, String)>,
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: String,
}

/// The result of signing: the intermediate strings (for debugging and tests) and what to add to the request.
#[derive(Debug, Clone)]
pub struct SigningOutput {
    /// The canonical request that was hashed.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// The hex signature.
    pub signature: String,
    /// Headers (header signing) or query parameters (presigning) to add to the request, in order.
    pub params: Vec<(&'static str, String)>,
}

#[derive(Clone)]
struct CachedKey {
    access_key_id: String,
    secret: String,
    date: String,
    region: String,
    service: String,
    key: [u8; 32],
}

/// A SigV4 signer. Derived signing keys are cached (one per day, credentials, region and service),
/// so signing a request costs two SHA-256 hashes and one HMAC.
#[derive(Default)]
pub struct Signer {
    key: Mutex<Option<CachedKey>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Trim and collapse runs of spaces in a header value (multi-line values are folded first).
fn canonical_header_value(v: &str, out: &mut String) {
    let mut first = true;
    for word in v.split([' ', '\t', '\n', '\r']) {
        if word.is_empty() {
            continue;
        }
        if !first {
            out.push(' ');
        }
        out.push_str(word);
        first = false;
    }
}

impl Signer {
    /// A signer with an empty key cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn signing_key(
        &self,
        creds: &Credentials,
        date: &str,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        let mut guard = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard.as_ref()
            && c.date == date
            && c.region == region
            && c.service == service
            && c.access_key_id == creds.access_key_id()
            && c.secret == creds.secret_access_key()
        {
            return c.key;
        }
        let k_date = hmac(
            format!("AWS4{}", creds.secret_access_key()).as_bytes(),
            date.as_bytes(),
        );
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        *guard = Some(CachedKey {
            access_key_id: creds.access_key_id().to_owned(),
            secret: creds.secret_access_key().to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            key,
        });
        key
    }

    /// Sign with the `Authorization` header. The returned params are the headers to add:
    /// `x-amz-date`, `x-amz-content-sha256` (if asked), `x-amz-security-token` (if any) and `authorization`.
    pub fn sign_headers(
        &self,
        req: &SignableRequest,
        creds: &Credentials,
        settings: &SigningSettings<'_>,
    ) -> SigningOutput {
        let datetime = amz_date(settings.time);
        let date = &datetime[..8];
        let mut extra: Vec<(&'static str, String)> = Vec::with_capacity(4);
        extra.push(("x-amz-date", datetime.clone()));
        if settings.content_sha256_header {
            extra.push(("x-amz-content-sha256", req.payload_hash.clone()));
        }
        let token = creds.session_token();
        if let (Some(t), SessionTokenPlacement::Signed) = (token, settings.session_token) {
            extra.push(("x-amz-security-token", t.to_owned()));
        }
        let headers = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(extra.iter().map(|(n, v)| (*n, v.as_str())));
        let query = req.query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let (canonical_request, signed_headers) = canonical_request(
            &req.method,
            &req.canonical_uri,
            query,
            headers,
            &req.payload_hash,
        );
        let scope = format!(
            "{date}/{}/{}/aws4_request",
            settings.region, settings.service
        );
        let string_to_sign = string_to_sign(&datetime, &scope, &canonical_request);
        let key = self.signing_key(creds, date, settings.region, settings.service);
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        if let (Some(t), SessionTokenPlacement::AppendedUnsigned) = (token, settings.session_token)
        {
            extra.push(("x-amz-security-token", t.to_owned()));
        }
        extra.push((
            "authorization",
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                creds.access_key_id()
            ),
        ));
        SigningOutput {
            canonical_request,
            string_to_sign,
            signature,
            params: extra,
        }
    }

    /// Presign: the returned params are the query parameters to add (not encoded), ending with
    /// `X-Amz-Signature`. `expires` is clamped to S3's limit of 7 days.
    pub fn presign(
        &self,
        req: &SignableRequest,
        creds: &Credentials,
        settings: &SigningSettings<'_>,
        expires: Duration,
    ) -> SigningOutput {
        let datetime = amz_date(settings.time);
        let date = &datetime[..8];
        let scope = format!(
            "{date}/{}/{}/aws4_request",
            settings.region, settings.service
        );
        let mut names: Vec<String> = req
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        names.sort_unstable();
        names.dedup();
        let signed_headers = names.join(";");
        let mut added: Vec<(&'static str, String)> = vec![
            ("X-Amz-Algorithm", ALGORITHM.to_owned()),
            (
                "X-Amz-Credential",
                format!("{}/{scope}", creds.access_key_id()),
            ),
            ("X-Amz-Date", datetime.clone()),
            ("X-Amz-Expires", expires.as_secs().min(604_800).to_string()),
            ("X-Amz-SignedHeaders", signed_headers),
        ];
        let token = creds.session_token();
        if let (Some(t), SessionTokenPlacement::Signed) = (token, settings.session_token) {
            added.push(("X-Amz-Security-Token", t.to_owned()));
        }
        let query = req
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(added.iter().map(|(k, v)| (*k, v.as_str())));
        let headers = req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let (canonical_request, _) = canonical_request(
            &req.method,
            &req.canonical_uri,
            query,
            headers,
            &req.payload_hash,
        );
        let string_to_sign = string_to_sign(&datetime, &scope, &canonical_request);
        let key = self.signing_key(creds, date, settings.region, settings.service);
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        if let (Some(t), SessionTokenPlacement::AppendedUnsigned) = (token, settings.session_token)
        {
            added.push(("X-Amz-Security-Token", t.to_owned()));
        }
        added.push(("X-Amz-Signature", signature.clone()));
        SigningOutput {
            canonical_request,
            string_to_sign,
            signature,
            params: added,
        }
    }
}

fn string_to_sign(datetime: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{datetime}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Build the canonical request; returns it and the signed-headers list.
fn canonical_request<'a>(
    method: &str,
    canonical_uri: &str,
    query: impl Iterator<Item = (&'a str, &'a str)>,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    payload_hash: &str,
) -> (String, String) {
    let mut out = String::with_capacity(512);
    out.push_str(method);
    out.push('\n');
    out.push_str(if canonical_uri.is_empty() {
        "/"
    } else {
        canonical_uri
    });
    out.push('\n');

    let mut q: Vec<(String, String)> = query
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    q.sort_unstable();
    for (i, (k, v)) in q.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        let _ = write!(out, "{k}={v}");
    }
    out.push('\n');

    let mut h: Vec<(String, &str)> = headers.map(|(n, v)| (n.to_ascii_lowercase(), v)).collect();
    // Stable sort keeps the order of repeated headers, whose values are joined in order.
    h.sort_by(|a, b| a.0.cmp(&b.0));
    let mut signed = String::with_capacity(64);
    let mut i = 0;
    while i < h.len() {
        let name = &h[i].0;
        out.push_str(name);
        out.push(':');
        let mut j = i;
        while j < h.len() && h[j].0 == *name {
            if j > i {
                out.push(',');
            }
            canonical_header_value(h[j].1, &mut out);
            j += 1;
        }
        out.push('\n');
        if !signed.is_empty() {
            signed.push(';');
        }
        signed.push_str(name);
        i = j;
    }
    out.push('\n');
    out.push_str(&signed);
    out.push('\n');
    out.push_str(payload_hash);
    (out, signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("//example//"), "/example/");
        assert_eq!(normalize_path("/example1/example2/../.."), "/");
        assert_eq!(normalize_path("/example/.."), "/");
        assert_eq!(normalize_path("/./"), "/");
        assert_eq!(normalize_path("/example/./"), "/example/");
        assert_eq!(normalize_path("/a/../b"), "/b");
    }

    #[test]
    fn uri_encode_s3_key_characters() {
        assert_eq!(uri_encode("a b", true), "a%20b");
        assert_eq!(uri_encode("a+b", true), "a%2Bb");
        assert_eq!(uri_encode("100%", true), "100%25");
        assert_eq!(uri_encode("~user", true), "~user");
        assert_eq!(uri_encode("a//b", true), "a//b");
        assert_eq!(uri_encode("ሴ", true), "%E1%88%B4");
        assert_eq!(uri_encode("=&?#", false), "%3D%26%3F%23");
    }

    #[test]
    fn signing_key_is_cached_and_invalidated() {
        let signer = Signer::new();
        let a = Credentials::new("AKID", "secret-a");
        let b = Credentials::new("AKID", "secret-b");
        let k1 = signer.signing_key(&a, "20150830", "us-east-1", "s3");
        let k2 = signer.signing_key(&a, "20150830", "us-east-1", "s3");
        assert_eq!(k1, k2);
        assert_ne!(k1, signer.signing_key(&b, "20150830", "us-east-1", "s3"));
        assert_ne!(k1, signer.signing_key(&a, "20150831", "us-east-1", "s3"));
        assert_ne!(k1, signer.signing_key(&a, "20150830", "eu-west-1", "s3"));
    }
}
