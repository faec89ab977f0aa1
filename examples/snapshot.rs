//! What a replay-memory snapshot costs: fills an in-memory store with live
//! requests, saves it, restores it, and prints the file's bytes per
//! request, the time to save and to load, and whether every request is
//! still refused as a replay after the load (a sample of 10,000).
//!
//! ```text
//! cargo run --release --example snapshot -- [--requests 10000000] [--nonces]
//! ```
//!
//! `--nonces`: each request holds two entries (signature and nonce), as
//! with `with_unique_nonces`. The file goes to the system's temporary
//! directory and is removed at the end. Exits non-zero if a request was
//! forgotten.

use std::time::{Duration, Instant};

use armor_psk::{
    protocol::Signature,
    replay::{MemoryReplayStore, ReplayRequest, ReplayStore, Reservation},
};

const NOW: u64 = 1_700_000_000;
const KEYS: u64 = 100;

fn signature(n: u64) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..16].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    Signature::from_bytes(bytes)
}

fn reserve(store: &MemoryReplayStore, n: u64, nonces: bool, key_ids: &[String]) -> Reservation {
    let signature = signature(n);
    let nonce = format!("{n:032x}");
    let key_id = &key_ids[(n % KEYS) as usize];
    let mut request = ReplayRequest::new(key_id, &signature, NOW, NOW, Duration::from_secs(360));
    if nonces {
        request = request.with_nonce(&nonce);
    }
    match store.reserve_ready(&request) {
        Some(Ok(reservation)) => reservation,
        other => panic!("request {n}: {other:?}"),
    }
}

fn main() {
    let mut requests: u64 = 10_000_000;
    let mut nonces = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => {
                requests = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--requests N")
            }
            "--nonces" => nonces = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let key_ids: Vec<String> = (0..KEYS).map(|k| format!("key-{k}")).collect();
    let store = MemoryReplayStore::builder()
        .memory_limit(4 << 30)
        .memory_since(Some(NOW - 3600))
        .build();
    let filled = Instant::now();
    for n in 0..requests {
        assert!(matches!(
            reserve(&store, n, nonces, &key_ids),
            Reservation::Reserved
        ));
    }
    let filled = filled.elapsed();
    let path = std::env::temp_dir().join(format!("armor-psk-snapshot-{}.bin", std::process::id()));
    let saved = store.save(&path).expect("save");
    drop(store);

    let loading = Instant::now();
    let (restored, memory) = MemoryReplayStore::builder()
        .memory_limit(4 << 30)
        .restore(&path)
        .expect("restore");
    let loaded = loading.elapsed();
    let _ = std::fs::remove_file(&path);
    assert!(
        !memory.fenced(),
        "a clean stop's snapshot must be trusted: {memory:?}"
    );
    let step = (requests / 10_000).max(1);
    let mut forgotten = 0;
    for n in (0..requests).step_by(step as usize) {
        if !matches!(
            reserve(&restored, n, nonces, &key_ids),
            Reservation::Replayed
        ) {
            forgotten += 1;
        }
    }
    println!(
        "{requests} live requests ({} entries{}): filled in {:.1} s; saved {} bytes ({:.1} per request) in {:.2} s; loaded in {:.2} s; {} of a sample of {} forgotten",
        saved.entries,
        if nonces {
            ", signature and nonce"
        } else {
            ", signature only"
        },
        filled.as_secs_f64(),
        saved.bytes,
        saved.bytes as f64 / requests as f64,
        saved.took.as_secs_f64(),
        loaded.as_secs_f64(),
        forgotten,
        requests.div_ceil(step),
    );
    if forgotten > 0 {
        std::process::exit(1);
    }
}
