//! A request through the tower service (`oneshot`) against the bare inner
//! service, at 200 B and 1 MiB (the 1 MiB body in 16 KiB frames, as hyper
//! delivers it).
//!
//! `cargo bench --bench layer`. Prints, from interleaved rounds, each form's
//! median and its ratio to the bare service, and the layer's added cost as a
//! ratio to the crypto floor: without a replay store, with
//! the store swept by requests, and with the default store.

mod common;

use std::convert::Infallible;
use std::hint::black_box;

use armor_psk::{
    ArmorPskLayer, ManualClock,
    keys::MemoryKeyStore,
    replay::{MemoryReplayStore, ReplayStore, Sweeping},
};
use axum::body::Body;
use bytes::Bytes;
use common::{Fixture, KEY_ID, NOW, NoReplayStore, PATH, Ratios, SECRET, inner};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};

fn layer(store: impl ReplayStore, unique_nonces: bool) -> ArmorPskLayer {
    ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_clock(ManualClock::new(NOW))
        .with_replay_store(store)
        .with_unique_nonces(unique_nonces)
}

fn request(fixture: &mut Fixture, body: &Bytes) -> Request<Body> {
    let frames: Vec<Result<Bytes, Infallible>> = body
        .chunks(16 * 1024)
        .map(|chunk| Ok(body.slice_ref(chunk)))
        .collect();
    Request::post(PATH)
        .header("authorization", fixture.header())
        .body(Body::from_stream(futures_util::stream::iter(frames)))
        .unwrap()
}

fn call<S, B>(runtime: &tokio::runtime::Runtime, service: &S, request: Request<Body>) -> u16
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
{
    let response = runtime.block_on(service.clone().oneshot(request)).unwrap();
    response.status().as_u16()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bare = service_fn(inner);
    // The stores' memory began before NOW (the layer's fixed clock): none
    // of the requests is refused as signed before it began.
    let store = || {
        MemoryReplayStore::builder()
            .capacity(u64::MAX)
            .memory_since(Some(NOW - 1))
    };
    let default_store = || store().build();
    // Criterion's own runs use a store of their own, so that every store in
    // the interleaved rounds has held the same number of requests.
    let criterion_layer = layer(default_store(), true).layer(service_fn(inner));
    let both = layer(default_store(), true).layer(service_fn(inner));
    let signature_only = layer(default_store(), false).layer(service_fn(inner));
    let request_swept =
        layer(store().sweeping(Sweeping::Requests).build(), true).layer(service_fn(inner));
    let no_store = layer(NoReplayStore, true).layer(service_fn(inner));

    for (size, label) in [(200, "200B"), (1024 * 1024, "1MiB")] {
        let mut fixture = Fixture::new(size);
        let body = Bytes::from(fixture.body.clone());
        let mut group = c.benchmark_group(format!("layer_{label}"));
        group.bench_function("bare", |b| {
            b.iter_batched(
                || request(&mut fixture, &body),
                |request| assert_eq!(call(&runtime, &bare, request), 200),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("layer", |b| {
            b.iter_batched(
                || request(&mut fixture, &body),
                |request| assert_eq!(call(&runtime, &criterion_layer, request), 200),
                BatchSize::SmallInput,
            )
        });
        group.finish();

        let (rounds, batch) = if size <= 1024 { (40, 300) } else { (15, 3) };
        let floor_fixture = Fixture::new(size);
        let medians = Ratios::new(format!("layer at {label}, ratio to the bare service"))
            .form("bare inner service", |batch: &mut Vec<Request<Body>>| {
                for request in batch.drain(..) {
                    assert_eq!(call(&runtime, &bare, request), 200);
                }
            })
            .form("floor (SHA-512 body + pre-keyed HMAC)", |batch| {
                for _ in batch.drain(..) {
                    black_box(floor_fixture.floor());
                }
            })
            .form("layer, no replay store", |batch| {
                for request in batch.drain(..) {
                    assert_eq!(call(&runtime, &no_store, request), 200);
                }
            })
            .form("layer, both entries (default)", |batch| {
                for request in batch.drain(..) {
                    assert_eq!(call(&runtime, &both, request), 200);
                }
            })
            .form("layer, signature entry only", |batch| {
                for request in batch.drain(..) {
                    assert_eq!(call(&runtime, &signature_only, request), 200);
                }
            })
            .form("layer, both entries, swept by requests", |batch| {
                for request in batch.drain(..) {
                    assert_eq!(call(&runtime, &request_swept, request), 200);
                }
            })
            .run(rounds, batch, |n| {
                (0..n).map(|_| request(&mut fixture, &body)).collect()
            });
        let [
            (_, bare),
            (_, floor),
            (_, none),
            (_, both),
            (_, one),
            (_, request_swept),
        ] = medians.as_slice()
        else {
            unreachable!("six forms")
        };
        println!(
            "  added by the layer, as a ratio to the floor: {:.2} (no replay store; target <= 2), {:.2} (both entries, swept by requests), {:.2} (both entries, default store), {:.2} (signature entry only, default store)",
            (none - bare) / floor,
            (request_swept - bare) / floor,
            (both - bare) / floor,
            (one - bare) / floor,
        );
    }
}

criterion_group! {
    name = layer_benches;
    config = common::criterion();
    targets = benches
}
criterion_main!(layer_benches);
