//! A fault harness that checks the crate's three promises together, over
//! a whole history: a real deployment on loopback (two example-server
//! instances on one Redis, one on the in-memory store with a snapshot
//! file, the keys of all three in a PostgreSQL database of the run's own,
//! reached through a relay), honest traffic from clients whose clocks
//! spread ±3 s, replays and nonce reuses of accepted and in-flight
//! requests, requests signed with revoked keys and expired secrets, and
//! faults drawn from a seed (`kill -9` and restart, at once or later,
//! SIGTERM and restart, Redis restarted without persistence, Redis paused,
//! a wall-clock step of ±30 s and a glitch of a day through libfaketime,
//! keys revoked and rotated, the database connections gone silent). After
//! each fault the attackers send what was in flight when it began to every
//! instance of its domain, at once and 1, 3 and 6 s later. At the end it
//! checks the history and exits 1 on any violation:
//!
//! 1. no request accepted twice within a replay domain, by its bytes or by
//!    its nonce (from the servers' own logs of what they accepted; every
//!    200 a client saw must be in them);
//! 2. no request signed with a revoked key, or with a secret past its
//!    rotation's overlap, accepted later than the bound docs/keys.md states
//!    (a second; with the database silent, 5 s after it speaks again);
//! 3. every refusal of an honest request explained by a fault the docs
//!    allow: `issued_before_restart` only after a start that lost memory
//!    and only for timestamps within a few seconds of it, 503 only while
//!    Redis or the database was down, paused or silent (and 5 s after), an
//!    answer missing only while its instance went down,
//!    `timestamp_out_of_window` only during a clock glitch,
//!    `invalid_signature` only for a key change not yet seen within its
//!    bound.
//!
//! ```text
//! cargo build --release --all-features --example server --example chaos
//! target/release/examples/chaos --seconds 600 --seed 42
//! ```
//!
//! The PostgreSQL server comes from `--database-url` or
//! `ARMOR_PSK_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! the run creates a database of its own there and drops it at the end.
//! `--keys env` keeps the keys in the instances' environment instead (no
//! PostgreSQL; no key faults). `--server PATH` runs another build of the
//! example server (an older release, a deliberately broken store); `--out
//! DIR` keeps the logs and the history (`history.jsonl`, written on a
//! violation or when asked with `--keep`).

mod deploy;
mod history;
mod keys;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use deploy::{Database, Deployment, Domain, Instance};
use history::{Fault, FaultKind, History, Kind, Millis, Request};
use keys::Keys;

const KEYS: usize = 4;
const HONEST_CLIENTS: usize = 4;
const ATTACKERS: usize = 2;
/// Client clocks spread this far either way, in milliseconds.
const CLOCK_SPREAD_MS: i64 = 3_000;
/// When the attackers send again what was in flight as a fault began:
/// milliseconds after it ended.
const BURSTS_MS: [Millis; 4] = [0, 1_000, 3_000, 6_000];

