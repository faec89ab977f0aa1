//! The in-memory replay store (swept by the process's thread, the default,
//! and swept by its requests): atomic reservation, capacity
//! without forgetting, a memory limit that holds, expiry and the restart
//! fence on the requests' clock (no sleeping), and per-key shares under
//! pressure. The generic tests run on both.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use armor_psk::{
    protocol::Signature,
    replay::{
        MemoryReplayStore, MemoryReplayStoreBuilder, ReplayRequest, ReplayStore, ReplayStoreError,
        Reservation, Sweeping,
    },
};

const NOW: u64 = 1_700_000_000;
const LIFETIME: Duration = Duration::from_secs(361);

/// A store of `capacity` entries, swept as `sweeping` says, that just
/// started: its memory begins with the first request.
fn fresh(sweeping: Sweeping, capacity: u64) -> MemoryReplayStoreBuilder {
    MemoryReplayStore::builder()
        .capacity(capacity)
        .sweeping(sweeping)
}

/// A store whose memory began an hour before `NOW` (the fence apart).
fn store(sweeping: Sweeping, capacity: u64) -> MemoryReplayStore {
    fresh(sweeping, capacity)
        .memory_since(Some(NOW - 3600))
        .build()
}

/// Runs each generic test on the store swept by the thread (the default)
/// and on the store swept by its requests.
macro_rules! on_both_sweepings {
    ($($test:ident),* $(,)?) => {
        mod swept_by_the_thread {
            $(#[test] fn $test() { super::$test(armor_psk::replay::Sweeping::Thread); })*
        }
        mod swept_by_requests {
            $(#[test] fn $test() { super::$test(armor_psk::replay::Sweeping::Requests); })*
        }
    };
}

on_both_sweepings!(
    a_request_is_reserved_once,
    a_seen_nonce_or_signature_makes_a_replay,
    concurrent_reservations_of_one_request_let_exactly_one_through,
    a_full_store_forgets_nothing,
    entries_expire_on_the_requests_clock_without_sleeping,
    requests_signed_before_the_store_began_are_refused,
    a_refused_request_holds_nothing,
    three_flooding_keys_never_make_a_normal_key_refused,
    the_count_stays_exact_through_growth_and_expiry,
    a_clock_glitch_a_day_forward_and_back_forgets_nothing,
    a_clock_step_back_forgets_nothing_live,
);

/// The layer's clock jumps a day ahead for one accepted request (a key
/// holder can sign for that time) and comes back: every live entry is
/// still refused as a replay after sweeps, and they leave only once time
/// has truly passed.
fn a_clock_glitch_a_day_forward_and_back_forgets_nothing(sweeping: Sweeping) {
    let store = store(sweeping, 1_000_000);
    for n in 0..1_000 {
        assert_eq!(request(&store, "k", n, NOW), RESERVED);
    }
    let day = NOW + 86_400;
    assert_eq!(
        reserve_at(&store, "k", &signature(5_000), None, day, day, 1),
        RESERVED
    );
    store.sweep();
    assert!(store.len() >= 2_001, "{} entries", store.len());
    for n in 0..1_000 {
        assert_eq!(
            reserve_at(&store, "k", &signature(n), None, NOW, NOW + 2, 2),
            REPLAYED,
            "request {n} was forgotten after the glitch"
        );
    }
    // Glitched for longer than a few requests, still nothing forgotten.
    for second in 3..300 {
        let _ = reserve_at(
            &store,
            "g",
            &signature(10_000 + second),
            None,
            day + second,
            day + second,
            second,
        );
    }
    store.sweep();
    assert_eq!(
        reserve_at(&store, "k", &signature(7), None, NOW + 300, NOW + 300, 300),
        REPLAYED
    );
    // Time passes for real: the entries go.
    assert_eq!(request(&store, "k", 20_000, NOW + 400), RESERVED);
    store.sweep();
    assert!(store.len() < 700, "{} entries left", store.len());
}

/// The wall clock steps back 30 s (an NTP correction): entries held are
/// still refused, and sweeps expire by the clock as it now reads.
fn a_clock_step_back_forgets_nothing_live(sweeping: Sweeping) {
    let store = store(sweeping, 1_000_000);
    for n in 0..100 {
        assert_eq!(request(&store, "k", n, NOW + 100), RESERVED);
    }
    // At NOW + 440 (monotonic 440) the clock steps back to NOW + 410:
    // the entries (held to NOW + 462) stay through every sweep.
    assert_eq!(
        reserve_at(
            &store,
            "k",
            &signature(500),
            None,
            NOW + 440,
            NOW + 440,
            440
        ),
        RESERVED
    );
    assert_eq!(
        reserve_at(
            &store,
            "k",
            &signature(501),
            None,
            NOW + 410,
            NOW + 410,
            441
        ),
        RESERVED
    );
    store.sweep();
    for n in 0..100 {
        assert_eq!(
            reserve_at(&store, "k", &signature(n), None, NOW + 100, NOW + 411, 442),
            REPLAYED,
            "request {n}"
        );
    }
}

/// Tables grow while expired entries are still in them: the count of
/// entries must follow what is held, or the store fills with nothing.
fn the_count_stays_exact_through_growth_and_expiry(sweeping: Sweeping) {
    let store = store(sweeping, 1_000_000);
    for n in 0..2_000 {
        assert_eq!(request(&store, &format!("k{}", n % 7), n, NOW), RESERVED);
    }
    let later = NOW + 400;
    for n in 2_000..22_000 {
        assert_eq!(request(&store, &format!("k{}", n % 7), n, later), RESERVED);
    }
    store.sweep();
    assert_eq!(store.len(), 40_000);
    assert_eq!(request(&store, "k", 1_000_000, later + 400), RESERVED);
    store.sweep();
    assert_eq!(store.len(), 2);
}

/// A signature made from a number: distinct numbers, distinct signatures.
fn signature(n: u64) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..16].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    Signature::from_bytes(bytes)
}

