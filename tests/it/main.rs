//! The integration tests, one crate: linked once, run by one harness.
//! Each module is one area (the layer, the stores, the mock, the CLI, the
//! operations); `common` holds their helpers. Three suites that measure the
//! process itself stay crates of their own, so that no other test shares
//! their process: `tests/mock_hostile.rs` (its resident memory),
//! `tests/replay_store.rs` (its threads) and `tests/snapshot.rs` (the
//! process's one sweeping thread keeping a running marker ahead, which a
//! process busy with every other test once delayed past a second).

mod cli;
mod client;
mod common;
mod header_grammar;
mod hyper_server;
mod interop;
mod key_cache;
mod layer;
mod metrics;
mod mock;
mod mock_openapi;
mod postgres;
mod properties;
mod redis_cluster;
mod redis_store;
mod restarts;
mod secrets;
mod server_operations;
mod tower_mechanics;
mod vectors;
