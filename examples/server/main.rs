//! An axum server behind ARMOR-PSK: any method on any path answers 200 with
//! `{"key_id", "method", "path", "body_bytes"}` once the request verifies.
//!
//! ```text
//! ARMOR_PSK_KEYS='my-key=my-secret' cargo run --example server
//! ```
//!
//! - `ARMOR_PSK_KEYS`: `id=secret` pairs separated by commas. With none set,
//!   one key is generated and printed once.
//! - `ARMOR_PSK_ADDR`: the address to listen on (default `127.0.0.1:3000`;
//!   port 0 picks a free one). Once bound it prints
//!   `listening on http://ADDR` on stdout.
//! - `ARMOR_PSK_REDIS_URL`: keep the replay store in this Redis, shared by
//!   every copy of the server that uses it (needs `--features redis`).
//! - `ARMOR_PSK_REDIS_CLUSTER_URLS`: the same on a Redis Cluster, from
//!   comma-separated `redis://` node URLs.
//!
//!   Without either the store is in memory, this process's own.
//! - `ARMOR_PSK_REPLAY_MEMORY_LIMIT`: the in-memory replay store's memory
//!   limit, in bytes or with a unit (`64MiB`, `2GiB`, `500MB`; default
//!   1 GiB: 33 million requests held, 90,000 requests a second sustained).
//! - `ARMOR_PSK_REPLAY_SNAPSHOT=PATH`: hand the in-memory store's memory
//!   on across a graceful restart. A stop (SIGTERM or SIGINT) writes it to
//!   `PATH`, a start reads it back, and nobody is refused for the restart;
//!   after a crash the start knows its memory is lost and fences (see
//!   `MemoryReplayStoreBuilder::restore`).
//! - `ARMOR_PSK_HEADER_TIMEOUT` (seconds, default 10), `ARMOR_PSK_MAX_CONNECTIONS`
//!   (default 2048), `ARMOR_PSK_SHUTDOWN_TIMEOUT` (seconds, default 10): a
//!   request head must arrive within the first (32 KiB at most, else 431),
//!   at most the second many connections are open, and a stop waits at most
//!   the third for the requests in flight.
//! - `ARMOR_PSK_REDIS_ALLOW_EVICTION=1`: accept a Redis whose
//!   `maxmemory-policy` may evict entries (refused otherwise: an evicted
//!   entry is a replay accepted).
//! - `ARMOR_PSK_REDIS_TIMEOUT`: seconds a reservation in Redis may take
//!   before the request is refused with 503 (default 0.1).
//! - `ARMOR_PSK_DATABASE_URL`: take the keys from PostgreSQL (needs
//!   `--features postgres`), sealed under `ARMOR_PSK_KEK` (32 bytes,
//!   base64; or in the file `ARMOR_PSK_KEK_FILE` names), cached, and dropped from the cache within a second of a
//!   revocation or rotation; the migration is applied at start. A database
//!   that is down at start stops the server (exit 1); down later, cached
//!   keys serve for the grace period, then 503. `ARMOR_PSK_KEYS` is
//!   ignored then.
//! - `ARMOR_PSK_NONCE_FORMAT=uuid`: accept only UUID nonces (the dashed
//!   form or the 32 hex digits Armor's contract recommends).
//! - `RUST_LOG`: log filter (default `info`).
//!
//! On SIGTERM or SIGINT the server stops accepting, lets the requests in
//! flight finish (at most `ARMOR_PSK_SHUTDOWN_TIMEOUT`), writes the
//! snapshot if it keeps one, and exits 0; a second signal exits at once
//! (status 1). When its replay memory begins at this start (no snapshot,
//! or a crash before), it says `listening on` only once the seconds its
//! fence covers are over: the second it began in, and after a crash with a
//! snapshot up to the crashed run's ceiling (about 2 s ahead of that run's
//! clock; at most 10 s are waited). What was signed in them is refused
//! (`issued_before_restart`), and a client that signs as it sends is then
//! never among them; connections wait in the listener's backlog.
//!
//! The layer reads a request's body before it knows whether the key is
//! real (the signature covers the body), so the server bounds what
//! unauthenticated clients can hold: a read timeout on request bodies
//! (a slow or stalled body gets 400 `invalid_body`), a concurrency limit
//! for the whole server (at most 512 requests at once, each body at most
//! the body limit; the 513th gets 503 at once), and a timeout on the whole
//! request. The limit is one semaphore shared by every connection
//! (`GlobalConcurrencyLimitLayer`): a `ConcurrencyLimitLayer` would be
//! cloned with axum's per-connection service and bound nothing.

