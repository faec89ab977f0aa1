//! Child processes for the end-to-end tests: a server that prints
//! `listening on URL`, and the Python interop scripts.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// A running server process, killed when dropped.
pub struct Server {
    child: Child,
    /// The base URL it printed.
    pub url: String,
    /// Its standard output from the line after `listening on`.
    pub stdout: Lines<BufReader<ChildStdout>>,
    /// What it printed before `listening on`.
    pub banner: Vec<String>,
}

impl Server {
    /// Starts `command` with its stdout piped and waits for
    /// `listening on URL`.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut banner = Vec::new();
        let url = loop {
            let line = stdout
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("{command:?} ended before `listening on`: {banner:?}"));
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_owned();
            }
            banner.push(line);
        };
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self {
            child,
            url,
            stdout,
            banner,
        }
    }
}

impl Server {
    /// Kills it and returns what it wrote to its standard error (piped by
    /// the caller's command).
    pub fn stop_and_stderr(&mut self) -> String {
        use std::io::Read as _;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/interop/<script>` against `url` with the key in its
/// environment, prints what it said, and asserts it passed `checks` checks.
/// Without python3 it fails, never skips.
pub fn run_python(script: &str, url: &str, key_id: &str, secret: &str, checks: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new("python3")
        .arg(&script)
        .arg(url)
        .env("ARMOR_PSK_KEY_ID", key_id)
        .env("ARMOR_PSK_SECRET", secret)
        .output()
        .expect("python3 must be installed for the interop tests");
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    println!("{stdout}");
    assert!(status.success(), "{script:?} failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{checks} passed, 0 failed")),
        "{stdout}"
    );
}

/// The example server binary, built next to this test (plain `cargo test`
/// builds examples; a filtered run builds it here, with every feature).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let binary = profile_dir
        .join("examples")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--all-features", "--example", "server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build --example server");
        assert!(status.success(), "cargo build --example server failed");
    }
    binary
}

/// The example server with `ARMOR_PSK_KEYS` set and nothing else from the
/// test's environment (no Redis, no database), on a free port.
pub fn example_server(keys: &str) -> Command {
    let mut command = Command::new(server_binary());
    command
        .env("ARMOR_PSK_KEYS", keys)
        .env("ARMOR_PSK_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env_remove("ARMOR_PSK_REDIS_URL")
        .env_remove("ARMOR_PSK_REDIS_CLUSTER_URLS")
        .env_remove("ARMOR_PSK_DATABASE_URL")
        .env_remove("ARMOR_PSK_REPLAY_MEMORY_LIMIT");
    command
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory, from /proc.
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server is running");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// Waits up to `limit` for it to exit; its status if it did.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// What it wrote on a piped standard error (after it exited).
    pub fn stderr_text(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        }
        text
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
