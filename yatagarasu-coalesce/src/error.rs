//! Why a coalesced call did not produce a value.

use std::fmt;

/// The error a caller of a coalesced flight receives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlightError<E> {
    /// The work failed; every caller gets a clone of its error.
    Failed(E),
    /// The work panicked. The panic is contained in the flight's task; callers get this instead of a hang.
    Panicked,
    /// The flight's task was dropped before finishing (its runtime shut down, or nobody could use its
    /// output any more).
    Cancelled,
    /// This caller's wait timeout elapsed; the work goes on for the others.
    TimedOut,
    /// This subscriber fell further behind the producer than the flight's buffer allows and was
    /// dropped; the producer and the other subscribers were not slowed.
    Lagged,
}

impl<E> FlightError<E> {
    /// The same error with the work's own error (in [`Failed`](Self::Failed)) mapped by `f`.
    pub fn map_failed<F>(self, f: impl FnOnce(E) -> F) -> FlightError<F> {
        match self {
            Self::Failed(e) => FlightError::Failed(f(e)),
            Self::Panicked => FlightError::Panicked,
            Self::Cancelled => FlightError::Cancelled,
            Self::TimedOut => FlightError::TimedOut,
            Self::Lagged => FlightError::Lagged,
        }
    }

    /// The work's own error, if that is what this is.
    pub fn failed(&self) -> Option<&E> {
        match self {
            Self::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for FlightError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "{e}"),
            Self::Panicked => f.write_str("the coalesced work panicked"),
            Self::Cancelled => f.write_str("the coalesced work was cancelled"),
            Self::TimedOut => f.write_str("timed out waiting for the coalesced work"),
            Self::Lagged => f.write_str("fell too far behind the coalesced stream"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for FlightError<E> {}
