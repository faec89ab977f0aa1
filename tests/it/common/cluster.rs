//! A Redis Cluster of the test's own: three `redis-server
//! --cluster-enabled yes` on free loopback ports below 55000 (each also
//! listens on its port + 10000), joined by `redis-cli --cluster create`,
//! with nodes that can be stopped and started again.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OwnCluster {
    dir: PathBuf,
    ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
}

/// A port below 55000 whose cluster bus port (+10000) is free too.
fn free_port(taken: &[u16]) -> u16 {
    // Two clusters in one test process must not draw the same ports.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    let mut seed = std::process::id() as u64 ^ nanos ^ super::unique().wrapping_mul(0x9E37_79B9);
    loop {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20_000 + (seed >> 33) as u16 % 24_000;
        if taken.contains(&port) {
            continue;
        }
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

fn server_binary() -> String {
    std::env::var("ARMOR_PSK_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// `redis-cli`, beside `redis-server`.
fn cli_binary() -> String {
    let server = server_binary();
    match server.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/redis-cli"),
        None => "redis-cli".into(),
    }
}

impl OwnCluster {
    /// Starts three nodes and joins them; `None` if that fails three times
    /// (the free ports are picked, then bound: another process may take
    /// one, or its bus port, in between).
    pub fn start(test: &str) -> Option<Self> {
        (0..3).find_map(|_| Self::try_start(test))
    }

    fn try_start(test: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "armor-psk-cluster-{}-{test}-{}",
            std::process::id(),
            super::unique()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let mut ports = Vec::new();
        for _ in 0..3 {
            let port = free_port(&ports);
            ports.push(port);
        }
        let mut cluster = Self {
            dir,
            nodes: ports.iter().map(|_| None).collect(),
            ports,
        };
        for node in 0..3 {
            if !cluster.resume(node) {
                return None;
            }
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new(cli_binary())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !created.success() || !cluster.wait_until_ok() {
            return None;
        }
        Some(cluster)
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// Starts node `node` (again), with its own cluster config file, and
    /// waits until it answers.
    pub fn resume(&mut self, node: usize) -> bool {
        let port = self.ports[node].to_string();
        let Ok(child) = Command::new(server_binary())
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.nodes[node] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.ports[node])).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills node `node` at once.
    pub fn stop(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_until_ok(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let all_ok = self.ports.iter().all(|port| {
                Command::new(cli_binary())
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|out| {
                        String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok")
                    })
            });
            if all_ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for node in 0..self.nodes.len() {
            self.stop(node);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
