//! Where a request's token is found.

use std::borrow::Cow;

use http::HeaderMap;
use yatagarasu_core::Error;

use super::unauthenticated;

/// One place a token may be: tried in order, the first present one is used, and a token found in
/// two places is refused (which one the client meant is ambiguous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A header, with an optional prefix before the token (e.g. `Token `).
    Header {
        /// The header's name.
        name: http::HeaderName,
        /// Text before the token, stripped.
        prefix: Option<String>,
    },
    /// A query parameter (never logged: the access log writes the path only).
    Query {
        /// The parameter's name.
        name: String,
    },
}

impl TokenSource {
    fn find<'r>(&self, headers: &'r HeaderMap, query: Option<&'r str>) -> Option<Cow<'r, str>> {
        match self {
            Self::Bearer => headers
                .get(http::header::AUTHORIZATION)?
                .to_str()
                .ok()?
                .strip_prefix("Bearer ")
                .map(|t| Cow::Borrowed(t.trim())),
            Self::Header { name, prefix } => {
                let v = headers.get(name)?.to_str().ok()?;
                match prefix {
                    Some(p) => v.strip_prefix(p.as_str()).map(|t| Cow::Borrowed(t.trim())),
                    None => Some(Cow::Borrowed(v.trim())),
                }
            }
            Self::Query { name } => url::form_urlencoded::parse(query?.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v),
        }
        .filter(|t| !t.is_empty())
    }
}

/// The request's token: from the first source that has one; refused when none has one, or when
/// two sources carry different tokens.
pub(super) fn find<'r>(
    sources: &[TokenSource],
    headers: &'r HeaderMap,
    query: Option<&'r str>,
) -> Result<Cow<'r, str>, Error> {
    let mut found: Option<Cow<'r, str>> = None;
    for s in sources {
        if let Some(t) = s.find(headers, query) {
            match &found {
                None => found = Some(t),
                Some(first) if *first == t => {}
                Some(_) => {
                    return Err(unauthenticated(
                        "InvalidToken",
                        "tokens in more than one place",
                    ));
                }
            }
        }
    }
    found.ok_or_else(|| unauthenticated("MissingToken", "a token is required"))
}
