//! One audit record and its JSON line.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

/// What the audit log says about one request (see [`AuditLog`](super::AuditLog)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AuditRecord {
    /// When the request arrived, RFC 3339 in UTC with milliseconds.
    #[serde(serialize_with = "rfc3339")]
    pub(crate) time: SystemTime,
    pub(crate) request_id: String,
    /// The client's address as the IP filter sees it (forwarded only through trusted proxies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_ip: Option<IpAddr>,
    /// The token's `sub` claim, when the bucket checks tokens and the token was valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) principal: Option<String>,
    #[serde(serialize_with = "method")]
    pub(crate) method: http::Method,
    pub(crate) path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    pub(crate) status: u16,
    /// Body bytes handed to the connection.
    pub(crate) bytes: u64,
    /// From arrival to the end of the body, in microseconds.
    pub(crate) duration_us: u64,
    /// `hit`, `miss`, `stale`, ... (the `x-cache` value, lower case); absent when no object was served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cache: Option<&'static str>,
    /// `complete`, `aborted` or `client_gone`.
    pub(crate) outcome: &'static str,
    /// Why the proxy refused or failed the request (a denial's reason included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<AuditError>,
}

/// The error a refused or failed request was answered with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AuditError {
    /// The error's code, as in the JSON error body (`AccessDenied`, `PolicyDenied`, `IpNotAllowed`, ...).
    pub(crate) code: String,
    /// Its message.
    pub(crate) message: String,
}

impl AuditRecord {
    /// The record as one line of JSON, newline included.
    pub(crate) fn to_json_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|e| {
            // Serializing these plain fields cannot fail; say so in the log rather than panic.
            format!(
                r#"{{"request_id":{:?},"audit_error":{:?}}}"#,
                self.request_id,
                e.to_string()
            )
            .into_bytes()
        });
        line.push(b'\n');
        line
    }
}

fn method<S: serde::Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::utc::rfc3339_millis(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn a_record_is_one_json_line_without_absent_fields() {
        let r = AuditRecord {
            time: at(1_795_737_600, 250),
            request_id: "req-1".into(),
            client_ip: Some("10.0.0.7".parse().unwrap()),
            principal: None,
            method: http::Method::GET,
            path: "/media/a\nb.txt".into(),
            bucket: Some("media".into()),
            key: Some("a\nb.txt".into()),
            status: 403,
            bytes: 120,
            duration_us: 900,
            cache: None,
            outcome: "complete",
            error: Some(AuditError {
                code: "PolicyDenied".into(),
                message: "the policy denied this request".into(),
            }),
        };
        let line = r.to_json_line();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["time"], "2026-11-27T00:00:00.250Z");
        assert_eq!(v["client_ip"], "10.0.0.7");
        assert_eq!(v["key"], "a\nb.txt");
        assert_eq!(v["error"]["code"], "PolicyDenied");
        assert!(v.get("principal").is_none() && v.get("cache").is_none());
    }
}
