//! `Range` and `Content-Range` (RFC 9110 section 14).

use std::fmt;

/// The most range-specs a `Range` header may carry before it is ignored as abusive (RFC 9110 14.2
/// lets a server ignore a Range header with many small or overlapping ranges).
pub const MAX_RANGES: usize = 64;

/// One `range-spec` of a `bytes` range set, as the client wrote it (RFC 9110 14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` or `first-` (`last` absent).
    Int {
        /// First byte position.
        first: u64,
        /// Last byte position, inclusive, if given.
        last: Option<u64>,
    },
    /// `-N`: the last N bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The bytes this spec selects of a representation of `len` bytes, clamped to it; `None` when
    /// it selects none (a first byte at or past the end, `-0`, or any spec when `len` is 0).
    ///
    /// ```
    /// use yatagarasu_core::{ByteRange, RangeSpec};
    ///
    /// assert_eq!(RangeSpec::Suffix(10).resolve(100), Some(ByteRange::new(90, 99)));
    /// assert_eq!(RangeSpec::Int { first: 50, last: Some(500) }.resolve(100), Some(ByteRange::new(50, 99)));
    /// assert_eq!(RangeSpec::Int { first: 100, last: None }.resolve(100), None);
    /// ```
    pub fn resolve(&self, len: u64) -> Option<ByteRange> {
        if len == 0 {
            return None;
        }
        match *self {
            Self::Int { first, last } => (first < len).then(|| ByteRange {
                start: first,
                end: last.map_or(len - 1, |l| l.min(len - 1)),
            }),
            Self::Suffix(0) => None,
            Self::Suffix(n) => Some(ByteRange {
                start: len.saturating_sub(n),
                end: len - 1,
            }),
        }
    }
}

/// Why a `Range` header is ignored. RFC 9110 14.2: a server ignores a Range header it does not
/// understand or that is syntactically invalid, and serves the whole representation with 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeParseError {
    /// The range unit is not `bytes`.
    UnknownUnit,
    /// The header or one of its range-specs does not follow the grammar (including `first > last`).
    Malformed,
    /// More than [`MAX_RANGES`] range-specs.
    TooManyRanges,
}

impl fmt::Display for RangeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownUnit => "range unit is not bytes",
            Self::Malformed => "malformed Range header",
            Self::TooManyRanges => "too many ranges in Range header",
        })
    }
}

impl std::error::Error for RangeParseError {}

/// A parsed `Range: bytes=...` header.
///
/// ```
/// use yatagarasu_core::{ByteRange, RangeHeader, RangeResolution};
///
/// let range = RangeHeader::parse("bytes=0-99, -10").unwrap();
/// assert_eq!(
///     range.resolve(1000),
///     RangeResolution::Ranges(vec![ByteRange::new(0, 99), ByteRange::new(990, 999)])
/// );
/// assert_eq!(RangeHeader::parse("bytes=5000-").unwrap().resolve(1000), RangeResolution::Unsatisfiable);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeHeader {
    specs: Vec<RangeSpec>,
}

/// An inclusive byte range resolved against a known length: `start..=end`, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end: u64,
}

/// What a server does with a `Range` header for a representation of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeResolution {
    /// Serve the whole representation with 200 (the header does not apply).
    Full,
    /// Serve these ranges with 206, in the order the client asked for them.
    Ranges(Vec<ByteRange>),
    /// No range overlaps the representation: 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

impl ByteRange {
    /// The range `start..=end`.
    ///
    /// # Panics
    /// If `end < start` (a programming error: ranges from [`RangeHeader::resolve`] are always valid).
    pub const fn new(start: u64, end: u64) -> Self {
        assert!(end >= start, "ByteRange end before start");
        Self { start, end }
    }

    /// Number of bytes in the range (at least 1).
    pub const fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a resolved range holds at least one byte. Present for API symmetry with `len`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The HTTP `Range` header value that asks for exactly this range.
    pub fn to_header_value(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
}

impl RangeHeader {
    /// Parse a `Range` header value. Unit names are case-insensitive; empty list elements and optional
    /// whitespace around commas are accepted (RFC 9110 5.6.1).
    pub fn parse(value: &str) -> Result<Self, RangeParseError> {
        let (unit, set) = value.split_once('=').ok_or(RangeParseError::Malformed)?;
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            // A token that is not "bytes" is a unit we do not know; garbage is malformed.
            return if is_token(unit.trim()) {
                Err(RangeParseError::UnknownUnit)
            } else {
                Err(RangeParseError::Malformed)
            };
        }
        let mut specs = Vec::new();
        for element in set.split(',') {
            let element = element.trim_matches(|c| c == ' ' || c == '\t');
            if element.is_empty() {
                continue;
            }
            if specs.len() == MAX_RANGES {
                return Err(RangeParseError::TooManyRanges);
            }
            specs.push(parse_spec(element)?);
        }
        if specs.is_empty() {
            return Err(RangeParseError::Malformed);
        }
        Ok(Self { specs })
    }

