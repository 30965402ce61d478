//! Conditional requests (RFC 9110 section 13): `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since` and `If-Range`, evaluated in the order of section 13.2.2.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::etag::{EntityTag, EntityTagList};

/// Parse an HTTP-date in any of the three formats RFC 9110 5.6.7 requires recipients to accept
/// (IMF-fixdate, obsolete RFC 850, asctime). `None` if it is none of them.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim()).ok()
}

/// Format a time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form senders must use.
pub fn format_http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// [`format_http_date`] into a fixed buffer (an IMF-fixdate is always 29 bytes): no allocation,
/// for header values built on every response.
pub fn http_date_bytes(time: SystemTime) -> [u8; 29] {
    use std::io::Write as _;
    let mut buf = [0u8; 29];
    // Cannot fail: the date is exactly 29 bytes.
    let _ = write!(&mut buf[..], "{}", httpdate::HttpDate::from(time));
    buf
}

/// Truncate to whole seconds: HTTP dates carry no finer resolution.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// The validators of the selected representation: what conditions are checked against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    /// The current entity tag, if the representation has one.
    pub etag: Option<&'a EntityTag>,
    /// The current modification time, if known.
    pub last_modified: Option<SystemTime>,
}

/// The validator in an `If-Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfRange {
    /// An entity tag (compared strongly).
    ETag(EntityTag),
    /// An HTTP-date (must equal Last-Modified exactly).
    Date(SystemTime),
    /// A value that is neither: the condition is false, so the Range is ignored.
    Invalid,
}

/// The outcome of evaluating preconditions (RFC 9110 13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Perform the request.
    Proceed,
    /// Answer 304 Not Modified with the validators.
    NotModified,
    /// Answer 412 Precondition Failed.
    Failed,
}

/// The conditional headers of a request, parsed. Invalid values are dropped as RFC 9110 requires
/// (a malformed date or tag list is ignored), except `If-Range`, where an unusable validator means the
/// Range is not honoured.
///
/// ```
/// use yatagarasu_core::{EntityTag, Precondition, Preconditions, Validators};
///
/// let etag = EntityTag::parse("\"v1\"").unwrap();
/// let current = Validators { etag: Some(&etag), last_modified: None };
/// let mut conditions = Preconditions::default();
/// conditions.set_if_none_match("\"v1\"");
/// assert_eq!(conditions.evaluate(&current, true), Precondition::NotModified);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// `If-Match`.
    pub if_match: Option<EntityTagList>,
    /// `If-None-Match`.
    pub if_none_match: Option<EntityTagList>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<SystemTime>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<SystemTime>,
    /// `If-Range`.
    pub if_range: Option<IfRange>,
}

impl Preconditions {
    /// Set `If-Match` from its header value (all field lines joined with commas).
    pub fn set_if_match(&mut self, value: &str) {
        self.if_match = EntityTagList::parse(value);
    }

    /// Set `If-None-Match` from its header value.
    pub fn set_if_none_match(&mut self, value: &str) {
        self.if_none_match = EntityTagList::parse(value);
    }

    /// Set `If-Modified-Since` from its header value.
    pub fn set_if_modified_since(&mut self, value: &str) {
        self.if_modified_since = parse_http_date(value);
    }

    /// Set `If-Unmodified-Since` from its header value.
    pub fn set_if_unmodified_since(&mut self, value: &str) {
        self.if_unmodified_since = parse_http_date(value);
    }

    /// Set `If-Range` from its header value.
    pub fn set_if_range(&mut self, value: &str) {
        let value = value.trim();
        self.if_range = Some(if value.starts_with('"') || value.starts_with("W/") {
            EntityTag::parse(value).map_or(IfRange::Invalid, IfRange::ETag)
        } else {
            parse_http_date(value).map_or(IfRange::Invalid, IfRange::Date)
        });
    }

