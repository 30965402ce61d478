//! What the parsers of untrusted input must always hold, as functions that panic when it does not:
//! run by a deterministic random sweep in the tests (CI) and by the cargo-fuzz targets in `fuzz/`
//! (built with `--cfg fuzzing`, which makes this module public).
//!
//! - [`route`]: request paths (percent-decoding, `.`/`..`, routing by longest prefix);
//! - [`cache_control`]: an object's `Cache-Control` turned into freshness and stale windows;
//! - [`object_record`]: the cached object record decoder (disk and Redis values).
#![cfg_attr(not(fuzzing), allow(unreachable_pub))]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use yatagarasu_core::ObjectMeta;

use crate::cache::{
    MAX_DIRECTIVE_SECONDS, Record, decode_record, encode_record, freshness, later, stale_windows,
};
use crate::routes::{BucketRoute, RouteTable};

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let route = |name: &str, prefix: &str| {
            let client = yatagarasu_s3::S3Client::builder(name).anonymous().build();
            client.map(|c| BucketRoute::new(name, prefix, c))
        };
        let routes = [
            route("media", "/media"),
            route("private", "/media/private"),
            route("root", "/"),
        ];
        RouteTable::new(routes.into_iter().flatten().collect(), None)
    })
}

/// Route `path`: never panics; a routed key never holds a `.` or `..` segment, a NUL or an
/// encoded slash's decoding, and the route is the longest prefix of the decoded path.
pub fn route(path: &str) {
    let Ok(Some((mounted, key))) = table().resolve(path) else {
        return;
    };
    assert!(!key.contains('\0'), "NUL in key {key:?}");
    assert!(
        !key.split('/').any(|s| s == "." || s == ".."),
        "dot segment in key {key:?} from {path:?}"
    );
    let prefix = mounted.route.path_prefix.as_str();
    let decoded = if prefix == "/" {
        format!("/{key}")
    } else if key.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}/{key}")
    };
    // No longer prefix than the chosen one matches the decoded path.
    for other in table().mounted() {
        let p = other.route.path_prefix.as_str();
        if p.len() > prefix.len() {
            assert!(
                !(decoded == p || decoded.starts_with(&format!("{p}/"))),
                "{path:?} routed to {prefix} though {p} matches {decoded:?}"
            );
        }
    }
}

/// Freshness and stale windows from `cache_control`: never panics, nothing longer than a year
/// (beyond the configured default), and every deadline computed from them is representable.
pub fn cache_control(cache_control: &str) {
    let mut meta = ObjectMeta::with_size(1);
    meta.cache_control = Some(cache_control.to_owned());
    let default = Duration::from_secs(3600);
    let cap = Duration::from_secs(MAX_DIRECTIVE_SECONDS);
    if let Some(fresh) = freshness(&meta, default) {
        assert!(
            fresh <= cap.max(default),
            "{cache_control:?} gave {fresh:?}"
        );
        let _ = later(SystemTime::now(), fresh);
    }
    let (swr, sie) = stale_windows(&meta);
    assert!(
        swr <= cap && sie <= cap,
        "{cache_control:?} gave {swr:?} / {sie:?}"
    );
}

/// Decode an object record: never panics, and what decodes re-encodes to a record that decodes
/// to the same thing.
pub fn object_record(bytes: &[u8]) {
    if let Some(r) = decode_record(bytes) {
        let again: Option<Record> = decode_record(&encode_record(&r));
        assert_eq!(again.as_ref(), Some(&r));
    }
}

#[cfg(test)]
mod tests {
    //! A deterministic sweep over mutated seeds (the cargo-fuzz targets explore further).

    use super::*;

    fn mutate(rng: &mut fastrand::Rng, seed: &[u8], alphabet: &[u8]) -> Vec<u8> {
        let mut b = seed.to_vec();
        for _ in 0..rng.usize(0..8) {
            let pos = rng.usize(0..=b.len());
            match rng.u8(0..4) {
                0 => b.insert(pos, alphabet[rng.usize(..alphabet.len())]),
                1 if !b.is_empty() => {
                    b.remove(pos.min(b.len() - 1));
                }
                2 => {
                    let digits = rng.u64(..).to_string().repeat(rng.usize(1..4));
                    b.splice(pos..pos, digits.into_bytes());
                }
                _ if !b.is_empty() => {
                    let i = pos.min(b.len() - 1);
                    b[i] = rng.u8(..);
                }
                _ => {}
            }
        }
        b
    }

    #[test]
    fn request_paths_never_escape_or_misroute() {
        let seeds: &[&[u8]] = &[
            b"/media/a.txt",
            b"/medi%61/a.txt",
            b"/media/private/x",
            b"/media%2fprivate/x",
            b"/%2e%2e/etc/passwd",
            b"/media/./a",
            b"/a%00b",
            b"/",
        ];
        let alphabet = b"/%.2eEfF5cC0aA\\x\x00\xff";
        let mut rng = fastrand::Rng::with_seed(0x9a7e);
        for _ in 0..100_000 {
            let seed = seeds[rng.usize(..seeds.len())];
            let input = mutate(&mut rng, seed, alphabet);
            route(&String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn cache_control_values_are_bounded() {
        let seeds: &[&[u8]] = &[
            b"max-age=60",
            b"s-maxage=10000000000000000000, max-age=1",
            b"max-age=0, stale-while-revalidate=18446744073709551615",
            b"no-cache, stale-if-error=99999999999999999999999999",
            b"private",
            b"max-age=\"30\"",
        ];
        let alphabet = b"=,\" -0123456789maxgeswrif";
        let mut rng = fastrand::Rng::with_seed(0xcc);
        for _ in 0..100_000 {
            let seed = seeds[rng.usize(..seeds.len())];
            cache_control(&String::from_utf8_lossy(&mutate(&mut rng, seed, alphabet)));
        }
    }

    #[test]
    fn object_records_decode_safely() {
        let mut meta = ObjectMeta::with_size(1234);
        meta.etag = yatagarasu_core::EntityTag::parse("\"abc\"");
        meta.content_type = Some("text/plain".into());
        meta.user_metadata.insert("k".into(), "v".into());
        let now = SystemTime::now();
        let record = Record {
            meta,
            fresh_until: now,
            stale_while_revalidate_until: now,
            stale_if_error_until: now,
            missing: false,
        };
        let seed = encode_record(&record).to_vec();
        let mut rng = fastrand::Rng::with_seed(0x4ec);
        let mut decoded = 0;
        for _ in 0..100_000 {
            let input = mutate(&mut rng, &seed, &[0, 1, 0xff, b'R', b'2', b'"']);
            if decode_record(&input).is_some() {
                decoded += 1;
            }
            object_record(&input);
        }
        assert!(decoded > 0, "the sweep reaches records that decode");
    }
}