    /// The range-specs as written.
    pub fn specs(&self) -> &[RangeSpec] {
        &self.specs
    }

    /// Resolve against a representation of `len` bytes (RFC 9110 14.1.2 and 15.5.17).
    ///
    /// Unsatisfiable specs are dropped; if none is left the result is
    /// [`RangeResolution::Unsatisfiable`]. A zero-length representation has no byte to address: a
    /// non-zero suffix range selects the whole (empty) representation, so it resolves to
    /// [`RangeResolution::Full`]; anything else is unsatisfiable.
    pub fn resolve(&self, len: u64) -> RangeResolution {
        if len == 0 {
            let any_suffix = self
                .specs
                .iter()
                .any(|s| matches!(s, RangeSpec::Suffix(n) if *n > 0));
            return if any_suffix {
                RangeResolution::Full
            } else {
                RangeResolution::Unsatisfiable
            };
        }
        let ranges: Vec<ByteRange> = self.specs.iter().filter_map(|s| s.resolve(len)).collect();
        if ranges.is_empty() {
            RangeResolution::Unsatisfiable
        } else {
            RangeResolution::Ranges(ranges)
        }
    }
}

/// Merge overlapping or adjacent ranges into as few as possible, sorted by start. Useful before
/// answering a multi-range request, or to decide that a set of ranges is really one.
pub fn coalesce_ranges(ranges: &[ByteRange]) -> Vec<ByteRange> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn parse_spec(element: &str) -> Result<RangeSpec, RangeParseError> {
    let (first, last) = element.split_once('-').ok_or(RangeParseError::Malformed)?;
    if first.is_empty() {
        return Ok(RangeSpec::Suffix(parse_digits(last)?));
    }
    let first = parse_digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_digits(last)?)
    };
    if let Some(l) = last
        && l < first
    {
        return Err(RangeParseError::Malformed);
    }
    Ok(RangeSpec::Int { first, last })
}

