//! Interop: a Python client written from Armor's algorithm (standard library
//! only, tests/interop/armor_client.py) against `examples/server.rs` on
//! 127.0.0.1. It needs `python3`; without it the test fails, never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const KEY_ID: &str = "3f2c8a4e-5b1d-4e8f-9a7c-6d5e4f3a2b1c";
const SECRET: &str = "interop-secret-Zx9";

/// The example server binary, built next to this test (plain `cargo test`
/// builds examples; a filtered run builds it here).
fn server_binary() -> PathBuf {
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
            .args(["build", "--example", "server"])
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

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_client_against_the_example_server() {
    let mut child = Command::new(server_binary())
        .env("ARMOR_PSK_KEYS", format!("other=x,{KEY_ID}={SECRET}"))
        .env("ARMOR_PSK_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the example server");
    let stdout = child.stdout.take().expect("server stdout");
    let server = Server(child);
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("listening on ").map(str::to_owned))
        .expect("the server prints `listening on http://ADDR`");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/armor_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&url)
        .env("ARMOR_PSK_KEY_ID", KEY_ID)
        .env("ARMOR_PSK_SECRET", SECRET)
        .output()
        .expect("python3 must be installed for the interop test");
    drop(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("6 passed, 0 failed"), "{stdout}");
}
