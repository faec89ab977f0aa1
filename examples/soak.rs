//! A bounded soak on 127.0.0.1: signed requests with unique nonces at a
//! fixed rate against the example server's app behind the layer, plus a
//! share of replays and forgeries, for a fixed time. Every few seconds it
//! prints what was sent and how it was answered, the replay store's entry
//! count and the process's resident memory; at the end it says whether
//! every legitimate request was served and every replay and forgery
//! refused.
//!
//! ```text
//! cargo run --release --example soak -- [--seconds 60] [--rate 1000] [--window 10]
//! ```
//!
//! `--rate` is requests per second in all: of every ten, eight are new
//! legitimate requests, one a replay of a request accepted in the last half
//! window, one a forgery (signed with a guessed secret). The window is short (10 s
//! by default) so that entries expire within the run and memory must level
//! off. Exits non-zero if any legitimate request was refused or any replay
//! or forgery accepted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use armor_psk::{ArmorPskLayer, Identity, Signer, keys::MemoryKeyStore, replay::MemoryReplayStore};
use axum::Router;
use axum::body::Bytes;
use http::Method;
use tokio::sync::{Mutex, mpsc};

#[path = "support/client.rs"]
mod client;
use client::Connection;

const KEY_ID: &str = "soak-key";
const SECRET: &str = "soak-secret-0123456789";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Legit,
    Replay,
    Forgery,
}

#[derive(Default)]
struct Tally {
    sent: [AtomicU64; 3],
    accepted: [AtomicU64; 3],
    refused: [AtomicU64; 3],
    errors: AtomicU64,
}

impl Tally {
    fn index(kind: Kind) -> usize {
        kind as usize
    }
}

fn resident_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

async fn echo(identity: Identity, body: Bytes) -> String {
    format!("{} {}", identity.key_id(), body.len())
}

async fn worker(
    addr: SocketAddr,
    jobs: Arc<Mutex<mpsc::Receiver<(Kind, String, Bytes)>>>,
    tally: Arc<Tally>,
    accepted_headers: Arc<Mutex<VecDeque<(Instant, String, Bytes)>>>,
) {
    let mut connection = Connection::open(addr).await.expect("connect");
    loop {
        let Some((kind, header, body)) = jobs.lock().await.recv().await else {
            return;
        };
        let answer = connection
            .send(Method::POST, "/things", &header, body.clone())
            .await;
        let i = Tally::index(kind);
        match answer {
            Ok((status, _)) if status.is_success() => {
                tally.accepted[i].fetch_add(1, Ordering::Relaxed);
                if kind == Kind::Legit {
                    accepted_headers
                        .lock()
                        .await
                        .push_back((Instant::now(), header, body));
                }
            }
            Ok(_) => {
                tally.refused[i].fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seconds = flag(&args, "--seconds", 60);
    let rate = flag(&args, "--rate", 1000).max(10);
    let window = flag(&args, "--window", 10);

    let store = MemoryReplayStore::new();
    let layer = ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_replay_store(store.clone())
        .with_window(Duration::from_secs(window))
        .map_err(|e| e.to_string())?;
    let app = Router::new()
        .fallback(axum::routing::post(echo))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tally = Arc::new(Tally::default());
    let accepted = Arc::new(Mutex::new(VecDeque::new()));
    let (jobs, receiver) = mpsc::channel(10_000);
    let receiver = Arc::new(Mutex::new(receiver));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            tokio::spawn(worker(
                addr,
                receiver.clone(),
                tally.clone(),
                accepted.clone(),
            ))
        })
        .collect();

    let signer = Signer::new(KEY_ID, SECRET)?;
    let forger = Signer::new(KEY_ID, "a-guess")?;
    println!(
        "soak: {seconds} s, {rate} requests/s (80 % new, 10 % replays, 10 % forgeries), window {window} s, on {addr}"
    );
    println!(
        "  {:>4}  {:>8} {:>8} {:>8}  {:>9}  {:>8}",
        "s", "legit", "replays", "forged", "entries", "RSS MiB"
    );
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let per_tick = rate as f64 / 100.0;
    let mut owed = 0.0;
    let mut n = 0u64;
    let mut next_report = Duration::ZERO;
    let mut snapshots = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            n += 1;
            let body = Bytes::from(format!("{{\"n\":{n}}}"));
            let kind = match n % 10 {
                3 => Kind::Replay,
                7 => Kind::Forgery,
                _ => Kind::Legit,
            };
            let header = match kind {
                Kind::Legit => signer.sign("POST", "/things", &body),
                Kind::Forgery => forger.sign("POST", "/things", &body),
                Kind::Replay => {
                    // A request accepted within the last few seconds, sent again.
                    let mut queue = accepted.lock().await;
                    while queue
                        .front()
                        .is_some_and(|(at, _, _)| at.elapsed() > Duration::from_secs(window / 2))
                    {
                        queue.pop_front();
                    }
                    let Some((_, header, body)) = queue.back().cloned() else {
                        continue;
                    };
                    drop(queue);
                    tally.sent[Tally::index(kind)].fetch_add(1, Ordering::Relaxed);
                    jobs.send((kind, header, body)).await?;
                    continue;
                }
            };
            tally.sent[Tally::index(kind)].fetch_add(1, Ordering::Relaxed);
            jobs.send((kind, header, body)).await?;
        }
        if start.elapsed() >= next_report {
            let entries = store.len();
            let rss = resident_mib();
            let load = |k: Kind| tally.sent[Tally::index(k)].load(Ordering::Relaxed);
            println!(
                "  {:>4}  {:>8} {:>8} {:>8}  {:>9}  {:>8.1}",
                next_report.as_secs(),
                load(Kind::Legit),
                load(Kind::Replay),
                load(Kind::Forgery),
                entries,
                rss
            );
            snapshots.push((next_report.as_secs(), entries, rss));
            next_report += Duration::from_secs(5);
        }
    }
    drop(jobs);
    for worker in workers {
        worker.await?;
    }

    let get = |a: &[AtomicU64; 3], k: Kind| a[Tally::index(k)].load(Ordering::Relaxed);
    println!("after {:.1} s:", start.elapsed().as_secs_f64());
    for kind in [Kind::Legit, Kind::Replay, Kind::Forgery] {
        println!(
            "  {kind:?}: sent {}, accepted {}, refused {}",
            get(&tally.sent, kind),
            get(&tally.accepted, kind),
            get(&tally.refused, kind)
        );
    }
    let mid = snapshots
        .get(snapshots.len() / 2)
        .copied()
        .unwrap_or_default();
    let first = snapshots.first().copied().unwrap_or_default();
    println!(
        "  replay store entries / RSS: start {} / {:.1} MiB, middle ({} s) {} / {:.1} MiB, end {} / {:.1} MiB",
        first.1,
        first.2,
        mid.0,
        mid.1,
        mid.2,
        store.len(),
        resident_mib()
    );
    let errors = tally.errors.load(Ordering::Relaxed);
    let good = get(&tally.refused, Kind::Legit) == 0
        && errors == 0
        && get(&tally.accepted, Kind::Replay) == 0
        && get(&tally.accepted, Kind::Forgery) == 0;
    println!(
        "  {}: legitimate refused {}, replays accepted {}, forgeries accepted {}, transport errors {errors}",
        if good { "PASS" } else { "FAIL" },
        get(&tally.refused, Kind::Legit),
        get(&tally.accepted, Kind::Replay),
        get(&tally.accepted, Kind::Forgery)
    );
    if good {
        Ok(())
    } else {
        Err("the soak found a failure".into())
    }
}
