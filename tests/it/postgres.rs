//! The PostgreSQL key store against a real PostgreSQL, never a mock: two
//! instances on one database, keys added, rotated and revoked through the
//! CLI, random unknown key ids, the database cut off, a wrong KEK.
//!
//! The database comes from `ARMOR_PSK_DATABASE_URL` (`.ci/run` creates one
//! of its own); without it these tests say loudly that they SKIPPED,
//! unless `ARMOR_PSK_REQUIRE_POSTGRES=1` (as in CI), where they fail.
#![cfg(all(feature = "postgres", feature = "cli"))]

use crate::common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use armor_psk::{
    ArmorPskLayer, ManualClock, Signer,
    keys::CachedKeyStore,
    keys::postgres::{Kek, PostgresKeyStore, PostgresStoreError, Sealing},
};
use common::{app, request_with_header, send};
use http::StatusCode;

/// The KEK every test uses (the database records one check value).
const KEK: &str = "u8tYjzE0oEqPlZ5J2zQ4m7o1Yq3B2W8xM6fR9cV0aKs=";

fn database_url(test: &str) -> Option<String> {
    common::service_env(
        "ARMOR_PSK_DATABASE_URL",
        "ARMOR_PSK_REQUIRE_POSTGRES",
        test,
        "Set it to postgres://user@127.0.0.1:5432/db",
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `armor-psk keys ARGS`; returns stdout, failing on a non-zero exit.
fn cli(url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_armor-psk"))
        .arg("keys")
        .args(args)
        .env("ARMOR_PSK_DATABASE_URL", url)
        .env("ARMOR_PSK_KEK", KEK)
        .output()
        .expect("run armor-psk");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "keys {args:?}: {stdout} {stderr}");
    stdout
}

fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {output}"))
}

async fn instance(url: &str) -> CachedKeyStore<PostgresKeyStore> {
    let kek = Kek::from_base64(KEK).unwrap();
    PostgresKeyStore::connect(url, Sealing::Kek(kek))
        .await
        .expect("connect")
        .cached()
}

