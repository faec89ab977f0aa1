//! A replay store that keeps nothing, for the benches and the load test.

use armor_psk::{
    BoxFuture,
    replay::{ReplayRequest, ReplayStore, ReplayStoreError, Reservation},
};

/// A replay store that keeps nothing: only to measure what verification
/// costs without one. Never use it to protect anything.
pub struct NoReplayStore;

impl ReplayStore for NoReplayStore {
    fn reserve<'a>(
        &'a self,
        _request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(std::future::ready(Ok(Reservation::Reserved)))
    }

    fn reserve_ready(
        &self,
        _request: &ReplayRequest<'_>,
    ) -> Option<Result<Reservation, ReplayStoreError>> {
        Some(Ok(Reservation::Reserved))
    }
}
