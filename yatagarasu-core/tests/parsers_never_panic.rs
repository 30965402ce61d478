//! The header parsers never panic and keep their invariants on arbitrary input: a deterministic
//! random sweep that runs in CI (the cargo-fuzz targets in `fuzz/` explore further).

use std::time::{Duration, UNIX_EPOCH};

use yatagarasu_core::{
    ContentRange, EntityTag, EntityTagList, Preconditions, RangeHeader, RangeResolution,
    Validators, coalesce_ranges,
};

const ALPHABET: &[u8] = b"bytes=0123456789-,, \t*W/\"\"abcxyzGMT:;\xc3\xa9\x00\xff";
const SEEDS: &[&str] = &[
    "bytes=0-0",
    "bytes=-1",
    "bytes=5-",
    "bytes=0-1,2-3,-4",
    "W/\"a\", \"b\"",
    "*",
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994",
    "bytes 0-9/10",
    "bytes */10",
];

fn random_input(rng: &mut fastrand::Rng) -> String {
    let mut bytes: Vec<u8> = if rng.bool() {
        SEEDS[rng.usize(..SEEDS.len())].as_bytes().to_vec()
    } else {
        Vec::new()
    };
    for _ in 0..rng.usize(0..12) {
        let pos = rng.usize(0..=bytes.len());
        match rng.u8(0..3) {
            0 => bytes.insert(pos, ALPHABET[rng.usize(..ALPHABET.len())]),
            1 if !bytes.is_empty() => {
                bytes.remove(pos.min(bytes.len() - 1));
            }
            _ => {
                let digits = rng.u64(..).to_string().into_bytes();
                bytes.splice(pos..pos, digits);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn random_headers_never_panic_and_keep_invariants() {
    let mut rng = fastrand::Rng::with_seed(0x59a7);
    let mut parsed_ranges = 0;
    for _ in 0..200_000 {
        let s = random_input(&mut rng);
        let len = match rng.u8(0..4) {
            0 => 0,
            1 => rng.u64(0..100),
            2 => u64::MAX,
            _ => rng.u64(..),
        };
        if let Ok(h) = RangeHeader::parse(&s) {
            parsed_ranges += 1;
            if let RangeResolution::Ranges(ranges) = h.resolve(len) {
                for r in &ranges {
                    assert!(r.start <= r.end && r.end < len, "{s:?} {len} {r:?}");
                }
                assert!(coalesce_ranges(&ranges).len() <= ranges.len());
            }
        }
        if let Some(cr) = ContentRange::parse(&s) {
            assert_eq!(ContentRange::parse(&cr.to_string()), Some(cr), "{s:?}");
        }
        if let Some(EntityTagList::Tags(tags)) = EntityTagList::parse(&s) {
            for t in tags {
                assert_eq!(EntityTag::parse(&t.to_string()), Some(t));
            }
        }
        let mut p = Preconditions::default();
        p.set_if_match(&s);
        p.set_if_none_match(&s);
        p.set_if_modified_since(&s);
        p.set_if_unmodified_since(&s);
        p.set_if_range(&s);
        let etag = EntityTag::parse_lenient(&s);
        let v = Validators {
            etag: etag.as_ref(),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(rng.u64(0..4_000_000_000))),
        };
        let _ = p.evaluate(&v, rng.bool());
        let _ = p.range_applies(&v);
    }
    // The sweep reaches the interesting paths, not only the rejections.
    assert!(parsed_ranges > 2_000, "{parsed_ranges}");
}
