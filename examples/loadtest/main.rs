//! The speed table, from one command: HTTP on 127.0.0.1 under `wrk`, each
//! server a process of its own, and the in-process and memory rows beside.
//!
//! ```text
//! cargo run --release --example loadtest -- [--seconds 10] [--rounds 3] [--connections 32] [--body 200] [--minute 60] [--live 10000000]
//! ```
//!
//! It builds `examples/echo.rs` and `examples/server` (release), then, in
//! `--rounds` interleaved rounds of `--seconds` each, drives with `wrk`
//! (one thread, `--connections` keep-alive connections, a `--body`-byte
//! `POST`):
//!
//! - `bare`: the axum echo with nothing in front of it;
//! - `layer`: the same behind `ArmorPskLayer` with every default;
//! - `peer`: the same behind the hand-written middleware of `echo.rs`;
//! - `stack`: the example server with its whole stack (trace, body timeout,
//!   request timeout, the global concurrency bound).
//!
//! Every protected request carries a header signed beforehand with a nonce
//! of its own (a replay would be refused, and any refusal fails the run).
//! The ratios are taken round by round (each round drives every form once,
//! in turn) and the median and range across rounds are printed, with each
//! server's CPU per request (from `/proc`). Then:
//!
//! - in this process, interleaved rounds of `oneshot` through the layer
//!   without a replay store, the bare service and the crypto floor, as
//!   `cargo bench --bench layer` measures them: the layer's added time over
//!   the floor;
//! - `--minute` seconds of bare, then of `layer`, at full speed: the p99s
//!   while the replay tables grow (0 skips it);
//! - a fresh process fills the default `MemoryReplayStore` with `--live`
//!   requests (both entries each): resident bytes per request, and the
//!   longest single reservation while its tables grew (0 skips it).
//!
//! Needs `wrk` on the `PATH` (`apt-get install wrk`). Client and servers
//! share this machine's cores, alike for every form.

#[path = "../../benches/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use armor_psk::{
    ArmorPskLayer, ManualClock,
    keys::{MemoryKeyStore, Secret},
    protocol::{BodyDigest, Canonical, Signature},
    replay::{MemoryReplayStore, ReplayRequest, ReplayStore, Reservation},
};
use axum::body::Body;
use common::{Fixture, NoReplayStore, Ratios};
use futures_util::FutureExt as _;
use tower::{Layer as _, ServiceExt as _, service_fn};

const KEY_ID: &str = common::KEY_ID;
const SECRET: &str = common::SECRET;
const PATH: &str = common::PATH;
const WRK_SCRIPT: &str = include_str!("wrk.lua");

type Error = Box<dyn std::error::Error>;

struct Settings {
    seconds: u64,
    rounds: usize,
    connections: usize,
    body: usize,
    minute: u64,
    live: u64,
}

impl Settings {
    fn from_args(args: &[String]) -> Result<Self, Error> {
        let mut settings = Self {
            seconds: 10,
            rounds: 3,
            connections: 32,
            body: 200,
            minute: 60,
            live: 10_000_000,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|e| format!("{flag} {value}: {e}"))
            };
            match flag.as_str() {
                "--seconds" => settings.seconds = number()?.max(1),
                "--rounds" => settings.rounds = number()?.max(1) as usize,
                "--connections" => settings.connections = number()?.max(1) as usize,
                "--body" => settings.body = number()? as usize,
                "--minute" => settings.minute = number()?,
                "--live" => settings.live = number()?,
                _ => return Err(format!("unknown flag {flag}").into()),
            }
        }
        Ok(settings)
    }
}

/// The forms driven over HTTP.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Bare,
    Layer,
    Peer,
    Stack,
}

impl Form {
    const ALL: [Self; 4] = [Self::Bare, Self::Layer, Self::Peer, Self::Stack];

    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Layer => "layer",
            Self::Peer => "peer",
            Self::Stack => "stack",
        }
    }

    fn start(self, examples: &Path) -> Result<Server, Error> {
        let mut command = match self {
            Self::Stack => {
                let mut command = Command::new(examples.join("server"));
                command
                    .env("ARMOR_PSK_ADDR", "127.0.0.1:0")
                    .env("RUST_LOG", "warn");
                command
            }
            form => {
                let mut command = Command::new(examples.join("echo"));
                command.arg(form.name());
                command
            }
        };
        command
            .env("ARMOR_PSK_KEYS", format!("{KEY_ID}={SECRET}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        Server::start(command)
    }
}

/// A server process, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(mut command: Command) -> Result<Self, Error> {
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().ok_or("the server exited before listening")??;
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        // Keep reading what it prints, so that it never blocks on a pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, url })
    }

    /// User plus system CPU of every thread of the process so far.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime
        // are the 14th and 15th of the whole line, in ticks of 10 ms.
        let ticks: u64 = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|field| field.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `wrk` run's figures.
