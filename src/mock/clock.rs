//! The mock's clock: the system's, moved by an offset a test sets (the
//! admin API's `POST /__mock/clock`, `MockArmorServer::set_clock_offset`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::protocol::clock::{Clock, SystemClock};

/// The system clock moved by an offset the test sets.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShiftedClock(pub(crate) Arc<AtomicI64>);

impl Clock for ShiftedClock {
    fn now(&self) -> u64 {
        SystemClock
            .now()
            .saturating_add_signed(self.0.load(Ordering::Relaxed))
    }
}
