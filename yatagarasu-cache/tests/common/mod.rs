//! Records crafted by hand, shared by the disk and Redis tier tests.

/// A record whose header lengths add up, modulo 2^64, to its real length, with a valid checksum:
/// a naive length check passes it and slicing by its lengths would run far past its end.
pub(crate) fn wrapping_record(key: &[u8]) -> Vec<u8> {
    let payload = b"not what the header claims";
    let len = (32 + key.len() + payload.len()) as u64;
    let meta_len = u32::MAX;
    let body_len = len
        .wrapping_sub(32)
        .wrapping_sub(key.len() as u64)
        .wrapping_sub(u64::from(meta_len));
    let mut r = Vec::new();
    r.extend_from_slice(b"YCE1");
    r.extend_from_slice(&[0; 4]);
    r.extend_from_slice(&u64::MAX.to_le_bytes()); // no expiry
    r.extend_from_slice(&(key.len() as u32).to_le_bytes());
    r.extend_from_slice(&meta_len.to_le_bytes());
    r.extend_from_slice(&body_len.to_le_bytes());
    r.extend_from_slice(key);
    r.extend_from_slice(payload);
    let crc = crc32fast::hash(&r[8..]);
    r[4..8].copy_from_slice(&crc.to_le_bytes());
    r
}
