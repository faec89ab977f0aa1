//! Two server instances sharing one Redis replay store: a request accepted
//! by the first and replayed to the second is refused. Then the same with
//! two in-memory stores, where the replay gets through.
//!
//! ```text
//! ARMOR_PSK_REDIS_URL=redis://127.0.0.1:6379/ cargo run --features redis --example cluster
//! ```
//!
//! Everything runs on 127.0.0.1; `ARMOR_PSK_REDIS_URL` defaults to
//! `redis://127.0.0.1:6379/`.

use std::net::SocketAddr;

use armor_psk::{
    ArmorPskLayer, Signer,
    keys::MemoryKeyStore,
    replay::redis::RedisReplayStore,
    replay::{MemoryReplayStore, ReplayStore},
};
use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Method;

#[path = "support/client.rs"]
mod client;
use client::Connection;

const KEY_ID: &str = "cluster-demo-key";
const SECRET: &str = "cluster-demo-secret";

/// Starts one instance on a free loopback port with its own replay store.
async fn instance(store: impl ReplayStore) -> std::io::Result<SocketAddr> {
    let keys = MemoryKeyStore::new().with_key(KEY_ID, SECRET);
    let app = Router::new()
        .route("/me", get(|| async { "hello" }))
        .layer(ArmorPskLayer::new(keys).with_replay_store(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Sends `GET /me` with `authorization`; returns the status and the body.
async fn get_me(
    addr: SocketAddr,
    authorization: &str,
) -> Result<(u16, String), Box<dyn std::error::Error + Send + Sync>> {
    let mut connection = Connection::open(addr).await?;
    let (status, body) = connection
        .send(Method::GET, "/me", authorization, Bytes::new())
        .await?;
    Ok((status.as_u16(), String::from_utf8_lossy(&body).into_owned()))
}

async fn replay_across(
    first: SocketAddr,
    second: SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let header = Signer::new(KEY_ID, SECRET)?.sign("GET", "/me", b"");
    let (status, body) = get_me(first, &header).await?;
    println!("  instance A ({first}): {status} {body}");
    let (status, body) = get_me(second, &header).await?;
    println!("  same request replayed to instance B ({second}): {status} {body}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url =
        std::env::var("ARMOR_PSK_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = format!("armor-psk-cluster-demo:{}:", uuid::Uuid::new_v4());
    // Two stores with two connections, as two processes would have.
    let options = RedisReplayStore::options().prefix(&prefix);
    let a = options.clone().connect(&url).await?;
    let b = options.connect(&url).await?;
    println!("two instances sharing one Redis replay store:");
    replay_across(instance(a).await?, instance(b).await?).await?;

    println!("two instances, each with its own in-memory store:");
    replay_across(
        instance(MemoryReplayStore::new()).await?,
        instance(MemoryReplayStore::new()).await?,
    )
    .await?;
    Ok(())
}
