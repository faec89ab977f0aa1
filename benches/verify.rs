//! The crate's verification against the crypto floor, for bodies of 0 B,
//! 200 B, 64 KiB and 1 MiB.
//!
//! `cargo bench --bench verify`. criterion times each form; then, per body
//! size, the forms are measured again interleaved in one run and printed as
//! ratios to the floor (absolute times drift on shared machines; ratios
//! hold). Forms:
//! - `floor`: SHA-512 of the body + HMAC-SHA512 from a pre-keyed state;
//! - `verify_no_replay`: parse, key lookup (through the `KeyStore` trait),
//!   body slot, HMAC, constant-time compare;
//! - `verify_signature_entry`: the same plus one replay reservation
//!   (`with_unique_nonces(false)`);
//! - `verify_both_entries`: the same plus both reservations (the default);
//! - in the ratio tables also: both reservations in the store swept by requests.
//!
//! Every request has a nonce of its own, so each reservation is new.

mod common;

use std::hint::black_box;

use armor_psk::{
    keys::{KeyStore, MemoryKeyStore},
    protocol::{BodyDigest, Credentials, VerifyOptions, signed_path, verify},
    replay::{MemoryReplayStore, ReplayRequest, ReplayStore, Reservation, Sweeping},
};
use common::{Fixture, KEY_ID, NOW, Ratios, SECRET, SIZES};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::request::Parts;

struct Verifier {
    keys: MemoryKeyStore,
    options: VerifyOptions,
}

impl Verifier {
    fn new() -> Self {
        Self {
            keys: MemoryKeyStore::new().with_key(KEY_ID, SECRET),
            options: VerifyOptions::default(),
        }
    }

    /// Parse, key lookup, body slot, HMAC, compare: the credentials of a
    /// request that verified.
    fn verify(&self, parts: &Parts, body: &[u8]) -> Option<Credentials> {
        let credentials = Credentials::from_headers(&parts.headers).ok()?;
        let key = self.keys.get(credentials.key_id()).now_or_never()?.ok()?;
        let digest = BodyDigest::of(body);
        let path = signed_path(parts.uri.path(), &self.options).ok()?;
        verify(
            parts.method.as_str(),
            &path,
            &credentials,
            &digest,
            key.as_ref(),
            NOW,
            &self.options,
        )
        .ok()?;
        Some(credentials)
    }

    /// `verify`, then the replay reservations (the signature's, and the
    /// nonce's when `unique_nonces`).
    fn verify_and_reserve(
        &self,
        parts: &Parts,
        body: &[u8],
        store: &impl ReplayStore,
        unique_nonces: bool,
    ) -> bool {
        let Some(credentials) = self.verify(parts, body) else {
            return false;
        };
        let mut request = ReplayRequest::new(
            credentials.key_id(),
            credentials.signature(),
            credentials.timestamp(),
            NOW,
            self.options.replay_lifetime(),
        );
        if unique_nonces {
            request = request.with_nonce(credentials.nonce());
        }
        matches!(
            store.reserve(&request).now_or_never(),
            Some(Ok(Reservation::Reserved))
        )
    }
}

fn benches(c: &mut Criterion) {
    let verifier = Verifier::new();
    let mut table = Vec::new();
    for (size, label) in SIZES {
        let mut fixture = Fixture::new(size);
        let body = fixture.body.clone();
        let mut group = c.benchmark_group(format!("verify_{label}"));
        group.bench_function("floor", |b| b.iter(|| black_box(fixture.floor())));
        let parts = fixture.parts();
        group.bench_function("verify_no_replay", |b| {
            b.iter(|| black_box(verifier.verify(&parts, &body)))
        });
        for (name, unique) in [
            ("verify_signature_entry", false),
            ("verify_both_entries", true),
        ] {
            let store = MemoryReplayStore::builder().capacity(u64::MAX).build();
            group.bench_function(name, |b| {
                b.iter_batched(
                    || fixture.parts(),
                    |parts| {
                        assert!(verifier.verify_and_reserve(&parts, &body, &store, unique));
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();

        let (rounds, batch) = match size {
            0..=1024 => (40, 400),
            1025..=65_536 => (25, 20),
            _ => (15, 3),
        };
        let floor_fixture = Fixture::new(size);
        let one = MemoryReplayStore::builder().capacity(u64::MAX).build();
        let two = MemoryReplayStore::builder().capacity(u64::MAX).build();
        let request_swept = MemoryReplayStore::builder()
            .capacity(u64::MAX)
            .sweeping(Sweeping::Requests)
            .build();
        let medians = Ratios::new(format!("verify / floor at {label}"))
            .form(
                "floor (SHA-512 body + pre-keyed HMAC)",
                |batch: &mut Vec<Parts>| {
                    for _ in batch.iter() {
                        black_box(floor_fixture.floor());
                    }
                },
            )
            .form("verify, no replay store", |batch| {
                for parts in batch.iter() {
                    assert!(verifier.verify(parts, &body).is_some());
                }
            })
            .form("verify + signature entry (unique_nonces off)", |batch| {
                for parts in batch.iter() {
                    assert!(verifier.verify_and_reserve(parts, &body, &one, false));
                }
            })
            .form("verify + both entries (default)", |batch| {
                for parts in batch.iter() {
                    assert!(verifier.verify_and_reserve(parts, &body, &two, true));
                }
            })
            .form("verify + both entries, swept by requests", |batch| {
                for parts in batch.iter() {
                    assert!(verifier.verify_and_reserve(parts, &body, &request_swept, true));
                }
            })
            .run(rounds, batch, |n| (0..n).map(|_| fixture.parts()).collect());
        table.push((label, medians));
    }

    println!("\nsummary: ratio to the floor (the default memory store unless said)");
    println!(
        "  body    no replay   + signature entry   + both entries   + both, swept by requests"
    );
    for (label, medians) in table {
        let floor = medians[0].1;
        println!(
            "  {label:<7} {:>9.2}   {:>17.2}   {:>14.2}   {:>21.2}",
            medians[1].1 / floor,
            medians[2].1 / floor,
            medians[3].1 / floor,
            medians[4].1 / floor
        );
    }
}

criterion_group! {
    name = verify_benches;
    config = common::criterion();
    targets = benches
}
criterion_main!(verify_benches);
