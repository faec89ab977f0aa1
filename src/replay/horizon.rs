//! The time the in-memory index expires entries by: the layer's wall
//! clock, as far as its monotonic clock confirms it.
//!
//! Expiring by the latest time any request brought lets one glitch
//! forward (a day, for one accepted request) expire every live entry at
//! the next sweep, and a replay is then accepted once the clock is back.
//! Here the wall clock's offset from the monotonic clock is what is
//! trusted: while they move together, the horizon is the wall clock; a
//! step back is followed at once (the index then sweeps less, never more);
//! a step forward is believed only once every request has shown it for an
//! entry's lifetime, so a glitch shorter than that forgets nothing, and a
//! real correction is followed a lifetime late (entries are kept that much
//! longer, no one is refused for it). A step back of up to the clock-skew
//! allowance reopens nothing either: an entry is kept that much past its
//! window.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Wall and monotonic seconds are read at different instants and rounded
/// down apart: their offset wanders by a second without any step.
const TOLERANCE: i64 = 1;

/// A step of the wall clock forward, not yet believed.
#[derive(Debug, Clone, Copy)]
struct Pending {
    offset: i64,
    since: u64,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Horizon {
    /// Wall seconds minus monotonic seconds, believed.
    offset: AtomicI64,
    /// The latest monotonic second a request brought.
    monotonic: AtomicU64,
    started: AtomicBool,
    /// Set while a step forward waits: the fast path then clears it on a
    /// request that agrees with the believed offset.
    waiting: AtomicBool,
    pending: Mutex<Option<Pending>>,
}

impl Horizon {
    pub(crate) fn new() -> Self {
        Self {
            offset: AtomicI64::new(0),
            monotonic: AtomicU64::new(0),
            started: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            pending: Mutex::new(None),
        }
    }

    /// A request's times: `wall` (Unix seconds), `monotonic` (seconds),
    /// and `confirm`, how long a step forward must last to be believed.
    pub(crate) fn observe(&self, wall: u64, monotonic: u64, confirm: u64) {
        let offset = signed(wall) - signed(monotonic);
        if self.monotonic.load(Ordering::Relaxed) < monotonic {
            self.monotonic.fetch_max(monotonic, Ordering::Relaxed);
        }
        if self.started.load(Ordering::Acquire)
            && (offset - self.offset.load(Ordering::Relaxed)).abs() <= TOLERANCE
        {
            if self.waiting.load(Ordering::Relaxed) {
                // The clock came back to the believed offset: the step
                // forward was a glitch. Cleared under the lock, so that a
                // step noted meanwhile keeps its flag.
                let mut pending = self.pending.lock();
                *pending = None;
                self.waiting.store(false, Ordering::Relaxed);
            }
            return;
        }
        let mut pending = self.pending.lock();
        if !self.started.load(Ordering::Acquire) {
            self.offset.store(offset, Ordering::Relaxed);
            self.started.store(true, Ordering::Release);
            return;
        }
        let believed = self.offset.load(Ordering::Relaxed);
        if offset < believed - TOLERANCE {
            // A step back: followed at once.
            self.offset.store(offset, Ordering::Relaxed);
            *pending = None;
        } else if offset > believed + TOLERANCE {
            match *pending {
                Some(step) if (step.offset - offset).abs() <= TOLERANCE => {
                    if monotonic.saturating_sub(step.since) >= confirm {
                        self.offset.store(offset, Ordering::Relaxed);
                        *pending = None;
                    }
                }
                _ => {
                    *pending = Some(Pending {
                        offset,
                        since: monotonic,
                    });
                }
            }
        }
        self.waiting.store(pending.is_some(), Ordering::Relaxed);
    }

    /// A request's times: its `now`, the monotonic reading it carries (or
    /// the process's), and its entries' lifetime as the confirmation.
    pub(crate) fn observe_request(&self, request: &crate::replay::store::ReplayRequest<'_>) {
        let monotonic = request
            .monotonic()
            .unwrap_or_else(crate::protocol::clock::process_monotonic);
        let lifetime = request.lifetime();
        self.observe(request.now(), monotonic.as_secs(), lifetime);
    }

    /// The horizon (Unix seconds): 0 before the first request.
    pub(crate) fn now(&self) -> u64 {
        if !self.started.load(Ordering::Acquire) {
            return 0;
        }
        let monotonic = signed(self.monotonic.load(Ordering::Relaxed));
        u64::try_from(monotonic + self.offset.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

fn signed(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const LIFETIME: u64 = 361;

    #[test]
    fn follows_the_wall_clock_while_time_passes() {
        let horizon = Horizon::new();
        assert_eq!(horizon.now(), 0);
        for passed in 0..1000 {
            horizon.observe(NOW + passed, 5 + passed, LIFETIME);
            assert_eq!(horizon.now(), NOW + passed);
        }
    }

    #[test]
    fn a_glitch_forward_moves_nothing() {
        let horizon = Horizon::new();
        horizon.observe(NOW, 0, LIFETIME);
        horizon.observe(NOW + 86_400, 1, LIFETIME);
        assert_eq!(horizon.now(), NOW + 1);
        // Lasting a while, still not believed; then the clock is back.
        horizon.observe(NOW + 86_400 + 300, 301, LIFETIME);
        assert_eq!(horizon.now(), NOW + 301);
        horizon.observe(NOW + 302, 302, LIFETIME);
        assert_eq!(horizon.now(), NOW + 302);
        // A later step to the same offset starts its wait anew.
        horizon.observe(NOW + 86_400 + 400, 400, LIFETIME);
        assert_eq!(horizon.now(), NOW + 400);
    }

    #[test]
    fn a_step_forward_is_believed_once_it_lasted_a_lifetime() {
        let horizon = Horizon::new();
        horizon.observe(NOW, 0, LIFETIME);
        horizon.observe(NOW + 30, 0, LIFETIME);
        assert_eq!(horizon.now(), NOW);
        horizon.observe(NOW + 30 + 360, 360, LIFETIME);
        assert_eq!(horizon.now(), NOW + 360);
        horizon.observe(NOW + 30 + 361, 361, LIFETIME);
        assert_eq!(horizon.now(), NOW + 30 + 361);
    }

    #[test]
    fn a_step_back_is_followed_at_once() {
        let horizon = Horizon::new();
        horizon.observe(NOW, 0, LIFETIME);
        horizon.observe(NOW - 29, 1, LIFETIME);
        assert_eq!(horizon.now(), NOW - 29);
        // And the monotonic clock never runs back.
        horizon.observe(NOW - 30, 0, LIFETIME);
        assert_eq!(horizon.now(), NOW - 29);
    }
}
