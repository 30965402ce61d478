//! The request-id stage: every request gets an id, for its log line, its errors and the
//! `x-request-id` response header.

use http::HeaderMap;

/// The client's `x-request-id` when well-formed (1–128 of `A-Za-z0-9._-`), else a new one.
pub(crate) fn assign(h: &HeaderMap) -> String {
    if let Some(v) = h.get("x-request-id").and_then(|v| v.to_str().ok())
        && (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return v.to_owned();
    }
    new_id()
}

/// 128 random bits as 32 lowercase hex digits (written directly: `format!` costs more than the
/// rest of this stage on a cache hit).
fn new_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    let mut id = String::with_capacity(32);
    for i in (0..32).rev() {
        id.push(char::from(HEX[((bits >> (i * 4)) & 0xf) as usize]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_client_ids_are_kept_others_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-1.2_3".parse().unwrap());
        assert_eq!(assign(&h), "abc-1.2_3");
        h.insert("x-request-id", "bad id".parse().unwrap());
        let id = assign(&h);
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(assign(&HeaderMap::new()), assign(&HeaderMap::new()));
    }
}
