//! `CachedKeyStore` in front of a key source: hits, one lookup for
//! concurrent misses, unknown ids remembered and bounded, keys kept through
//! a source outage, invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use armor_psk::{
    BoxFuture,
    keys::{CachedKeyStore, Key, KeyStore, KeyStoreError, MemoryKeyStore},
};

/// A source that holds keys in memory, can be told to fail, answers after
/// a delay, and counts its lookups.
#[derive(Clone, Default)]
struct Source {
    keys: MemoryKeyStore,
    down: Arc<AtomicBool>,
    lookups: Arc<AtomicUsize>,
}

impl KeyStore for Source {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        Box::pin(async move {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(KeyStoreError::new("the database is down"));
            }
            Ok(self.keys.lookup(key_id))
        })
    }
}

fn source() -> Source {
    let source = Source::default();
    source.keys.insert("key-1", "secret-1");
    source.keys.insert("key-2", "secret-2");
    source
}

#[tokio::test]
async fn found_keys_are_cached_and_concurrent_misses_make_one_lookup() {
    let source = source();
    let cache = CachedKeyStore::new(source.clone());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("key-1").await.unwrap().is_some() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert!(cache.get("key-1").await.unwrap().is_some());
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(cache.lookups(), 1);
}

#[tokio::test]
async fn random_unknown_key_ids_reach_the_source_a_bounded_number_of_times() {
    let source = source();
    let clock = armor_psk::ManualClock::new(1_700_000_000);
    let cache = CachedKeyStore::builder(source.clone())
        .unknown(Duration::from_secs(5), 1_000)
        .lookups_per_second(50)
        .clock(clock.clone())
        .build();
    // 10,000 requests with random key ids, 500 at a time, within one
    // second of the cache's clock.
    let (mut unknown, mut refused) = (0, 0);
    for batch in 0..20 {
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(&format!("random-{batch}-{i}")).await })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                Ok(None) => unknown += 1,
                Ok(Some(_)) => panic!("a random key id was found"),
                Err(_) => refused += 1,
            }
        }
    }
    let lookups = source.lookups.load(Ordering::SeqCst);
    assert_eq!(lookups, 50, "the budget of one second, all of it");
    assert_eq!(unknown + refused, 10_000);
    assert_eq!(unknown as usize, lookups);
    // An unknown id asked again is answered from the cache, at once.
    let before = source.lookups.load(Ordering::SeqCst);
    let known_unknown = (0..500).map(|i| format!("random-0-{i}")).find(|id| {
        futures_util::FutureExt::now_or_never(cache.get(id)).is_some_and(|r| matches!(r, Ok(None)))
    });
    assert!(known_unknown.is_some(), "no unknown id remembered");
    assert_eq!(source.lookups.load(Ordering::SeqCst), before);
    // A real key waits for the next second, then gets through.
    assert!(
        cache.get("key-2").await.is_err(),
        "the second's budget is spent"
    );
    clock.advance(1);
    assert!(cache.get("key-2").await.unwrap().is_some());
}

#[tokio::test]
async fn during_an_outage_cached_keys_serve_and_others_fail() {
    let source = source();
    let cache = CachedKeyStore::builder(source.clone())
        .ttl(Duration::from_millis(100))
        .build();
    assert!(cache.get("key-1").await.unwrap().is_some());
    source.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await; // past the TTL
    assert!(
        cache.get("key-1").await.unwrap().is_some(),
        "within the grace period"
    );
    let error = cache.get("key-2").await.unwrap_err();
    assert!(std::error::Error::source(&error).is_some(), "{error}");
    source.down.store(false, Ordering::SeqCst);
    assert!(cache.get("key-2").await.unwrap().is_some());
}

#[tokio::test]
async fn an_invalidated_key_is_looked_up_again() {
    let source = source();
    let cache = CachedKeyStore::new(source.clone());
    assert!(cache.get("key-1").await.unwrap().is_some());
    source.keys.revoke("key-1");
    assert!(cache.get("key-1").await.unwrap().is_some(), "cached");
    cache.invalidate("key-1").await;
    assert!(cache.get("key-1").await.unwrap().is_none());
}

/// A source that reads the key at once, then answers only when let go:
/// a lookup held in flight while the key is revoked.
#[derive(Clone)]
struct HeldSource {
    keys: MemoryKeyStore,
    gate: Arc<tokio::sync::Semaphore>,
    down: Arc<AtomicBool>,
}

impl KeyStore for HeldSource {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        Box::pin(async move {
            let answer = self.keys.lookup(key_id);
            let _permit = self.gate.acquire().await.expect("gate open");
            if self.down.load(Ordering::SeqCst) {
                return Err(KeyStoreError::new("the database is down"));
            }
            Ok(answer)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_never_overtaken_by_a_lookup_in_flight() {
    let source = HeldSource {
        keys: MemoryKeyStore::new().with_key("key-1", "secret-1"),
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
        down: Arc::default(),
    };
    let cache = CachedKeyStore::builder(source.clone())
        .ttl(Duration::from_secs(60))
        .build();
    // A lookup starts, reads the key, and is held.
    let in_flight = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get("key-1").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The key is revoked at the source and the change published.
    source.keys.revoke("key-1");
    cache.invalidate("key-1").await;
    // The held lookup answers now, with what it read before the revocation.
    source.gate.add_permits(1_000);
    let _ = in_flight.await.unwrap();
    // Its answer is not kept: the next request asks again and is refused.
    assert!(
        cache.get("key-1").await.unwrap().is_none(),
        "a revoked key served from the cache"
    );
    // Nor kept as a grace copy: with the source down, still refused.
    source.down.store(true, Ordering::SeqCst);
    cache.expire_all();
    assert!(
        cache.get("key-1").await.map_or(true, |key| key.is_none()),
        "a revoked key served as a grace copy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_added_while_a_lookup_of_it_is_in_flight_is_not_remembered_unknown() {
    let source = HeldSource {
        keys: MemoryKeyStore::new(),
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
        down: Arc::default(),
    };
    let cache = CachedKeyStore::new(source.clone());
    let in_flight = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get("new-key").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    source.keys.insert("new-key", "secret");
    cache.invalidate("new-key").await;
    source.gate.add_permits(1_000);
    let _ = in_flight.await.unwrap();
    assert!(
        cache.get("new-key").await.unwrap().is_some(),
        "the new key was remembered unknown"
    );
}
