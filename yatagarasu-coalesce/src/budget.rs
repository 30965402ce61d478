//! One memory budget shared by every flight of a process (or of several groups).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A byte budget for what stream flights hold, shared by any number of [`StreamGroup`]s.
///
/// A flight reserves budget for every chunk it keeps for its subscribers and gives it back when
/// the chunk is dropped (read by everyone, or the flight ended). When the budget is spent, flights
/// first give up the chunks they kept only for late joiners, then their producers wait:
/// backpressure towards the origin, instead of memory growing with every stalled reader.
///
/// [`StreamGroup`]: crate::StreamGroup
///
/// ```
/// use yatagarasu_coalesce::BufferBudget;
///
/// let budget = BufferBudget::new(64 * 1024 * 1024);
/// assert_eq!(budget.capacity(), 64 * 1024 * 1024);
/// assert_eq!(budget.in_use(), 0);
/// ```
#[derive(Debug)]
pub struct BufferBudget {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl BufferBudget {
    /// A budget of `bytes` (at least 1).
    pub fn new(bytes: usize) -> Arc<Self> {
        let capacity = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
        })
    }

    /// The budget's size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.capacity
            .saturating_sub(self.semaphore.available_permits())
    }

    /// What a chunk of `len` bytes reserves: never more than the whole budget, so one chunk larger
    /// than the budget still goes through (alone).
    fn permits_for(&self, len: usize) -> u32 {
        u32::try_from(len.min(self.capacity)).unwrap_or(u32::MAX)
    }

    /// Reserve `len` bytes now, or `None` when the budget is spent. Given back when the
    /// [`Reservation`] is dropped.
    pub fn try_reserve(&self, len: usize) -> Option<Reservation> {
        if len == 0 {
            return Some(Reservation(None));
        }
        Arc::clone(&self.semaphore)
            .try_acquire_many_owned(self.permits_for(len))
            .ok()
            .map(|p| Reservation(Some(p)))
    }

    /// Reserve `len` bytes, waiting until they are free.
    pub async fn reserve(&self, len: usize) -> Reservation {
        if len == 0 {
            return Reservation(None);
        }
        match Arc::clone(&self.semaphore)
            .acquire_many_owned(self.permits_for(len))
            .await
        {
            Ok(p) => Reservation(Some(p)),
            // The semaphore is never closed.
            Err(_) => Reservation(None),
        }
    }
}

/// Budget held for one kept chunk; given back when dropped.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Reservation {
    /// Holds nothing.
    pub(crate) fn none() -> Self {
        Self(None)
    }
}
