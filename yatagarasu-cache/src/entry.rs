//! Cache entries and their compact binary encoding (shared by the disk and Redis tiers).

// The record codec serves the disk and Redis tiers: built with neither (the memory tier alone),
// it has no caller.
#![cfg_attr(
    not(any(feature = "disk", feature = "redis", fuzzing)),
    allow(dead_code)
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::error::CacheError;

/// The longest any tier keeps an entry: ten years. Longer retention limits (a huge TTL, an
/// `expires_at` far in the future) are clamped to it, so no tier ever computes a deadline that
/// overflows its clock.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// One cached value: caller-defined metadata bytes, the body, and how long a tier may keep it.
///
/// The tiers never interpret `metadata`; freshness rules (HTTP `max-age`, stale-while-revalidate, ...)
/// belong to the caller, which encodes them there. `expires_at` is the retention limit: past it a
/// tier drops the entry and never returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheEntry {
    /// Opaque metadata (the proxy stores object metadata and freshness here).
    pub metadata: Bytes,
    /// The body bytes (may be empty).
    pub body: Bytes,
    /// When tiers must drop the entry; `None` keeps it until evicted.
    pub expires_at: Option<SystemTime>,
}

impl CacheEntry {
    /// An entry kept at most `ttl` (clamped to [`MAX_TTL`]).
    pub fn new(metadata: impl Into<Bytes>, body: impl Into<Bytes>, ttl: Option<Duration>) -> Self {
        let now = SystemTime::now();
        Self {
            metadata: metadata.into(),
            body: body.into(),
            expires_at: ttl.map(|t| now.checked_add(t.min(MAX_TTL)).unwrap_or(now)),
        }
    }

    /// Bytes the entry occupies (metadata + body), what size limits are measured in.
    pub fn weight(&self) -> u64 {
        (self.metadata.len() + self.body.len()) as u64
    }

    /// `Err(TooLarge)` when the entry weighs more than a tier's item `limit`.
    pub(crate) fn check_fits(&self, limit: u64) -> Result<(), CacheError> {
        if self.weight() > limit {
            return Err(CacheError::TooLarge {
                size: self.weight(),
                limit,
            });
        }
        Ok(())
    }

    /// Whether the entry is past its retention limit at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Time left until the retention limit, at most [`MAX_TTL`] (`None`: no limit; zero: expired).
    pub fn ttl_from(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|e| e.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_TTL))
    }
}

/// How the disk and Redis tiers check the records they read.
///
/// - [`Crc32`](Self::Crc32) (the default) detects damage: torn writes, flipped bits.
/// - [`Hmac`](Self::Hmac) also detects forgery: each record carries an HMAC-SHA256 under a secret,
///   so records written by anyone without the secret (another deployment sharing the Redis, a
///   local user with write access to the cache directory) are rejected and removed. It costs a
///   SHA-256 pass over each record read and written.
///
/// A tier only accepts records of its own kind: switching the check makes existing entries misses.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordCheck {
    /// A CRC-32 over the record.
    #[default]
    Crc32,
    /// An HMAC-SHA256 over the record under this secret.
    Hmac(std::sync::Arc<[u8]>),
}

impl RecordCheck {
    /// Authenticate records with `secret`.
    pub fn hmac(secret: impl AsRef<[u8]>) -> Self {
        Self::Hmac(secret.as_ref().into())
    }

    fn magic(&self) -> &'static [u8; 4] {
        match self {
            Self::Crc32 => MAGIC,
            Self::Hmac(_) => MAGIC_HMAC,
        }
    }

    fn trailer_len(&self) -> usize {
        match self {
            Self::Crc32 => 0,
            Self::Hmac(_) => TAG_LEN,
        }
    }

    fn tag(secret: &[u8], data: &[u8]) -> [u8; TAG_LEN] {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
            Ok(m) => m,
            // HMAC takes keys of any length; unreachable, and a zero tag fails every check.
            Err(_) => return [0; TAG_LEN],
        };
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for RecordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Crc32 => f.write_str("Crc32"),
            Self::Hmac(_) => f.write_str("Hmac(<redacted>)"),
        }
    }
}

const MAGIC: &[u8; 4] = b"YCE1";
const MAGIC_HMAC: &[u8; 4] = b"YCH1";
const TAG_LEN: usize = 32;
/// magic(4) crc32(4) expires_ms(8) key_len(4) meta_len(4) body_len(8); with an HMAC check the crc
/// field is zero and a 32-byte tag over everything before it follows the body.
pub(crate) const HEADER_LEN: usize = 32;
const NO_EXPIRY: u64 = u64::MAX;

