//! `examples/server/` under the operations that break replay protection
//! in production: one key at full speed with every default, three keys
//! flooding a small store, a `kill -9` and restart, and more slow bodies
//! than the server admits at once. Over TCP on 127.0.0.1, against the
//! example binary; every loop is bounded in count and time.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use armor_psk::Signer;
use common::process::{Server, example_server};

const KEYS: &str = "flood-a=sa,flood-b=sb,flood-c=sc,steady=st,idle=si";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Sends one signed POST; the status and the `error` code, if any.
fn post(agent: &ureq::Agent, url: &str, header: &str, body: &[u8]) -> (u16, String) {
    let request = http::Request::post(format!("{url}/things"))
        .header("authorization", header)
        .body(body.to_vec())
        .unwrap();
    let mut response = agent.run(request).expect("HTTP exchange");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|json| json["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

fn signer(key_id: &str) -> Signer {
    let secret = KEYS
        .split(',')
        .find_map(|pair| pair.strip_prefix(&format!("{key_id}=")))
        .expect("a key of KEYS");
    Signer::new(key_id, secret).unwrap()
}

#[test]
fn one_key_at_full_speed_is_never_refused_with_every_default() {
    let server = Server::start(example_server(KEYS));
    let stop = Instant::now() + Duration::from_secs(5);
    let counts: Vec<(u64, Vec<(u16, String)>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let url = &server.url;
                scope.spawn(move || {
                    let (agent, signer) = (agent(), signer("steady"));
                    let body = [b'x'; 200];
                    let (mut served, mut refused) = (0, Vec::new());
                    while Instant::now() < stop && served < 500_000 {
                        let header = signer.sign("POST", "/things", &body);
                        match post(&agent, url, &header, &body) {
                            (200, _) => served += 1,
                            other => refused.push(other),
                        }
                    }
                    (served, refused)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let served: u64 = counts.iter().map(|(served, _)| served).sum();
    let refused: Vec<_> = counts.iter().flat_map(|(_, refused)| refused).collect();
    println!(
        "one key, 4 connections, 5 s: {served} served, {} refused",
        refused.len()
    );
    assert!(
        refused.is_empty(),
        "refused: {:?}",
        &refused[..refused.len().min(5)]
    );
    assert!(served > 1_000, "{served} served");
}

/// Three keys flood a 1 MiB store (65,536 entries) until each is held to
/// its share; a key sending ten requests a second is never refused, nor
/// is a key idle until the store is under pressure, and nothing is 503.
#[test]
fn three_flooding_keys_leave_a_steady_key_and_an_idle_key_served() {
    let mut command = example_server(KEYS);
    command.env("ARMOR_PSK_REPLAY_MEMORY_LIMIT", "1MiB");
    let server = Server::start(command);
    let deadline = Instant::now() + Duration::from_secs(120);
    let floods_held = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let steady: Mutex<Vec<(u16, String)>> = Mutex::default();
    std::thread::scope(|scope| {
        for key in ["flood-a", "flood-b", "flood-c"] {
            let (url, floods_held) = (&server.url, floods_held.clone());
            scope.spawn(move || {
                let (agent, signer) = (agent(), signer(key));
                let mut held_back = 0;
                while held_back < 50 {
                    assert!(
                        Instant::now() < deadline,
                        "{key} was never held to its share"
                    );
                    let header = signer.sign("POST", "/things", b"{}");
                    match post(&agent, url, &header, b"{}") {
                        (200, _) => {}
                        (429, code) if code == "key_quota_exceeded" => held_back += 1,
                        other => panic!("{key}: {other:?}"),
                    }
                }
                floods_held.fetch_add(1, Ordering::SeqCst);
            });
        }
        let (url, done_flag) = (&server.url, done.clone());
        let steady = &steady;
        scope.spawn(move || {
            let (agent, signer) = (agent(), signer("steady"));
            while !done_flag.load(Ordering::SeqCst) {
                let header = signer.sign("POST", "/things", b"{}");
                steady
                    .lock()
                    .unwrap()
                    .push(post(&agent, url, &header, b"{}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        while floods_held.load(Ordering::SeqCst) < 3 {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Under pressure now: a key that was idle is served at once.
        let (agent, signer) = (agent(), signer("idle"));
        for i in 0..20 {
            let header = signer.sign("POST", "/things", b"{}");
            assert_eq!(
                post(&agent, &server.url, &header, b"{}"),
                (200, String::new()),
                "idle key, request {i}"
            );
        }
        done.store(true, Ordering::SeqCst);
    });
    let steady = steady.into_inner().unwrap();
    assert!(steady.len() > 5, "{} steady requests", steady.len());
    let refused: Vec<_> = steady.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        refused.is_empty(),
        "the steady key was refused: {refused:?}"
    );
}

/// Sleeps until the wall clock is in a second later than `after`.
fn wait_past_second(after: u64) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        if now.as_secs() > after {
            return;
        }
        std::thread::sleep(Duration::from_millis(
            1000 - u64::from(now.subsec_millis()) + 5,
        ));
    }
}

#[test]
fn a_request_accepted_before_a_kill_9_is_refused_after_the_restart() {
    let server = Server::start(example_server(KEYS));
    let (agent, signer) = (agent(), signer("steady"));
    let signed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = signer.sign("POST", "/things", b"{}");
    assert_eq!(
        post(&agent, &server.url, &header, b"{}"),
        (200, String::new())
    );
    assert_eq!(
        post(&agent, &server.url, &header, b"{}"),
        (401, "replayed_request".into())
    );
    server.kill();

    // A supervisor restarts it (in a later second than the request's).
    wait_past_second(signed_at);
    let restarted = Server::start(example_server(KEYS));
    let agent = self::agent();
    assert_eq!(
        post(&agent, &restarted.url, &header, b"{}"),
        (401, "issued_before_restart".into())
    );
    let fresh = signer.sign("POST", "/things", b"{}");
    assert_eq!(
        post(&agent, &restarted.url, &fresh, b"{}"),
        (200, String::new())
    );
}

/// Sends a request head with a 2 MiB body announced, then `sent` bytes of
/// it, and leaves the rest owed: the server holds the body until its read
/// timeout.
fn slow_body(addr: &str, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let signature = "A".repeat(86) + "==";
    let head = format!(
        "POST /things HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
         Authorization: ARMOR-PSK nobody:{signature}:n-1:{}\r\n\r\n",
        2 << 20,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b'x'; sent]).unwrap();
    stream
}

/// The status of the answer on `stream`, if one comes within `wait`.
fn status_within(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[test]
fn the_513th_slow_body_is_shed_and_memory_stays_bounded() {
    const SENT: usize = 256 << 10;
    let server = Server::start(example_server(KEYS));
    let addr = server.url.trim_start_matches("http://").to_owned();
    let baseline = server.resident_bytes();
    let mut held: Vec<TcpStream> = (0..512).map(|_| slow_body(&addr, SENT)).collect();
    // Let the server take all 512 in.
    std::thread::sleep(Duration::from_secs(2));
    for (i, stream) in held.iter_mut().enumerate().step_by(64) {
        assert_eq!(
            status_within(stream, Duration::from_millis(50)),
            None,
            "request {i} is held"
        );
    }
    let mut shed = 0;
    for i in 0..88 {
        let mut stream = slow_body(&addr, SENT);
        match status_within(&mut stream, Duration::from_secs(5)) {
            Some(503) => shed += 1,
            other => panic!("request {} beyond the limit: {other:?}", 513 + i),
        }
    }
    assert_eq!(shed, 88);
    let resident = server.resident_bytes();
    println!(
        "600 slow bodies: 512 held, 88 shed; RSS {} MiB (from {} MiB)",
        resident >> 20,
        baseline >> 20
    );
    assert!(
        resident < baseline + 512 * (2 << 20) + (64 << 20),
        "{resident} bytes resident"
    );
    drop(held);
}

#[test]
fn the_example_servers_help_and_errors_are_plain_words() {
    let help = std::process::Command::new(common::process::server_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("ARMOR_PSK_KEYS") && text.contains("ARMOR_PSK_REPLAY_MEMORY_LIMIT"),
        "{text}"
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    for (keys, addr, expected) in [
        ("a=", "127.0.0.1:0", "empty"),
        ("nokey", "127.0.0.1:0", "not id=secret"),
        ("a=b", busy_addr.as_str(), "cannot listen on"),
    ] {
        let mut command = example_server(keys);
        command.env("ARMOR_PSK_ADDR", addr);
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{keys}: {stderr}");
        assert!(stderr.contains(expected), "{keys}: {stderr}");
        for debug in ["Some(", "Os {", "Error {"] {
            assert!(!stderr.contains(debug), "{keys}: {debug} in {stderr}");
        }
    }
}

/// An operator's log: one line per refused request with method, path
/// (no query), client address, status, reason, key id and, for a window
/// error, the skew; accepted ones with ARMOR_PSK_LOG_ACCEPTED=1; no colour
/// codes when the log is not a terminal.
#[test]
fn the_example_server_logs_what_an_operator_needs() {
    let mut command = example_server(KEYS);
    command
        .env("ARMOR_PSK_LOG_ACCEPTED", "1")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped());
    let mut server = Server::start(command);
    let agent = agent();
    let signer = signer("steady");
    let fresh = signer.sign("POST", "/things", b"{}");
    let request = http::Request::post(format!("{}/things?token=secret", server.url))
        .header("authorization", fresh)
        .body(b"{}".to_vec())
        .unwrap();
    assert_eq!(agent.run(request).unwrap().status(), 200);
    let old = signer
        .sign_at("POST", "/things", b"{}", "n-old", 1_000)
        .unwrap();
    assert_eq!(post(&agent, &server.url, &old, b"{}").0, 401);
    let pid = server.pid();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    server.wait_exit(Duration::from_secs(10));
    let log = server.stderr_text();
    assert!(!log.contains('\u{1b}'), "colour codes in a file: {log}");
    let accepted = log
        .lines()
        .find(|line| line.contains("accepted POST /things"))
        .expect(&log);
    assert!(
        accepted.contains("from 127.0.0.1:") && accepted.contains("key_id=steady"),
        "{accepted}"
    );
    assert!(!log.contains("token=secret"), "the query is logged: {log}");
    let refused = log
        .lines()
        .find(|line| line.contains("refused POST /things"))
        .expect(&log);
    for part in [
        "status=401",
        "reason=timestamp_out_of_window",
        "key_id=steady",
        "skew=-",
        "from 127.0.0.1:",
    ] {
        assert!(refused.contains(part), "{part} in {refused}");
    }
}
