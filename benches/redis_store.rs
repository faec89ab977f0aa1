//! The Redis replay store against the local Redis: reservations per second
//! (one at a time, and 32 in flight), and a request through the layer with
//! the Redis store against the same with the in-memory store, as a
//! ratio, from interleaved rounds.
//!
//! `ARMOR_PSK_REDIS_URL=redis://127.0.0.1:6379/ cargo bench --features redis --bench redis_store`
//! (that URL is the default). Without a reachable Redis it says so and
//! stops.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use armor_psk::{
    ArmorPskLayer, ManualClock, VerifiedBody,
    keys::MemoryKeyStore,
    protocol::Signature,
    replay::redis::RedisReplayStore,
    replay::{MemoryReplayStore, ReplayRequest, ReplayStore, Reservation},
};
use axum::body::Body;
use common::{Fixture, KEY_ID, NOW, PATH, Ratios, SECRET, format_ns};

const LIFETIME: Duration = Duration::from_secs(361);
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

async fn inner(_request: Request<VerifiedBody>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn layer(store: impl ReplayStore) -> ArmorPskLayer {
    // The store's memory begins at the layer's start, and what was signed
    // in that second is fenced: the layer starts a second before the
    // fixture's requests.
    ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_clock(ManualClock::new(NOW - 1))
        .with_replay_store(store)
}

/// The signature and nonce of request `i` (a run-unique seed apart).
fn entries(i: u64) -> (Signature, String) {
    let mut tag = [0u8; 64];
    tag[..8].copy_from_slice(&i.to_le_bytes());
    tag[8..16].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
    (Signature::from_bytes(tag), format!("bench-nonce-{i}"))
}

async fn reservations_per_second(store: Arc<RedisReplayStore>, in_flight: u64, first: u64) -> f64 {
    let total = 20_000u64;
    let start = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut i = worker;
                while i < total {
                    let (signature, nonce) = entries(first + i);
                    let request = ReplayRequest::new(KEY_ID, &signature, NOW, NOW, LIFETIME)
                        .with_nonce(&nonce);
                    let reserved = store.reserve(&request).await;
                    assert!(
                        matches!(reserved, Ok(Reservation::Reserved)),
                        "{reserved:?}"
                    );
                    i += in_flight;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to check without a Redis
    }
    let url =
        std::env::var("ARMOR_PSK_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("armor-psk-bench:{}:", uuid::Uuid::new_v4());
    let options = RedisReplayStore::options()
        .prefix(&prefix)
        .timeout(Duration::from_secs(1));
    let store = match runtime.block_on(options.clone().connect(&url)) {
        Ok(store) => store,
        Err(error) => {
            println!("SKIPPED: no Redis at {url}: {error}");
            return;
        }
    };
    let store = Arc::new(store);
    println!("Redis replay store against {url} (both entries, two SET NX sent at once)");
    for (pass, in_flight) in [1, 32].into_iter().enumerate() {
        let first = pass as u64 * 1_000_000;
        let rate = runtime.block_on(reservations_per_second(store.clone(), in_flight, first));
        println!(
            "  {in_flight:>2} in flight: {rate:>9.0} reservations/s ({} each)",
            format_ns(1e9 / rate)
        );
    }
    if let Ok(urls) = std::env::var("ARMOR_PSK_REDIS_CLUSTER_URLS") {
        let urls: Vec<&str> = urls.split(',').collect();
        match runtime.block_on(options.connect_cluster(&urls)) {
            Ok(cluster) => {
                let cluster = Arc::new(cluster);
                println!("Redis Cluster ({} nodes), the same", urls.len());
                for (pass, in_flight) in [1, 32].into_iter().enumerate() {
                    let first = (2 + pass as u64) * 1_000_000;
                    let rate = runtime.block_on(reservations_per_second(
                        cluster.clone(),
                        in_flight,
                        first,
                    ));
                    println!(
                        "  {in_flight:>2} in flight: {rate:>9.0} reservations/s ({} each)",
                        format_ns(1e9 / rate)
                    );
                }
            }
            Err(error) => println!("no Redis Cluster at {urls:?}: {error}"),
        }
    }

    let redis_layer = layer(RedisReplayStore::clone(&store)).layer(service_fn(inner));
    let memory_layer =
        layer(MemoryReplayStore::builder().capacity(u64::MAX).build()).layer(service_fn(inner));
    let mut fixture = Fixture::new(200);
    let call = |service: &armor_psk::ArmorPsk<_>, request| {
        let response = runtime.block_on(service.clone().oneshot(request)).unwrap();
        let refused = response
            .extensions()
            .get::<armor_psk::Rejection>()
            .map(armor_psk::Rejection::code);
        assert_eq!(response.status(), 200, "{refused:?}");
    };
    let medians = Ratios::new("a 200 B request through the layer, ratio to the memory store")
        .form(
            "layer + memory store (default)",
            |batch: &mut Vec<Request<Body>>| {
                for request in batch.drain(..) {
                    call(&memory_layer, request);
                }
            },
        )
        .form("layer + Redis store", |batch| {
            for request in batch.drain(..) {
                call(&redis_layer, request);
            }
        })
        .run(20, 200, |n| {
            (0..n)
                .map(|_| {
                    Request::post(PATH)
                        .header("authorization", fixture.header())
                        .body(Body::from(fixture.body.clone()))
                        .unwrap()
                })
                .collect()
        });
    println!("  ratio Redis / memory: {:.2}", medians[1].1 / medians[0].1);
}
