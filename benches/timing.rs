//! Does an unknown key id answer faster than a wrong signature for a known
//! key? Both must cost the same HMAC and get the same 401; this bench sends
//! each through the layer (`oneshot`, 200 B bodies), alternating, and
//! prints both response-time distributions: medians, their difference,
//! deciles, and how much the two overlap.
//!
//! `cargo bench --bench timing` (add `-- --samples N`; default 20,000 each).

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use armor_psk::{
    ArmorPsk, ArmorPskLayer, ManualClock, Signer, VerifiedBody, keys::MemoryKeyStore,
    replay::Sweeping,
};
use axum::body::Body;
use common::{KEY_ID, NOW, PATH, SECRET, format_ns};
use http::{Request, Response};
use tower::util::ServiceFn;
use tower::{Layer, ServiceExt, service_fn};

type Inner = std::future::Ready<Result<Response<String>, Infallible>>;

/// The inner service behind the layer.
type Protected = ArmorPsk<ServiceFn<fn(Request<VerifiedBody>) -> Inner>>;

fn inner(_request: Request<VerifiedBody>) -> Inner {
    std::future::ready(Ok(Response::new(String::new())))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The share of `a`'s samples that fall within `b`'s 5th–95th percentile
/// range.
fn within(a: &[Duration], b: &[Duration]) -> f64 {
    let (low, high) = (percentile(b, 0.05), percentile(b, 0.95));
    a.iter().filter(|d| (low..=high).contains(d)).count() as f64 / a.len() as f64
}

/// Sends `samples` requests signed by each of `signers`, alternating,
/// through `service`; each must get `status`. Returns the sorted response
/// times of each signer's requests.
fn alternate(
    runtime: &tokio::runtime::Runtime,
    service: &Protected,
    signers: [&Signer; 2],
    samples: usize,
    status: u16,
) -> [Vec<Duration>; 2] {
    let body = vec![b'x'; 200];
    let mut times = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
    for i in 0..samples * 2 {
        let header = signers[i % 2]
            .sign_at(
                "POST",
                PATH,
                &body,
                &armor_psk::protocol::new_uuid_v4(),
                NOW,
            )
            .unwrap();
        let request = Request::post(PATH)
            .header("authorization", header)
            .body(Body::from(body.clone()))
            .unwrap();
        let start = Instant::now();
        let response = runtime.block_on(service.clone().oneshot(request)).unwrap();
        times[i % 2].push(start.elapsed());
        assert_eq!(response.status(), status);
    }
    for t in &mut times {
        t.sort();
    }
    times
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let samples: usize = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .map_or(20_000, |n| n.parse().unwrap());
    let samples = if args.iter().any(|a| a == "--bench") {
        samples
    } else {
        200
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let service = ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_clock(ManualClock::new(NOW))
        .layer(service_fn(inner as fn(Request<VerifiedBody>) -> Inner));
    let unknown = Signer::new("00000000-0000-4000-8000-000000000000", SECRET).unwrap();
    let wrong = Signer::new(KEY_ID, "not-the-secret").unwrap();
    let times = alternate(&runtime, &service, [&unknown, &wrong], samples, 401);
    let [unknown_key, wrong_signature] = &times;
    println!("response time of a 401, {samples} samples each, alternating, through the layer");
    for (name, t) in [
        ("unknown key id", unknown_key),
        ("known key, wrong signature", wrong_signature),
    ] {
        println!(
            "  {name:<28} median {:>9}   p10 {:>9}   p90 {:>9}",
            format_ns(percentile(t, 0.5).as_nanos() as f64),
            format_ns(percentile(t, 0.1).as_nanos() as f64),
            format_ns(percentile(t, 0.9).as_nanos() as f64),
        );
    }
    let (a, b) = (
        percentile(unknown_key, 0.5),
        percentile(wrong_signature, 0.5),
    );
    let difference = a.as_nanos() as f64 - b.as_nanos() as f64;
    println!(
        "  median difference (unknown − wrong): {:+.0} ns ({:+.1} % of the wrong-signature median)",
        difference,
        100.0 * difference / b.as_nanos() as f64
    );
    println!(
        "  overlap: {:.0} % of unknown-key times lie in the wrong-signature p5–p95 range, {:.0} % the other way",
        100.0 * within(unknown_key, wrong_signature),
        100.0 * within(wrong_signature, unknown_key)
    );
    three_secrets(samples);
}

/// A key of three secrets: a request signed with the first against one
/// signed with the last, both accepted, alternating. Every active secret is
/// tried whichever matches, so the two should not differ beyond noise.
fn three_secrets(samples: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = armor_psk::keys::Key::from_secrets([
        armor_psk::keys::KeySecret::new(1, "secret-one"),
        armor_psk::keys::KeySecret::new(2, "secret-two"),
        armor_psk::keys::KeySecret::new(3, "secret-three"),
    ]);
    let keys = MemoryKeyStore::new();
    keys.insert_key(KEY_ID, key);
    let service = ArmorPskLayer::new(keys)
        .with_clock(ManualClock::new(NOW))
        .with_replay_store(
            armor_psk::replay::MemoryReplayStore::builder()
                .capacity(u64::MAX)
                .sweeping(Sweeping::Requests)
                .build(),
        )
        .layer(service_fn(inner as fn(Request<VerifiedBody>) -> Inner));
    let first = Signer::new(KEY_ID, "secret-one").unwrap();
    let last = Signer::new(KEY_ID, "secret-three").unwrap();
    let times = alternate(&runtime, &service, [&first, &last], samples, 200);
    println!(
        "response time of a 200 with a key of three secrets, {samples} samples each, alternating"
    );
    for (name, t) in [
        ("match on the first", &times[0]),
        ("match on the last", &times[1]),
    ] {
        println!(
            "  {name:<28} median {:>9}   p10 {:>9}   p90 {:>9}",
            format_ns(percentile(t, 0.5).as_nanos() as f64),
            format_ns(percentile(t, 0.1).as_nanos() as f64),
            format_ns(percentile(t, 0.9).as_nanos() as f64),
        );
    }
    let (a, b) = (percentile(&times[0], 0.5), percentile(&times[1], 0.5));
    let difference = b.as_nanos() as f64 - a.as_nanos() as f64;
    println!(
        "  median difference (last − first): {:+.0} ns ({:+.1} %)",
        difference,
        100.0 * difference / a.as_nanos() as f64
    );
}
