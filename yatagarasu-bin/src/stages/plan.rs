//! The preconditions and range-plan stage: reads `If-*` and `Range` once, and decides, from an
//! object's metadata, what to send: 304, 412, 416, the whole object, or one byte range. Every object
//! response (cached or not, GET or HEAD) is decided here.

use http::header::{self, HeaderMap, HeaderName};
use yatagarasu_core::{
    Error, ErrorKind, ObjectMeta, Precondition, Preconditions, RangeHeader, RangeResolution,
    coalesce_ranges,
};

/// What a request asks about an object, parsed from its headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestPlan {
    conditions: Preconditions,
    /// A well-formed `Range` header (malformed ones are ignored, RFC 9110 14.2).
    range: Option<RangeHeader>,
}

/// What to send, given the object's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// 304: the client's copy is current.
    NotModified,
    /// The whole object (no Range, a Range that does not apply, or ranges that do not merge into one).
    Whole,
    /// One contiguous byte range, inclusive.
    Bytes(u64, u64),
}

impl RequestPlan {
    /// Read the request's conditional and Range headers.
    pub(crate) fn from_headers(h: &HeaderMap) -> Self {
        Self {
            conditions: preconditions(h),
            range: h
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| RangeHeader::parse(v).ok()),
        }
    }

    /// Whether the answer depends on the object's metadata (a condition or a range): such a GET
    /// needs the metadata before it can start a body.
    pub(crate) fn needs_metadata(&self) -> bool {
        self.range.is_some() || !self.conditions.is_empty()
    }

    /// Decide a GET: 412 and 416 come back as errors (`key` for their context).
    pub(crate) fn decide(&self, key: &str, meta: &ObjectMeta) -> Result<Decision, Error> {
        if self.decide_conditions(key, meta)? == Decision::NotModified {
            return Ok(Decision::NotModified);
        }
        let Some(range) = self
            .range
            .as_ref()
            .filter(|_| self.conditions.range_applies(&meta.validators()))
        else {
            return Ok(Decision::Whole);
        };
        match range.resolve(meta.size) {
            RangeResolution::Full => Ok(Decision::Whole),
            RangeResolution::Unsatisfiable => Err(Error::new(
                ErrorKind::InvalidRange,
                format!(
                    "no requested range overlaps the object's {} bytes",
                    meta.size
                ),
            )
            .with_key(key)
            .with_object_size(meta.size)),
            // Several ranges are served as one 206 when they merge into one contiguous range, else
            // as the whole object with 200 (RFC 9110 14.2 lets a server ignore a Range header).
            RangeResolution::Ranges(ranges) => match coalesce_ranges(&ranges).as_slice() {
                [only] => Ok(Decision::Bytes(only.start, only.end)),
                _ => Ok(Decision::Whole),
            },
        }
    }

    /// Decide a HEAD (or the conditions of a GET): 304, 412 as an error, or go ahead (`Whole`).
    pub(crate) fn decide_conditions(
        &self,
        key: &str,
        meta: &ObjectMeta,
    ) -> Result<Decision, Error> {
        match self.conditions.evaluate(&meta.validators(), true) {
            Precondition::NotModified => Ok(Decision::NotModified),
            Precondition::Failed => Err(Error::new(
                ErrorKind::PreconditionFailed,
                "a precondition (If-Match / If-Unmodified-Since) did not hold",
            )
            .with_key(key)),
            Precondition::Proceed => Ok(Decision::Whole),
        }
    }
}

fn preconditions(h: &HeaderMap) -> Preconditions {
    let joined = |name: HeaderName| -> Option<String> {
        let values: Vec<&str> = h
            .get_all(&name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let mut p = Preconditions::default();
    if let Some(v) = joined(header::IF_MATCH) {
        p.set_if_match(&v);
    }
    if let Some(v) = joined(header::IF_NONE_MATCH) {
        p.set_if_none_match(&v);
    }
    if let Some(v) = h
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
    {
        p.set_if_modified_since(v);
    }
    if let Some(v) = h
        .get(header::IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
    {
        p.set_if_unmodified_since(v);
    }
    if h.contains_key(header::RANGE)
        && let Some(v) = h.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
    {
        p.set_if_range(v);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use yatagarasu_core::EntityTag;

    fn plan(pairs: &[(&'static str, &str)]) -> RequestPlan {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, v.parse().unwrap());
        }
        RequestPlan::from_headers(&h)
    }

    fn meta() -> ObjectMeta {
        let mut m = ObjectMeta::with_size(100);
        m.etag = EntityTag::parse("\"v1\"");
        m
    }

    #[test]
    fn decisions() {
        let m = meta();
        assert_eq!(plan(&[]).decide("k", &m).unwrap(), Decision::Whole);
        assert!(!plan(&[]).needs_metadata());
        assert_eq!(
            plan(&[("range", "bytes=10-19")]).decide("k", &m).unwrap(),
            Decision::Bytes(10, 19)
        );
        assert_eq!(
            plan(&[("range", "bytes=0-9,10-19")])
                .decide("k", &m)
                .unwrap(),
            Decision::Bytes(0, 19)
        );
        assert_eq!(
            plan(&[("range", "bytes=0-9,50-59")])
                .decide("k", &m)
                .unwrap(),
            Decision::Whole
        );
        assert_eq!(
            plan(&[("range", "bytes=x")]).decide("k", &m).unwrap(),
            Decision::Whole
        );
        let e = plan(&[("range", "bytes=500-")])
            .decide("k", &m)
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.context().object_size),
            (ErrorKind::InvalidRange, Some(100))
        );
        assert_eq!(
            plan(&[("if-none-match", "\"v1\"")])
                .decide("k", &m)
                .unwrap(),
            Decision::NotModified
        );
        let e = plan(&[("if-match", "\"v2\"")]).decide("k", &m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
        // If-Range that does not match: the whole object.
        let p = plan(&[("range", "bytes=0-0"), ("if-range", "\"v0\"")]);
        assert!(p.needs_metadata());
        assert_eq!(p.decide("k", &m).unwrap(), Decision::Whole);
        // HEAD ignores Range.
        assert_eq!(
            plan(&[("range", "bytes=500-")])
                .decide_conditions("k", &m)
                .unwrap(),
            Decision::Whole
        );
    }
}
