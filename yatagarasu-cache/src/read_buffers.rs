//! Reusable buffers for reading disk records.
//!
//! A disk hit reads a whole record into memory and hands its body to the response as [`Bytes`].
//! Allocating that buffer per hit costs more than it looks: the allocator zero-fills it (`calloc`:
//! a `memset` of the whole record, measured as 9% of the proxy's CPU on 1 MiB disk hits) and
//! freeing large chunks makes glibc consolidate its free lists. [`ReadBuffers`] keeps buffers that
//! were zero-filled once and gives each back when the last [`Bytes`] made from it is dropped, so
//! a steady stream of hits allocates nothing.
//!
//! Buffers come in size classes fine enough that a buffer wastes at most 1/16 of its length (a
//! record held past its response, e.g. promoted into the memory tier, holds its buffer). At most
//! [`MAX_IDLE_BUFFERS`] buffers and [`MAX_IDLE_BYTES`] bytes wait idle; past that the oldest idle
//! buffers are freed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;

/// Records shorter than this are read into a plain allocation: zero-filling a few KiB is cheaper
/// than the pool's bookkeeping, and small records may be kept for long (inline in the index).
pub(crate) const MIN_POOLED: usize = 16 * 1024;
/// Most bytes of idle buffers kept.
pub(crate) const MAX_IDLE_BYTES: usize = 16 * 1024 * 1024;
/// Most idle buffers kept (bounds the search for a buffer of the wanted class).
pub(crate) const MAX_IDLE_BUFFERS: usize = 64;

/// A pool of read buffers; cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub(crate) struct ReadBuffers {
    idle: Arc<Mutex<Idle>>,
}

#[derive(Default)]
struct Idle {
    /// Most recently returned last.
    buffers: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// The capacity of the buffer that holds `len` bytes: `len` rounded up to a step of 1/32 of the
/// next power of two, so at most 1/16 of `len` is spare.
pub(crate) fn class(len: usize) -> usize {
    let step = (len.next_power_of_two() / 32).max(64);
    len.div_ceil(step).saturating_mul(step)
}

impl ReadBuffers {
    /// A buffer of at least `len` initialised bytes (contents unspecified): for `len` of
    /// [`MIN_POOLED`] and more, `class(len)` bytes from the pool when one is idle; below, a plain
    /// zero-filled allocation of `len`.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        if len < MIN_POOLED {
            return vec![0; len];
        }
        let capacity = class(len);
        let reused = {
            let mut idle = self.lock();
            let found = idle.buffers.iter().rposition(|b| b.len() == capacity);
            found
                .and_then(|i| idle.buffers.remove(i))
                .inspect(|b| idle.bytes -= b.len())
        };
        reused.unwrap_or_else(|| vec![0; capacity])
    }

    /// The first `len` bytes of a buffer from [`ReadBuffers::take`] as [`Bytes`]; a pooled buffer
    /// (one of [`MIN_POOLED`] bytes or more) comes back to the pool when the last clone or slice of
    /// them is dropped.
    pub(crate) fn freeze(&self, mut buffer: Vec<u8>, len: usize) -> Bytes {
        let len = len.min(buffer.len());
        if buffer.len() < MIN_POOLED {
            buffer.truncate(len);
            return Bytes::from(buffer);
        }
        Bytes::from_owner(Lent {
            buffer,
            len,
            home: Arc::downgrade(&self.idle),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of idle buffers (tests).
    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// A buffer out of the pool, owned by the [`Bytes`] made from it.
struct Lent {
    buffer: Vec<u8>,
    len: usize,
    home: Weak<Mutex<Idle>>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(home) = self.home.upgrade() else {
            return;
        };
        let buffer = std::mem::take(&mut self.buffer);
        if buffer.len() > MAX_IDLE_BYTES {
            return;
        }
        let mut idle = home.lock().unwrap_or_else(PoisonError::into_inner);
        idle.bytes += buffer.len();
        idle.buffers.push_back(buffer);
        while idle.bytes > MAX_IDLE_BYTES || idle.buffers.len() > MAX_IDLE_BUFFERS {
            match idle.buffers.pop_front() {
                Some(old) => idle.bytes -= old.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_waste_at_most_a_sixteenth_and_never_fall_short() {
        for len in (MIN_POOLED..8 << 20)
            .step_by(997)
            .chain([1 << 20, (1 << 20) + 1])
        {
            let c = class(len);
            assert!(c >= len, "{len} -> {c}");
            assert!((c - len) * 16 <= len, "{len} -> {c} wastes more than 1/16");
        }
        assert_eq!(class(65_600), class(65_601), "nearby lengths share a class");
    }

    #[test]
    fn a_dropped_record_gives_its_buffer_back_for_the_next_read() {
        let pool = ReadBuffers::default();
        let mut b = pool.take(100_000);
        let capacity = b.len();
        b[..5].copy_from_slice(b"hello");
        let bytes = pool.freeze(b, 5);
        let body = bytes.slice(1..4);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "a slice still holds the buffer");
        assert_eq!(&body[..], b"ell");
        drop(body);
        assert_eq!(pool.idle_bytes(), capacity);
        let again = pool.take(99_000);
        assert_eq!(again.len(), capacity, "same class, reused");
        assert_eq!(&again[..5], b"hello", "the very buffer came back");
        assert_eq!(pool.idle_bytes(), 0);
    }

    #[test]
    fn idle_buffers_are_bounded_in_count_and_bytes() {
        let pool = ReadBuffers::default();
        let many: Vec<Bytes> = (0..MAX_IDLE_BUFFERS + 10)
            .map(|_| pool.freeze(pool.take(MIN_POOLED), MIN_POOLED))
            .collect();
        drop(many);
        assert_eq!(pool.lock().buffers.len(), MAX_IDLE_BUFFERS);
        let big: Vec<Bytes> = (0..5)
            .map(|_| pool.freeze(pool.take(4 << 20), 4 << 20))
            .collect();
        drop(big);
        assert!(pool.idle_bytes() <= MAX_IDLE_BYTES, "{}", pool.idle_bytes());
        let before = pool.idle_bytes();
        let reused = pool.take(4 << 20);
        assert_eq!(
            pool.idle_bytes(),
            before - reused.len(),
            "the most recent buffers stay and are reused"
        );
    }

    #[test]
    fn small_records_get_plain_buffers_that_never_enter_the_pool() {
        let pool = ReadBuffers::default();
        let small = pool.take(MIN_POOLED - 1);
        assert_eq!(small.len(), MIN_POOLED - 1);
        let bytes = pool.freeze(small, 10);
        assert_eq!(bytes.len(), 10);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0);
    }

    #[test]
    fn buffers_outliving_the_pool_are_simply_freed() {
        let pool = ReadBuffers::default();
        let bytes = pool.freeze(pool.take(MIN_POOLED), 10);
        drop(pool);
        assert_eq!(bytes.len(), 10);
        drop(bytes);
    }
}
