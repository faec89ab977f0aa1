//! A fault harness that checks the crate's three promises together, over
//! a whole history: a real deployment on loopback (two example-server
//! instances on one Redis, one on the in-memory store with a snapshot
//! file), honest traffic from clients whose clocks spread ±3 s, replays and
//! nonce reuses of accepted and in-flight requests, and faults drawn from a
//! seed (`kill -9` and restart, at once or later, SIGTERM and restart,
//! Redis restarted without persistence, Redis paused, a wall-clock step of
//! ±30 s and a glitch of a day through libfaketime). At the end it checks
//! the history and exits 1 on any violation:
//!
//! 1. no request accepted twice within a replay domain, by its bytes or by
//!    its nonce (from the servers' own logs of what they accepted);
//! 2. (not yet: keys in PostgreSQL and their revocation);
//! 3. every refusal of an honest request explained by a fault the docs
//!    allow: `issued_before_restart` only after a start that lost memory
//!    and only for timestamps within a few seconds of it, 503 only while
//!    Redis was down or paused (and 5 s after), an answer missing only
//!    while its instance went down, `timestamp_out_of_window` only during a
//!    clock glitch.
//!
//! ```text
//! cargo build --release --all-features --example server --example chaos
//! target/release/examples/chaos --seconds 600 --seed 42
//! ```
//!
//! `--server PATH` runs another build of the example server (an older
//! release, a deliberately broken store); `--out DIR` keeps the logs and
//! the history (`history.jsonl`, written on a violation or when asked with
//! `--keep`).

mod deploy;
mod history;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use armor_psk::Signer;
use deploy::{Deployment, Domain, Instance};
use history::{Fault, FaultKind, History, Kind, Millis, Request};

const KEYS: usize = 4;
const HONEST_CLIENTS: usize = 4;
const ATTACKERS: usize = 2;
/// Client clocks spread this far either way, in milliseconds.
const CLOCK_SPREAD_MS: i64 = 3_000;

