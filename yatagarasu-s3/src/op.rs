//! One S3 operation as the client sends it: name, method, key, query and headers.

use http::Method;
use yatagarasu_core::{Error, ErrorKind};

/// An operation to send.
pub(crate) struct Op<'a> {
    pub(crate) name: &'static str,
    pub(crate) method: Method,
    pub(crate) key: Option<&'a str>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Op<'_> {
    pub(crate) fn error(&self, bucket: &str, kind: ErrorKind, message: impl Into<String>) -> Error {
        let e = Error::new(kind, message)
            .with_bucket(bucket)
            .with_operation(self.name);
        match self.key {
            Some(k) => e.with_key(k),
            None => e,
        }
    }
}
