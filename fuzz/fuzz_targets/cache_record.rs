//! Cache records as the disk and Redis tiers store them (with a CRC or an HMAC), and the object
//! record inside them: decoding never panics and stays within the bytes given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, &[u8])| {
    let (hmac, bytes) = input;
    yatagarasu_cache::fuzzing::decode_record(bytes, hmac.then_some(&b"fuzz secret"[..]));
    yatagarasu::fuzzing::object_record(bytes);
});
