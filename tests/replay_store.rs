//! The in-memory replay store: atomic reservation, capacity without
//! forgetting, expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use armor_psk::{MemoryReplayStore, ReplayKey, ReplayStore, ReplayStoreError, Reservation};

fn reserve(
    store: &MemoryReplayStore,
    entries: &[ReplayKey],
    ttl: Duration,
) -> Result<Reservation, ReplayStoreError> {
    futures_util::FutureExt::now_or_never(store.reserve(entries, ttl))
        .expect("the memory store answers at once")
}

const TTL: Duration = Duration::from_secs(600);

#[test]
fn reserve_fails_when_the_entry_exists() {
    let store = MemoryReplayStore::new();
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

#[test]
fn a_request_with_a_seen_entry_is_a_replay() {
    let store = MemoryReplayStore::new();
    let first = [ReplayKey::nonce("k", "sig-1"), ReplayKey::nonce("k", "n-1")];
    assert_eq!(reserve(&store, &first, TTL), Ok(Reservation::Reserved));
    let second = [ReplayKey::nonce("k", "sig-2"), ReplayKey::nonce("k", "n-1")];
    assert_eq!(reserve(&store, &second, TTL), Ok(Reservation::Replayed));
}

#[test]
fn concurrent_reservations_of_one_entry_let_exactly_one_through() {
    let store = MemoryReplayStore::new();
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

#[test]
fn a_full_store_forgets_nothing() {
    // moka's size-bounded cache may silently decline new entries at capacity;
    // this store must instead hold every live entry and refuse new ones.
    const CAPACITY: u64 = 20_000;
    let store = MemoryReplayStore::with_capacity(CAPACITY);
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
        assert_eq!(reserve(&store, &entry, TTL), Err(ReplayStoreError::Full));
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

#[test]
fn expired_entries_leave_and_free_their_place() {
    // moka measures expiry on its own monotonic clock: this test waits for it
    // (briefly), but asserts no duration.
    let store = MemoryReplayStore::with_capacity(2);
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
        Err(ReplayStoreError::Full)
    );

    let mut freed = false;
    for _ in 0..100 {
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
