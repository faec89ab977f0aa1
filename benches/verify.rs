//! Verification cost against the crypto floor, at 200 bytes.
//!
//! `cargo bench --bench verify`. Besides criterion's timings it prints the
//! ratios of each form to the floor, measured interleaved in the same run
//! (absolute times on shared machines drift; ratios hold).

use std::hint::black_box;
use std::time::{Duration, Instant};

use armor_psk::{
    BodyDigest, Credentials, MemoryKeyStore, MemoryReplayStore, ReplayKey, ReplayStore, Secret,
    Signer, VerifyOptions, replay_ttl, verify,
};
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha512};

const KEY_ID: &str = "20a37099-4a0b-432f-bf46-5fa690a0405c";
const SECRET: &str = "a-secret-of-reasonable-length-0123456789";
const NOW: u64 = 1_700_000_000;

struct Fixture {
    body: Vec<u8>,
    keys: MemoryKeyStore,
    signer: Signer,
    options: VerifyOptions,
    keyed: Hmac<Sha512>,
}

impl Fixture {
    fn new(size: usize) -> Self {
        Self {
            body: (0..size).map(|i| (i % 251) as u8).collect(),
            keys: MemoryKeyStore::new().with_key(KEY_ID, SECRET),
            signer: Signer::new(KEY_ID, SECRET).unwrap(),
            options: VerifyOptions::default(),
            keyed: Hmac::<Sha512>::new_from_slice(SECRET.as_bytes()).unwrap(),
        }
    }

    fn request(&self, nonce: &str) -> http::request::Parts {
        let header = self
            .signer
            .sign_at("POST", "/things/1", &self.body, nonce, NOW)
            .unwrap();
        let request = http::Request::post("/things/1")
            .header("authorization", header)
            .body(())
            .unwrap();
        request.into_parts().0
    }

    /// SHA-512 of the body and HMAC-SHA512 of the canonical string from a
    /// pre-keyed state: the unavoidable work.
    fn floor(&self) -> [u8; 64] {
        let slot = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            Sha512::digest(&self.body),
        );
        let mut mac = self.keyed.clone();
        for part in [
            KEY_ID,
            "POST",
            "/things/1",
            "nonce-0000000001",
            "1700000000",
            slot.as_str(),
        ] {
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// Parse, key lookup, body slot, HMAC, constant-time compare; the
    /// credentials of a request that verified.
    fn verify(&self, parts: &http::request::Parts) -> Option<Credentials> {
        let credentials = Credentials::from_headers(&parts.headers).ok()?;
        let key: Option<Secret> = self.keys.lookup(credentials.key_id());
        let body = BodyDigest::of(&self.body);
        verify(parts, &credentials, &body, key.as_ref(), NOW, &self.options).ok()?;
        Some(credentials)
    }

    /// As `verify`, plus both replay reservations.
    fn verify_and_reserve(&self, parts: &http::request::Parts, store: &MemoryReplayStore) -> bool {
        let Some(credentials) = self.verify(parts) else {
            return false;
        };
        let entries = [
            ReplayKey::signature(credentials.key_id(), credentials.signature()),
            ReplayKey::nonce(credentials.key_id(), credentials.nonce()),
        ];
        let ttl = replay_ttl(credentials.timestamp(), NOW, self.options.window());
        futures_util::FutureExt::now_or_never(store.reserve(&entries, ttl))
            == Some(Ok(armor_psk::Reservation::Reserved))
    }
}

fn benches(c: &mut Criterion) {
    let fixture = Fixture::new(200);
    let parts = fixture.request("nonce-0000000001");
    let mut group = c.benchmark_group("verify_200B");
    group.bench_function("floor", |b| b.iter(|| black_box(fixture.floor())));
    group.bench_function("verify_no_replay", |b| {
        b.iter(|| black_box(fixture.verify(&parts)))
    });
    let store = MemoryReplayStore::with_capacity(u64::MAX);
    let mut n = 0u64;
    group.bench_function("verify_with_replay", |b| {
        b.iter_batched(
            || {
                n += 1;
                fixture.request(&format!("nonce-{n}"))
            },
            |parts| black_box(fixture.verify_and_reserve(&parts, &store)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
    print_ratios(&fixture);
}

/// Median time per call of each form, sampled interleaved, as a ratio to
/// the floor's.
fn print_ratios(fixture: &Fixture) {
    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 500;
    let parts = fixture.request("nonce-0000000001");
    let store = MemoryReplayStore::with_capacity(u64::MAX);
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    let mut n = 0u64;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(fixture.floor());
        }
        samples[0].push(start.elapsed());
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(fixture.verify(&parts));
        }
        samples[1].push(start.elapsed());
        let requests: Vec<_> = (0..PER_ROUND)
            .map(|_| {
                n += 1;
                fixture.request(&format!("nonce-{n}"))
            })
            .collect();
        let start = Instant::now();
        for parts in &requests {
            black_box(fixture.verify_and_reserve(parts, &store));
        }
        samples[2].push(start.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_nanos() as f64 / PER_ROUND as f64
    };
    let [floor, plain, full] = samples.each_mut().map(median);
    println!("\nratios at 200 B, medians of {ROUNDS} interleaved rounds of {PER_ROUND} calls:");
    println!("  floor (SHA-512 body + pre-keyed HMAC)  {floor:8.0} ns  1.00");
    println!(
        "  verify, no replay store               {plain:8.0} ns  {:.2}",
        plain / floor
    );
    println!(
        "  verify + both replay reservations     {full:8.0} ns  {:.2}",
        full / floor
    );
}

criterion_group!(verify_benches, benches);
criterion_main!(verify_benches);
