//! A cached key lookup (`CachedKeyStore`, a hit) beside a `MemoryKeyStore`
//! lookup and the crypto floor of a 200 B request, interleaved.
//!
//! `cargo bench --bench key_cache`.

mod common;

use std::hint::black_box;

use armor_psk::keys::{CachedKeyStore, KeyStore, MemoryKeyStore};
use common::{Fixture, KEY_ID, Ratios, SECRET};
use futures_util::FutureExt;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let memory = MemoryKeyStore::new().with_key(KEY_ID, SECRET);
    let cached = CachedKeyStore::new(memory.clone());
    runtime.block_on(async { cached.get(KEY_ID).await.unwrap().unwrap() });
    let floor = Fixture::new(200);
    let _ = Ratios::<()>::new("a key lookup, ratio to the crypto floor of a 200 B request")
        .form("floor (SHA-512 of 200 B + pre-keyed HMAC)", |batch| {
            for _ in batch.drain(..) {
                black_box(floor.floor());
            }
        })
        .form("MemoryKeyStore::get", |batch| {
            for _ in batch.drain(..) {
                black_box(memory.get(KEY_ID).now_or_never());
            }
        })
        .form("CachedKeyStore::get, a hit", |batch| {
            for _ in batch.drain(..) {
                black_box(runtime.block_on(cached.get(KEY_ID)).unwrap());
            }
        })
        .run(40, 2_000, |n| vec![(); n]);
}
