//! An object's `Cache-Control`: freshness and stale windows never panic, never exceed a year, and
//! every deadline computed from them is representable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|cache_control: &str| {
    yatagarasu::fuzzing::cache_control(cache_control);
});