#[cfg(armor_psk_chaos_forgetful)]
mod forgetful;
mod serve;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use armor_psk::{
    ArmorPskLayer, Identity,
    keys::{KeyStore, MemoryKeyStore, generate_secret},
    replay::{Memory, MemoryReplayStore},
};
use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::OriginalUri;
use axum::response::Json;
use http::{Method, StatusCode};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

/// At most this many requests in the whole server at once; more are shed
/// with 503.
const MAX_IN_FLIGHT: usize = 512;

/// One line per refused request (method, path without the query, client
/// address, status, reason, key id as sent, and the clock skew for window
/// errors); accepted requests too with `ARMOR_PSK_LOG_ACCEPTED=1` (off by
/// default: one line per request costs at high rates).
async fn access_log(
    log_accepted: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Kept as they came (no copy, no parse): most requests are accepted and
    // logged by nobody, and the line is written only if one is.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    let authorization = request.headers().get(http::header::AUTHORIZATION).cloned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let (path, client) = (uri.path(), Client(client));
    match response.extensions().get::<armor_psk::Rejection>() {
        Some(rejection) => {
            // Key ids are bounded by the parser (256 bytes) and sent as is.
            let key_id = rejection.key_id().unwrap_or("-");
            let timestamp = authorization
                .and_then(|value| armor_psk::protocol::Credentials::parse(value.as_bytes()).ok())
                .map(|credentials| credentials.timestamp());
            let skew = match (rejection.server_time(), timestamp) {
                (Some(server), Some(signed)) => {
                    format!(" skew={}s", i128::from(signed) - i128::from(server))
                }
                _ => String::new(),
            };
            tracing::info!(
                "refused {method} {path} from {client} status={status} reason={} key_id={key_id}{skew}",
                rejection.code()
            );
        }
        None if log_accepted && response.status().is_success() => {
            let key_id = response
                .extensions()
                .get::<Identity>()
                .map_or("-", |identity| identity.key_id());
            tracing::info!(
                "accepted {method} {path} from {client} status={status} key_id={key_id}"
            );
        }
        None => {}
    }
    response
}

/// A client's address in the access log, `-` when unknown.
struct Client(Option<std::net::SocketAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// A size in bytes, or with a unit: `KiB`, `MiB`, `GiB` (powers of 1024)
/// or `KB`, `MB`, `GB` (powers of 1000).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or e.g. 64MiB)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "{other:?} is not a unit: use KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The echo's answer (serialized as it stands: no map built first).
#[derive(serde::Serialize)]
struct Echo<'a> {
    key_id: &'a str,
    method: &'a str,
    path: &'a str,
    body_bytes: usize,
}

async fn echo(
    identity: Identity,
    method: Method,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    // The layer puts the `Identity` on the response too, for the access
    // log.
    Json(Echo {
        key_id: identity.key_id(),
        method: method.as_str(),
        path: uri.path(),
        body_bytes: body.len(),
    })
    .into_response()
}

fn keys_from_env() -> Result<MemoryKeyStore, String> {
    let keys = MemoryKeyStore::new();
    let Ok(spec) = std::env::var("ARMOR_PSK_KEYS") else {
        let key_id = uuid::Uuid::new_v4().to_string();
        let secret = generate_secret().map_err(|e| format!("cannot generate a secret: {e}"))?;
        println!("no ARMOR_PSK_KEYS set; generated one key (shown once):");
        println!("  Key ID:     {key_id}");
        println!("  Secret Key: {secret}");
        keys.insert(key_id, secret);
        return Ok(keys);
    };
    for pair in spec
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let Some((id, secret)) = pair.split_once('=') else {
            return Err(format!(
                "ARMOR_PSK_KEYS: {pair:?} is not id=secret (pairs separated by commas)"
            ));
        };
        if id.is_empty() || id.contains(':') {
            return Err(format!(
                "ARMOR_PSK_KEYS: invalid key id {id:?} (non-empty, no colon)"
            ));
        }
        if secret.is_empty() {
            return Err(format!("ARMOR_PSK_KEYS: the secret of {id:?} is empty"));
        }
        keys.insert(id, secret);
    }
    if keys.is_empty() {
        return Err("ARMOR_PSK_KEYS holds no key".into());
    }
    Ok(keys)
}

