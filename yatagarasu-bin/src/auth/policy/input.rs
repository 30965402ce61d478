//! What a policy is asked about.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// The request headers a policy sees, by lower-case name; no others (tokens, cookies and the like
/// never leave the proxy).
pub const INPUT_HEADERS: &[&str] = &["host", "origin", "referer", "user-agent"];

/// The request a policy decides on. As JSON (OPA and Rego see it as `input`):
///
/// ```json
/// {"method": "GET", "bucket": "private", "key": "reports/q1.pdf",
///  "path": "/private/reports/q1.pdf", "client_ip": "10.0.0.7",
///  "claims": {"sub": "alice", "role": "reader"},
///  "headers": {"host": "cdn.example", "user-agent": "curl/8.5.0"}}
/// ```
///
/// `bucket` is the bucket route's name (`buckets[].name`), `key` the percent-decoded object key,
/// `client_ip` the client's address as IP filters see it (`null` when unknown), `claims` the
/// verified token's claims (`null` on a bucket without tokens), `headers` the [`INPUT_HEADERS`]
/// the request carries.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInput {
    method: String,
    bucket: String,
    key: String,
    path: String,
    client_ip: Option<IpAddr>,
    claims: Arc<Value>,
    headers: Map<String, Value>,
}

impl PolicyInput {
    /// A request for `key` of `bucket`; its path is `/<bucket>/<key>` until [`path`](Self::path)
    /// says otherwise.
    pub fn new(method: &str, bucket: &str, key: &str) -> Self {
        Self {
            method: method.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            path: format!("/{bucket}/{key}"),
            client_ip: None,
            claims: Arc::new(Value::Null),
            headers: Map::new(),
        }
    }

    /// The request's URL path.
    pub fn path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.path);
        self
    }

    /// The client's address.
    pub fn client_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    /// The verified token's claims (a `Value`, or the shared claims [`JwtAuth`](super::super::JwtAuth)
    /// returns).
    pub fn claims(mut self, claims: impl Into<Arc<Value>>) -> Self {
        self.claims = claims.into();
        self
    }

    /// Take the [`INPUT_HEADERS`] from `headers` (others are ignored; values that are not text are
    /// left out).
    pub fn headers(mut self, headers: &http::HeaderMap) -> Self {
        for name in INPUT_HEADERS {
            if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
                self.headers.insert((*name).to_owned(), v.into());
            }
        }
        self
    }

    /// The verified claims (`Null` when none).
    pub(crate) fn claims_value(&self) -> &Value {
        &self.claims
    }

    /// The bucket route's name.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// A digest of everything in the input document, without building it (the decision cache's
    /// key for engines that see the whole input).
    pub(crate) fn digest(&self) -> [u8; 32] {
        struct Hashing(Sha256);
        impl std::io::Write for Hashing {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.update(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut h = Hashing(Sha256::new());
        // Length-prefixed fields: no two inputs share a byte stream.
        for field in [&self.method, &self.bucket, &self.key, &self.path] {
            h.0.update((field.len() as u64).to_le_bytes());
            h.0.update(field.as_bytes());
        }
        match self.client_ip {
            Some(IpAddr::V4(ip)) => {
                h.0.update([4]);
                h.0.update(ip.octets());
            }
            Some(IpAddr::V6(ip)) => {
                h.0.update([6]);
                h.0.update(ip.octets());
            }
            None => h.0.update([0]),
        }
        // serde_json's maps are ordered: equal claims and headers write equal bytes. Writing to a
        // hasher cannot fail.
        let _ = serde_json::to_writer(&mut h, &self.claims);
        h.0.update([0]);
        let _ = serde_json::to_writer(&mut h, &self.headers);
        h.0.finalize().into()
    }

    /// The input document.
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "bucket": self.bucket,
            "key": self.key,
            "path": self.path,
            "client_ip": self.client_ip.map(|ip| ip.to_string()),
            "claims": *self.claims,
            "headers": self.headers,
        })
    }
}