    /// Whether any condition besides `If-Range` is present.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Evaluate `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` in the
    /// order of RFC 9110 13.2.2 against an existing representation. `get_or_head` says whether the
    /// method is GET or HEAD (304 is only for those; other methods get 412 where GET would get 304).
    pub fn evaluate(&self, current: &Validators<'_>, get_or_head: bool) -> Precondition {
        let last_modified = current.last_modified.map(whole_seconds);
        // Step 1: If-Match.
        if let Some(list) = &self.if_match {
            let ok = match current.etag {
                Some(etag) => list.matches_strong(etag),
                None => matches!(list, EntityTagList::Any),
            };
            if !ok {
                return Precondition::Failed;
            }
        } else if let (Some(since), Some(lm)) = (self.if_unmodified_since, last_modified) {
            // Step 2: If-Unmodified-Since, only without If-Match, only with a known Last-Modified.
            if lm > since {
                return Precondition::Failed;
            }
        }
        // Step 3: If-None-Match.
        if let Some(list) = &self.if_none_match {
            let matched = match current.etag {
                Some(etag) => list.matches_weak(etag),
                None => matches!(list, EntityTagList::Any),
            };
            if matched {
                return if get_or_head {
                    Precondition::NotModified
                } else {
                    Precondition::Failed
                };
            }
        } else if get_or_head
            && let (Some(since), Some(lm)) = (self.if_modified_since, last_modified)
        {
            // Step 4: If-Modified-Since, only for GET/HEAD without If-None-Match.
            if lm <= since {
                return Precondition::NotModified;
            }
        }
        Precondition::Proceed
    }