/// The keys in PostgreSQL, behind a cache that follows its changes.
#[cfg(feature = "postgres")]
async fn postgres_keys(url: &str) -> Result<Box<dyn KeyStore>, Box<dyn std::error::Error>> {
    use armor_psk::keys::postgres::{Kek, PostgresKeyStore, Sealing};
    let kek = match std::env::var("ARMOR_PSK_KEK_FILE") {
        Ok(path) => std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read ARMOR_PSK_KEK_FILE {path}: {error}"))?,
        Err(_) => std::env::var("ARMOR_PSK_KEK").map_err(
            |_| "ARMOR_PSK_DATABASE_URL is set but neither ARMOR_PSK_KEK nor ARMOR_PSK_KEK_FILE is",
        )?,
    };
    let store = PostgresKeyStore::connect(url, Sealing::Kek(Kek::from_base64(&kek)?)).await?;
    store.migrate().await?;
    println!("keys: PostgreSQL (cached, following changes)");
    Ok(Box::new(store.cached()))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_keys(_url: &str) -> Result<Box<dyn KeyStore>, Box<dyn std::error::Error>> {
    Err(
        "ARMOR_PSK_DATABASE_URL is set, but this example was built without the `postgres` \
         feature: cargo run --features postgres --example server"
            .into(),
    )
}

/// Where the replay store lives, from the environment.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
enum Redis {
    Single(String),
    Cluster(Vec<String>),
}

#[cfg(feature = "redis")]
async fn with_redis(
    layer: ArmorPskLayer,
    redis: Redis,
) -> Result<ArmorPskLayer, Box<dyn std::error::Error>> {
    let allow_eviction = std::env::var("ARMOR_PSK_REDIS_ALLOW_EVICTION").is_ok_and(|v| v == "1");
    let mut options =
        armor_psk::replay::redis::RedisReplayStore::options().allow_eviction(allow_eviction);
    if std::env::var("ARMOR_PSK_REDIS_TIMEOUT").is_ok() {
        options = options.timeout(seconds_from_env("ARMOR_PSK_REDIS_TIMEOUT", 0)?);
    }
    let store = match redis {
        Redis::Single(url) => options.connect(&url).await?,
        Redis::Cluster(urls) => options.connect_cluster(&urls).await?,
    };
    println!("replay store: {store:?} (shared by every server using it)");
    Ok(layer.with_replay_store(store))
}

#[cfg(not(feature = "redis"))]
async fn with_redis(
    _layer: ArmorPskLayer,
    _redis: Redis,
) -> Result<ArmorPskLayer, Box<dyn std::error::Error>> {
    Err(
        "ARMOR_PSK_REDIS_URL or ARMOR_PSK_REDIS_CLUSTER_URLS is set, but this example was \
         built without the `redis` feature: cargo run --features redis --example server"
            .into(),
    )
}

/// What `--help` prints: the variables the server reads.
const HELP: &str = "examples/server: an axum server behind ARMOR-PSK (any method, any path: 200 \
with what it received, once the request verifies).

Variables:
  ARMOR_PSK_KEYS                 id=secret pairs, comma-separated (none: one key generated and printed)
  ARMOR_PSK_ADDR                 where to listen (default 127.0.0.1:3000; port 0: a free one)
  ARMOR_PSK_REPLAY_MEMORY_LIMIT  the in-memory replay store's limit (bytes, or 64MiB, 2GiB; default 1GiB)
  ARMOR_PSK_REPLAY_SNAPSHOT      a file the in-memory store's memory is saved to at a stop and read back at a start
  ARMOR_PSK_HEADER_TIMEOUT       seconds a request head may take (default 10; at most 32 KiB)
  ARMOR_PSK_MAX_CONNECTIONS      connections open at once (default 2048; more wait)
  ARMOR_PSK_SHUTDOWN_TIMEOUT     seconds a stop waits for the requests in flight (default 10)
  ARMOR_PSK_REDIS_URL            a Redis replay store (--features redis)
  ARMOR_PSK_REDIS_CLUSTER_URLS   a Redis Cluster replay store, comma-separated node URLs
  ARMOR_PSK_REDIS_ALLOW_EVICTION 1: accept a Redis that may evict entries
  ARMOR_PSK_REDIS_TIMEOUT        seconds a reservation may take before 503 (default 0.1)
  ARMOR_PSK_DATABASE_URL         keys from PostgreSQL (--features postgres), with ARMOR_PSK_KEK or ARMOR_PSK_KEK_FILE
  ARMOR_PSK_NONCE_FORMAT         uuid: accept only UUID nonces (dashed or 32 hex), closing every path/nonce re-cut
  ARMOR_PSK_LOG_ACCEPTED         1: one log line per accepted request too (refused ones always)
  RUST_LOG                       log filter (default info,armor_psk=warn)
";

/// An error and its causes, on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let chain = std::iter::successors(Some(error), |error| error.source());
    chain
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "--help" || arg == "-h")
    {
        print!("{HELP}");
        return std::process::ExitCode::SUCCESS;
    }
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The layer's own refusal lines are at info; this server logs a fuller
    // one per request (see `access_log`), so by default they are off.
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,armor_psk=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let log_accepted = std::env::var("ARMOR_PSK_LOG_ACCEPTED").is_ok_and(|value| value == "1");

    let keys: Box<dyn KeyStore> = match std::env::var("ARMOR_PSK_DATABASE_URL") {
        Ok(url) => postgres_keys(&url).await?,
        Err(_) => Box::new(keys_from_env()?),
    };
    #[cfg(armor_psk_chaos_forgetful)]
    let keys: Box<dyn KeyStore> = Box::new(forgetful::Remembering::new(keys));
    let addr = std::env::var("ARMOR_PSK_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let redis = match (
        std::env::var("ARMOR_PSK_REDIS_URL"),
        std::env::var("ARMOR_PSK_REDIS_CLUSTER_URLS"),
    ) {
        (Ok(_), Ok(_)) => {
            return Err("set ARMOR_PSK_REDIS_URL or ARMOR_PSK_REDIS_CLUSTER_URLS, not both".into());
        }
        (Ok(url), Err(_)) => Some(Redis::Single(url)),
        (Err(_), Ok(urls)) => Some(Redis::Cluster(
            urls.split(',').map(str::trim).map(str::to_owned).collect(),
        )),
        (Err(_), Err(_)) => None,
    };
    let snapshot = std::env::var_os("ARMOR_PSK_REPLAY_SNAPSHOT").map(std::path::PathBuf::from);
    let mut memory_store = None;
    // When this start's replay memory begins now (a second to wait out).
    let mut fenced_since = None;
    let layer = match redis {
        Some(_) if snapshot.is_some() => {
            return Err("ARMOR_PSK_REPLAY_SNAPSHOT is for the in-memory store, not Redis".into());
        }
        Some(redis) => with_redis(ArmorPskLayer::new(keys), redis).await?,
        None => {
            let limit = match std::env::var("ARMOR_PSK_REPLAY_MEMORY_LIMIT") {
                Ok(text) => parse_size(&text)
                    .map_err(|error| format!("ARMOR_PSK_REPLAY_MEMORY_LIMIT: {error}"))?,
                Err(_) => MemoryReplayStore::DEFAULT_MEMORY_LIMIT,
            };
            let builder = MemoryReplayStore::builder().memory_limit(limit);
            let store = match &snapshot {
                None => builder.build(),
                Some(path) => {
                    let (store, memory) = builder.restore(path)?;
                    match &memory {
                        Memory::FirstStart => println!(
                            "replay snapshot {}: none yet (a first start)",
                            path.display()
                        ),
                        Memory::Complete { entries } => println!(
                            "replay snapshot {}: {entries} entries restored (a clean stop)",
                            path.display()
                        ),
                        Memory::Crashed => tracing::warn!(
                            "replay snapshot {}: the last run did not stop cleanly; requests \
                             signed before this start are refused (issued_before_restart)",
                            path.display()
                        ),
                        Memory::Untrusted(error) => tracing::warn!(
                            "replay snapshot not trusted ({}); requests signed before this \
                             start are refused (issued_before_restart)",
                            describe(error)
                        ),
                        _ => {}
                    }
                    store
                }
            };
            println!(
                "replay store: in memory (this process only), at most {} MiB, {} requests",
                limit >> 20,
                store.capacity() / 2
            );
            fenced_since = store.fenced_through();
            memory_store = Some(store.clone());
            #[cfg(armor_psk_chaos_forgetful)]
            let store = forgetful::Forgetful::new(store);
            ArmorPskLayer::new(keys).with_replay_store(store)
        }
    };
    let layer = match std::env::var("ARMOR_PSK_NONCE_FORMAT").as_deref() {
        Ok("uuid") => layer.with_nonce_format(armor_psk::protocol::NonceFormat::Uuid),
        Ok("any") | Err(_) => layer,
        Ok(other) => {
            return Err(
                format!("ARMOR_PSK_NONCE_FORMAT: {other:?} is neither uuid nor any").into(),
            );
        }
    };
    // One semaphore for the whole server: every connection's copy of the
    // router shares it.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let app = Router::new().fallback(echo).layer(layer).layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(move |request, next| {
                access_log(log_accepted, request, next)
            }))
            .layer(TraceLayer::new_for_http())
            // Shed load rather than queue without bound.
            .layer(HandleErrorLayer::new(|_| async {
                (StatusCode::SERVICE_UNAVAILABLE, "server busy")
            }))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(in_flight))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(30),
            ))
            // A body that arrives slower than this is cut off.
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(10))),
    );

    let limits = serve::Limits {
        header_timeout: seconds_from_env("ARMOR_PSK_HEADER_TIMEOUT", 10)?,
        header_bytes: 32 << 10,
        connections: usize::try_from(number_from_env("ARMOR_PSK_MAX_CONNECTIONS", 2048)?)
            .unwrap_or(usize::MAX)
            .max(1),
        drain: seconds_from_env("ARMOR_PSK_SHUTDOWN_TIMEOUT", 10)?,
    };
    let mut stop = serve::signals()?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error}"))?;
    if let Some(through) = fenced_since {
        // Connections wait in the listener's backlog meanwhile. After a
        // crash the fence may reach a little ahead (the running marker's
        // ceiling): at most 10 s are waited out, later is refused.
        wait_past(through.min(unix_seconds() + 10)).await;
    }
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let drained = serve::serve(listener, app, limits, &mut stop).await;
    if !drained {
        tracing::warn!(
            "stopping: requests still in flight after {:?} were cut off",
            limits.drain
        );
    }
    // From here a second signal still exits at once.
    tokio::spawn(async move {
        if stop.recv().await.is_some() {
            serve::second_signal();
        }
    });
    if let (Some(store), Some(path)) = (memory_store, snapshot) {
        let saved = tokio::task::spawn_blocking(move || store.save(&path)).await?;
        match saved {
            Ok(saved) => println!(
                "replay snapshot saved: {} entries, {} keys, {} bytes in {} ms",
                saved.entries,
                saved.keys,
                saved.bytes,
                saved.took.as_millis()
            ),
            Err(error) => {
                // The running marker stays: the next start fences.
                return Err(
                    format!("the replay snapshot was not saved: {}", describe(&error)).into(),
                );
            }
        }
    }
    println!("stopped");
    Ok(())
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Sleeps until the wall clock is past the second `second`.
async fn wait_past(second: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let next = Duration::from_secs(second + 1);
    if next > now {
        tokio::time::sleep(next - now).await;
    }
}

/// A whole number from the environment, or `default`.
fn number_from_env(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}: {text:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// Seconds from the environment (a whole number, or with a fraction), or
/// `default`.
fn seconds_from_env(name: &str, default: u64) -> Result<Duration, String> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds < 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{name}: {text:?} is not a number of seconds (0 < s < 86400)")),
        Err(_) => Ok(Duration::from_secs(default)),
    }
}
