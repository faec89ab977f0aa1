//! The example server restarted the ways production restarts it: `kill -9`
//! and SIGTERM within the captured request's own second, with and without
//! a replay snapshot, from a snapshot cut short, flipped or foreign; and
//! what each start costs honest clients. Over TCP on 127.0.0.1, against the
//! example binary; every loop is bounded in count and time.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use armor_psk::Signer;
use common::process::{Server, example_server};

const KEYS: &str = "k=secret-k";

fn signer() -> Signer {
    Signer::new("k", "secret-k").unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// One signed POST: the status and the `error` code, if any.
fn post(url: &str, header: &str) -> (u16, String) {
    let request = http::Request::post(format!("{url}/things"))
        .header("authorization", header)
        .body(b"{}".to_vec())
        .unwrap();
    let mut response = agent().run(request).expect("HTTP exchange");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|json| json["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

/// A request signed `ago` seconds in the past, never sent.
fn signed_ago(ago: u64) -> String {
    let nonce = armor_psk::protocol::new_uuid_v4();
    signer()
        .sign_at("POST", "/things", b"{}", &nonce, now() - ago)
        .unwrap()
}

/// A fresh directory for a snapshot file.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("armor-psk-restarts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn server(snapshot: Option<&Path>) -> Command {
    let mut command = example_server(KEYS);
    command.env("RUST_LOG", "warn").stderr(Stdio::piped());
    if let Some(path) = snapshot {
        command.env("ARMOR_PSK_REPLAY_SNAPSHOT", path);
    }
    command
}

fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    server
        .wait_exit(Duration::from_secs(20))
        .expect("the server stops within its drain deadline")
}

/// A request accepted just before the server dies, replayed to the
/// server started again at once (within the same second, most tries): 20
/// tries each of `kill -9` and SIGTERM, without a snapshot. Never 200.
#[test]
fn a_restart_within_the_captured_requests_second_never_replays_it() {
    let mut outcomes = Vec::new();
    for graceful in [false, true] {
        for attempt in 0..20 {
            let mut first = Server::start(server(None));
            let header = signer().sign("POST", "/things", b"{}");
            assert_eq!(post(&first.url, &header), (200, String::new()));
            let signed = now();
            if graceful {
                assert!(terminate(&mut first).success());
            } else {
                first.kill();
            }
            let restarted = now();
            let again = Server::start(server(None));
            let replay = post(&again.url, &header);
            assert_ne!(
                replay.0, 200,
                "try {attempt} (graceful: {graceful}): replayed"
            );
            assert_eq!(replay, (401, "issued_before_restart".into()));
            outcomes.push(restarted == signed);
            // An honest client signing now is served.
            assert_eq!(
                post(&again.url, &signer().sign("POST", "/things", b"{}")),
                (200, String::new())
            );
        }
    }
    println!(
        "{} of {} restarts began in the captured request's own second; none replayed it",
        outcomes.iter().filter(|same| **same).count(),
        outcomes.len()
    );
}

#[test]
fn a_first_start_with_a_snapshot_path_serves_a_client_290_s_behind() {
    let dir = scratch("first");
    let server = Server::start(server(Some(&dir.join("replay.snapshot"))));
    assert_eq!(post(&server.url, &signed_ago(290)), (200, String::new()));
}

#[test]
fn a_graceful_restart_with_the_snapshot_refuses_the_replay_and_serves_the_rest() {
    let dir = scratch("graceful");
    let path = dir.join("replay.snapshot");
    let mut first = Server::start(server(Some(&path)));
    let accepted = signer().sign("POST", "/things", b"{}");
    assert_eq!(post(&first.url, &accepted), (200, String::new()));
    let never_sent = signed_ago(200);
    assert!(terminate(&mut first).success(), "{}", first.stderr_text());

    let again = Server::start(server(Some(&path)));
    assert!(
        again
            .banner
            .iter()
            .any(|line| line.contains("restored (a clean stop)")),
        "{:?}",
        again.banner
    );
    assert_eq!(
        post(&again.url, &accepted),
        (401, "replayed_request".into())
    );
    assert_eq!(post(&again.url, &never_sent), (200, String::new()));
}

#[test]
fn a_kill_9_with_the_snapshot_fences_the_replay_and_serves_fresh_requests() {
    let dir = scratch("kill");
    let path = dir.join("replay.snapshot");
    let first = Server::start(server(Some(&path)));
    let accepted = signer().sign("POST", "/things", b"{}");
    assert_eq!(post(&first.url, &accepted), (200, String::new()));
    first.kill();

    let mut again = Server::start(server(Some(&path)));
    assert_eq!(
        post(&again.url, &accepted),
        (401, "issued_before_restart".into())
    );
    assert_eq!(
        post(&again.url, &signer().sign("POST", "/things", b"{}")),
        (200, String::new())
    );
    assert!(terminate(&mut again).success());
    let log = again.stderr_text();
    assert!(log.contains("did not stop cleanly"), "{log}");
}

/// A client whose clock runs 30 s ahead, served just before a `kill -9`,
/// its request replayed at once to the server started again: its
/// timestamp is after the new start, but the running marker's ceiling
/// covers it. The server waits the ceiling out before it listens, so a
/// client in step is served at once.
#[test]
fn a_kill_9_with_the_snapshot_fences_a_client_ahead_too() {
    let dir = scratch("ahead");
    let path = dir.join("replay.snapshot");
    let first = Server::start(server(Some(&path)));
    let nonce = armor_psk::protocol::new_uuid_v4();
    let ahead = signer()
        .sign_at("POST", "/things", b"{}", &nonce, now() + 30)
        .unwrap();
    assert_eq!(post(&first.url, &ahead), (200, String::new()));
    first.kill();

    let again = Server::start(server(Some(&path)));
    assert_eq!(
        post(&again.url, &ahead),
        (401, "issued_before_restart".into())
    );
    // Past the ceiling (the request's timestamp and 2 s): served.
    let later = signer()
        .sign_at(
            "POST",
            "/things",
            b"{}",
            &armor_psk::protocol::new_uuid_v4(),
            now() + 33,
        )
        .unwrap();
    assert_eq!(post(&again.url, &later), (200, String::new()));
    assert_eq!(
        post(&again.url, &signer().sign("POST", "/things", b"{}")),
        (401, "issued_before_restart".into()),
        "a client in step signs before the ceiling, 30 s ahead"
    );
}

/// A snapshot cut short, one bit flipped, and a file of another kind:
/// each is named in the log and fences the start; none is trusted.
#[test]
fn a_truncated_flipped_or_foreign_snapshot_is_fenced_with_a_log_line() {
    let dir = scratch("damaged");
    let path = dir.join("replay.snapshot");
    let mut first = Server::start(server(Some(&path)));
    let accepted = signer().sign("POST", "/things", b"{}");
    assert_eq!(post(&first.url, &accepted), (200, String::new()));
    assert!(terminate(&mut first).success());
    let good = std::fs::read(&path).unwrap();

    // A bit of the entries (the checksum's 32 bytes end the file).
    let mut flipped = good.clone();
    let at = good.len() - 40;
    flipped[at] ^= 0x10;
    let damaged: [(&str, Vec<u8>, &str); 3] = [
        ("truncated", good[..good.len() - 7].to_vec(), "truncated"),
        ("flipped", flipped, "corrupt"),
        (
            "foreign",
            b"{\"not\": \"a snapshot\"}".to_vec(),
            "not an armor-psk replay snapshot",
        ),
    ];
    for (what, bytes, reason) in damaged {
        std::fs::write(&path, &bytes).unwrap();
        let mut again = Server::start(server(Some(&path)));
        // Fenced: the request accepted before is refused as signed before
        // this start (a trusted snapshot would say replayed_request).
        assert_eq!(
            post(&again.url, &accepted),
            (401, "issued_before_restart".into()),
            "{what}"
        );
        assert!(terminate(&mut again).success(), "{what}");
        let log = again.stderr_text();
        assert!(
            log.contains("not trusted") && log.contains(reason),
            "{what}: {log}"
        );
    }
}

/// SIGTERM while a request's body is still arriving: the server stops
/// accepting, the request finishes with 200, then the server exits 0.
#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let mut server = Server::start(server(None));
    let addr = server.url.trim_start_matches("http://").to_owned();
    let body = br#"{"name":"in flight"}"#;
    let header = signer().sign("POST", "/things", body);
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /things HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {header}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // No longer accepting.
    assert!(
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500)).is_err(),
        "still accepting after SIGTERM"
    );
    stream.write_all(&body[5..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert_eq!(status.code(), Some(0));
}

/// 2,000 connections each holding an unfinished request head: all closed
/// by the server within the header timeout (1 s here), and the server's
/// memory stays within 2,000 × the 32 KiB head limit.
#[test]
fn unfinished_headers_are_closed_within_the_header_timeout() {
    let mut command = server(None);
    command.env("ARMOR_PSK_HEADER_TIMEOUT", "1");
    let server = Server::start(command);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let before = server.resident_bytes();
    let started = Instant::now();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1_000));
    let mut streams: Vec<TcpStream> = (0..2_000)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .write_all(b"POST /things HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            for _ in 0..16 {
                let _ = stream.write_all(filler.as_bytes());
            }
            stream
        })
        .collect();
    let opened = started.elapsed();
    let peak = server.resident_bytes();
    let mut closed = 0;
    for stream in &mut streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // Closed: the end of the stream (or a reset), whatever it said
        // before; a read that times out is a connection still open.
        let mut buffer = [0u8; 256];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break closed += 1,
                Ok(_) => continue,
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(_) => break closed += 1,
            }
        }
    }
    let all_closed = started.elapsed();
    println!(
        "2,000 unfinished heads: opened in {opened:?}, all closed {all_closed:?} after the first; \
         resident {} MiB before, {} MiB at the peak",
        before >> 20,
        peak >> 20
    );
    assert_eq!(closed, 2_000);
    assert!(
        all_closed < opened + Duration::from_secs(4),
        "closed after {all_closed:?}"
    );
    assert!(
        peak.saturating_sub(before) < 2_000 * (32 << 10) + (32 << 20),
        "{} MiB more",
        (peak - before) >> 20
    );
}
