//! Conditional header parsing and evaluation never panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use yatagarasu_core::{EntityTag, EntityTagList, Preconditions, Validators};

fuzz_target!(|input: (&str, &str, &str, &str, &str, u32, bool)| {
    let (im, inm, ims, ius, ir, lm, get) = input;
    let mut p = Preconditions::default();
    p.set_if_match(im);
    p.set_if_none_match(inm);
    p.set_if_modified_since(ims);
    p.set_if_unmodified_since(ius);
    p.set_if_range(ir);
    let etag = EntityTag::parse_lenient(inm);
    let v = Validators {
        etag: etag.as_ref(),
        last_modified: Some(UNIX_EPOCH + Duration::from_secs(u64::from(lm))),
    };
    let _ = p.evaluate(&v, get);
    let _ = p.range_applies(&v);
    if let Some(EntityTagList::Tags(tags)) = EntityTagList::parse(im) {
        for t in tags {
            assert_eq!(EntityTag::parse(&t.to_string()), Some(t));
        }
    }
});