/// The store's answer to one request, its error as a code.
fn reserve(
    store: &MemoryReplayStore,
    key_id: &str,
    signature: &Signature,
    nonce: Option<&str>,
    timestamp: u64,
    now: u64,
) -> Result<Reservation, &'static str> {
    // Time passes with the clock: its monotonic reading follows `now`.
    let mut request = ReplayRequest::new(key_id, signature, timestamp, now, LIFETIME)
        .with_monotonic(Duration::from_secs(now.saturating_sub(NOW)));
    if let Some(nonce) = nonce {
        request = request.with_nonce(nonce);
    }
    futures_util::FutureExt::now_or_never(store.reserve(&request))
        .expect("the memory store answers at once")
        .map_err(|error| match error {
            ReplayStoreError::Full => FULL,
            ReplayStoreError::KeyQuotaExceeded { .. } => QUOTA,
            _ => "unavailable",
        })
}

/// As [`reserve`], with the clock's monotonic reading given apart from
/// `now` (a clock step moves one and not the other).
fn reserve_at(
    store: &MemoryReplayStore,
    key_id: &str,
    signature: &Signature,
    nonce: Option<&str>,
    timestamp: u64,
    now: u64,
    monotonic: u64,
) -> Result<Reservation, &'static str> {
    let mut request = ReplayRequest::new(key_id, signature, timestamp, now, LIFETIME)
        .with_monotonic(Duration::from_secs(monotonic));
    if let Some(nonce) = nonce {
        request = request.with_nonce(nonce);
    }
    futures_util::FutureExt::now_or_never(store.reserve(&request))
        .expect("the memory store answers at once")
        .map_err(|_| "refused")
}

/// Request `n` of `key_id` at `now`, signed then.
fn request(
    store: &MemoryReplayStore,
    key_id: &str,
    n: u64,
    now: u64,
) -> Result<Reservation, &'static str> {
    reserve(
        store,
        key_id,
        &signature(n),
        Some(&format!("{n:032x}")),
        now,
        now,
    )
}

const FULL: &str = "full";
const QUOTA: &str = "quota";
const RESERVED: Result<Reservation, &str> = Ok(Reservation::Reserved);
const REPLAYED: Result<Reservation, &str> = Ok(Reservation::Replayed);

fn a_request_is_reserved_once(sweeping: Sweeping) {
    let store = store(sweeping, 1_000);
    assert_eq!(request(&store, "k", 1, NOW), RESERVED);
    assert_eq!(request(&store, "k", 1, NOW), REPLAYED);
    assert_eq!(request(&store, "k", 1, NOW + 100), REPLAYED);
    // The same signature and nonce under another key are another request.
    assert_eq!(request(&store, "k2", 1, NOW), RESERVED);
    assert_eq!(store.len(), 4);
}

fn a_seen_nonce_or_signature_makes_a_replay(sweeping: Sweeping) {
    let store = store(sweeping, 1_000);
    assert_eq!(
        reserve(&store, "k", &signature(1), Some("n-1"), NOW, NOW),
        RESERVED
    );
    // The nonce again on another request.
    assert_eq!(
        reserve(&store, "k", &signature(2), Some("n-1"), NOW, NOW),
        REPLAYED
    );
    // The signature again with another nonce (the path/nonce re-cut).
    assert_eq!(
        reserve(&store, "k", &signature(1), Some("n-2"), NOW, NOW),
        REPLAYED
    );
    // Signature only (unique nonces off).
    assert_eq!(
        reserve(&store, "k", &signature(1), None, NOW, NOW),
        REPLAYED
    );
    assert_eq!(
        reserve(&store, "k", &signature(3), None, NOW, NOW),
        RESERVED
    );
}