/// 1*DIGIT; values beyond u64 saturate (they are still syntactically valid, merely huge).
fn parse_digits(s: &str) -> Result<u64, RangeParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeParseError::Malformed);
    }
    Ok(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A `Content-Range` value (RFC 9110 14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes start-end/complete` where `complete` is `None` for `*` (unknown length).
    Bytes {
        /// The range sent.
        range: ByteRange,
        /// The full length, if known.
        complete: Option<u64>,
    },
    /// `bytes */complete`: sent with 416.
    Unsatisfied {
        /// The full length.
        complete: u64,
    },
}

impl ContentRange {
    /// Parse a `Content-Range` value such as `bytes 0-99/1234`, `bytes 0-99/*` or `bytes */1234`.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim();
        let (unit, rest) = rest.split_once(' ')?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return None;
        }
        let (range, complete) = rest.trim_start().split_once('/')?;
        if range == "*" {
            return Some(Self::Unsatisfied {
                complete: parse_digits(complete).ok()?,
            });
        }
        let complete = if complete == "*" {
            None
        } else {
            Some(parse_digits(complete).ok()?)
        };
        let (s, e) = range.split_once('-')?;
        let (start, end) = (parse_digits(s).ok()?, parse_digits(e).ok()?);
        if end < start || complete.is_some_and(|c| end >= c) {
            return None;
        }
        Some(Self::Bytes {
            range: ByteRange { start, end },
            complete,
        })
    }
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes {
                range,
                complete: Some(c),
            } => write!(f, "bytes {}-{}/{}", range.start, range.end, c),
            Self::Bytes {
                range,
                complete: None,
            } => write!(f, "bytes {}-{}/*", range.start, range.end),
            Self::Unsatisfied { complete } => write!(f, "bytes */{complete}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> ByteRange {
        ByteRange::new(s, e)
    }

    fn resolve(h: &str, len: u64) -> RangeResolution {
        RangeHeader::parse(h).unwrap().resolve(len)
    }

    // RFC 9110 14.1.2 examples, for a representation of 10000 bytes.
    #[test]
    fn rfc9110_14_1_2_examples() {
        assert_eq!(
            resolve("bytes=0-499", 10000),
            RangeResolution::Ranges(vec![r(0, 499)])
        );
        assert_eq!(
            resolve("bytes=500-999", 10000),
            RangeResolution::Ranges(vec![r(500, 999)])
        );
        assert_eq!(
            resolve("bytes=-500", 10000),
            RangeResolution::Ranges(vec![r(9500, 9999)])
        );
        assert_eq!(
            resolve("bytes=9500-", 10000),
            RangeResolution::Ranges(vec![r(9500, 9999)])
        );
        assert_eq!(
            resolve("bytes=0-0,-1", 10000),
            RangeResolution::Ranges(vec![r(0, 0), r(9999, 9999)])
        );
        assert_eq!(
            resolve("bytes= 0-999, 4500-5499, -1000", 10000),
            RangeResolution::Ranges(vec![r(0, 999), r(4500, 5499), r(9000, 9999)])
        );
        assert_eq!(
            resolve("bytes=500-600,601-999", 10000),
            RangeResolution::Ranges(vec![r(500, 600), r(601, 999)])
        );
    }

    // 14.1.2: last-pos beyond the end is clamped; a suffix longer than the representation selects it all.
    #[test]
    fn clamps_last_pos_and_long_suffix() {
        assert_eq!(
            resolve("bytes=0-99999", 100),
            RangeResolution::Ranges(vec![r(0, 99)])
        );
        assert_eq!(
            resolve("bytes=-1000", 100),
            RangeResolution::Ranges(vec![r(0, 99)])
        );
        assert_eq!(
            resolve("bytes=0-18446744073709551616000", 100),
            RangeResolution::Ranges(vec![r(0, 99)])
        );
    }

    // 14.1.1: a range is satisfiable if first-pos < length, or a suffix with non-zero length.
    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(resolve("bytes=100-", 100), RangeResolution::Unsatisfiable);
        assert_eq!(
            resolve("bytes=100-200", 100),
            RangeResolution::Unsatisfiable
        );
        assert_eq!(resolve("bytes=-0", 100), RangeResolution::Unsatisfiable);
        assert_eq!(resolve("bytes=0-10", 0), RangeResolution::Unsatisfiable);
        // One satisfiable spec among unsatisfiable ones keeps the satisfiable one.
        assert_eq!(
            resolve("bytes=200-300,5-6", 100),
            RangeResolution::Ranges(vec![r(5, 6)])
        );
    }

    #[test]
    fn zero_length_suffix_serves_whole() {
        assert_eq!(resolve("bytes=-5", 0), RangeResolution::Full);
    }

    // 14.2: syntactically invalid range sets and unknown units are ignored (caller serves 200).
    #[test]
    fn malformed_headers_are_rejected() {
        for bad in [
            "bytes=",
            "bytes",
            "bytes=abc",
            "bytes=5-4",
            "bytes=1-2-3",
            "bytes=--5",
            "bytes=-",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=0x10-",
            "=0-1",
            "bytes=0-1,a",
            "",
        ] {
            assert_eq!(
                RangeHeader::parse(bad),
                Err(RangeParseError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            RangeHeader::parse("items=0-1"),
            Err(RangeParseError::UnknownUnit)
        );
        assert_eq!(RangeHeader::parse("Bytes=0-1").unwrap().specs().len(), 1);
    }

    #[test]
    fn tolerates_empty_list_elements() {
        assert_eq!(
            resolve("bytes=,0-1,,2-3,", 10),
            RangeResolution::Ranges(vec![r(0, 1), r(2, 3)])
        );
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        let many = (0..=MAX_RANGES)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            RangeHeader::parse(&format!("bytes={many}")),
            Err(RangeParseError::TooManyRanges)
        );
        let ok = (0..MAX_RANGES)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(RangeHeader::parse(&format!("bytes={ok}")).is_ok());
    }

    #[test]
    fn coalesce_merges_overlapping_and_adjacent() {
        assert_eq!(
            coalesce_ranges(&[r(10, 20), r(0, 5), r(6, 8), r(15, 30), r(40, 41)]),
            vec![r(0, 8), r(10, 30), r(40, 41)]
        );
    }

    // 14.4 Content-Range forms.
    #[test]
    fn content_range_round_trips() {
        for s in [
            "bytes 0-499/1234",
            "bytes 42-42/43",
            "bytes 0-9/*",
            "bytes */1234",
        ] {
            assert_eq!(ContentRange::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(ContentRange::parse("bytes 5-4/10"), None);
        assert_eq!(ContentRange::parse("bytes 0-10/10"), None);
        assert_eq!(ContentRange::parse("items 0-1/2"), None);
        assert_eq!(ContentRange::parse("bytes 0-1"), None);
    }

    #[test]
    fn byte_range_header_value_and_len() {
        assert_eq!(r(5, 9).len(), 5);
        assert_eq!(r(5, 9).to_header_value(), "bytes=5-9");
    }
}