/// Encode `key` and `entry` as one self-checking record: a torn or altered record never decodes.
pub(crate) fn encode(key: &[u8], entry: &CacheEntry, check: &RecordCheck) -> Vec<u8> {
    let expires = entry.expires_at.map_or(NO_EXPIRY, |t| {
        u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
            .unwrap_or(NO_EXPIRY - 1)
    });
    let mut out = Vec::with_capacity(
        HEADER_LEN + key.len() + entry.metadata.len() + entry.body.len() + check.trailer_len(),
    );
    out.extend_from_slice(check.magic());
    out.extend_from_slice(&[0; 4]); // crc, filled below
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(entry.metadata.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&(entry.body.len() as u64).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&entry.metadata);
    out.extend_from_slice(&entry.body);
    match check {
        RecordCheck::Crc32 => {
            let crc = crc32fast::hash(&out[8..]);
            out[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        RecordCheck::Hmac(secret) => {
            let tag = RecordCheck::tag(secret, &out);
            out.extend_from_slice(&tag);
        }
    }
    out
}

/// The fixed-size header of a record: (expires, key length, metadata length, body length).
pub(crate) struct Header {
    pub(crate) check_len: usize,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) key_len: usize,
    pub(crate) meta_len: usize,
    pub(crate) body_len: u64,
}

impl Header {
    /// The whole record's length; `None` when the header's lengths add up past `u64` (a crafted or
    /// damaged header, which must never wrap around to a plausible length).
    pub(crate) fn total_len(&self) -> Option<u64> {
        (HEADER_LEN as u64 + self.check_len as u64)
            .checked_add(self.key_len as u64)?
            .checked_add(self.meta_len as u64)?
            .checked_add(self.body_len)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Parse a record's header (no checksum check: that needs the whole record).
pub(crate) fn decode_header(b: &[u8], check: &RecordCheck) -> Result<Header, CacheError> {
    if b.len() < HEADER_LEN || &b[..4] != check.magic() {
        return Err(CacheError::Corrupt(
            "bad record header (or a record of another check kind)".into(),
        ));
    }
    let expires = u64_at(b, 8);
    Ok(Header {
        check_len: check.trailer_len(),
        // A deadline the clock cannot hold is as good as already past.
        expires_at: (expires != NO_EXPIRY).then(|| {
            UNIX_EPOCH
                .checked_add(Duration::from_millis(expires))
                .unwrap_or(UNIX_EPOCH)
        }),
        key_len: u32_at(b, 16) as usize,
        meta_len: u32_at(b, 20) as usize,
        body_len: u64_at(b, 24),
    })
}

/// Decode a whole record, verifying length and checksum (or HMAC); returns the key and the entry.
pub(crate) fn decode(
    record: &Bytes,
    check: &RecordCheck,
) -> Result<(Bytes, CacheEntry), CacheError> {
    decode_checked(record, check, true)
}

/// [`decode`], with the CRC-32 skipped when `verify_crc` is false: for bytes already verified in
/// this process (the disk tier's unchanged files). An HMAC is verified every time regardless: it
/// guards against records planted by someone else, who could plant one after the first check.
pub(crate) fn decode_checked(
    record: &Bytes,
    check: &RecordCheck,
    verify_crc: bool,
) -> Result<(Bytes, CacheEntry), CacheError> {
    let h = decode_header(record, check)?;
    if h.total_len() != Some(record.len() as u64) {
        return Err(CacheError::Corrupt(format!(
            "record is {} bytes, its header says otherwise",
            record.len(),
        )));
    }
    let end = record.len() - h.check_len;
    match check {
        RecordCheck::Crc32 => {
            if verify_crc && crc32fast::hash(&record[8..]) != u32_at(record, 4) {
                return Err(CacheError::Corrupt("checksum mismatch".into()));
            }
        }
        RecordCheck::Hmac(secret) => {
            let tag = RecordCheck::tag(secret, &record[..end]);
            let stored = &record[end..];
            // Constant time: where a forged tag first differs must not show.
            if tag
                .iter()
                .zip(stored)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
            {
                return Err(CacheError::Corrupt(
                    "record not authenticated by this cache's secret".into(),
                ));
            }
        }
    }
    let k0 = HEADER_LEN;
    let m0 = k0 + h.key_len;
    let b0 = m0 + h.meta_len;
    Ok((
        record.slice(k0..m0),
        CacheEntry {
            metadata: record.slice(m0..b0),
            body: record.slice(b0..end),
            expires_at: h.expires_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRC: RecordCheck = RecordCheck::Crc32;

    #[test]
    fn round_trips_including_empty_parts() {
        for (meta, body) in [("m", "body"), ("", ""), ("meta", "")] {
            let e = CacheEntry::new(meta, body, Some(Duration::from_secs(60)));
            let rec = Bytes::from(encode(b"key", &e, &CRC));
            let (k, d) = decode(&rec, &CRC).unwrap();
            assert_eq!(&k[..], b"key");
            assert_eq!(d.metadata, e.metadata);
            assert_eq!(d.body, e.body);
            // Millisecond precision.
            let diff = d
                .expires_at
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                - e.expires_at
                    .unwrap()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
            assert_eq!(diff, 0);
        }
        let forever = CacheEntry::new("m", "b", None);
        assert_eq!(
            decode(&Bytes::from(encode(b"k", &forever, &CRC)), &CRC)
                .unwrap()
                .1
                .expires_at,
            None
        );
    }

    #[test]
    fn any_damage_is_detected() {
        let rec = encode(
            b"key",
            &CacheEntry::new("meta", "some body bytes", None),
            &CRC,
        );
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x40;
            assert!(
                decode(&Bytes::from(bad), &CRC).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        for cut in 0..rec.len() {
            assert!(
                decode(&Bytes::from(rec[..cut].to_vec()), &CRC).is_err(),
                "truncation at {cut}"
            );
        }
    }

    #[test]
    fn hmac_records_are_rejected_under_another_secret_or_as_crc() {
        let e = CacheEntry::new("meta", "body", Some(Duration::from_secs(60)));
        let ours = RecordCheck::hmac("our secret, long enough");
        let theirs = RecordCheck::hmac("their secret, long enough");
        let rec = Bytes::from(encode(b"key", &e, &ours));
        let (k, d) = decode(&rec, &ours).unwrap();
        assert_eq!(
            (&k[..], &d.metadata[..], &d.body[..]),
            (&b"key"[..], &b"meta"[..], &b"body"[..])
        );
        assert!(decode(&rec, &theirs).is_err());
        assert!(decode(&rec, &CRC).is_err());
        let crc_rec = Bytes::from(encode(b"key", &e, &CRC));
        assert!(
            decode(&crc_rec, &ours).is_err(),
            "an unauthenticated record is refused"
        );
        // Any change to an authenticated record is caught.
        for i in 0..rec.len() {
            let mut bad = rec.to_vec();
            bad[i] ^= 0x01;
            assert!(decode(&Bytes::from(bad), &ours).is_err(), "byte {i}");
        }
        assert_eq!(format!("{ours:?}"), "Hmac(<redacted>)");
    }

    /// A deterministic sweep over damaged and crafted records (CI runs it; `fuzz/` has a
    /// cargo-fuzz target for longer runs): decoding never panics, and whatever decodes lies
    /// inside the record.
    #[test]
    fn damaged_and_crafted_records_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x7ec0);
        let checks = [CRC, RecordCheck::hmac("sweep secret")];
        let mut decoded = 0;
        for round in 0..100_000 {
            let check = &checks[round % 2];
            let body: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            let e = CacheEntry::new("m", body, None);
            let mut rec = encode(b"k", &e, check);
            for _ in 0..rng.usize(1..4) {
                match rng.u8(0..4) {
                    // Lengths and expiry set to edge values.
                    0 => {
                        let at = [8, 16, 20, 24][rng.usize(0..4)];
                        let v = [
                            0,
                            1,
                            u64::MAX,
                            u64::MAX - 31,
                            u64::from(u32::MAX),
                            rng.u64(..),
                        ][rng.usize(0..6)];
                        let width = if at == 16 || at == 20 { 4 } else { 8 };
                        rec[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                    }
                    1 => {
                        let i = rng.usize(0..rec.len());
                        rec[i] ^= rng.u8(1..);
                    }
                    2 => rec.truncate(rng.usize(0..=rec.len())),
                    _ => rec.extend((0..rng.usize(0..40)).map(|_| rng.u8(..))),
                }
                if rec.len() < HEADER_LEN {
                    break;
                }
            }
            // Half the time, re-seal so the lengths (not the checksum) are what is tested.
            if rng.bool() && rec.len() >= HEADER_LEN && matches!(check, RecordCheck::Crc32) {
                let crc = crc32fast::hash(&rec[8..]);
                rec[4..8].copy_from_slice(&crc.to_le_bytes());
            }
            let rec = Bytes::from(rec);
            if let Ok((k, d)) = decode(&rec, check) {
                decoded += 1;
                assert!(k.len() + d.metadata.len() + d.body.len() + HEADER_LEN <= rec.len());
            }
        }
        assert!(decoded > 0, "the sweep also reaches records that decode");
    }
}