#[derive(Clone, Copy)]
struct Run {
    requests: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Writes `count` headers for `POST PATH` with the body, each with a nonce
/// never used before (`run` tells runs apart), signed in a second after
/// `started` (a server's replay memory refuses what was signed in the
/// second it began, or before).
fn write_headers(
    path: &Path,
    count: u64,
    run: u64,
    body: &[u8],
    started: u64,
) -> Result<(), Error> {
    let secret = Secret::new(SECRET);
    let slot = BodyDigest::of(body).slot();
    while unix_seconds() <= started {
        std::thread::sleep(Duration::from_millis(20));
    }
    let timestamp = unix_seconds();
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut nonce = String::with_capacity(32);
    for i in 0..count {
        nonce.clear();
        write!(nonce, "{run:08x}{i:024x}")?;
        let signature = Canonical {
            key_id: KEY_ID,
            method: "POST",
            path: PATH,
            nonce: &nonce,
            timestamp,
        }
        .sign(&secret, &slot);
        writeln!(
            out,
            "ARMOR-PSK {KEY_ID}:{}:{nonce}:{timestamp}",
            signature.to_base64()
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Drives `server` with `wrk` for `seconds`, one header of `headers` a
/// request.
fn drive(
    server: &Server,
    script: &Path,
    headers: &Path,
    settings: &Settings,
    seconds: u64,
) -> Result<Run, Error> {
    let cpu_before = server.cpu();
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{}", settings.connections)])
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(format!("{}{PATH}", server.url))
        .arg("--")
        .arg(headers)
        .arg(PATH)
        .arg(settings.body.to_string())
        .output()
        .map_err(|e| format!("wrk: {e} (apt-get install wrk)"))?;
    let cpu = server.cpu().saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&output.stdout);
    let result = text
        .lines()
        .find_map(|line| line.strip_prefix("wrk-result "))
        .ok_or_else(|| format!("wrk printed no result: {text}"))?;
    let field = |name: &str| -> Result<f64, Error> {
        result
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .ok_or(format!("no {name} in {result}"))?
            .parse::<f64>()
            .map_err(Into::into)
    };
    let requests = field("requests")?;
    let (status, socket) = (field("status_errors")?, field("socket_errors")?);
    if status > 0.0 || socket > 0.0 {
        return Err(format!(
            "{}: {status} refused and {socket} socket errors of {requests} requests (headers ran out? {result})",
            server.url
        )
        .into());
    }
    Ok(Run {
        requests: requests as u64,
        seconds: field("duration_us")? / 1e6,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        cpu_us: cpu.as_secs_f64() * 1e6 / requests.max(1.0),
    })
}

/// Median, least and greatest.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn show((median, least, greatest): (f64, f64, f64)) -> String {
    format!("{median:.2} ({least:.2}–{greatest:.2})")
}

/// The layer without a replay store, the bare service and the crypto
/// floor, in interleaved rounds of `oneshot` (as `benches/layer.rs`):
/// returns the added time over the floor, and the floor in ns.
fn in_process(body_size: usize) -> (f64, f64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bare = service_fn(common::inner);
    let layer = ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_clock(ManualClock::new(common::NOW))
        .with_replay_store(NoReplayStore)
        .layer(service_fn(common::inner));
    let mut fixture = Fixture::new(body_size);
    let floor_fixture = Fixture::new(body_size);
    let body = bytes::Bytes::from(fixture.body.clone());
    let medians = Ratios::new("in process: oneshot through the layer, no replay store")
        .form(
            "bare inner service",
            |batch: &mut Vec<http::Request<Body>>| {
                for request in batch.drain(..) {
                    let response = runtime.block_on(bare.oneshot(request)).expect("infallible");
                    assert_eq!(response.status(), 200);
                }
            },
        )
        .form("floor (SHA-512 body + pre-keyed HMAC)", |batch| {
            for _ in batch.drain(..) {
                std::hint::black_box(floor_fixture.floor());
            }
        })
        .form("layer, no replay store", |batch| {
            for request in batch.drain(..) {
                let response = runtime
                    .block_on(layer.clone().oneshot(request))
                    .expect("infallible");
                assert_eq!(response.status(), 200);
            }
        })
        .run(40, 300, |n| {
            (0..n)
                .map(|_| {
                    http::Request::post(PATH)
                        .header("authorization", fixture.header())
                        .body(Body::from(body.clone()))
                        .expect("request")
                })
                .collect()
        });
    let [(_, bare), (_, floor), (_, layer)] = medians.as_slice() else {
        unreachable!("three forms")
    };
    ((layer - bare) / floor, *floor)
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

/// In a fresh process: fills the default store with `requests` requests of
/// both entries; prints resident and table bytes per request, then the
/// reservations that took over [`SLOW`] (a table growing under its shard's
/// lock, what the requests that reach it meanwhile wait; or the machine
/// taking the core away): how many, their total and the longest, in µs.
fn live_child(requests: u64) {
    let store = MemoryReplayStore::new();
    // Its memory refuses what was signed in the second it began.
    let began = unix_seconds();
    while unix_seconds() <= began {
        std::thread::sleep(Duration::from_millis(20));
    }
    let now = unix_seconds();
    let before = resident_bytes();
    let lifetime = Duration::from_secs(361);
    let (mut slow, mut slow_total, mut longest) = (0u64, Duration::ZERO, Duration::ZERO);
    for i in 0..requests {
        let mut tag = [0u8; 64];
        tag[..8].copy_from_slice(&i.to_le_bytes());
        tag[8..16].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        let signature = Signature::from_bytes(tag);
        let nonce = format!("{i:032x}");
        let request = ReplayRequest::new(KEY_ID, &signature, now, now, lifetime).with_nonce(&nonce);
        let started = Instant::now();
        let reserved = store.reserve(&request).now_or_never();
        let took = started.elapsed();
        if took > SLOW {
            slow += 1;
            slow_total += took;
        }
        longest = longest.max(took);
        assert!(
            matches!(reserved, Some(Ok(Reservation::Reserved))),
            "request {i} is new"
        );
    }
    let held = resident_bytes().saturating_sub(before);
    println!(
        "{} {} {slow} {} {}",
        held as f64 / requests as f64,
        store.table_bytes() as f64 / requests as f64,
        slow_total.as_secs_f64() * 1e6,
        longest.as_secs_f64() * 1e6
    );
}

/// A reservation slower than this is counted as a stall.
const SLOW: Duration = Duration::from_micros(500);

/// What `live_child` measured.
struct Live {
    resident: f64,
    table: f64,
    slow: f64,
    slow_us: f64,
    longest_us: f64,
}

fn live(examples: &Path, requests: u64) -> Result<Live, Error> {
    let output = Command::new(examples.join("loadtest"))
        .args(["--child-live", &requests.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err("the live-requests child failed".into());
    }
    let text = String::from_utf8(output.stdout)?;
    let fields: Result<Vec<f64>, _> = text.split_whitespace().map(str::parse).collect();
    match fields.as_deref() {
        Ok(&[resident, table, slow, slow_us, longest_us]) => Ok(Live {
            resident,
            table,
            slow,
            slow_us,
            longest_us,
        }),
        _ => Err(format!("the live-requests child printed {text:?}").into()),
    }
}

/// Builds the echo and the example server beside this program, in its own
/// target directory; returns that directory.
fn build_servers() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let examples = exe.parent().ok_or("no directory")?.to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = examples
        .parent()
        .and_then(Path::parent)
        .ok_or("not in target/release/examples")?;
    let mut command = Command::new(cargo);
    // What `cargo run` set for this program would, inherited, make the
    // build see a changed environment and build again.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            command.env_remove(&*name);
        }
    }
    let status = command
        .args(["build", "--release", "--example", "loadtest"])
        .args(["--example", "echo", "--example", "server"])
        .env("CARGO_TARGET_DIR", target)
        .status()?;
    if !status.success() {
        return Err("building the servers failed".into());
    }
    Ok(examples)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, requests] = args.as_slice()
        && flag == "--child-live"
    {
        live_child(requests.parse()?);
        return Ok(());
    }
    let settings = Settings::from_args(&args)?;
    let examples = build_servers()?;
    let work = std::env::temp_dir().join(format!("armor-psk-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let script = work.join("wrk.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    let headers = work.join("headers");
    let body = vec![b'x'; settings.body];
    let result = table(&settings, &examples, &script, &headers, &body);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn table(
    settings: &Settings,
    examples: &Path,
    script: &Path,
    headers: &Path,
    body: &[u8],
) -> Result<(), Error> {
    println!(
        "loadtest: wrk -t1 -c{} for {} s a run, {} B bodies, {} rounds",
        settings.connections, settings.seconds, settings.body, settings.rounds
    );
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); Form::ALL.len()];
    let mut signed_runs = 0;
    // Enough headers for a run at the best rate seen so far, and some,
    // signed once the server is up.
    let mut best_rate = 0.0f64;
    let mut headers_for = |seconds: u64, best_rate: f64, started: u64| -> Result<(), Error> {
        signed_runs += 1;
        let count = if best_rate == 0.0 {
            1
        } else {
            (best_rate * seconds as f64 * 1.3) as u64 + 10_000
        };
        write_headers(headers, count, signed_runs, body, started)
    };
    for round in 0..settings.rounds {
        for (slot, form) in Form::ALL.into_iter().enumerate() {
            // Bare's run is the first of each round and sets the count; it
            // sends one header again and again (it checks nothing).
            let server = form.start(examples)?;
            headers_for(
                settings.seconds,
                if form == Form::Bare { 0.0 } else { best_rate },
                unix_seconds(),
            )?;
            let run = drive(&server, script, headers, settings, settings.seconds)?;
            drop(server);
            if form == Form::Bare {
                best_rate = best_rate.max(run.per_second());
            }
            println!(
                "  round {} {:<6} {:>8.0} req/s, p50 {:>6.0} µs, p99 {:>6.0} µs, server CPU {:>5.1} µs/req",
                round + 1,
                form.name(),
                run.per_second(),
                run.p50_us,
                run.p99_us,
                run.cpu_us
            );
            runs[slot].push(run);
        }
    }
    let ratio = |a: usize, b: usize| {
        spread(
            runs[a]
                .iter()
                .zip(&runs[b])
                .map(|(a, b)| a.per_second() / b.per_second())
                .collect(),
        )
    };
    let layer_bare = ratio(1, 0);
    let layer_peer = ratio(1, 2);
    let stack_bare = ratio(3, 0);
    let cpu = |slot: usize| spread(runs[slot].iter().map(|run| run.cpu_us).collect()).0;

    let (added, floor) = in_process(settings.body);

    let minute = if settings.minute > 0 {
        println!("full speed for {} s: bare, then layer", settings.minute);
        let mut p99s = Vec::new();
        for form in [Form::Bare, Form::Layer] {
            let server = form.start(examples)?;
            headers_for(
                settings.minute,
                if form == Form::Bare { 0.0 } else { best_rate },
                unix_seconds(),
            )?;
            let run = drive(&server, script, headers, settings, settings.minute)?;
            println!(
                "  {:<6} {:>8} requests, {:>8.0} req/s, p50 {:>6.0} µs, p99 {:>6.0} µs",
                form.name(),
                run.requests,
                run.per_second(),
                run.p50_us,
                run.p99_us
            );
            best_rate = best_rate.max(run.per_second());
            p99s.push(run.p99_us);
        }
        Some((p99s[1], p99s[0]))
    } else {
        None
    };

    let memory = if settings.live > 0 {
        Some(live(examples, settings.live)?)
    } else {
        None
    };

    println!();
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| layer alone with defaults / bare echo, wrk, median (range) of {} rounds | {} |",
        settings.rounds,
        show(layer_bare)
    );
    println!(
        "| layer alone / the hand-written peer, same rounds | {} |",
        show(layer_peer)
    );
    println!(
        "| example server with its stack / bare, same rounds | {} |",
        show(stack_bare)
    );
    println!(
        "| in process, no store, added ÷ floor ({:.2} µs floor) | {added:.2} |",
        floor / 1e3
    );
    match minute {
        Some((layer, bare)) => println!(
            "| p99 over the full-speed {} s, layer / bare | {:.2} ms / {:.2} ms = {:.2} |",
            settings.minute,
            layer / 1e3,
            bare / 1e3,
            layer / bare
        ),
        None => println!("| p99 over the full-speed minute | skipped |"),
    }
    match memory {
        Some(live) => {
            println!(
                "| bytes per request at {} live requests, resident (tables) | {:.1} ({:.1}) |",
                settings.live, live.resident, live.table
            );
            println!(
                "| reservations over {} µs while the tables grow to {} requests: count, total, longest | {}, {:.0} ms, {:.2} ms |",
                SLOW.as_micros(),
                settings.live,
                live.slow,
                live.slow_us / 1e3,
                live.longest_us / 1e3
            );
        }
        None => println!("| bytes per request at 10 M live requests | skipped |"),
    }
    println!(
        "| server CPU per request, median: bare / layer / peer / stack | {:.1} / {:.1} / {:.1} / {:.1} µs |",
        cpu(0),
        cpu(1),
        cpu(2),
        cpu(3)
    );
    Ok(())
}
