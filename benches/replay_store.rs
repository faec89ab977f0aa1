//! The replay store at 10,000,000 live requests: time per request (its
//! reservations together) against one HMAC-SHA512, requests per second on
//! one and two threads, and resident bytes per request held (and the
//! tables' own bytes). The default store is measured with both entries per
//! request (the default) and with the signature entry only, next to the
//! same store swept by its requests (`Sweeping::Requests`), in one run.
//!
//! `cargo bench --bench replay_store` (add `-- --requests N` for another
//! count). Each variant runs in a child process of its own, so that its
//! resident memory is its own.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use armor_psk::{
    protocol::Signature,
    replay::{MemoryReplayStore, ReplayRequest, ReplayStore, Reservation, Sweeping},
};
use futures_util::FutureExt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;

const KEY_ID: &str = "20a37099-4a0b-432f-bf46-5fa690a0405c";
const NOW: u64 = 1_700_000_000;
const LIFETIME: Duration = Duration::from_secs(361);
const CHUNK: u64 = 10_000;

/// The store variants.
#[derive(Clone, Copy)]
enum Variant {
    DefaultBoth,
    DefaultSignature,
    RequestSweptBoth,
}

impl Variant {
    const ALL: [Self; 3] = [
        Self::DefaultBoth,
        Self::DefaultSignature,
        Self::RequestSweptBoth,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::DefaultBoth => "default, both entries",
            Self::DefaultSignature => "default, signature entry only",
            Self::RequestSweptBoth => "swept by requests, both entries",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Self::DefaultBoth => "default-both",
            Self::DefaultSignature => "default-signature",
            Self::RequestSweptBoth => "requests-both",
        }
    }
}

/// A store, and whether requests hold their nonce too.
struct Store(MemoryReplayStore, bool);

impl Store {
    fn new(variant: Variant) -> Self {
        // Its memory began before NOW (a fixed past second): none of the
        // requests is refused as signed before it began.
        let builder = MemoryReplayStore::builder()
            .capacity(u64::MAX / 32)
            .memory_since(Some(NOW - 1));
        match variant {
            Variant::DefaultBoth => Self(builder.build(), true),
            Variant::DefaultSignature => Self(builder.build(), false),
            Variant::RequestSweptBoth => Self(builder.sweeping(Sweeping::Requests).build(), true),
        }
    }

    /// The signature and nonce of request `i`.
    fn entries(&self, i: u64) -> (Signature, String) {
        let mut tag = [0u8; 64];
        tag[..8].copy_from_slice(&i.to_le_bytes());
        tag[8..16].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        (Signature::from_bytes(tag), format!("{i:032x}"))
    }

    fn reserve(&self, (signature, nonce): &(Signature, String)) -> bool {
        let mut request = ReplayRequest::new(KEY_ID, signature, NOW, NOW, LIFETIME);
        if self.1 {
            request = request.with_nonce(nonce);
        }
        let reserved = self.0.reserve(&request).now_or_never();
        matches!(reserved, Some(Ok(Reservation::Reserved)))
    }

    fn table_bytes(&self) -> u64 {
        self.0.table_bytes()
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Fills a fresh store with `requests` requests on `threads` threads; prints
/// `ns_per_request_per_thread resident_bytes_per_request`.
fn child(variant: Variant, requests: u64, threads: u64) {
    let store = Store::new(variant);
    let before = resident_bytes();
    let per_thread = requests / threads;
    let busy = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let store = &store;
                scope.spawn(move || {
                    let mut busy = Duration::ZERO;
                    let first = t * per_thread;
                    let mut i = first;
                    while i < first + per_thread {
                        let end = (i + CHUNK).min(first + per_thread);
                        let chunk: Vec<_> = (i..end).map(|n| store.entries(n)).collect();
                        let start = Instant::now();
                        for entries in &chunk {
                            assert!(store.reserve(entries), "every request is new");
                        }
                        busy += start.elapsed();
                        i = end;
                    }
                    busy
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap()
    });
    let held = resident_bytes().saturating_sub(before);
    let ns = busy.as_nanos() as f64 / per_thread as f64;
    println!(
        "{ns} {} {}",
        held as f64 / requests as f64,
        store.table_bytes() as f64 / requests as f64
    );
    black_box(store);
}

/// One HMAC-SHA512 of a 100-byte canonical string from a pre-keyed state.
fn hmac_ns() -> f64 {
    let keyed = Hmac::<Sha512>::new_from_slice(b"a-secret-of-reasonable-length").unwrap();
    let message = [b'x'; 100];
    let rounds = 200_000;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut mac = keyed.clone();
        mac.update(black_box(&message));
        black_box(mac.finalize());
    }
    start.elapsed().as_nanos() as f64 / rounds as f64
}

fn run_child(variant: Variant, requests: u64, threads: u64) -> (f64, f64, f64) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--child", variant.arg()])
        .args(["--requests", &requests.to_string()])
        .args(["--threads", &threads.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().unwrap());
    (
        fields.next().unwrap(),
        fields.next().unwrap(),
        fields.next().unwrap(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let requests: u64 = value("--requests").map_or(10_000_000, |n| n.parse().unwrap());
    let threads: u64 = value("--threads").map_or(1, |n| n.parse().unwrap());
    if let Some(variant) = value("--child") {
        let variant = Variant::ALL
            .into_iter()
            .find(|v| v.arg() == variant)
            .unwrap();
        return child(variant, requests, threads);
    }
    if args.iter().any(|a| a == "--list") || !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs benches once as tests: keep it short.
        if !args.iter().any(|a| a == "--bench") {
            for variant in Variant::ALL {
                run_child(variant, 20_000, 2);
            }
        }
        return;
    }

    println!("replay store, {requests} requests, each variant in a fresh process");
    println!(
        "  {:<38} {:>12} {:>10} {:>13} {:>14} {:>10} {:>10}",
        "variant", "ns/request", "÷ HMAC", "req/s 1 thr", "req/s 2 thr", "RSS B/req", "table B/req"
    );
    for variant in Variant::ALL {
        let hmac_before = hmac_ns();
        let (one, bytes, table) = run_child(variant, requests, 1);
        let (two_per_thread, _, _) = run_child(variant, requests, 2);
        let hmac = (hmac_before + hmac_ns()) / 2.0;
        println!(
            "  {:<38} {:>12.0} {:>10.2} {:>13.0} {:>14.0} {:>10.1} {:>10.1}",
            variant.name(),
            one,
            one / hmac,
            1e9 / one,
            2e9 / two_per_thread,
            bytes,
            table
        );
    }
    println!(
        "  (one HMAC-SHA512 of 100 bytes, pre-keyed: {:.0} ns)",
        hmac_ns()
    );
}
