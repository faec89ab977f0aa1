//! A replay store that keeps nothing, for the benches and the load test.

use std::time::Duration;

use armor_psk::{BoxFuture, ReplayKey, ReplayStore, ReplayStoreError, Reservation};

/// A replay store that keeps nothing: only to measure what verification
/// costs without one. Never use it to protect anything.
pub struct NoReplayStore;

impl ReplayStore for NoReplayStore {
    fn reserve<'a>(
        &'a self,
        _entries: &'a [ReplayKey],
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(std::future::ready(Ok(Reservation::Reserved)))
    }
}
