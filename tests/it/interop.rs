//! Interop: a Python client written from Armor's algorithm (standard library
//! only, tests/interop/armor_client.py) against `examples/server/` on
//! 127.0.0.1. It needs `python3`; without it the test fails, never skips.

use crate::common;

use std::process::Command;

use common::process::{Server, run_python, server_binary};

const KEY_ID: &str = "3f2c8a4e-5b1d-4e8f-9a7c-6d5e4f3a2b1c";
const SECRET: &str = "interop-secret-Zx9";

#[test]
fn python_client_against_the_example_server() {
    let mut command = Command::new(server_binary());
    command
        .env("ARMOR_PSK_KEYS", format!("other=x,{KEY_ID}={SECRET}"))
        .env("ARMOR_PSK_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        // Its own in-memory replay store, whatever Redis the tests have.
        .env_remove("ARMOR_PSK_REDIS_URL")
        .env_remove("ARMOR_PSK_REDIS_CLUSTER_URLS")
        .env_remove("ARMOR_PSK_DATABASE_URL");
    let server = Server::start(command);
    run_python("armor_client.py", &server.url, KEY_ID, SECRET, 6);
}
