//! What the benches share: a fixture that signs requests cheaply for any
//! body size, the crypto floor, and a printer of ratios measured interleaved.
#![allow(dead_code, unused_imports)]

#[path = "../../examples/support/no_store.rs"]
mod no_store;
pub use no_store::NoReplayStore;

use std::hint::black_box;
use std::time::{Duration, Instant};

use armor_psk::{
    keys::Secret,
    protocol::{BodyDigest, BodySlot, Canonical},
};
use criterion::Criterion;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha512};

pub const KEY_ID: &str = "20a37099-4a0b-432f-bf46-5fa690a0405c";
pub const SECRET: &str = "a-secret-of-reasonable-length-0123456789";
pub const NOW: u64 = 1_700_000_000;
pub const PATH: &str = "/things/1";

/// The inner service of the layer benches: reads the whole body and
/// answers its length.
pub async fn inner<B: http_body::Body>(
    request: http::Request<B>,
) -> Result<http::Response<String>, std::convert::Infallible> {
    use http_body_util::BodyExt as _;
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len());
    Ok(http::Response::new(body.unwrap_or(0).to_string()))
}

/// Body sizes the issue asks for.
pub const SIZES: [(usize, &str); 4] = [
    (0, "0B"),
    (200, "200B"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

/// Short runs: the ratios printed after each group are the result.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// A body and the means to sign requests for it with unique nonces.
pub struct Fixture {
    pub body: Vec<u8>,
    slot: BodySlot,
    secret: Secret,
    keyed: Hmac<Sha512>,
    next_nonce: u64,
}

impl Fixture {
    pub fn new(size: usize) -> Self {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        Self {
            slot: BodyDigest::of(&body).slot(),
            body,
            secret: Secret::new(SECRET),
            keyed: Hmac::<Sha512>::new_from_slice(SECRET.as_bytes()).unwrap(),
            next_nonce: 0,
        }
    }

    /// A header for a POST of the body with a nonce never used before
    /// (the body's digest is computed once, so signing is cheap).
    pub fn header(&mut self) -> String {
        self.next_nonce += 1;
        let nonce = format!("nonce-{:016}", self.next_nonce);
        let canonical = Canonical {
            key_id: KEY_ID,
            method: "POST",
            path: PATH,
            nonce: &nonce,
            timestamp: NOW,
        };
        let signature = canonical.sign(&self.secret, &self.slot);
        format!("ARMOR-PSK {KEY_ID}:{}:{nonce}:{NOW}", signature.to_base64())
    }

    /// The request head for a fresh header.
    pub fn parts(&mut self) -> http::request::Parts {
        let request = http::Request::post(PATH)
            .header("authorization", self.header())
            .body(())
            .unwrap();
        request.into_parts().0
    }

    /// The unavoidable work: SHA-512 of the body (none for an empty body,
    /// whose slot is empty) and HMAC-SHA512 of the canonical string from an
    /// already-keyed state, fed piece by piece.
    pub fn floor(&self) -> [u8; 64] {
        let mut slot = [0u8; 88];
        let slot: &[u8] = if self.body.is_empty() {
            &[]
        } else {
            let digest = Sha512::digest(&self.body);
            let n = base64::Engine::encode_slice(
                &base64::engine::general_purpose::STANDARD,
                digest,
                &mut slot,
            )
            .unwrap();
            &slot[..n]
        };
        let mut mac = self.keyed.clone();
        for part in [
            KEY_ID.as_bytes(),
            b"POST",
            PATH.as_bytes(),
            b"nonce-0000000000000001",
            b"1700000000",
            slot,
        ] {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Measures several forms interleaved (round after round, each form once a
/// round), so that drift on a shared machine hits them alike, and prints
/// each one's median time per call and its ratio to the first form.
///
/// `setup(form)` runs before each timed batch, outside the timing, and hands
/// the batch its inputs.
pub struct Ratios<'a, T> {
    title: String,
    forms: Vec<(&'a str, Form<'a, T>)>,
}

/// One measured form: consumes a batch of inputs.
type Form<'a, T> = Box<dyn FnMut(&mut Vec<T>) + 'a>;

impl<'a, T> Ratios<'a, T> {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            forms: Vec::new(),
        }
    }

    /// A form: `run` consumes the batch of inputs (one call per input).
    pub fn form(mut self, name: &'a str, run: impl FnMut(&mut Vec<T>) + 'a) -> Self {
        self.forms.push((name, Box::new(run)));
        self
    }

    /// Runs `rounds` rounds of `batch` calls per form; `inputs(batch)` makes
    /// each form's inputs for a round. Returns the medians in ns per call.
    pub fn run(
        mut self,
        rounds: usize,
        batch: usize,
        mut inputs: impl FnMut(usize) -> Vec<T>,
    ) -> Vec<(String, f64)> {
        let mut samples = vec![Vec::with_capacity(rounds); self.forms.len()];
        for _ in 0..rounds {
            for (i, (_, run)) in self.forms.iter_mut().enumerate() {
                let mut batch_inputs = inputs(batch);
                let start = Instant::now();
                run(&mut batch_inputs);
                samples[i].push(start.elapsed());
                black_box(batch_inputs);
            }
        }
        let medians: Vec<f64> = samples
            .iter_mut()
            .map(|times| {
                times.sort();
                times[times.len() / 2].as_nanos() as f64 / batch as f64
            })
            .collect();
        println!(
            "\n{} (medians of {rounds} interleaved rounds of {batch} calls)",
            self.title
        );
        let base = medians[0];
        for ((name, _), median) in self.forms.iter().zip(&medians) {
            println!(
                "  {name:<44} {:>12}  {:>6.2}",
                format_ns(*median),
                median / base
            );
        }
        self.forms
            .iter()
            .zip(medians)
            .map(|((name, _), median)| ((*name).to_owned(), median))
            .collect()
    }
}

pub fn format_ns(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
