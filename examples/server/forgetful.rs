//! Deliberately broken stores, for the chaos harness to prove it catches
//! them: only in a build with `--cfg armor_psk_chaos_forgetful` in
//! `RUSTFLAGS`, never otherwise. The replay store answers every tenth
//! reservation `Reserved` without keeping it, so its replay is accepted;
//! the key store keeps serving every key it once found, so a revoked key
//! works on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use armor_psk::{
    BoxFuture,
    keys::{Key, KeyStore, KeyStoreError},
    replay::{ReplayRequest, ReplayStore, ReplayStoreError, Reservation},
};
use parking_lot::Mutex;

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

pub struct Remembering<K> {
    inner: K,
    seen: Mutex<HashMap<String, Key>>,
}

impl<K> Remembering<K> {
    pub fn new(inner: K) -> Self {
        eprintln!(
            "WARNING: a key store that never forgets a key (a broken build, for the chaos harness)"
        );
        Self {
            inner,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: KeyStore> KeyStore for Remembering<K> {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        Box::pin(async move {
            let found = self.inner.get(key_id).await;
            let mut seen = self.seen.lock();
            match found {
                Ok(Some(key)) => {
                    seen.insert(key_id.to_owned(), key.clone());
                    Ok(Some(key))
                }
                other => seen.get(key_id).cloned().map_or(other, |key| Ok(Some(key))),
            }
        })
    }
}
