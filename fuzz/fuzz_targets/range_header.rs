//! `Range` and `Content-Range` parsing and resolution never panic, and every resolved range lies
//! inside the representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yatagarasu_core::{ContentRange, RangeHeader, RangeResolution, coalesce_ranges};

fuzz_target!(|input: (&str, u64)| {
    let (header, len) = input;
    if let Ok(range) = RangeHeader::parse(header) {
        if let RangeResolution::Ranges(ranges) = range.resolve(len) {
            for r in &ranges {
                assert!(r.start <= r.end && r.end < len);
            }
            let merged = coalesce_ranges(&ranges);
            assert!(merged.len() <= ranges.len());
        }
    }
    if let Some(cr) = ContentRange::parse(header) {
        assert_eq!(ContentRange::parse(&cr.to_string()), Some(cr));
    }
});
