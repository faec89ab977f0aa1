//! HTTP load test on 127.0.0.1: the same axum app bare and behind
//! `ArmorPskLayer`, driven by a bounded load from a Rust client (hyper,
//! keep-alive connections, every protected request signed beforehand with a
//! nonce of its own), printing requests/s, p50 and p99 latency for both and
//! the ratios, and the servers' CPU time per request (from /proc). Five
//! servers: bare; protected with the defaults (the default store, both
//! replay entries);
//! with `with_unique_nonces(false)` (one entry); with `Sweeping::Requests`
//! (both entries); and with a replay store that keeps nothing, only to
//! isolate what the store costs.
//!
//! It also measures, in the same process, the crypto floor of one request
//! (SHA-512 of the body and one pre-keyed HMAC-SHA512 of the canonical
//! string) and prints each server's CPU per request above bare as a
//! multiple of it.
//!
//! ```text
//! cargo run --release --example loadtest -- [--requests 150000] [--connections 32] [--seconds 10] [--body 200] [--rounds 2] [--only protected,request-swept]
//! ```
//!
//! `--only protected --seconds 60 --requests 5000000 --rounds 1` is the
//! full-speed minute: one key, every default, as fast as this machine
//! serves it; any refusal fails the run.
//!
//! Each server is driven `--rounds` times, alternating, with at most
//! `--requests` requests and `--seconds` seconds per run; the best run of
//! each is reported. Client and servers share this machine's cores, alike
//! for both.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use armor_psk::{
    ArmorPskLayer, Signer,
    keys::{MemoryKeyStore, Secret},
    protocol::{BodyDigest, Canonical},
    replay::{MemoryReplayStore, Sweeping},
};
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use http::Method;

#[path = "support/client.rs"]
mod client;
#[path = "support/no_store.rs"]
mod no_store;
use client::Connection;
use no_store::NoReplayStore;

const KEY_ID: &str = "20a37099-4a0b-432f-bf46-5fa690a0405c";
const SECRET: &str = "a-secret-of-reasonable-length-0123456789";
const PATH: &str = "/things/1";

struct Settings {
    requests: usize,
    connections: usize,
    seconds: u64,
    body: usize,
    rounds: usize,
    /// Drive only these servers (and bare, for the ratios).
    only: Option<Vec<String>>,
}

impl Settings {
    fn from_args() -> Result<Self, String> {
        let mut settings = Self {
            requests: 150_000,
            connections: 32,
            seconds: 10,
            body: 200,
            rounds: 2,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|e| format!("{flag} {value}: {e}"))
            };
            match flag.as_str() {
                "--requests" => settings.requests = number()?,
                "--connections" => settings.connections = number()?.max(1),
                "--seconds" => settings.seconds = number()? as u64,
                "--body" => settings.body = number()?,
                "--rounds" => settings.rounds = number()?.max(1),
                "--only" => {
                    settings.only = Some(value.split(',').map(str::to_owned).collect());
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        Ok(settings)
    }
}

async fn handler(body: Bytes) -> String {
    body.len().to_string()
}

/// One run's figures.
struct Run {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    server_cpu: Cpu,
}

impl Run {
    /// User and system CPU of the server's threads per request.
    fn cpu_per_request(&self) -> f64 {
        (self.server_cpu.user + self.server_cpu.system).as_secs_f64() / self.ok.max(1) as f64
    }

