//! The in-memory replay stores (moka's and the sharded maps'): atomic
//! reservation, capacity without forgetting, expiry. Every test runs on
//! both.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use armor_psk::{
    MemoryReplayStore, ReplayKey, ReplayStore, ReplayStoreError, Reservation, ShardedReplayStore,
};

/// What the tests need of a store beyond the trait.
trait Store: ReplayStore + Clone {
    fn with_capacity(capacity: u64) -> Self;
    fn len(&self) -> u64;
    fn sweep(&self);
}

// The tests here fill a store with one key: its share is the whole store.
impl Store for MemoryReplayStore {
    fn with_capacity(capacity: u64) -> Self {
        MemoryReplayStore::with_capacity(capacity).with_per_key_limit(capacity)
    }
    fn len(&self) -> u64 {
        MemoryReplayStore::len(self)
    }
    fn sweep(&self) {
        MemoryReplayStore::sweep(self);
    }
}

impl Store for ShardedReplayStore {
    fn with_capacity(capacity: u64) -> Self {
        ShardedReplayStore::with_capacity(capacity).with_per_key_limit(capacity)
    }
    fn len(&self) -> u64 {
        ShardedReplayStore::len(self)
    }
    fn sweep(&self) {
        ShardedReplayStore::sweep(self);
    }
}

/// Runs each generic test on both stores.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod moka {
            $(#[test] fn $test() { super::$test::<armor_psk::MemoryReplayStore>(); })*
        }
        mod sharded {
            $(#[test] fn $test() { super::$test::<armor_psk::ShardedReplayStore>(); })*
        }
    };
}

on_both_stores!(
    reserve_fails_when_the_entry_exists,
    a_request_with_a_seen_entry_is_a_replay,
    concurrent_reservations_of_one_entry_let_exactly_one_through,
    a_full_store_forgets_nothing,
    expired_entries_leave_and_free_their_place,
);

/// The store's answer, its error as a code so that answers compare.
fn reserve<S: Store>(
    store: &S,
    entries: &[ReplayKey],
    ttl: Duration,
) -> Result<Reservation, &'static str> {
    futures_util::FutureExt::now_or_never(store.reserve(entries, ttl))
        .expect("the memory store answers at once")
        .map_err(|error| match error {
            ReplayStoreError::Full => FULL,
            _ => "unavailable",
        })
}

const FULL: &str = "full";

const TTL: Duration = Duration::from_secs(600);

fn reserve_fails_when_the_entry_exists<S: Store>() {
    let store = S::with_capacity(1_000_000);
    let entry = [ReplayKey::nonce("k", "n")];
    assert_eq!(reserve(&store, &entry, TTL), Ok(Reservation::Reserved));
    assert_eq!(reserve(&store, &entry, TTL), Ok(Reservation::Replayed));
    // Same nonce under another key is another entry.
    assert_eq!(
        reserve(&store, &[ReplayKey::nonce("k2", "n")], TTL),
        Ok(Reservation::Reserved)
    );
    assert_eq!(store.len(), 2);
}

#[test]
fn entries_never_collide() {
    // Even with colons where the header grammar allows none.
    assert_ne!(
        ReplayKey::nonce("k", "a:b").as_bytes(),
        ReplayKey::nonce("k:a", "b").as_bytes()
    );
    assert_ne!(
        ReplayKey::nonce("k", "ab").as_bytes(),
        ReplayKey::nonce("ka", "b").as_bytes()
    );
    let sig = armor_psk::Signature::from_base64(&("A".repeat(86) + "==")).unwrap();
    let nonce_like_sig = String::from_utf8(vec![0u8; 64]).unwrap();
    assert_ne!(
        ReplayKey::signature("k", &sig).as_bytes(),
        ReplayKey::nonce("k", &nonce_like_sig).as_bytes()
    );
    let debug = format!("{:?}", ReplayKey::signature("key-1", &sig));
    assert!(
        debug.contains("key-1") && debug.contains("signature"),
        "{debug}"
    );
}

