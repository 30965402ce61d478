//! Request paths: percent-decoding and routing never panic, never yield a key with `.`/`..`
//! segments or NUL, and always pick the longest matching prefix of the decoded path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &str| {
    yatagarasu::fuzzing::route(path);
});
