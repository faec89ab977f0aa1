//! Where "now" comes from, so that tests never depend on wall time.
//!
//! A clock answers two questions: the wall time ([`Clock::now`], Unix
//! seconds, which NTP or an operator may step either way) and how much
//! time has passed ([`Clock::monotonic`], which never steps). The replay
//! stores expire entries by the first only as far as the second confirms
//! it, so that one glitch of the wall clock neither forgets live entries
//! nor fences the future.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of the current time in Unix seconds.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;

    /// Time passed since a fixed origin, on a clock that never steps (by
    /// default the process's monotonic clock): what tells a wall clock
    /// that stepped from time that passed.
    fn monotonic(&self) -> Duration {
        process_monotonic()
    }
}

/// The process's monotonic clock, from the first time it is read.
pub(crate) fn process_monotonic() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// [`advance`](Self::advance) is time passing (the wall and the monotonic
/// clock move together); [`step`](Self::step) is the wall clock stepped
/// with no time passing, as NTP or an operator does.
///
/// ```
/// use armor_psk::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_700_000_000);
/// let handle = clock.clone();
/// handle.advance(301);
/// assert_eq!(clock.now(), 1_700_000_301);
/// assert_eq!(clock.monotonic().as_secs(), 301);
/// handle.step(-30);
/// assert_eq!(clock.now(), 1_700_000_271);
/// assert_eq!(clock.monotonic().as_secs(), 301);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<Times>);

#[derive(Debug, Default)]
struct Times {
    wall: AtomicU64,
    monotonic: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `now` until changed (its monotonic clock at 0).
    pub fn new(now: u64) -> Self {
        Self(Arc::new(Times {
            wall: AtomicU64::new(now),
            monotonic: AtomicU64::new(0),
        }))
    }

    /// Sets the time: forward, as time passing to it; back, as a step
    /// of the wall clock.
    pub fn set(&self, now: u64) {
        let before = self.0.wall.swap(now, Ordering::SeqCst);
        if now > before {
            self.0.monotonic.fetch_add(now - before, Ordering::SeqCst);
        }
    }

    /// Moves the time forward by `seconds`: time passing.
    pub fn advance(&self, seconds: u64) {
        self.0.wall.fetch_add(seconds, Ordering::SeqCst);
        self.0.monotonic.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Steps the wall clock by `seconds` either way, with no time passing
    /// (a clock corrected, or a glitch).
    pub fn step(&self, seconds: i64) {
        let _ = self
            .0
            .wall
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |wall| {
                Some(wall.saturating_add_signed(seconds))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.wall.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_secs(self.0.monotonic.load(Ordering::SeqCst))
    }
}
