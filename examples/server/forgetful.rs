//! A deliberately broken replay store, for the chaos harness to prove it
//! catches one: only in a build with `--cfg armor_psk_chaos_forgetful`
//! in `RUSTFLAGS`, never otherwise. Every tenth reservation is answered
//! `Reserved` without being kept, so its replay is accepted.

use std::sync::atomic::{AtomicU64, Ordering};

use armor_psk::{BoxFuture, ReplayRequest, ReplayStore, ReplayStoreError, Reservation};

pub struct Forgetful<S> {
    inner: S,
    count: AtomicU64,
}

impl<S> Forgetful<S> {
    pub fn new(inner: S) -> Self {
        eprintln!("WARNING: a forgetful replay store (a broken build, for the chaos harness)");
        Self {
            inner,
            count: AtomicU64::new(0),
        }
    }

    fn forgets(&self) -> bool {
        self.count.fetch_add(1, Ordering::Relaxed) % 10 == 9
    }
}

impl<S: ReplayStore> ReplayStore for Forgetful<S> {
    fn reserve<'a>(
        &'a self,
        request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        if self.forgets() {
            return Box::pin(std::future::ready(Ok(Reservation::Reserved)));
        }
        self.inner.reserve(request)
    }

    fn begin(&self, now: u64) {
        self.inner.begin(now);
    }
}