    /// Step 5 of RFC 9110 13.2.2: whether a `Range` header should be honoured. True without
    /// `If-Range`; with it, only when its validator matches the current one strongly (an entity tag by
    /// strong comparison, a date by exact equality with a known Last-Modified).
    pub fn range_applies(&self, current: &Validators<'_>) -> bool {
        match &self.if_range {
            None => true,
            Some(IfRange::ETag(tag)) => current.etag.is_some_and(|cur| tag.strong_eq(cur)),
            Some(IfRange::Date(date)) => current
                .last_modified
                .is_some_and(|lm| whole_seconds(lm) == *date),
            Some(IfRange::Invalid) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const T_BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const T_AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn lm() -> SystemTime {
        parse_http_date(T0).unwrap()
    }

    fn etag() -> EntityTag {
        EntityTag::parse("\"v1\"").unwrap()
    }

    fn eval(set: impl FnOnce(&mut Preconditions), get_or_head: bool) -> Precondition {
        let tag = etag();
        let v = Validators {
            etag: Some(&tag),
            last_modified: Some(lm() + Duration::from_millis(900)),
        };
        let mut p = Preconditions::default();
        set(&mut p);
        p.evaluate(&v, get_or_head)
    }

    // RFC 9110 5.6.7: all three date formats.
    #[test]
    fn http_date_formats() {
        let a = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let b = parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").unwrap();
        let c = parse_http_date("Sun Nov  6 08:49:37 1994").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(format_http_date(a), T0);
        assert_eq!(&http_date_bytes(a)[..], T0.as_bytes());
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    // 13.1.1 If-Match uses strong comparison; * matches an existing representation.
    #[test]
    fn if_match() {
        assert_eq!(
            eval(|p| p.set_if_match("\"v1\""), true),
            Precondition::Proceed
        );
        assert_eq!(
            eval(|p| p.set_if_match("\"v0\", \"v1\""), true),
            Precondition::Proceed
        );
        assert_eq!(eval(|p| p.set_if_match("*"), true), Precondition::Proceed);
        assert_eq!(
            eval(|p| p.set_if_match("\"v2\""), true),
            Precondition::Failed
        );
        assert_eq!(
            eval(|p| p.set_if_match("W/\"v1\""), true),
            Precondition::Failed
        );
    }

    // 13.1.2 If-None-Match uses weak comparison; GET/HEAD get 304, other methods 412.
    #[test]
    fn if_none_match() {
        assert_eq!(
            eval(|p| p.set_if_none_match("\"v1\""), true),
            Precondition::NotModified
        );
        assert_eq!(
            eval(|p| p.set_if_none_match("W/\"v1\""), true),
            Precondition::NotModified
        );
        assert_eq!(
            eval(|p| p.set_if_none_match("*"), true),
            Precondition::NotModified
        );
        assert_eq!(
            eval(|p| p.set_if_none_match("\"v2\""), true),
            Precondition::Proceed
        );
        assert_eq!(
            eval(|p| p.set_if_none_match("\"v1\""), false),
            Precondition::Failed
        );
    }

    // 13.1.3 If-Modified-Since, at whole-second resolution.
    #[test]
    fn if_modified_since() {
        assert_eq!(
            eval(|p| p.set_if_modified_since(T0), true),
            Precondition::NotModified
        );
        assert_eq!(
            eval(|p| p.set_if_modified_since(T_AFTER), true),
            Precondition::NotModified
        );
        assert_eq!(
            eval(|p| p.set_if_modified_since(T_BEFORE), true),
            Precondition::Proceed
        );
        // Ignored for methods other than GET/HEAD, and when the date is invalid.
        assert_eq!(
            eval(|p| p.set_if_modified_since(T0), false),
            Precondition::Proceed
        );
        assert_eq!(
            eval(|p| p.set_if_modified_since("garbage"), true),
            Precondition::Proceed
        );
    }

    // 13.1.4 If-Unmodified-Since.
    #[test]
    fn if_unmodified_since() {
        assert_eq!(
            eval(|p| p.set_if_unmodified_since(T0), true),
            Precondition::Proceed
        );
        assert_eq!(
            eval(|p| p.set_if_unmodified_since(T_AFTER), true),
            Precondition::Proceed
        );
        assert_eq!(
            eval(|p| p.set_if_unmodified_since(T_BEFORE), true),
            Precondition::Failed
        );
        assert_eq!(
            eval(|p| p.set_if_unmodified_since("nope"), true),
            Precondition::Proceed
        );
    }

    // 13.2.2 order: If-Match beats If-Unmodified-Since; If-None-Match beats If-Modified-Since.
    #[test]
    fn evaluation_order() {
        // If-Match true: If-Unmodified-Since (false) is not evaluated.
        assert_eq!(
            eval(
                |p| {
                    p.set_if_match("\"v1\"");
                    p.set_if_unmodified_since(T_BEFORE);
                },
                true
            ),
            Precondition::Proceed
        );
        // If-None-Match false (no match): If-Modified-Since (would be 304) is ignored.
        assert_eq!(
            eval(
                |p| {
                    p.set_if_none_match("\"other\"");
                    p.set_if_modified_since(T_AFTER);
                },
                true
            ),
            Precondition::Proceed
        );
        // 412 from If-Match wins over 304 from If-None-Match.
        assert_eq!(
            eval(
                |p| {
                    p.set_if_match("\"nope\"");
                    p.set_if_none_match("\"v1\"");
                },
                true
            ),
            Precondition::Failed
        );
        // A failed If-Unmodified-Since wins over a matching If-None-Match.
        assert_eq!(
            eval(
                |p| {
                    p.set_if_unmodified_since(T_BEFORE);
                    p.set_if_none_match("\"v1\"");
                },
                true
            ),
            Precondition::Failed
        );
    }

    #[test]
    fn without_validators_conditions_degrade_safely() {
        let v = Validators::default();
        let mut p = Preconditions::default();
        p.set_if_match("\"v1\"");
        assert_eq!(p.evaluate(&v, true), Precondition::Failed);
        let mut p = Preconditions::default();
        p.set_if_match("*");
        p.set_if_modified_since(T0);
        assert_eq!(p.evaluate(&v, true), Precondition::Proceed);
    }

    // 13.1.5 If-Range.
    #[test]
    fn if_range() {
        let tag = etag();
        let v = Validators {
            etag: Some(&tag),
            last_modified: Some(lm()),
        };
        let applies = |value: &str| {
            let mut p = Preconditions::default();
            p.set_if_range(value);
            p.range_applies(&v)
        };
        assert!(Preconditions::default().range_applies(&v));
        assert!(applies("\"v1\""));
        assert!(!applies("\"v2\""));
        assert!(!applies("W/\"v1\""), "weak tags never match If-Range");
        assert!(applies(T0));
        assert!(!applies(T_AFTER), "If-Range dates must match exactly");
        assert!(!applies("not a validator"));
    }

    #[test]
    fn malformed_lists_are_ignored() {
        assert_eq!(eval(|p| p.set_if_match("v2"), true), Precondition::Proceed);
        assert_eq!(
            eval(|p| p.set_if_none_match("v1"), true),
            Precondition::Proceed
        );
    }
}