fn concurrent_reservations_of_one_request_let_exactly_one_through(sweeping: Sweeping) {
    for round in 0..20 {
        let store = store(sweeping, 1_000_000);
        let winners = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..16 {
                let store = store.clone();
                let winners = Arc::clone(&winners);
                scope.spawn(move || {
                    if request(&store, "k", round, NOW) == RESERVED {
                        winners.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(winners.load(Ordering::SeqCst), 1, "round {round}");
        assert_eq!(store.len(), 2);
    }
}

fn a_full_store_forgets_nothing(sweeping: Sweeping) {
    // One entry per request (signature only), each of its own key, so that
    // no share stops them first.
    const CAPACITY: u64 = 20_000;
    let store = store(sweeping, CAPACITY);
    let key = |i: u64| format!("key-{i}");
    for i in 0..CAPACITY {
        assert_eq!(
            reserve(&store, &key(i), &signature(i), None, NOW, NOW),
            RESERVED,
            "{i}"
        );
    }
    assert_eq!(store.len(), CAPACITY);
    for i in CAPACITY..CAPACITY + 100 {
        assert_eq!(
            reserve(&store, &key(i), &signature(i), None, NOW, NOW),
            Err(FULL)
        );
    }
    store.sweep();
    for i in 0..CAPACITY {
        assert_eq!(
            reserve(&store, &key(i), &signature(i), None, NOW, NOW),
            REPLAYED,
            "entry {i} was forgotten"
        );
    }
    assert_eq!(store.len(), CAPACITY);
    // Once they expire, on the requests' clock, their places are free.
    let later = NOW + 400;
    for i in CAPACITY..CAPACITY + 100 {
        assert_eq!(
            reserve(&store, &key(i), &signature(i), None, later, later),
            RESERVED
        );
    }
}

fn entries_expire_on_the_requests_clock_without_sleeping(sweeping: Sweeping) {
    let store = store(sweeping, 1_000);
    assert_eq!(request(&store, "k", 1, NOW), RESERVED);
    assert_eq!(request(&store, "k", 2, NOW), RESERVED);
    // Request 1 stays held through NOW + 361 (its timestamp + lifetime).
    assert_eq!(request(&store, "k", 1, NOW + 361), REPLAYED);
    // A second later it may go: a request at that time takes its slot over.
    let later = NOW + 362;
    assert_eq!(request(&store, "k", 1, later), RESERVED);
    store.sweep();
    assert_eq!(
        store.len(),
        2,
        "request 2's entries were swept, request 1's renewed"
    );
    assert_eq!(request(&store, "k", 1, later), REPLAYED);
    assert_eq!(request(&store, "k", 2, later), RESERVED);
}

fn requests_signed_before_the_store_began_are_refused(sweeping: Sweeping) {
    let store = fresh(sweeping, 1_000).build();
    // The first request tells the store the time: it began then, and a
    // request signed in that second or before is refused.
    assert_eq!(
        reserve(&store, "k", &signature(1), Some("a"), NOW - 5, NOW),
        Ok(Reservation::IssuedBeforeRestart { began: NOW })
    );
    assert_eq!(
        reserve(&store, "k", &signature(2), Some("b"), NOW, NOW),
        Ok(Reservation::IssuedBeforeRestart { began: NOW })
    );
    assert_eq!(
        reserve(&store, "k", &signature(2), Some("b"), NOW + 1, NOW + 1),
        RESERVED
    );
    // A client 20 s behind is refused for 21 s, then served.
    assert!(matches!(
        reserve(&store, "k", &signature(3), Some("c"), NOW, NOW + 20),
        Ok(Reservation::IssuedBeforeRestart { .. })
    ));
    assert_eq!(
        reserve(&store, "k", &signature(4), Some("d"), NOW + 1, NOW + 21),
        RESERVED
    );

    // A store whose memory began earlier serves what was signed after
    // that second; one with the fence off serves any.
    let restored = fresh(sweeping, 1_000).memory_since(Some(NOW - 300)).build();
    assert_eq!(
        reserve(&restored, "k", &signature(1), None, NOW - 299, NOW),
        RESERVED
    );
    assert!(matches!(
        reserve(&restored, "k", &signature(2), None, NOW - 300, NOW),
        Ok(Reservation::IssuedBeforeRestart { began }) if began == NOW - 300
    ));
    let unfenced = fresh(sweeping, 1_000).memory_since(None).build();
    assert_eq!(
        reserve(&unfenced, "k", &signature(1), None, NOW - 300, NOW),
        RESERVED
    );
}

fn a_refused_request_holds_nothing(sweeping: Sweeping) {
    let store = store(sweeping, 1_000);
    assert_eq!(
        reserve(&store, "k", &signature(1), Some("n-1"), NOW, NOW),
        RESERVED
    );
    // Refused for its nonce: its signature entry is not kept either.
    assert_eq!(
        reserve(&store, "k", &signature(2), Some("n-1"), NOW, NOW),
        REPLAYED
    );
    assert_eq!(store.len(), 2);
    assert_eq!(
        reserve(&store, "k", &signature(2), Some("n-3"), NOW, NOW),
        RESERVED
    );
}

/// Three keys at full speed against a small store, a fourth sending one
/// request a second, and a key idle until the store is under pressure:
/// the floods are held to their share (429), the others never refused,
/// and the store never fills.
fn three_flooding_keys_never_make_a_normal_key_refused(sweeping: Sweeping) {
    const CAPACITY: u64 = 200_000;
    let store = store(sweeping, CAPACITY);
    let mut refused_floods = 0u64;
    let mut n = 0u64;
    // 400 simulated seconds at 1,000 requests a second per flooding key:
    // 2.4 M entries offered to a store of 200,000.
    for second in 0..400u64 {
        let now = NOW + second;
        for _ in 0..1_000 {
            for flood in ["flood-a", "flood-b", "flood-c"] {
                n += 1;
                match request(&store, flood, n, now) {
                    Ok(Reservation::Reserved) => {}
                    Err(QUOTA) => refused_floods += 1,
                    other => panic!("flood {flood} at {second} s: {other:?}"),
                }
            }
        }
        n += 1;
        assert_eq!(
            request(&store, "steady", n, now),
            RESERVED,
            "steady key at {second} s"
        );
        if second == 200 {
            for i in 0..10 {
                n += 1;
                assert_eq!(
                    request(&store, "idle-until-now", n, now),
                    RESERVED,
                    "idle key, {i}"
                );
            }
        }
        assert!(store.len() <= CAPACITY);
    }
    assert!(
        refused_floods > 1_000_000,
        "the floods were held to their share: {refused_floods}"
    );
}

#[test]
fn the_memory_limit_bounds_the_tables_and_gives_the_capacity() {
    let limit = 4 << 20;
    let store = MemoryReplayStore::builder()
        .memory_limit(limit)
        .memory_since(None)
        .build();
    assert_eq!(store.capacity(), limit / 16);
    let mut accepted = 0u64;
    for i in 0.. {
        match reserve(&store, &format!("key-{i}"), &signature(i), None, NOW, NOW) {
            Ok(Reservation::Reserved) => accepted += 1,
            Err(FULL) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        store.table_bytes() <= limit,
        "{} bytes",
        store.table_bytes()
    );
    assert!(accepted >= limit / 16 * 9 / 10, "{accepted} entries");
    // The default: 1 GiB.
    let default = MemoryReplayStore::new();
    assert_eq!(default.capacity(), (1 << 30) / 16);
    // Empty, its 1,024 shards (the most: the more a store holds, the more
    // shards, so one shard's growth stays short) are 16 slots each.
    assert!(
        default.table_bytes() <= 1024 * 16 * 12,
        "tables grow as used"
    );
}

#[test]
fn no_two_keys_share_a_count() {
    let store = store(Sweeping::Thread, 10_000_000);
    for i in 0..100_000u64 {
        assert_eq!(
            reserve(&store, &format!("key-{i}"), &signature(i), None, NOW, NOW),
            RESERVED
        );
    }
    assert_eq!(store.active_keys(), 100_000);
}

#[test]
fn a_hard_per_key_limit_holds_whatever_the_pressure() {
    let store = fresh(Sweeping::Thread, 1_000_000)
        .per_key_limit(10)
        .memory_since(Some(NOW - 3600))
        .build();
    for i in 0..5 {
        assert_eq!(request(&store, "k", i, NOW), RESERVED);
    }
    let refused = request(&store, "k", 5, NOW);
    assert_eq!(refused, Err(QUOTA));
    assert_eq!(request(&store, "other", 5, NOW), RESERVED);
    // Once its entries expire (on the requests' clock), the key is served.
    assert_eq!(request(&store, "k", 6, NOW + 400), RESERVED);
}

#[test]
fn stores_share_one_sweeping_thread() {
    let threads = || {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|line| {
                line.strip_prefix("Threads:")
                    .map(|n| n.trim().parse::<u32>().unwrap())
            })
            .unwrap()
    };
    let stores: Vec<_> = (0..200)
        .map(|i| {
            let store = store(Sweeping::Thread, 100);
            assert_eq!(request(&store, "k", i, NOW), RESERVED);
            store
        })
        .collect();
    assert!(threads() < 50, "{} threads for 200 stores", threads());
    drop(stores);
}