    /// User CPU alone: the server's own code, without the kernel's share
    /// of the sockets (which varies most from run to run).
    fn user_cpu_per_request(&self) -> f64 {
        self.server_cpu.user.as_secs_f64() / self.ok.max(1) as f64
    }

    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// Sends `headers.len()` requests at most (one per header) over
/// `connections` keep-alive connections, for `seconds` at most.
async fn drive(
    addr: SocketAddr,
    headers: Arc<Vec<String>>,
    body: Bytes,
    connections: usize,
    seconds: u64,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (next, headers, body) = (next.clone(), headers.clone(), body.clone());
            tokio::spawn(async move {
                let mut connection = Connection::open(addr).await.expect("connect");
                let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= headers.len() || Instant::now() >= deadline {
                        break;
                    }
                    let sent = Instant::now();
                    let done = connection
                        .send(Method::POST, PATH, &headers[i], body.clone())
                        .await;
                    latencies.push(sent.elapsed());
                    match done {
                        Ok((status, _)) if status.is_success() => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let mut run = Run {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        server_cpu: Cpu::default(),
    };
    for task in tasks {
        let (ok, failed, latencies) = task.await.expect("client task");
        run.ok += ok;
        run.failed += failed;
        run.latencies.extend(latencies);
    }
    run.elapsed = start.elapsed();
    run.latencies.sort();
    run
}

fn serve(runtime: &tokio::runtime::Runtime, app: Router) -> SocketAddr {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    })
}

/// The crypto floor of one request: SHA-512 of the body, then one
/// HMAC-SHA512 of the canonical string under a pre-keyed secret; the median
/// of 21 rounds of 20,000.
fn crypto_floor(body: &[u8]) -> Duration {
    let secret = Secret::new(SECRET);
    let mut rounds: Vec<Duration> = (0..21)
        .map(|round| {
            let start = Instant::now();
            for i in 0..20_000u64 {
                let slot = BodyDigest::of(std::hint::black_box(body)).slot();
                let canonical = Canonical {
                    key_id: KEY_ID,
                    method: "POST",
                    path: PATH,
                    nonce: "0e2ad5d5-4b7e-4a1c-9a52-05b4c2b0e1f3",
                    timestamp: 1_700_000_000 + round * 20_000 + i,
                };
                std::hint::black_box(canonical.sign(&secret, &slot));
            }
            start.elapsed() / 20_000
        })
        .collect();
    rounds.sort();
    rounds[rounds.len() / 2]
}

/// The calling thread's id, from /proc (Linux).
fn thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time of some threads, split as /proc does.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user: Duration,
    system: Duration,
}

impl Cpu {
    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }
}

/// User and system CPU time of the given threads of this process, from
/// /proc (clock ticks of 10 ms; runs last seconds).
fn server_cpu(threads: &Mutex<Vec<u32>>) -> Cpu {
    let ticks: (u64, u64) = threads
        .lock()
        .map(|ids| ids.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|tid| std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command's closing parenthesis; utime and
            // stime are the 14th and 15th of the whole line.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some((
                fields.get(11)?.parse::<u64>().ok()?,
                fields.get(12)?.parse::<u64>().ok()?,
            ))
        })
        .fold((0, 0), |(user, system), (u, s)| (user + u, system + s));
    Cpu {
        user: Duration::from_millis(ticks.0 * 10),
        system: Duration::from_millis(ticks.1 * 10),
    }
}

