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
