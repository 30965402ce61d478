//! Cache entries and their compact binary encoding (shared by the disk and Redis tiers).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::error::CacheError;

/// One cached value: caller-defined metadata bytes, the body, and how long a tier may keep it.
///
/// The tiers never interpret `metadata`; freshness rules (HTTP `max-age`, stale-while-revalidate, ...)
/// belong to the caller, which encodes them there. `expires_at` is the retention limit: past it a
/// tier drops the entry and never returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Opaque metadata (the proxy stores object metadata and freshness here).
    pub metadata: Bytes,
    /// The body bytes (may be empty).
    pub body: Bytes,
    /// When tiers must drop the entry; `None` keeps it until evicted.
    pub expires_at: Option<SystemTime>,
}

impl CacheEntry {
    /// An entry kept at most `ttl`.
    pub fn new(metadata: impl Into<Bytes>, body: impl Into<Bytes>, ttl: Option<Duration>) -> Self {
        Self {
            metadata: metadata.into(),
            body: body.into(),
            expires_at: ttl.map(|t| SystemTime::now() + t),
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

    /// Time left until the retention limit (`None`: no limit; zero: expired).
    pub fn ttl_from(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|e| e.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

const MAGIC: &[u8; 4] = b"YCE1";
/// magic(4) crc32(4) expires_ms(8) key_len(4) meta_len(4) body_len(8)
pub(crate) const HEADER_LEN: usize = 32;
const NO_EXPIRY: u64 = u64::MAX;

/// Encode `key` and `entry` as one self-checking record: a torn or altered record never decodes.
pub(crate) fn encode(key: &[u8], entry: &CacheEntry) -> Vec<u8> {
    let expires = entry.expires_at.map_or(NO_EXPIRY, |t| {
        u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
            .unwrap_or(NO_EXPIRY - 1)
    });
    let mut out =
        Vec::with_capacity(HEADER_LEN + key.len() + entry.metadata.len() + entry.body.len());
    out.extend_from_slice(MAGIC);
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
    let crc = crc32fast::hash(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The fixed-size header of a record: (expires, key length, metadata length, body length).
pub(crate) struct Header {
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) key_len: usize,
    pub(crate) meta_len: usize,
    pub(crate) body_len: u64,
}

impl Header {
    pub(crate) fn total_len(&self) -> u64 {
        HEADER_LEN as u64 + self.key_len as u64 + self.meta_len as u64 + self.body_len
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
pub(crate) fn decode_header(b: &[u8]) -> Result<Header, CacheError> {
    if b.len() < HEADER_LEN || &b[..4] != MAGIC {
        return Err(CacheError::Corrupt("bad record header".into()));
    }
    let expires = u64_at(b, 8);
    Ok(Header {
        expires_at: (expires != NO_EXPIRY).then(|| UNIX_EPOCH + Duration::from_millis(expires)),
        key_len: u32_at(b, 16) as usize,
        meta_len: u32_at(b, 20) as usize,
        body_len: u64_at(b, 24),
    })
}

/// Decode a whole record, verifying length and checksum; returns the key and the entry.
pub(crate) fn decode(record: &Bytes) -> Result<(Bytes, CacheEntry), CacheError> {
    let h = decode_header(record)?;
    if h.total_len() != record.len() as u64 {
        return Err(CacheError::Corrupt(format!(
            "record is {} bytes, header says {}",
            record.len(),
            h.total_len()
        )));
    }
    if crc32fast::hash(&record[8..]) != u32_at(record, 4) {
        return Err(CacheError::Corrupt("checksum mismatch".into()));
    }
    let k0 = HEADER_LEN;
    let m0 = k0 + h.key_len;
    let b0 = m0 + h.meta_len;
    Ok((
        record.slice(k0..m0),
        CacheEntry {
            metadata: record.slice(m0..b0),
            body: record.slice(b0..),
            expires_at: h.expires_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_empty_parts() {
        for (meta, body) in [("m", "body"), ("", ""), ("meta", "")] {
            let e = CacheEntry::new(meta, body, Some(Duration::from_secs(60)));
            let rec = Bytes::from(encode(b"key", &e));
            let (k, d) = decode(&rec).unwrap();
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
            decode(&Bytes::from(encode(b"k", &forever)))
                .unwrap()
                .1
                .expires_at,
            None
        );
    }

    #[test]
    fn any_damage_is_detected() {
        let rec = encode(b"key", &CacheEntry::new("meta", "some body bytes", None));
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x40;
            assert!(
                decode(&Bytes::from(bad)).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        for cut in 0..rec.len() {
            assert!(
                decode(&Bytes::from(rec[..cut].to_vec())).is_err(),
                "truncation at {cut}"
            );
        }
    }
}