struct Options {
    seconds: u64,
    seed: u64,
    server: PathBuf,
    out: PathBuf,
    keep: bool,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut seconds = 30;
    let mut seed = None;
    let mut server = None;
    let mut out = None;
    let mut keep = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
            "--seed" => seed = Some(value()?.parse().map_err(|_| "--seed: a number")?),
            "--server" => server = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--keep" => keep = true,
            "--help" | "-h" => {
                println!("chaos [--seconds N] [--seed S] [--server PATH] [--out DIR] [--keep]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let seed = seed.unwrap_or_else(|| rand::rng().random_range(0..1_000_000));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let server = server.unwrap_or_else(|| exe.with_file_name("server"));
    if !server.exists() {
        return Err(format!(
            "no example server at {} (cargo build --release --all-features --example server)",
            server.display()
        ));
    }
    let out = out.unwrap_or_else(|| std::env::temp_dir().join(format!("armor-psk-chaos-{seed}")));
    Ok(Options {
        seconds,
        seed,
        server,
        out,
        keep,
    })
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the run shares between its threads.
struct Run {
    deployment: Deployment,
    signers: Vec<Signer>,
    requests: Mutex<Vec<Request>>,
    faults: Mutex<Vec<Fault>>,
    /// Requests sent recently (answered or not), for the attackers.
    recent: Mutex<Vec<Sent>>,
    /// Set by a fault: the attackers replay at once what was recent.
    burst: AtomicBool,
    next_id: AtomicU64,
    stop: AtomicBool,
}

/// What an attacker needs to send a request again.
#[derive(Clone)]
struct Sent {
    id: u64,
    key: usize,
    nonce: String,
    header: String,
    body: Vec<u8>,
    domain: Domain,
    accepted: bool,
}

impl Run {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// An instance that serves now, of `domain` if given.
    fn pick(&self, rng: &mut StdRng, domain: Option<Domain>) -> Option<(Arc<Instance>, String)> {
        let up: Vec<_> = self
            .deployment
            .instances
            .iter()
            .filter(|i| domain.is_none_or(|d| i.domain == d))
            .filter_map(|i| i.url().map(|url| (Arc::clone(i), url)))
            .collect();
        if up.is_empty() {
            None
        } else {
            Some(up[rng.random_range(0..up.len())].clone())
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

/// Sends one request; its status and reason.
fn send(
    agent: &ureq::Agent,
    url: &str,
    path: &str,
    header: &str,
    body: &[u8],
) -> (Option<u16>, String) {
    let sent = agent
        .post(format!("{url}{path}"))
        .header("authorization", header)
        .header("content-type", "application/octet-stream")
        .send(body);
    match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let reason = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|json| json["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| if status == 200 { String::new() } else { text });
            (Some(status), reason)
        }
        Err(error) => (None, error.to_string()),
    }
}

fn honest_client(run: &Run, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let offset = rng.random_range(-CLOCK_SPREAD_MS..=CLOCK_SPREAD_MS);
    let keep_alive = rng.random_bool(0.5);
    let kept = agent();
    while !run.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(rng.random_range(10..60)));
        let Some((instance, url)) = run.pick(&mut rng, None) else {
            continue;
        };
        let key = rng.random_range(0..KEYS);
        let id = run.id();
        let path = format!("/chaos/{id}");
        let body = vec![b'x'; [0, 64, 1024, 16 << 10][rng.random_range(0..4)]];
        let nonce = armor_psk::new_uuid_v4();
        let sent = now_ms();
        let timestamp = (sent as i64 + offset).max(0) as u64 / 1000;
        let header = run.signers[key]
            .sign_at("POST", &path, &body, &nonce, timestamp)
            .expect("signable");
        let mut note = Sent {
            id,
            key,
            nonce: nonce.clone(),
            header: header.clone(),
            body: body.clone(),
            domain: instance.domain,
            accepted: false,
        };
        run.recent.lock().push(note.clone());
        let fresh;
        let agent = if keep_alive {
            &kept
        } else {
            fresh = self::agent();
            &fresh
        };
        let (status, reason) = send(agent, &url, &path, &header, &body);
        if status == Some(200) {
            note.accepted = true;
            let mut recent = run.recent.lock();
            if let Some(slot) = recent.iter_mut().rev().find(|s| s.id == id) {
                slot.accepted = true;
            }
        }
        run.requests.lock().push(Request {
            id,
            kind: Kind::Honest,
            key: format!("k{key}"),
            nonce,
            timestamp,
            instance: instance.name,
            domain: instance.domain,
            body_bytes: body.len(),
            keep_alive,
            sent,
            done: now_ms(),
            status,
            reason,
        });
    }
}

fn attacker(run: &Run, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let agent = agent();
    while !run.stop.load(Ordering::Relaxed) {
        let burst = run.burst.swap(false, Ordering::Relaxed);
        let targets: Vec<Sent> = {
            let mut recent = run.recent.lock();
            let len = recent.len();
            if len > 2_000 {
                recent.drain(..len - 1_000);
            }
            let len = recent.len();
            if len == 0 {
                Vec::new()
            } else if burst {
                // Right after a fault: the last requests, answered or not.
                recent[len.saturating_sub(30)..].to_vec()
            } else {
                vec![recent[len - 1 - rng.random_range(0..len.min(300))].clone()]
            }
        };
        if !burst {
            std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
        }
        for target in targets {
            let Some((instance, url)) = run.pick(&mut rng, Some(target.domain)) else {
                continue;
            };
            let reuse = rng.random_bool(0.15);
            let (kind, path, header, nonce, timestamp, id) = if reuse {
                // The same key and nonce, a new signature: the key holder
                // sending a request again under its nonce.
                let id = run.id();
                let path = format!("/chaos/{id}");
                let timestamp = now_ms() / 1000;
                let header = run.signers[target.key]
                    .sign_at("POST", &path, &target.body, &target.nonce, timestamp)
                    .expect("signable");
                (
                    Kind::NonceReuse { of: target.id },
                    path,
                    header,
                    target.nonce.clone(),
                    timestamp,
                    id,
                )
            } else {
                let timestamp = armor_psk::Credentials::parse(target.header.as_bytes())
                    .map_or(0, |c| c.timestamp());
                (
                    Kind::Replay { of: target.id },
                    format!("/chaos/{}", target.id),
                    target.header.clone(),
                    target.nonce.clone(),
                    timestamp,
                    run.id(),
                )
            };
            let sent = now_ms();
            let (status, reason) = send(&agent, &url, &path, &header, &target.body);
            run.requests.lock().push(Request {
                id,
                kind,
                key: format!("k{}", target.key),
                nonce,
                timestamp,
                instance: instance.name,
                domain: instance.domain,
                body_bytes: target.body.len(),
                keep_alive: true,
                sent,
                done: now_ms(),
                status,
                reason,
            });
        }
    }
}

/// Draws and injects faults until the run stops.
fn nemesis(run: &Run, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let deployment = &run.deployment;
    let mut kinds: Vec<FaultKind> = FaultKind::ALL[1..].to_vec();
    if !deployment.faketime {
        eprintln!("chaos: libfaketime not found: no clock faults (apt-get install libfaketime)");
        kinds.retain(|k| !matches!(k, FaultKind::ClockStep | FaultKind::ClockGlitch));
    }
    // Let traffic build up first.
    std::thread::sleep(Duration::from_secs(2));
    while !run.stop.load(Ordering::Relaxed) {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let instance = &deployment.instances[rng.random_range(0..deployment.instances.len())];
        let start = now_ms();
        let (target, detail): (&'static str, String) = match kind {
            FaultKind::KillRestart => {
                instance.kill();
                if let Err(error) = instance.start(&deployment.server) {
                    eprintln!("chaos: {error}");
                }
                (instance.name, String::new())
            }
            FaultKind::KillPauseRestart => {
                instance.kill();
                let pause = rng.random_range(200..2_000);
                std::thread::sleep(Duration::from_millis(pause));
                if let Err(error) = instance.start(&deployment.server) {
                    eprintln!("chaos: {error}");
                }
                (instance.name, format!("down {pause} ms"))
            }
            FaultKind::TermRestart => {
                let clean = instance.terminate();
                if let Err(error) = instance.start(&deployment.server) {
                    eprintln!("chaos: {error}");
                }
                (instance.name, format!("exit 0: {clean}"))
            }
            FaultKind::RedisRestart => {
                if let Err(error) = deployment.redis.restart() {
                    eprintln!("chaos: {error}");
                }
                ("redis", String::new())
            }
            FaultKind::RedisPause => {
                let pause = rng.random_range(300..3_000);
                deployment.redis.pause(true);
                std::thread::sleep(Duration::from_millis(pause));
                deployment.redis.pause(false);
                ("redis", format!("{pause} ms"))
            }
            FaultKind::ClockStep => {
                let step = if rng.random_bool(0.5) { 30 } else { -30 };
                let hold = rng.random_range(2_000..8_000);
                instance.set_clock(step);
                std::thread::sleep(Duration::from_millis(hold));
                instance.set_clock(0);
                (instance.name, format!("{step:+} s for {hold} ms"))
            }
            FaultKind::Start => unreachable!("not drawn"),
            FaultKind::ClockGlitch => {
                let hold = rng.random_range(200..1_500);
                instance.set_clock(86_400);
                std::thread::sleep(Duration::from_millis(hold));
                instance.set_clock(0);
                (instance.name, format!("+1 day for {hold} ms"))
            }
        };
        run.faults.lock().push(Fault {
            kind,
            target,
            detail,
            start,
            end: now_ms(),
        });
        run.burst.store(true, Ordering::Relaxed);
        let gap = rng.random_range(1_000..3_000);
        std::thread::sleep(Duration::from_millis(gap));
    }
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("chaos: {error}");
            std::process::exit(2);
        }
    };
    let _ = std::fs::remove_dir_all(&options.out);
    std::fs::create_dir_all(&options.out).expect("the output directory");
    println!(
        "chaos: seed {} for {} s; logs in {}",
        options.seed,
        options.seconds,
        options.out.display()
    );
    let mut rng = StdRng::seed_from_u64(options.seed);
    let secrets: Vec<(String, String)> = (0..KEYS)
        .map(|k| {
            (
                format!("k{k}"),
                format!("secret-{k}-{}", rng.random::<u64>()),
            )
        })
        .collect();
    let keys = secrets
        .iter()
        .map(|(id, secret)| format!("{id}={secret}"))
        .collect::<Vec<_>>()
        .join(",");
    let started = now_ms();
    let deployment = match Deployment::start(&options.server, &options.out, &keys) {
        Ok(deployment) => deployment,
        Err(error) => {
            eprintln!("chaos: the deployment did not start: {error}");
            std::process::exit(2);
        }
    };
    let run = Arc::new(Run {
        deployment,
        signers: secrets
            .iter()
            .map(|(id, secret)| Signer::new(id.as_str(), secret.as_str()).expect("a key"))
            .collect(),
        requests: Mutex::new(Vec::new()),
        faults: Mutex::new(vec![Fault {
            kind: FaultKind::Start,
            target: "redis",
            detail: String::new(),
            start: started,
            end: now_ms(),
        }]),
        recent: Mutex::new(Vec::new()),
        burst: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        stop: AtomicBool::new(false),
    });
    let mut threads = Vec::new();
    for n in 0..HONEST_CLIENTS {
        let (run, seed) = (Arc::clone(&run), rng.random());
        threads.push(std::thread::spawn(move || {
            let _ = n;
            honest_client(&run, seed);
        }));
    }
    for _ in 0..ATTACKERS {
        let (run, seed) = (Arc::clone(&run), rng.random());
        threads.push(std::thread::spawn(move || attacker(&run, seed)));
    }
    let nemesis_seed = rng.random();
    let nemesis_run = Arc::clone(&run);
    let nemesis = std::thread::spawn(move || nemesis(&nemesis_run, nemesis_seed));

    std::thread::sleep(Duration::from_secs(options.seconds));
    run.stop.store(true, Ordering::Relaxed);
    let _ = nemesis.join();
    for thread in threads {
        let _ = thread.join();
    }
    run.deployment.stop();

    let history = History {
        requests: std::mem::take(&mut *run.requests.lock()),
        faults: std::mem::take(&mut *run.faults.lock()),
        accepted: run
            .deployment
            .instances
            .iter()
            .map(|i| (i.name, i.accepted()))
            .collect(),
        domains: run
            .deployment
            .instances
            .iter()
            .map(|i| (i.name, i.domain))
            .collect(),
    };
    let violations = history.check();
    let report = history.report(&violations, options.seed, options.seconds);
    println!("{report}");
    let _ = std::fs::write(options.out.join("report.md"), &report);
    if !violations.is_empty() || options.keep {
        let path = options.out.join("history.jsonl");
        let _ = std::fs::write(&path, history.json_lines());
        println!("history: {}", path.display());
    }
    if violations.is_empty() {
        if !options.keep {
            let _ = std::fs::remove_dir_all(&options.out);
        }
    } else {
        println!(
            "chaos: {} violations; reproduce with --seed {}",
            violations.len(),
            options.seed
        );
        std::process::exit(1);
    }
}
