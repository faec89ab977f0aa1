//! The deployment under test, on loopback: one Redis (no persistence),
//! two example-server instances sharing it, one on the in-memory store
//! with a snapshot file; each instance's wall clock under libfaketime, its
//! offset read from a file the harness rewrites; the keys in the
//! environment, or in a PostgreSQL database of the run's own, reached
//! through a relay that can go silent.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where libfaketime lives on Debian (`apt-get install libfaketime`).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Which replay memory an instance shares: a request accepted by one
/// instance of a domain must be refused by every instance of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    Redis,
    Memory,
}

pub struct Instance {
    pub name: &'static str,
    pub domain: Domain,
    env: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
    /// The URL while it serves; `None` while it is down or stopping (the
    /// clients' balancer skips it).
    url: Mutex<Option<String>>,
    incarnation: Mutex<u32>,
    clock_file: PathBuf,
    dir: PathBuf,
}

impl Instance {
    pub fn url(&self) -> Option<String> {
        self.url.lock().clone()
    }

    /// Starts the instance and waits until it listens.
    pub fn start(&self, server: &Path) -> Result<(), String> {
        let incarnation = {
            let mut n = self.incarnation.lock();
            *n += 1;
            *n
        };
        let log = |kind: &str| self.dir.join(format!("{}.{incarnation}.{kind}", self.name));
        let stderr = File::create(log("stderr")).map_err(|e| e.to_string())?;
        let mut command = Command::new(server);
        // Nothing of the caller's settings (CI exports a database URL).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ARMOR_PSK_") {
                command.env_remove(name);
            }
        }
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("ARMOR_PSK_ADDR", "127.0.0.1:0")
            .env("ARMOR_PSK_LOG_ACCEPTED", "1")
            .env("ARMOR_PSK_SHUTDOWN_TIMEOUT", "5")
            .env("RUST_LOG", "warn,server=info")
            .stdout(Stdio::piped())
            .stderr(stderr);
        if Path::new(FAKETIME).exists() {
            command
                .env("LD_PRELOAD", FAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &self.clock_file)
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("start {}: {e}", server.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tell, told) = std::sync::mpsc::channel();
        let mut out = File::create(log("stdout")).map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tell.send(url.to_owned());
                }
            }
        });
        *self.child.lock() = Some(child);
        let Ok(url) = told.recv_timeout(Duration::from_secs(30)) else {
            // Never left behind: it would hold its port, its snapshot's
            // lock, and outlive the run.
            self.kill();
            return Err(format!(
                "{} did not listen (see {})",
                self.name,
                self.dir.display()
            ));
        };
        *self.url.lock() = Some(url);
        Ok(())
    }

    /// Starts it again and again, as a supervisor does, until it listens
    /// (an instance exits 1 when its database does not answer at start)
    /// or `stop` is set.
    pub fn start_until_up(&self, server: &Path, stop: &AtomicBool) {
        while let Err(error) = self.start(server) {
            eprintln!("chaos: {error}; starting it again");
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `kill -9`.
    pub fn kill(&self) {
        *self.url.lock() = None;
        if let Some(mut child) = self.child.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the exit (its drain, then its snapshot).
    /// `false` when it did not exit 0.
    pub fn terminate(&self) -> bool {
        *self.url.lock() = None;
        let Some(mut child) = self.child.lock().take() else {
            return true;
        };
        signal(child.id(), "-TERM");
        // Its drain waits at most 5 s (ARMOR_PSK_SHUTDOWN_TIMEOUT), its
        // snapshot well under one.
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sets the wall clock's offset (seconds; libfaketime reads it at
    /// every call).
    pub fn set_clock(&self, offset: i64) {
        let _ = std::fs::write(&self.clock_file, format!("{offset:+}\n"));
    }

    /// The `/chaos/ID` paths each incarnation logged as accepted.
    pub fn accepted(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        for incarnation in 1..=*self.incarnation.lock() {
            let path = self.dir.join(format!("{}.{incarnation}.stderr", self.name));
            let mut text = String::new();
            if File::open(&path)
                .and_then(|mut file| file.read_to_string(&mut text))
                .is_err()
            {
                continue;
            }
            for line in text.lines() {
                let Some(at) = line.find(" accepted ") else {
                    continue;
                };
                let rest = &line[at..];
                if let Some(start) = rest.find("/chaos/") {
                    let digits: String = rest[start + 7..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(id) = digits.parse() {
                        ids.push(id);
                    }
                }
            }
        }
        ids
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Redis {
    pub port: u16,
    server: PathBuf,
    child: Mutex<Option<Child>>,
    dir: PathBuf,
}

impl Redis {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn start(&self) -> Result<(), String> {
        let log = File::create(self.dir.join("redis.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&self.server)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxmemory", "256mb", "--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.server.display()))?;
        *self.child.lock() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer PING".into())
    }

    /// Whether every group of the instances' prefix has its epoch: the
    /// deployment's first uses are over (a clock stepped before a group's
    /// first use would date it on the stepped clock).
    pub fn epochs_ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let keys: Vec<String> = (0..64)
            .map(|g| format!("armor-psk:{{g{g:02}}}epoch"))
            .collect();
        let mut command = format!("*{}\r\n$6\r\nEXISTS\r\n", keys.len() + 1);
        for key in &keys {
            command.push_str(&format!("${}\r\n{key}\r\n", key.len()));
        }
        let mut reply = [0u8; 16];
        if stream.write_all(command.as_bytes()).is_err() {
            return false;
        }
        let Ok(read) = stream.read(&mut reply) else {
            return false;
        };
        reply[..read].starts_with(b":64\r\n")
    }

    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// `kill -9` and a start on the same port: every entry gone.
    pub fn restart(&self) -> Result<(), String> {
        if let Some(mut child) = self.child.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.start()
    }

    pub fn pause(&self, stopped: bool) {
        if let Some(child) = self.child.lock().as_ref() {
            signal(child.id(), if stopped { "-STOP" } else { "-CONT" });
        }
    }

    pub fn stop(&self) {
        self.pause(false);
        if let Some(mut child) = self.child.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status();
}

pub struct Deployment {
    pub redis: Redis,
    pub instances: Vec<Arc<Instance>>,
    pub server: PathBuf,
    pub faketime: bool,
}

impl Deployment {
    /// Starts Redis and the instances; `keys` is the instances' key
    /// settings (`ARMOR_PSK_KEYS`, or the database's URL and KEK).
    pub fn start(server: &Path, dir: &Path, keys: Vec<(String, String)>) -> Result<Self, String> {
        let redis_server = std::env::var_os("ARMOR_PSK_REDIS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let redis = Redis {
            port: free_port()?,
            server: redis_server,
            child: Mutex::new(None),
            dir: dir.to_owned(),
        };
        redis.start()?;
        let instance = |name: &'static str, domain: Domain, extra: Vec<(String, String)>| {
            let clock_file = dir.join(format!("{name}.clock"));
            let _ = std::fs::write(&clock_file, "+0\n");
            let mut env = keys.clone();
            env.push(("ARMOR_PSK_REDIS_TIMEOUT".to_owned(), "1".to_owned()));
            env.extend(extra);
            Arc::new(Instance {
                name,
                domain,
                env,
                child: Mutex::new(None),
                url: Mutex::new(None),
                incarnation: Mutex::new(0),
                clock_file,
                dir: dir.to_owned(),
            })
        };
        let on_redis = vec![("ARMOR_PSK_REDIS_URL".to_owned(), redis.url())];
        let snapshot = dir.join("c.snapshot").to_string_lossy().into_owned();
        let instances = vec![
            instance("A", Domain::Redis, on_redis.clone()),
            instance("B", Domain::Redis, on_redis),
            instance(
                "C",
                Domain::Memory,
                vec![
                    ("ARMOR_PSK_REPLAY_SNAPSHOT".to_owned(), snapshot),
                    (
                        "ARMOR_PSK_REPLAY_MEMORY_LIMIT".to_owned(),
                        "64MiB".to_owned(),
                    ),
                ],
            ),
        ];
        for instance in &instances {
            instance.start(server)?;
        }
        Ok(Self {
            redis,
            instances,
            server: server.to_owned(),
            faketime: Path::new(FAKETIME).exists(),
        })
    }

    pub fn stop(&self) {
        for instance in &self.instances {
            instance.terminate();
        }
        self.redis.stop();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| e.to_string())
}

/// A TCP relay in front of PostgreSQL that can go silent: connections stay
/// open and new ones are accepted, but no byte crosses until it speaks
/// again (a partition as a firewall dropping packets makes it).
pub struct Relay {
    pub port: u16,
    silent: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(upstream: std::net::SocketAddr) -> Result<Self, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let silent = Arc::new(AtomicBool::new(false));
        let relay_silent = Arc::clone(&silent);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (Ok(client_out), Ok(server_out)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                for (from, to) in [(client, server_out), (server, client_out)] {
                    let silent = Arc::clone(&relay_silent);
                    std::thread::spawn(move || pump(from, to, &silent));
                }
            }
        });
        Ok(Self { port, silent })
    }

    pub fn silence(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding what it read while the relay is silent.
fn pump(mut from: TcpStream, mut to: TcpStream, silent: &AtomicBool) {
    let mut buffer = [0u8; 16 << 10];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        while silent.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// A database of the run's own on the PostgreSQL at a `postgres://` URL,
/// dropped at the end.
pub struct Database {
    /// The run's database, directly.
    pub url: String,
    /// The run's database through the relay.
    pub relayed_url: String,
    pub relay: Relay,
    admin_url: String,
    name: String,
}

impl Database {
    pub fn create(admin_url: &str, name: &str) -> Result<Self, String> {
        let url = with_database(admin_url, name)?;
        let config: tokio_postgres::Config = admin_url
            .parse()
            .map_err(|e| format!("the database URL: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => return Err("the database URL names no TCP host".into()),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map_err(|e| format!("{host}:{port}: {e}"))?
            .next()
            .ok_or(format!("{host}:{port}: no address"))?;
        let relay = Relay::start(upstream)?;
        let relayed_url = with_host(&url, &format!("127.0.0.1:{}", relay.port))?;
        admin_sql(admin_url, &format!("DROP DATABASE IF EXISTS {name}"))?;
        admin_sql(admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            url,
            relayed_url,
            relay,
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = admin_sql(&self.admin_url, &sql) {
            eprintln!("chaos: {error}");
        }
    }
}

fn admin_sql(url: &str, sql: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL at the database URL: {e}"))?;
        tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))
    })
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, String> {
    let after_scheme = url.find("://").ok_or("not a postgres:// URL")? + 3;
    let path = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |at| after_scheme + at);
    let query = url[path..].find('?').map_or("", |at| &url[path + at..]);
    Ok(format!("{}/{name}{query}", &url[..path]))
}

/// `url` with its host and port replaced by `host`.
fn with_host(url: &str, host: &str) -> Result<String, String> {
    let after_scheme = url.find("://").ok_or("not a postgres:// URL")? + 3;
    let path = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |at| after_scheme + at);
    let start = url[after_scheme..path]
        .rfind('@')
        .map_or(after_scheme, |at| after_scheme + at + 1);
    Ok(format!("{}{host}{}", &url[..start], &url[path..]))
}