fn a_request_with_a_seen_entry_is_a_replay<S: Store>() {
    let store = S::with_capacity(1_000_000);
    let first = [ReplayKey::nonce("k", "sig-1"), ReplayKey::nonce("k", "n-1")];
    assert_eq!(reserve(&store, &first, TTL), Ok(Reservation::Reserved));
    let second = [ReplayKey::nonce("k", "sig-2"), ReplayKey::nonce("k", "n-1")];
    assert_eq!(reserve(&store, &second, TTL), Ok(Reservation::Replayed));
}

fn concurrent_reservations_of_one_entry_let_exactly_one_through<S: Store>() {
    let store = S::with_capacity(1_000_000);
    let winners = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..100 {
            let store = store.clone();
            let winners = Arc::clone(&winners);
            scope.spawn(move || {
                let entries = [ReplayKey::nonce("k", "contended")];
                if reserve(&store, &entries, TTL) == Ok(Reservation::Reserved) {
                    winners.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(winners.load(Ordering::SeqCst), 1);
    assert_eq!(store.len(), 1);
}

fn a_full_store_forgets_nothing<S: Store>() {
    // moka's size-bounded cache may silently decline new entries at capacity;
    // this store must instead hold every live entry and refuse new ones.
    const CAPACITY: u64 = 20_000;
    let store = S::with_capacity(CAPACITY);
    for i in 0..CAPACITY {
        let entry = [ReplayKey::nonce("k", &format!("n-{i}"))];
        assert_eq!(
            reserve(&store, &entry, TTL),
            Ok(Reservation::Reserved),
            "entry {i}"
        );
    }
    assert_eq!(store.len(), CAPACITY);
    for i in 0..100 {
        let entry = [ReplayKey::nonce("k", &format!("new-{i}"))];
        assert_eq!(reserve(&store, &entry, TTL), Err(FULL));
    }
    store.sweep();
    for i in 0..CAPACITY {
        let entry = [ReplayKey::nonce("k", &format!("n-{i}"))];
        assert_eq!(
            reserve(&store, &entry, TTL),
            Ok(Reservation::Replayed),
            "entry {i} was forgotten"
        );
    }
    assert_eq!(store.len(), CAPACITY);
}

fn expired_entries_leave_and_free_their_place<S: Store>() {
    // Expiry runs on the stores' own monotonic clocks: this test waits for it
    // (briefly), but asserts no duration.
    let store = S::with_capacity(2);
    let short = Duration::from_millis(50);
    assert_eq!(
        reserve(&store, &[ReplayKey::nonce("k", "a")], short),
        Ok(Reservation::Reserved)
    );
    assert_eq!(
        reserve(&store, &[ReplayKey::nonce("k", "b")], TTL),
        Ok(Reservation::Reserved)
    );
    assert_eq!(
        reserve(&store, &[ReplayKey::nonce("k", "c")], TTL),
        Err(FULL)
    );

    // Expiry counts whole seconds: up to about two for a 50 ms entry.
    let mut freed = false;
    for _ in 0..250 {
        std::thread::sleep(Duration::from_millis(20));
        store.sweep();
        if store.len() == 1 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the expired entry was never swept");
    assert_eq!(
        reserve(&store, &[ReplayKey::nonce("k", "a")], TTL),
        Ok(Reservation::Reserved)
    );
    assert_eq!(
        reserve(&store, &[ReplayKey::nonce("k", "b")], TTL),
        Ok(Reservation::Replayed)
    );
}

#[test]
fn the_sharded_store_reserves_a_request_all_or_nothing() {
    let store = ShardedReplayStore::new();
    let first = [ReplayKey::nonce("k", "sig-1"), ReplayKey::nonce("k", "n-1")];
    assert_eq!(reserve(&store, &first, TTL), Ok(Reservation::Reserved));
    // Refused for its nonce: its signature entry is not kept either.
    let second = [ReplayKey::nonce("k", "sig-2"), ReplayKey::nonce("k", "n-1")];
    assert_eq!(reserve(&store, &second, TTL), Ok(Reservation::Replayed));
    assert_eq!(store.len(), 2);
    let third = [ReplayKey::nonce("k", "sig-2"), ReplayKey::nonce("k", "n-3")];
    assert_eq!(reserve(&store, &third, TTL), Ok(Reservation::Reserved));
}
