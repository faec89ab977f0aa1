//! The PostgreSQL key store against a real PostgreSQL, never a mock: two
//! instances on one database, keys added, rotated and revoked through the
//! CLI, random unknown key ids, the database cut off, a wrong KEK.
//!
//! The database comes from `ARMOR_PSK_DATABASE_URL` (`.ci/run` creates one
//! of its own); without it these tests say loudly that they SKIPPED,
//! unless `ARMOR_PSK_REQUIRE_POSTGRES=1` (as in CI), where they fail.
#![cfg(all(feature = "postgres", feature = "cli"))]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use armor_psk::{
    ArmorPskLayer, CachedKeyStore, Kek, ManualClock, PostgresKeyStore, PostgresStoreError, Sealing,
    Signer,
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
            .sign_at("GET", "/me", b"", &armor_psk::new_uuid_v4(), clock.now())
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
    let Some(url) = database_url("two_instances_follow_keys") else {
        return;
    };
    assert!(cli(&url, &["migrate"]).contains("migrated"));
    let added = cli(&url, &["add", "--label", "test"]);
    let key_id = field(&added, "Key ID:").to_owned();
    let old = Signer::new(key_id.clone(), field(&added, "Secret Key:")).unwrap();

    let clock = ManualClock::new(now());
    let layer = |keys| ArmorPskLayer::new(keys).with_clock(clock.clone());
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
    let Some(url) = database_url("random_unknown_key_ids") else {
        return;
    };
    let kek = Kek::from_base64(KEK).unwrap();
    let store = PostgresKeyStore::connect(&url, Sealing::Kek(kek))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let cache = store
        .clone()
        .cached_with(|cache| cache.with_lookups_per_second(100));
    let router = app(ArmorPskLayer::new(cache));
    let started = Instant::now();
    let tasks: Vec<_> = (0..10_000)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                let signer = Signer::new(armor_psk::new_uuid_v4(), "made-up").unwrap();
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
    let seconds = started.elapsed().as_secs() + 1;
    let queries = store.queries();
    println!("10,000 random key ids: {queries} database lookups in {seconds} s");
    assert!(queries <= 100 * seconds, "{queries} lookups in {seconds} s");
}

/// A TCP relay to the database that can be cut: the database "goes down"
/// for the store behind it, for real, while it stays up for the others.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
}

async fn relay(target: &str) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicBool::new(false));
    let (target, flag) = (target.to_owned(), cut.clone());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (target, flag) = (target.clone(), flag.clone());
            tokio::spawn(async move {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                let watch = async {
                    while !flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::select! { _ = copy => {}, () = watch => {} }
            });
        }
    });
    Relay { port, cut }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_cached_keys_serve_and_others_get_503() {
    let Some(url) = database_url("with_the_database_down") else {
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
    let cache = store.cached_with(|cache| cache.with_ttl(Duration::from_millis(200)));
    let clock = ManualClock::new(now());
    let router = app(ArmorPskLayer::new(cache).with_clock(clock.clone()));
    let signer =
        |key: &armor_psk::NewKey| Signer::new(key.key_id.clone(), key.secret.as_str()).unwrap();
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
    let Some(url) = database_url("a_wrong_kek_is_a_clear_error") else {
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
    let Some(url) = database_url("cli_errors_are_exit_2") else {
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
