//! Entity tags (RFC 9110 section 8.8.3).

use std::fmt;

/// An entity tag: `"opaque"` (strong) or `W/"opaque"` (weak).
///
/// ```
/// use yatagarasu_core::EntityTag;
///
/// let strong = EntityTag::parse(r#""abc""#).unwrap();
/// let weak = EntityTag::parse(r#"W/"abc""#).unwrap();
/// assert!(strong.weak_eq(&weak));
/// assert!(!strong.strong_eq(&weak));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    tag: String,
}

impl EntityTag {
    /// A strong tag with the given opaque value (without quotes).
    ///
    /// Returns `None` if the value holds a character an entity tag cannot carry (`"`, control characters).
    pub fn strong(opaque: impl Into<String>) -> Option<Self> {
        let tag = opaque.into();
        tag.bytes()
            .all(is_etagc)
            .then_some(Self { weak: false, tag })
    }

    /// Parse one entity tag exactly (no surrounding whitespace).
    pub fn parse(s: &str) -> Option<Self> {
        let (weak, rest) = match s.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
        inner.bytes().all(is_etagc).then(|| Self {
            weak,
            tag: inner.to_owned(),
        })
    }

    /// Parse an ETag as origins send it, accepting the unquoted form some S3-compatible stores use.
    pub fn parse_lenient(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::parse(s).or_else(|| Self::strong(s).filter(|t| !t.tag.is_empty()))
    }

    /// Whether this is a weak tag.
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque value, without quotes or `W/`.
    pub fn opaque(&self) -> &str {
        &self.tag
    }

    /// Strong comparison: both strong and the same opaque value.
    pub fn strong_eq(&self, other: &Self) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }

    /// Weak comparison: the same opaque value, weakness ignored.
    pub fn weak_eq(&self, other: &Self) -> bool {
        self.tag == other.tag
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            write!(f, "W/\"{}\"", self.tag)
        } else {
            write!(f, "\"{}\"", self.tag)
        }
    }
}

/// etagc = %x21 / %x23-7E / obs-text
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// The value of `If-Match` or `If-None-Match`: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityTagList {
    /// `*`: matches any current representation.
    Any,
    /// A list of tags.
    Tags(Vec<EntityTag>),
}

impl EntityTagList {
    /// Parse `*` or `1#entity-tag`, tolerating empty elements and whitespace around commas. Returns
    /// `None` when any element is not an entity tag: a malformed condition is then ignored as a whole.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value == "*" {
            return Some(Self::Any);
        }
        let mut tags = Vec::new();
        let mut rest = value;
        // Split on commas outside quotes: opaque tags may contain commas.
        while !rest.is_empty() {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let start_quote = if rest.starts_with("W/") { 2 } else { 0 };
            if !rest[start_quote..].starts_with('"') {
                return None;
            }
            let close = rest[start_quote + 1..].find('"')? + start_quote + 1;
            tags.push(EntityTag::parse(&rest[..=close])?);
            rest = rest[close + 1..].trim_start_matches([' ', '\t']);
            if !rest.is_empty() && !rest.starts_with(',') {
                return None;
            }
        }
        (!tags.is_empty()).then_some(Self::Tags(tags))
    }

    /// Whether any tag matches `current` by strong comparison (`If-Match`); `*` matches anything.
    pub fn matches_strong(&self, current: &EntityTag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t.strong_eq(current)),
        }
    }

    /// Whether any tag matches `current` by weak comparison (`If-None-Match`); `*` matches anything.
    pub fn matches_weak(&self, current: &EntityTag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t.weak_eq(current)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9110 8.8.3.2 comparison table.
    #[test]
    fn rfc9110_comparison_table() {
        let w1 = EntityTag::parse("W/\"1\"").unwrap();
        let w2 = EntityTag::parse("W/\"2\"").unwrap();
        let s1 = EntityTag::parse("\"1\"").unwrap();
        assert!(!w1.strong_eq(&w1));
        assert!(w1.weak_eq(&w1));
        assert!(!w1.strong_eq(&w2));
        assert!(!w1.weak_eq(&w2));
        assert!(!w1.strong_eq(&s1));
        assert!(w1.weak_eq(&s1));
        assert!(s1.strong_eq(&s1));
        assert!(s1.weak_eq(&s1));
    }

    #[test]
    fn parses_and_renders() {
        let t = EntityTag::parse("\"d41d8cd98f00b204e9800998ecf8427e\"").unwrap();
        assert!(!t.is_weak());
        assert_eq!(t.opaque(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(t.to_string(), "\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert_eq!(EntityTag::parse("W/\"x\"").unwrap().to_string(), "W/\"x\"");
        assert_eq!(EntityTag::parse("\"\"").unwrap().opaque(), "");
        for bad in [
            "abc",
            "\"abc",
            "abc\"",
            "w/\"a\"",
            "\"a\"b\"",
            "\"a\u{7}\"",
            "W/abc",
        ] {
            assert_eq!(EntityTag::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lenient_parse_accepts_unquoted_origin_etags() {
        assert_eq!(
            EntityTag::parse_lenient("abc-12").unwrap().to_string(),
            "\"abc-12\""
        );
        assert_eq!(
            EntityTag::parse_lenient(" \"abc\" ").unwrap().opaque(),
            "abc"
        );
        assert_eq!(EntityTag::parse_lenient(""), None);
    }

    #[test]
    fn lists() {
        assert_eq!(EntityTagList::parse(" * "), Some(EntityTagList::Any));
        let l = EntityTagList::parse("\"a\", W/\"b\" ,,\"c,d\"").unwrap();
        let EntityTagList::Tags(tags) = &l else {
            panic!()
        };
        assert_eq!(tags.len(), 3);
        assert_eq!(tags[2].opaque(), "c,d");
        assert!(l.matches_weak(&EntityTag::strong("b").unwrap()));
        assert!(!l.matches_strong(&EntityTag::strong("b").unwrap()));
        assert!(l.matches_strong(&EntityTag::strong("a").unwrap()));
        for bad in [
            "",
            "a",
            "\"a\" \"b\"",
            "\"a\", b",
            "*, \"a\"",
            "\"unterminated",
        ] {
            assert_eq!(EntityTagList::parse(bad), None, "{bad:?}");
        }
    }
}