/// Sends requests signed by `signer` at the clock's time until `want`
/// comes back or `limit` passes; returns how long it took.
async fn until_status(
    router: &axum::Router,
    signer: &Signer,
    clock: &ManualClock,
    want: StatusCode,
    limit: Duration,
) -> Duration {
    use armor_psk::Clock as _;
    let started = Instant::now();
    loop {
        let header = signer
            .sign_at(
                "GET",
                "/me",
                b"",
                &armor_psk::protocol::new_uuid_v4(),
                clock.now(),
            )
            .unwrap();
        let answer = send(router, request_with_header("GET", "/me", &header, b"")).await;
        if answer.status == want {
            return started.elapsed();
        }
        assert!(
            Instant::now() < started + limit,
            "still {} ({})",
            answer.status,
            answer.json
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_follow_keys_added_rotated_and_revoked_through_the_cli() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    assert!(cli(&url, &["migrate"]).contains("migrated"));
    let added = cli(&url, &["add", "--label", "test"]);
    let key_id = field(&added, "Key ID:").to_owned();
    let old = Signer::new(key_id.clone(), field(&added, "Secret Key:")).unwrap();

    let clock = ManualClock::new(now());
    let layer = |keys| {
        ArmorPskLayer::new(keys)
            .with_clock(clock.clone())
            .with_replay_store(common::memory_store())
    };
    let (a, b) = (
        app(layer(instance(&url).await)),
        app(layer(instance(&url).await)),
    );
    for router in [&a, &b] {
        until_status(router, &old, &clock, StatusCode::OK, Duration::from_secs(5)).await;
    }

    let rotated = cli(&url, &["rotate", &key_id, "--overlap", "1h"]);
    assert_eq!(field(&rotated, "Version:"), "2");
    let new = Signer::new(key_id.clone(), field(&rotated, "Secret Key:")).unwrap();
    for router in [&a, &b] {
        until_status(router, &new, &clock, StatusCode::OK, Duration::from_secs(5)).await;
        until_status(router, &old, &clock, StatusCode::OK, Duration::from_secs(5)).await;
    }
    // Past the overlap, by the servers' clock: only the new secret.
    clock.advance(3_601);
    for router in [&a, &b] {
        until_status(
            router,
            &old,
            &clock,
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(5),
        )
        .await;
        until_status(router, &new, &clock, StatusCode::OK, Duration::from_secs(5)).await;
    }
    let listed = cli(&url, &["list"]);
    assert!(
        listed.contains(&key_id) && listed.contains("secret v2"),
        "{listed}"
    );
    assert!(
        !listed.contains(field(&rotated, "Secret Key:")),
        "list shows a secret"
    );

    cli(&url, &["revoke", &key_id]);
    for (name, router) in [("a", &a), ("b", &b)] {
        let took = until_status(
            router,
            &new,
            &clock,
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(5),
        )
        .await;
        println!("instance {name} refused the revoked key after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_unknown_key_ids_reach_the_database_a_bounded_number_of_times() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let kek = Kek::from_base64(KEK).unwrap();
    let store = PostgresKeyStore::connect(&url, Sealing::Kek(kek))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let cache = store
        .clone()
        .cached_with(|cache| cache.lookups_per_second(100));
    let router = app(ArmorPskLayer::new(cache));
    // The budget is per second of the cache's clock (here the system's):
    // count the seconds the run touches.
    let first_second = now();
    let tasks: Vec<_> = (0..10_000)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                let signer = Signer::new(armor_psk::protocol::new_uuid_v4(), "made-up").unwrap();
                let header = signer.sign("GET", "/me", b"");
                send(&router, request_with_header("GET", "/me", &header, b""))
                    .await
                    .status
            })
        })
        .collect();
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    let seconds = now() - first_second + 1;
    let queries = store.queries();
    println!("10,000 random key ids: {queries} database lookups in {seconds} s of the clock");
    assert!(queries <= 100 * seconds, "{queries} lookups in {seconds} s");
}

/// A TCP relay to the database that can be cut (connections closed), made
/// silent (connections kept open, nothing forwarded: a partition), or slow
/// (the database's answers held for a while): the database misbehaves for
/// the store behind it, for real, while it stays up for the others.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    /// The delay of the database's answers on slow connections.
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Connections accepted while set are slow (the others are not).
    slow_new: Arc<AtomicBool>,
}

async fn relay(target: &str) -> Relay {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicBool::new(false));
    let silent = Arc::new(AtomicBool::new(false));
    let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slow_new = Arc::new(AtomicBool::new(false));
    let target = target.to_owned();
    let (flag, quiet, delay, slow) = (
        cut.clone(),
        silent.clone(),
        delay_ms.clone(),
        slow_new.clone(),
    );
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (target, flag, quiet) = (target.clone(), flag.clone(), quiet.clone());
            let delay = slow.load(Ordering::SeqCst).then(|| delay.clone());
            tokio::spawn(async move {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let pump =
                    |flag: Arc<AtomicBool>,
                     quiet: Arc<AtomicBool>,
                     delay: Option<Arc<std::sync::atomic::AtomicU64>>| {
                        move |mut from: tokio::net::tcp::OwnedReadHalf,
                              mut to: tokio::net::tcp::OwnedWriteHalf| async move {
                            let mut buffer = vec![0u8; 64 << 10];
                            loop {
                                let Ok(n) = from.read(&mut buffer).await else {
                                    return;
                                };
                                if n == 0 || flag.load(Ordering::SeqCst) {
                                    return;
                                }
                                if let Some(delay) = &delay {
                                    let ms = delay.load(Ordering::SeqCst);
                                    if ms > 0 {
                                        tokio::time::sleep(Duration::from_millis(ms)).await;
                                    }
                                }
                                // Silent: hold everything, keep the socket open.
                                while quiet.load(Ordering::SeqCst) && !flag.load(Ordering::SeqCst) {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                                if flag.load(Ordering::SeqCst)
                                    || to.write_all(&buffer[..n]).await.is_err()
                                {
                                    return;
                                }
                            }
                        }
                    };
                let up = pump(flag.clone(), quiet.clone(), None)(client_read, server_write);
                let down = pump(flag.clone(), quiet.clone(), delay)(server_read, client_write);
                let watch = async {
                    while !flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::select! { () = async { tokio::join!(up, down); } => {}, () = watch => {} }
            });
        }
    });
    Relay {
        port,
        cut,
        silent,
        delay_ms,
        slow_new,
    }
}