fn main() -> Result<(), String> {
    let settings = Settings::from_args()?;
    let server_threads = Arc::new(Mutex::new(Vec::new()));
    let recorder = server_threads.clone();
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || {
            if let (Some(tid), Ok(mut ids)) = (thread_id(), recorder.lock()) {
                ids.push(tid);
            }
        })
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    let app = Router::new().route(PATH, post(handler));
    // The stores as a user gets them: the default's 1 GiB holds 33 million
    // requests, more than any run here sends.
    let default_store = MemoryReplayStore::new;
    let keys = MemoryKeyStore::new().with_key(KEY_ID, SECRET);
    let bare = serve(&servers, app.clone());
    let protected = serve(
        &servers,
        app.clone()
            .layer(ArmorPskLayer::new(keys.clone()).with_replay_store(default_store())),
    );
    let signature_only = serve(
        &servers,
        app.clone().layer(
            ArmorPskLayer::new(keys.clone())
                .with_replay_store(default_store())
                .with_unique_nonces(false),
        ),
    );
    let request_swept = serve(
        &servers,
        app.clone().layer(
            ArmorPskLayer::new(keys.clone()).with_replay_store(
                MemoryReplayStore::builder()
                    .sweeping(Sweeping::Requests)
                    .build(),
            ),
        ),
    );
    let no_store = serve(
        &servers,
        app.layer(ArmorPskLayer::new(keys).with_replay_store(NoReplayStore)),
    );

    let body = Bytes::from(vec![b'x'; settings.body]);
    let signer = Signer::new(KEY_ID, SECRET).map_err(|e| e.to_string())?;
    println!(
        "loadtest: {} requests at most, {} s at most per run, {} connections, {} B bodies, {} rounds",
        settings.requests, settings.seconds, settings.connections, settings.body, settings.rounds
    );
    let servers_under_test = [
        ("bare", bare),
        ("protected", protected),
        ("sig-only", signature_only),
        ("request-swept", request_swept),
        ("no-store", no_store),
    ];
    let mut best: [Option<Run>; 5] = [None, None, None, None, None];
    for round in 0..settings.rounds {
        for (slot, (name, addr)) in servers_under_test.into_iter().enumerate() {
            if let Some(only) = &settings.only
                && name != "bare"
                && !only.iter().any(|wanted| wanted == name)
            {
                continue;
            }
            // Fresh, never-used nonces for every run: a replay would be refused.
            let headers: Vec<String> = (0..settings.requests)
                .map(|_| signer.sign("POST", PATH, &body))
                .collect();
            let cpu_before = server_cpu(&server_threads);
            let mut run = client.block_on(drive(
                addr,
                Arc::new(headers),
                body.clone(),
                settings.connections,
                settings.seconds,
            ));
            run.server_cpu = server_cpu(&server_threads).since(cpu_before);
            println!(
                "  round {} {name:<9} {:>7} ok {:>3} failed in {:>6.2} s: {:>8.0} req/s, p50 {:>5.0} µs, p99 {:>5.0} µs, server CPU {:>5.1} µs/req (user {:>4.1})",
                round + 1,
                run.ok,
                run.failed,
                run.elapsed.as_secs_f64(),
                run.per_second(),
                run.percentile(0.50).as_secs_f64() * 1e6,
                run.percentile(0.99).as_secs_f64() * 1e6,
                run.cpu_per_request() * 1e6,
                run.user_cpu_per_request() * 1e6,
            );
            if run.failed > 0 {
                return Err(format!("{name}: {} requests failed", run.failed));
            }
            let better = best[slot]
                .as_ref()
                .is_none_or(|kept| run.per_second() > kept.per_second());
            if better {
                best[slot] = Some(run);
            }
        }
    }
    let best: Vec<(&str, Run)> = servers_under_test
        .iter()
        .zip(best)
        .filter_map(|((name, _), run)| run.map(|run| (*name, run)))
        .collect();
    let bare = &best[0].1;
    let floor = crypto_floor(&body).as_secs_f64();
    println!(
        "crypto floor (SHA-512 of {} B + one pre-keyed HMAC-SHA512): {:.2} µs",
        settings.body,
        floor * 1e6
    );
    println!(
        "best runs (ratio to bare; server CPU, and user CPU alone, added over bare, in µs and as a multiple of the floor):"
    );
    for (name, run) in &best {
        println!(
            "  {name:<9} {:>6.0} req/s ({:.2}), p50 {:>5.0} µs ({:.2}), p99 {:>5.0} µs ({:.2}), server CPU {:>5.1} µs/req: added {:>+5.1} µs ({:>+5.2} floors), user {:>+5.1} µs ({:>+5.2} floors)",
            run.per_second(),
            run.per_second() / bare.per_second(),
            run.percentile(0.50).as_secs_f64() * 1e6,
            run.percentile(0.50).as_secs_f64() / bare.percentile(0.50).as_secs_f64(),
            run.percentile(0.99).as_secs_f64() * 1e6,
            run.percentile(0.99).as_secs_f64() / bare.percentile(0.99).as_secs_f64(),
            run.cpu_per_request() * 1e6,
            (run.cpu_per_request() - bare.cpu_per_request()) * 1e6,
            (run.cpu_per_request() - bare.cpu_per_request()) / floor,
            (run.user_cpu_per_request() - bare.user_cpu_per_request()) * 1e6,
            (run.user_cpu_per_request() - bare.user_cpu_per_request()) / floor,
        );
    }
    Ok(())
}
