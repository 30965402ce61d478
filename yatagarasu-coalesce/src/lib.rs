//! # yatagarasu-coalesce
//!
//! Request coalescing for async Rust: when many callers ask for the same thing at once, one of them
//! does the work and all of them get its result. Generic over the key, the value and the error; it
//! knows nothing of S3 or HTTP. Built for the [Yatagarasu](https://github.com/yatagarasu-rs/yatagarasu)
//! S3 proxy, where a thousand clients asking for one cold object must cause one origin fetch, and
//! every client must get its first byte about as soon as the first client does.
//!
//! - [`Group`]: singleflight for a single value. The work runs as a detached task, so a caller that
//!   goes away neither cancels it for the others nor leaves them stuck; the key is always released
//!   (also on panic, which waiters see as [`FlightError::Panicked`]); errors reach every waiter;
//!   optional per-waiter timeout; [`Group::forget`].
//! - [`StreamGroup`]: singleflight for a stream. The producer yields a head (e.g. response metadata)
//!   and then chunks; every subscriber, however late it joins, receives the whole stream from the first
//!   chunk, then live ones, with no gap and no duplicate. Memory per flight is bounded
//!   ([`StreamOptions::buffer_bytes`]); a slow subscriber never slows the producer or the others, and
//!   is dropped with [`FlightError::Lagged`] if it falls behind the bound. A flight stops when its
//!   last subscriber leaves (a producer with side effects may linger a bounded number of bytes, see
//!   [`Audience`]).
//! - [`BufferBudget`]: one byte budget shared by the flights of any number of groups; at the limit
//!   producers wait (backpressure), while a subscriber that reads always gets its next chunk.
//!
//! ```
//! use yatagarasu_coalesce::{Group, Role};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let group: Group<String, String, String> = Group::new();
//! let a = group.run("k".to_owned(), || async { Ok::<_, String>("value".to_owned()) });
//! let b = group.run("k".to_owned(), || async { Ok::<_, String>("never called".to_owned()) });
//! let (a, b) = tokio::join!(a, b);
//! assert_eq!(a.role, Role::Leader);
//! assert_eq!(b.role, Role::Joined);
//! assert_eq!(b.result.as_deref(), Ok("value"));
//! # }
//! ```

mod budget;
mod error;
mod group;
mod stats;
mod stream;

pub use budget::{BufferBudget, Reservation};
pub use error::FlightError;
pub use group::{Group, Outcome, Role};
pub use stats::FlightStatsSnapshot;
pub use stream::{Audience, StreamGroup, StreamOptions, Subscription};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