fn database_address(url: &str) -> String {
    url.split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// The URL of the same database through `relay`.
fn through(url: &str, relay: &Relay) -> String {
    url.replace(&database_address(url), &format!("127.0.0.1:{}", relay.port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_cached_keys_serve_and_others_get_503() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let kek = || Sealing::Kek(Kek::from_base64(KEK).unwrap());
    let direct = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    direct.migrate().await.unwrap();
    let cached_key = direct.add_key("cached", None).await.unwrap();
    let cold_key = direct.add_key("cold", None).await.unwrap();

    // The same database, reached through a relay that can be cut.
    let address = url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let relay = relay(&address).await;
    let relayed = url.replace(&address, &format!("127.0.0.1:{}", relay.port));
    let store = PostgresKeyStore::connect(&relayed, kek()).await.unwrap();
    let cache = store.cached_with(|cache| cache.ttl(Duration::from_millis(200)));
    let clock = ManualClock::new(now());
    let router = app(ArmorPskLayer::new(cache)
        .with_clock(clock.clone())
        .with_replay_store(common::memory_store()));
    let signer = |key: &armor_psk::keys::postgres::NewKey| {
        Signer::new(key.key_id.clone(), key.secret.as_str()).unwrap()
    };
    until_status(
        &router,
        &signer(&cached_key),
        &clock,
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;

    relay.cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await; // past the TTL
    until_status(
        &router,
        &signer(&cached_key),
        &clock,
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;
    until_status(
        &router,
        &signer(&cold_key),
        &clock,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn a_wrong_kek_is_a_clear_error() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let right = PostgresKeyStore::connect(&url, Sealing::Kek(Kek::from_base64(KEK).unwrap()))
        .await
        .unwrap();
    right.migrate().await.unwrap();
    let (wrong, _) = Kek::generate().unwrap();
    let error = PostgresKeyStore::connect(&url, Sealing::Kek(wrong))
        .await
        .unwrap_err();
    assert!(matches!(error, PostgresStoreError::WrongKek), "{error}");
    assert!(!error.to_string().contains(&url), "{error}");

    let output = Command::new(env!("CARGO_BIN_EXE_armor-psk"))
        .args(["keys", "list"])
        .env("ARMOR_PSK_DATABASE_URL", &url)
        .env("ARMOR_PSK_KEK", "c2hvcnQ=")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("key-encryption key"), "{stderr}");
}

/// The CLI's errors: on stderr, exit code 2, never a password or a secret.
#[test]
fn cli_errors_are_exit_2_and_show_no_password() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let run = |url: &str, kek: Option<&str>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_armor-psk"));
        command
            .arg("keys")
            .args(args)
            .env("ARMOR_PSK_DATABASE_URL", url);
        match kek {
            Some(kek) => command.env("ARMOR_PSK_KEK", kek),
            None => command.env_remove("ARMOR_PSK_KEK"),
        };
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    };
    assert_eq!(run(&url, Some(KEK), &["migrate"]).0, Some(0));
    let unreachable = "postgres://postgres:hunter2-password@127.0.0.1:1/nothing";
    for (name, (code, stderr), expected) in [
        (
            "no database",
            run(unreachable, Some(KEK), &["list"]),
            "cannot connect",
        ),
        (
            "bad URL",
            run("not a url", Some(KEK), &["list"]),
            "not a PostgreSQL URL",
        ),
        ("no KEK", run(&url, None, &["list"]), "key-encryption key"),
        (
            "unknown key id",
            run(&url, Some(KEK), &["rotate", "no-such-key"]),
            "no key",
        ),
        (
            "unknown key id",
            run(&url, Some(KEK), &["revoke", "no-such-key"]),
            "no active key",
        ),
    ] {
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "{name} shows the password: {stderr}"
        );
        assert!(!stderr.contains(KEK), "{name} shows the KEK: {stderr}");
    }
}

fn kek() -> Sealing {
    Sealing::Kek(Kek::from_base64(KEK).unwrap())
}

/// Sends one request signed now by `key`; its status.
async fn status_of(
    router: &axum::Router,
    key: &armor_psk::keys::postgres::NewKey,
    clock: &ManualClock,
) -> StatusCode {
    clock.set(now());
    let signer = Signer::new(key.key_id.clone(), key.secret.as_str()).unwrap();
    let header = signer.sign_with_clock("GET", "/me", b"", clock);
    send(router, request_with_header("GET", "/me", &header, b""))
        .await
        .status
}

/// Two instances reach the database through a relay that holds their
/// lookups' answers for 1 s (the change feed's connection is not slowed):
/// a lookup of a key is in flight on each when the key is revoked through
/// the CLI. No request sent after the revoke returned is accepted by
/// either, and both refuse the key (their slow lookups' answers, from
/// before the revoke, are never used).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_racing_slow_lookups_is_honoured_by_both_instances() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let direct = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    direct.migrate().await.unwrap();
    let key = direct.add_key("racing", None).await.unwrap();
    let relay = relay(&database_address(&url)).await;
    relay.delay_ms.store(1_000, Ordering::SeqCst);
    let options = armor_psk::keys::postgres::PostgresOptions::default()
        .query_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .pool_size(1);
    let mut instances = Vec::new();
    for _ in 0..2 {
        // The pool's one connection is slow; the feed's, made after, is not.
        relay.slow_new.store(true, Ordering::SeqCst);
        let store = PostgresKeyStore::connect_with(&through(&url, &relay), kek(), options.clone())
            .await
            .unwrap();
        relay.slow_new.store(false, Ordering::SeqCst);
        let clock = ManualClock::new(now());
        instances.push((
            app(ArmorPskLayer::new(store.cached())
                .with_clock(clock.clone())
                .with_replay_store(common::memory_store())),
            clock,
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // the feeds listen
    let in_flight: Vec<_> = instances
        .iter()
        .map(|(router, clock)| {
            let (router, clock, key) = (router.clone(), clock.clone(), key.clone());
            tokio::spawn(async move { status_of(&router, &key, &clock).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoked = tokio::task::spawn_blocking({
        let url = url.clone();
        let key_id = key.key_id.clone();
        move || cli(&url, &["revoke", &key_id])
    })
    .await
    .unwrap();
    assert!(revoked.contains("revoked"), "{revoked}");
    let revoked_at = Instant::now();
    for (name, (router, clock)) in ["A", "B"].iter().zip(&instances) {
        for _ in 0..2 {
            let sent = revoked_at.elapsed();
            let status = status_of(router, &key, clock).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "instance {name} accepted the revoked key, sent {sent:?} after the revoke"
            );
        }
        println!(
            "instance {name}: every request after the revoke refused (the last answered {:?} after it)",
            revoked_at.elapsed()
        );
    }
    for lookup in in_flight {
        // Started before the revoke: either answer is fair for these two.
        let _ = lookup.await.unwrap();
    }
}

/// The relay goes silent (sockets open, nothing forwarded): a cached key
/// keeps serving from its grace copy, answered within the query timeout
/// instead of hanging; a key revoked on the database side meanwhile is
/// refused within the heartbeat bound once the database answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_fails_lookups_fast_and_the_feed_catches_up() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let direct = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    direct.migrate().await.unwrap();
    let key = direct.add_key("silent", None).await.unwrap();
    let relay = relay(&database_address(&url)).await;
    let store = PostgresKeyStore::connect(&through(&url, &relay), kek())
        .await
        .unwrap();
    let cache = store.cached_with(|cache| cache.ttl(Duration::from_millis(300)));
    let clock = ManualClock::new(now());
    let router = app(ArmorPskLayer::new(cache)
        .with_clock(clock.clone())
        .with_replay_store(common::memory_store()));
    assert_eq!(status_of(&router, &key, &clock).await, StatusCode::OK);

    relay.silent.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await; // past the TTL
    let asked = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), status_of(&router, &key, &clock))
        .await
        .expect("a silent database must not hang a request");
    assert_eq!(status, StatusCode::OK, "the grace copy serves");
    println!("answered from the grace copy in {:?}", asked.elapsed());
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );

    // Revoked on the database side while this instance cannot hear it.
    assert!(direct.revoke(&key.key_id).await.unwrap());
    relay.silent.store(false, Ordering::SeqCst);
    let back = Instant::now();
    loop {
        if status_of(&router, &key, &clock).await == StatusCode::UNAUTHORIZED {
            break;
        }
        // Heartbeat (1 s) × 3 beats to give up the silent feed, + 1 s.
        assert!(
            back.elapsed() < Duration::from_secs(8),
            "still accepted after {:?}",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "refused {:?} after the database answered again",
        back.elapsed()
    );
}

/// Random key ids sprayed at full speed by a client with no key while 30
/// genuine keys, never used before, make requests: no genuine request gets
/// 503, and the spray reaches the database (almost) never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_of_random_key_ids_never_starves_genuine_keys() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let direct = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    direct.migrate().await.unwrap();
    let store = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    let counter = store.clone();
    let router = app(ArmorPskLayer::new(store.cached()).with_replay_store(common::memory_store()));
    tokio::time::sleep(Duration::from_millis(300)).await; // the feed has the ids
    let mut genuine = Vec::new();
    for i in 0..30 {
        genuine.push(direct.add_key(&format!("genuine-{i}"), None).await.unwrap());
    }
    // The change feed brings their ids within moments.
    let known = Instant::now();
    while !genuine.iter().all(|key| counter.might_hold(&key.key_id)) {
        assert!(
            known.elapsed() < Duration::from_secs(5),
            "the feed never brought the new ids"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sprayed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sprayers: Vec<_> = (0..4)
        .map(|_| {
            let (router, stop, sprayed) = (router.clone(), stop.clone(), sprayed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let signer =
                        Signer::new(armor_psk::protocol::new_uuid_v4(), "made-up").unwrap();
                    let header = signer.sign("GET", "/me", b"");
                    let status = send(&router, request_with_header("GET", "/me", &header, b""))
                        .await
                        .status;
                    assert_eq!(status, StatusCode::UNAUTHORIZED);
                    sprayed.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let before = counter.queries();
    let mut genuine_requests = 0;
    while started.elapsed() < Duration::from_secs(5) {
        for key in &genuine {
            let signer = Signer::new(key.key_id.clone(), key.secret.as_str()).unwrap();
            let header = signer.sign("GET", "/me", b"");
            let answer = send(&router, request_with_header("GET", "/me", &header, b"")).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "genuine key {}: {}",
                key.key_id,
                answer.json
            );
            genuine_requests += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for sprayer in sprayers {
        sprayer.await.unwrap();
    }
    let sprayed = sprayed.load(Ordering::Relaxed);
    let queries = counter.queries() - before;
    println!(
        "{sprayed} random key ids in {:?}, {genuine_requests} genuine requests all 200, {queries} database lookups",
        started.elapsed()
    );
    assert!(sprayed > 1_000, "{sprayed}");
    // The 30 genuine keys' first lookups, and nothing for the spray.
    assert!(queries <= 30 + 5, "{queries} lookups");
}

/// A database writer without the KEK changes rows: each change makes the
/// key fail, none makes a bad key work or a revoked one work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_without_the_kek_never_verify() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let direct = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    direct.migrate().await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let fresh = || async {
        // A store of its own each time: no cache between the change and it.
        PostgresKeyStore::connect(&url, kek()).await.unwrap()
    };
    use armor_psk::keys::KeyStore as _;

    // A plaintext secret of the attacker's choosing, added to a real key.
    let key = direct.add_key("plaintext", None).await.unwrap();
    client
        .execute(
            "INSERT INTO armor_psk_secrets (key_id, version, sealed, encrypted) VALUES ($1, 9, $2, false)",
            &[&key.key_id, &b"attacker-secret".to_vec()],
        )
        .await
        .unwrap();
    assert!(
        fresh().await.get(&key.key_id).await.unwrap().is_none(),
        "plaintext row under a KEK"
    );

    // A revocation undone.
    let key = direct.add_key("unrevoked", None).await.unwrap();
    assert!(direct.revoke(&key.key_id).await.unwrap());
    client
        .execute(
            "UPDATE armor_psk_keys SET revoked_at = NULL WHERE key_id = $1",
            &[&key.key_id],
        )
        .await
        .unwrap();
    assert!(
        fresh().await.get(&key.key_id).await.unwrap().is_none(),
        "revocation undone"
    );

    // A secret's validity changed.
    let key = direct.add_key("extended", None).await.unwrap();
    direct
        .rotate(&key.key_id, Duration::from_secs(60), now())
        .await
        .unwrap();
    client
        .execute(
            "UPDATE armor_psk_secrets SET not_after = NULL WHERE key_id = $1 AND version = 1",
            &[&key.key_id],
        )
        .await
        .unwrap();
    assert!(
        fresh().await.get(&key.key_id).await.unwrap().is_none(),
        "validity changed"
    );

    // A secret moved to another key id, and an owner changed.
    let victim = direct.add_key("victim", None).await.unwrap();
    let attacker = direct.add_key("attacker", Some(1)).await.unwrap();
    client
        .execute(
            "UPDATE armor_psk_secrets SET sealed = (SELECT sealed FROM armor_psk_secrets WHERE key_id = $1 AND version = 1) \
             WHERE key_id = $2 AND version = 1",
            &[&victim.key_id, &attacker.key_id],
        )
        .await
        .unwrap();
    assert!(
        fresh().await.get(&attacker.key_id).await.unwrap().is_none(),
        "secret moved"
    );
    client
        .execute(
            "UPDATE armor_psk_keys SET user_id = 2 WHERE key_id = $1",
            &[&victim.key_id],
        )
        .await
        .unwrap();
    assert!(
        fresh().await.get(&victim.key_id).await.unwrap().is_none(),
        "owner changed"
    );

    // A rotation rolled back: the old secret row put back as it was.
    let key = direct.add_key("rolled-back", None).await.unwrap();
    let saved: Vec<u8> = client
        .query_one(
            "SELECT sealed FROM armor_psk_secrets WHERE key_id = $1 AND version = 1",
            &[&key.key_id],
        )
        .await
        .unwrap()
        .get(0);
    direct
        .rotate(&key.key_id, Duration::from_secs(1), now())
        .await
        .unwrap();
    assert!(
        fresh().await.get(&key.key_id).await.unwrap().is_some(),
        "rotated key works"
    );
    client
        .execute(
            "UPDATE armor_psk_secrets SET sealed = $2, not_after = NULL WHERE key_id = $1 AND version = 1",
            &[&key.key_id, &saved],
        )
        .await
        .unwrap();
    assert!(
        fresh().await.get(&key.key_id).await.unwrap().is_none(),
        "rotation rolled back"
    );

    // A migration never blesses a row changed since the first one.
    let key = direct.add_key("blessed", None).await.unwrap();
    client
        .execute(
            "UPDATE armor_psk_keys SET user_id = 666, row_mac = NULL WHERE key_id = $1",
            &[&key.key_id],
        )
        .await
        .unwrap();
    assert!(
        fresh().await.get(&key.key_id).await.unwrap().is_none(),
        "owner changed, MAC dropped"
    );
    direct.migrate().await.unwrap();
    assert!(
        fresh().await.get(&key.key_id).await.unwrap().is_none(),
        "blessed by a migration"
    );

    // An untouched key still works.
    let untouched = direct.add_key("untouched", None).await.unwrap();
    assert!(
        fresh()
            .await
            .get(&untouched.key_id)
            .await
            .unwrap()
            .is_some()
    );
}

/// PostgreSQL with TLS under a certificate from a CA of the test's own
/// (`.ci/run` starts one): `sslmode=verify-full` with the CA named is
/// served, over TLS; without it the certificate does not verify and the
/// store refuses to connect; an unreadable `sslrootcert` is an error;
/// `require` without a root encrypts without checking, as libpq does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgresql_is_verified() {
    let Some(url) = common::service_env(
        "ARMOR_PSK_TLS_DATABASE_URL",
        "ARMOR_PSK_REQUIRE_POSTGRES",
        common::test_name!(),
        "Set it to a PostgreSQL with TLS, and ARMOR_PSK_TLS_CA to its certificate",
    ) else {
        return;
    };
    let ca = std::env::var("ARMOR_PSK_TLS_CA")
        .expect("ARMOR_PSK_TLS_CA beside ARMOR_PSK_TLS_DATABASE_URL");
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let store = PostgresKeyStore::connect(&verified, kek())
        .await
        .expect("TLS with the CA");
    store.migrate().await.unwrap();
    let key = store.add_key("over tls", None).await.unwrap();
    use armor_psk::keys::KeyStore as _;
    assert!(store.get(&key.key_id).await.unwrap().is_some());
    // The connection is TLS: the server says so.
    let (client, connection) =
        tokio_postgres::connect(&format!("{url}?sslmode=disable"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let tls_sessions: i64 = client
        .query_one("SELECT count(*) FROM pg_stat_ssl WHERE ssl", &[])
        .await
        .unwrap()
        .get(0);
    assert!(tls_sessions >= 1, "{tls_sessions} TLS sessions");

    let error = PostgresKeyStore::connect(&format!("{url}?sslmode=verify-full"), kek())
        .await
        .expect_err("a self-signed certificate without its CA");
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(
        PostgresKeyStore::connect(
            &format!("{url}?sslmode=require&sslrootcert=/nonexistent"),
            kek()
        )
        .await
        .is_err()
    );
}

/// Any role that can connect may NOTIFY the channel: payloads that cannot
/// be key ids are ignored, and a notified id that does not exist is still
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_from_anyone_change_nothing_that_matters() {
    let Some(url) = database_url(common::test_name!()) else {
        return;
    };
    let direct = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    direct.migrate().await.unwrap();
    let store = PostgresKeyStore::connect(&url, kek()).await.unwrap();
    let watcher = store.clone();
    let cache = store.cached();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    tokio::time::sleep(Duration::from_millis(500)).await; // the feed listens
    let long = "x".repeat(300);
    for payload in ["not:a:key:id", long.as_str(), "made-up-key"] {
        client
            .execute("SELECT pg_notify('armor_psk_keys', $1)", &[&payload])
            .await
            .unwrap();
    }
    let noted = Instant::now();
    while !watcher.might_hold("made-up-key") {
        assert!(
            noted.elapsed() < Duration::from_secs(5),
            "the feed never noted the id"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!watcher.might_hold("not:a:key:id"));
    assert!(!watcher.might_hold(&long));
    use armor_psk::keys::KeyStore as _;
    assert!(cache.get("made-up-key").await.unwrap().is_none());
}
