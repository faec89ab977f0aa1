//! A `redis-server` of the test's own, on a free loopback port, with the
//! settings the test asks for, that can be stopped and started again
//! (without persistence: a restart loses every key).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OwnRedis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one with `args` added to its command line (`--maxmemory`,
    /// `--maxmemory-policy`, ...). `None` if it cannot start; the caller
    /// decides whether that fails or skips the test.
    pub fn start_with(args: &[&str]) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut redis = Self {
            port,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            child: None,
        };
        redis.resume().then_some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server and waits until it answers.
    pub fn resume(&mut self) -> bool {
        let binary =
            std::env::var("ARMOR_PSK_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let Ok(child) = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the server (SIGKILL): what it held is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis of the test's own, or `None` after saying loudly that the test
/// is skipped (a failure when `ARMOR_PSK_REQUIRE_REDIS=1`, as in CI).
pub fn own_redis(test: &str, args: &[&str]) -> Option<OwnRedis> {
    let redis = OwnRedis::start_with(args);
    if redis.is_none() {
        if std::env::var("ARMOR_PSK_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("{test}: cannot start redis-server (set ARMOR_PSK_REDIS_SERVER to its path)");
        }
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED {test}: cannot start redis-server ***\n"
        );
    }
    redis
}

/// The shared test Redis's URL, or `None` after saying loudly that `test`
/// is skipped (a failure with `ARMOR_PSK_REQUIRE_REDIS=1`, as in CI).
pub fn url(test: &str) -> Option<String> {
    super::service_env(
        "ARMOR_PSK_REDIS_URL",
        "ARMOR_PSK_REQUIRE_REDIS",
        test,
        "Set it to redis://127.0.0.1:PORT/",
    )
}

/// The test cluster's node URLs, or `None` after saying loudly that `test`
/// is skipped.
pub fn cluster_urls(test: &str) -> Option<Vec<String>> {
    let urls = super::service_env(
        "ARMOR_PSK_REDIS_CLUSTER_URLS",
        "ARMOR_PSK_REQUIRE_REDIS",
        test,
        "Set it to comma-separated node URLs",
    )?;
    Some(urls.split(',').map(str::to_owned).collect())
}

/// A prefix of the test's own, so that tests sharing one Redis never meet.
pub fn prefix() -> String {
    format!("armor-psk-test:{}:", uuid::Uuid::new_v4())
}

/// A store on the Redis at `url` (or, given several URLs, the cluster)
/// under `prefix`, whose memory began an hour before `NOW`: the tests sign
/// in the past, which a Redis just connected to would refuse.
pub async fn store(urls: &[String], prefix: &str) -> armor_psk::replay::redis::RedisReplayStore {
    store_with(
        urls,
        armor_psk::replay::redis::RedisReplayStore::options().prefix(prefix),
    )
    .await
}

/// As [`store`], with these options (their prefix the test's own).
pub async fn store_with(
    urls: &[String],
    options: armor_psk::replay::redis::RedisStoreOptions,
) -> armor_psk::replay::redis::RedisReplayStore {
    let store = match urls {
        [url] => options.connect(url).await,
        urls => options.connect_cluster(urls).await,
    }
    .expect("connect to the test Redis");
    store
        .set_memory_since(super::NOW - 3600)
        .await
        .expect("write the epoch");
    store
}

/// An admin connection of the test's own to the Redis at `url`.
pub async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test Redis")
}

/// Waits until the Redis at `url` has been up `seconds` (its
/// `uptime_in_seconds`).
pub async fn wait_for_uptime(url: &str, seconds: u64) {
    let mut admin = admin(url).await;
    loop {
        let info: redis::InfoDict = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut admin)
            .await
            .expect("INFO server");
        if info.get::<u64>("uptime_in_seconds").unwrap_or(0) >= seconds {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits (at most 20 s) until every store's watch has seen a restart.
pub async fn wait_until_restart_seen(stores: &[&armor_psk::replay::redis::RedisReplayStore]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stores.iter().any(|store| store.restarts_seen() == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the restart was seen by {:?}",
            stores
                .iter()
                .map(|store| store.restarts_seen())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