struct Options {
    seconds: u64,
    seed: u64,
    server: PathBuf,
    out: PathBuf,
    keep: bool,
    /// `None`: keys in the instances' environment.
    database_url: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut seconds = 30;
    let mut seed = None;
    let mut server = None;
    let mut out = None;
    let mut keep = false;
    let mut in_database = true;
    let mut database_url = std::env::var("ARMOR_PSK_DATABASE_URL").ok();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
            "--seed" => seed = Some(value()?.parse().map_err(|_| "--seed: a number")?),
            "--server" => server = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--keep" => keep = true,
            "--database-url" => database_url = Some(value()?),
            "--keys" => match value()?.as_str() {
                "postgres" => in_database = true,
                "env" => in_database = false,
                other => return Err(format!("--keys: postgres or env, not {other:?}")),
            },
            "--help" | "-h" => {
                println!(
                    "chaos [--seconds N] [--seed S] [--keys postgres|env] [--database-url URL] \
                     [--server PATH] [--out DIR] [--keep]"
                );
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
    let database_url = in_database.then(|| {
        database_url.unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    });
    Ok(Options {
        seconds,
        seed,
        server,
        out,
        keep,
        database_url,
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
    keys: Keys,
    database: Option<Database>,
    requests: Mutex<Vec<Request>>,
    faults: Mutex<Vec<Fault>>,
    /// Requests sent recently (answered or not), for the attackers.
    recent: Mutex<Vec<Sent>>,
    /// What was in flight as a fault began, and when to send it again.
    bursts: Mutex<Vec<(Millis, Arc<Vec<Sent>>)>>,
    next_id: AtomicU64,
    stop: AtomicBool,
}

/// What an attacker needs to send a request again.
#[derive(Clone)]
struct Sent {
    id: u64,
    key: usize,
    version: u32,
    nonce: String,
    header: String,
    body: Vec<u8>,
    domain: Domain,
}

impl Run {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn up(&self, domain: Option<Domain>) -> Vec<(Arc<Instance>, String)> {
        self.deployment
            .instances
            .iter()
            .filter(|i| domain.is_none_or(|d| i.domain == d))
            .filter_map(|i| i.url().map(|url| (Arc::clone(i), url)))
            .collect()
    }

    /// An instance that serves now, of `domain` if given.
    fn pick(&self, rng: &mut StdRng, domain: Option<Domain>) -> Option<(Arc<Instance>, String)> {
        let up = self.up(domain);
        (!up.is_empty()).then(|| up[rng.random_range(0..up.len())].clone())
    }

    /// The last requests sent, answered or not: what is in flight now.
    fn in_flight(&self) -> Arc<Vec<Sent>> {
        let recent = self.recent.lock();
        Arc::new(recent[recent.len().saturating_sub(30)..].to_vec())
    }

    /// Logs a fault that ended, and has the attackers send what was in
    /// flight as it began again.
    fn record(&self, fault: Fault, in_flight: &Arc<Vec<Sent>>) {
        let mut bursts = self.bursts.lock();
        for after in BURSTS_MS {
            bursts.push((fault.end + after, Arc::clone(in_flight)));
        }
        self.faults.lock().push(fault);
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
        let Some(key) = run.keys.honest(&mut rng, now_ms()) else {
            continue;
        };
        let id = run.id();
        let path = format!("/chaos/{id}");
        let body = vec![b'x'; [0, 64, 1024, 16 << 10][rng.random_range(0..4)]];
        let nonce = armor_psk::protocol::new_uuid_v4();
        let sent = now_ms();
        let timestamp = (sent as i64 + offset).max(0) as u64 / 1000;
        let header = key
            .signer
            .sign_at("POST", &path, &body, &nonce, timestamp)
            .expect("signable");
        run.recent.lock().push(Sent {
            id,
            key: key.slot,
            version: key.version,
            nonce: nonce.clone(),
            header: header.clone(),
            body: body.clone(),
            domain: instance.domain,
        });
        let fresh;
        let agent = if keep_alive {
            &kept
        } else {
            fresh = self::agent();
            &fresh
        };
        let (status, reason) = send(agent, &url, &path, &header, &body);
        run.requests.lock().push(Request {
            id,
            kind: Kind::Honest,
            key: key.slot,
            version: key.version,
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

/// Replays (the same bytes), nonce reuses (a new signature under an old
/// nonce) and requests signed with what was taken back.
fn attacker(run: &Run, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let agent = agent();
    while !run.stop.load(Ordering::Relaxed) {
        let due = {
            let mut bursts = run.bursts.lock();
            let now = now_ms();
            bursts
                .iter()
                .position(|(at, _)| *at <= now)
                .map(|at| bursts.swap_remove(at).1)
        };
        if let Some(burst) = due {
            // What was in flight as the fault began, to every instance of
            // its domain.
            for target in burst.iter() {
                if run.stop.load(Ordering::Relaxed) {
                    return;
                }
                for (instance, url) in run.up(Some(target.domain)) {
                    replay(run, &agent, &mut rng, target, &instance, &url);
                }
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
        if run.keys.in_database() && rng.random_bool(0.2) {
            stale(run, &agent, &mut rng);
            continue;
        }
        let target = {
            let mut recent = run.recent.lock();
            let len = recent.len();
            if len > 2_000 {
                recent.drain(..len - 1_000);
            }
            let len = recent.len();
            if len == 0 {
                continue;
            }
            recent[len - 1 - rng.random_range(0..len.min(300))].clone()
        };
        if let Some((instance, url)) = run.pick(&mut rng, Some(target.domain)) {
            replay(run, &agent, &mut rng, &target, &instance, &url);
        }
    }
}

/// Sends `target` again: its very bytes, or (one time in seven) a new
/// signature under its nonce.
fn replay(
    run: &Run,
    agent: &ureq::Agent,
    rng: &mut StdRng,
    target: &Sent,
    instance: &Instance,
    url: &str,
) {
    let slot = run.keys.slot(target.key);
    let (kind, path, header, timestamp, id) = if rng.random_bool(0.15) {
        // The key holder sending a request again under its nonce.
        let id = run.id();
        let path = format!("/chaos/{id}");
        let timestamp = now_ms() / 1000;
        let secret = slot
            .secrets
            .iter()
            .find(|s| s.version == target.version)
            .expect("the version signed with");
        let header = secret
            .signer
            .sign_at("POST", &path, &target.body, &target.nonce, timestamp)
            .expect("signable");
        (
            Kind::NonceReuse { of: target.id },
            path,
            header,
            timestamp,
            id,
        )
    } else {
        let timestamp = armor_psk::protocol::Credentials::parse(target.header.as_bytes())
            .map_or(0, |c| c.timestamp());
        let path = format!("/chaos/{}", target.id);
        let kind = Kind::Replay { of: target.id };
        (kind, path, target.header.clone(), timestamp, run.id())
    };
    let sent = now_ms();
    let (status, reason) = send(agent, url, &path, &header, &target.body);
    run.requests.lock().push(Request {
        id,
        kind,
        key: target.key,
        version: target.version,
        nonce: target.nonce.clone(),
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

/// A fresh request signed with a revoked key or an expired secret.
fn stale(run: &Run, agent: &ureq::Agent, rng: &mut StdRng) {
    let Some(key) = run.keys.stale(rng, now_ms()) else {
        return;
    };
    let Some((instance, url)) = run.pick(rng, None) else {
        return;
    };
    let id = run.id();
    let path = format!("/chaos/{id}");
    let nonce = armor_psk::protocol::new_uuid_v4();
    let sent = now_ms();
    let timestamp = sent / 1000;
    let header = key
        .signer
        .sign_at("POST", &path, b"", &nonce, timestamp)
        .expect("signable");
    let (status, reason) = send(agent, &url, &path, &header, b"");
    run.requests.lock().push(Request {
        id,
        kind: Kind::Stale,
        key: key.slot,
        version: key.version,
        nonce,
        timestamp,
        instance: instance.name,
        domain: instance.domain,
        body_bytes: 0,
        keep_alive: true,
        sent,
        done: now_ms(),
        status,
        reason,
    });
}

/// Draws and injects faults until the run stops. Faults held for a while
/// (Redis paused, a clock stepped, the database silent) are ended by a
/// thread of their own half the time, so that the next faults overlap
/// them; two faults never hold one target at once (an instance, Redis,
/// the database), and an instance of the Redis domain whose clock is
/// stepped holds Redis too (instances whose clocks disagree date a Redis
/// restart apart: a limit SECURITY.md states).
fn nemesis(run: &Arc<Run>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let deployment = &run.deployment;
    if !deployment.faketime {
        eprintln!("chaos: libfaketime not found: no clock faults (apt-get install libfaketime)");
    }
    let kinds = FaultKind::drawn(run.keys.in_database(), deployment.faketime);
    let busy: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    // Let traffic build up first, and every Redis group see its first use
    // (on true clocks).
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..100 {
        if deployment.redis.epochs_ready() || run.stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    while !run.stop.load(Ordering::Relaxed) {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let instance =
            Arc::clone(&deployment.instances[rng.random_range(0..deployment.instances.len())]);
        let holds: Vec<&'static str> = match kind {
            FaultKind::RedisRestart | FaultKind::RedisPause => vec!["redis"],
            FaultKind::DatabaseSilent => vec!["database"],
            FaultKind::KeyRevoke | FaultKind::KeyRotate => vec!["keys"],
            FaultKind::ClockStep | FaultKind::ClockGlitch if instance.domain == Domain::Redis => {
                vec![instance.name, "redis"]
            }
            _ => vec![instance.name],
        };
        if holds.iter().any(|target| busy.lock().contains(target)) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let in_flight = run.in_flight();
        match kind {
            FaultKind::RedisPause | FaultKind::ClockStep | FaultKind::DatabaseSilent => {
                held(run, &mut rng, kind, &instance, in_flight, holds, &busy);
            }
            _ => {
                if let Some(fault) = inject(run, &mut rng, kind, &instance) {
                    run.record(fault, &in_flight);
                }
            }
        }
        let gap = rng.random_range(1_000..3_000);
        std::thread::sleep(Duration::from_millis(gap));
    }
    // Whatever is still held ends with the run.
    while !busy.lock().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fault that holds for a while, then ends: in this thread or, half the
/// time, in one of its own.
fn held(
    run: &Arc<Run>,
    rng: &mut StdRng,
    kind: FaultKind,
    instance: &Arc<Instance>,
    in_flight: Arc<Vec<Sent>>,
    holds: Vec<&'static str>,
    busy: &Arc<Mutex<Vec<&'static str>>>,
) {
    let start = now_ms();
    let (target, hold, detail): (String, u64, String) = match kind {
        FaultKind::RedisPause => {
            let hold = rng.random_range(300..3_000);
            run.deployment.redis.pause(true);
            ("redis".into(), hold, format!("{hold} ms"))
        }
        FaultKind::ClockStep => {
            let step = if rng.random_bool(0.5) { 30 } else { -30 };
            let hold = rng.random_range(2_000..8_000);
            instance.set_clock(step);
            (
                instance.name.into(),
                hold,
                format!("{step:+} s for {hold} ms"),
            )
        }
        FaultKind::DatabaseSilent => {
            let Some(database) = &run.database else {
                return;
            };
            let hold = rng.random_range(500..6_000);
            database.relay.silence(true);
            ("database".into(), hold, format!("{hold} ms"))
        }
        _ => unreachable!("not held"),
    };
    let ends = {
        let (run, instance) = (Arc::clone(run), Arc::clone(instance));
        move || {
            std::thread::sleep(Duration::from_millis(hold));
            match kind {
                FaultKind::RedisPause => run.deployment.redis.pause(false),
                FaultKind::ClockStep => instance.set_clock(0),
                _ => {
                    if let Some(database) = &run.database {
                        database.relay.silence(false);
                    }
                }
            }
            let fault = Fault {
                kind,
                target,
                key: None,
                detail,
                start,
                end: now_ms(),
            };
            run.record(fault, &in_flight);
        }
    };
    if rng.random_bool(0.5) {
        busy.lock().extend(holds.iter().copied());
        let busy = Arc::clone(busy);
        std::thread::spawn(move || {
            ends();
            busy.lock().retain(|target| !holds.contains(target));
        });
    } else {
        ends();
    }
}

/// Injects a fault that is over when it returns; the fault, to log.
fn inject(run: &Run, rng: &mut StdRng, kind: FaultKind, instance: &Instance) -> Option<Fault> {
    let deployment = &run.deployment;
    let mut kind = kind;
    let mut start = now_ms();
    let mut key = None;
    let (target, detail): (String, String) = match kind {
        FaultKind::KillRestart => {
            instance.kill();
            instance.start_until_up(&deployment.server, &run.stop);
            (instance.name.into(), String::new())
        }
        FaultKind::KillPauseRestart => {
            instance.kill();
            let pause = rng.random_range(200..2_000);
            std::thread::sleep(Duration::from_millis(pause));
            instance.start_until_up(&deployment.server, &run.stop);
            (instance.name.into(), format!("down {pause} ms"))
        }
        FaultKind::TermRestart => {
            let clean = instance.terminate();
            instance.start_until_up(&deployment.server, &run.stop);
            if !clean {
                // Killed after its deadline: a crash, as far as its
                // memory goes.
                kind = FaultKind::KillRestart;
            }
            (instance.name.into(), format!("exit 0: {clean}"))
        }
        FaultKind::RedisRestart => {
            if let Err(error) = deployment.redis.restart() {
                eprintln!("chaos: {error}");
            }
            ("redis".into(), String::new())
        }
        FaultKind::ClockGlitch => {
            let hold = rng.random_range(200..1_500);
            instance.set_clock(86_400);
            std::thread::sleep(Duration::from_millis(hold));
            instance.set_clock(0);
            (instance.name.into(), format!("+1 day for {hold} ms"))
        }
        FaultKind::KeyRevoke => {
            // A new key first, so that the honest clients keep as many.
            match run.keys.add() {
                Ok(slot) => run.faults.lock().push(Fault {
                    kind: FaultKind::KeyAdd,
                    target: format!("k{slot}"),
                    key: Some(slot),
                    detail: String::new(),
                    start,
                    end: now_ms(),
                }),
                Err(error) => eprintln!("chaos: {error}"),
            }
            let slot = run.keys.victim(rng, 2)?;
            key = Some(slot);
            start = now_ms();
            if let Err(error) = run.keys.revoke(slot, now_ms) {
                eprintln!("chaos: {error}");
                return None;
            }
            (format!("k{slot}"), String::new())
        }
        FaultKind::KeyRotate => {
            let slot = run.keys.victim(rng, 0)?;
            key = Some(slot);
            let overlap = Duration::from_secs(rng.random_range(3..=5));
            match run.keys.rotate(slot, overlap, now_ms()) {
                Ok(version) => (
                    format!("k{slot}"),
                    format!("v{version}, overlap {} s", overlap.as_secs()),
                ),
                Err(error) => {
                    eprintln!("chaos: {error}");
                    return None;
                }
            }
        }
        FaultKind::RedisPause
        | FaultKind::ClockStep
        | FaultKind::DatabaseSilent
        | FaultKind::Start
        | FaultKind::KeyAdd => unreachable!("held, or not drawn"),
    };
    Some(Fault {
        kind,
        target,
        key,
        detail,
        start,
        end: now_ms(),
    })
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
    let started = now_ms();
    let fail = |error: String| -> ! {
        eprintln!("chaos: the deployment did not start: {error}");
        std::process::exit(2);
    };
    let (keys, database, key_env) = match &options.database_url {
        None => {
            let (keys, spec) = Keys::fixed(KEYS, &mut rng);
            (keys, None, vec![("ARMOR_PSK_KEYS".to_owned(), spec)])
        }
        Some(url) => {
            let name = format!("armor_psk_chaos_{}_{}", std::process::id(), options.seed);
            let database = Database::create(url, &name).unwrap_or_else(|e| fail(e));
            let (keys, kek) = match Keys::in_postgres(&database.url, KEYS) {
                Ok(keys) => keys,
                Err(error) => {
                    drop(database);
                    fail(error)
                }
            };
            let env = vec![
                (
                    "ARMOR_PSK_DATABASE_URL".to_owned(),
                    database.relayed_url.clone(),
                ),
                ("ARMOR_PSK_KEK".to_owned(), kek),
            ];
            (keys, Some(database), env)
        }
    };
    let deployment = match Deployment::start(&options.server, &options.out, key_env) {
        Ok(deployment) => deployment,
        Err(error) => {
            drop(database);
            fail(error)
        }
    };
    let run = Arc::new(Run {
        deployment,
        keys,
        database,
        requests: Mutex::new(Vec::new()),
        faults: Mutex::new(vec![Fault {
            kind: FaultKind::Start,
            target: "redis".into(),
            key: None,
            detail: String::new(),
            start: started,
            end: now_ms(),
        }]),
        recent: Mutex::new(Vec::new()),
        bursts: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(1),
        stop: AtomicBool::new(false),
    });
    let mut threads = Vec::new();
    for _ in 0..HONEST_CLIENTS {
        let (run, seed) = (Arc::clone(&run), rng.random());
        threads.push(std::thread::spawn(move || honest_client(&run, seed)));
    }
    for _ in 0..ATTACKERS {
        let (run, seed) = (Arc::clone(&run), rng.random());
        threads.push(std::thread::spawn(move || attacker(&run, seed)));
    }
    let nemesis_seed = rng.random();
    let nemesis_run = Arc::clone(&run);
    threads.push(std::thread::spawn(move || {
        nemesis(&nemesis_run, nemesis_seed);
    }));

    std::thread::sleep(Duration::from_secs(options.seconds));
    run.stop.store(true, Ordering::Relaxed);
    // A thread that died (a panic) sent less than the report says.
    let panicked = threads
        .into_iter()
        .map(std::thread::JoinHandle::join)
        .filter(Result::is_err)
        .count();
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
        keys: (0..run.keys.len())
            .map(|slot| run.keys.slot(slot))
            .collect(),
    };
    drop(run);
    let violations = history.check();
    let report = history.report(&violations, options.seed, options.seconds);
    println!("{report}");
    let _ = std::fs::write(options.out.join("report.md"), &report);
    if !violations.is_empty() || options.keep {
        let path = options.out.join("history.jsonl");
        let _ = std::fs::write(&path, history.json_lines());
        println!("history: {}", path.display());
    }
    if panicked > 0 {
        println!("chaos: {panicked} of the harness's threads panicked: the run is not valid");
        std::process::exit(2);
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
