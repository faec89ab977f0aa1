//! The watcher beside a Redis store: Redis's memory (the pressure the
//! shares answer) and each node's identity and start (its restarts, which
//! move the fence), read every 250 ms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::connection::{Connection, Nodes};
use super::groups::{GROUPS, group_name};

/// How often Redis's memory is read.
const MEMORY_POLL: Duration = Duration::from_millis(250);

/// What the store knows of Redis: its memory, and who it is.
pub(super) struct Pressure {
    /// Redis holds at least half its `maxmemory`.
    pub(super) under: AtomicBool,
    /// The most entries one key may hold under pressure.
    pub(super) per_key: u64,
    /// The prefix, for the watcher to rewrite the epochs.
    pub(super) prefix: Arc<[u8]>,
    /// The layer's clock as the requests tell it, as far as its monotonic
    /// clock confirms it (one glitched request cannot move it): what the
    /// watcher writes as the epoch after a restart.
    pub(super) horizon: crate::replay::horizon::Horizon,
    /// The latest timestamp this store reserved: a client whose clock is
    /// ahead signs after the horizon, and a restart must fence that too.
    pub(super) accepted: AtomicU64,
    /// Restarts the watcher has fenced.
    pub(super) restarts: AtomicU64,
    /// The process's monotonic clock (ms) when a request last told the
    /// horizon the time: an idle instance's horizon stands still, and the
    /// time since is added to it to read the layer's clock now.
    pub(super) observed_at: AtomicU64,
}

impl Pressure {
    /// A request's time, for the horizon and for reading the layer's clock
    /// later ([`layer_now`](Self::layer_now)).
    pub(super) fn observe(&self, request: &crate::replay::store::ReplayRequest<'_>) {
        self.horizon.observe_request(request);
        self.observed_at
            .fetch_max(monotonic_ms(), Ordering::Relaxed);
    }

    /// The layer's clock now, as far as this store can tell: the horizon
    /// plus the time since a request last brought it (the system clock's
    /// second before any request).
    fn layer_now(&self) -> u64 {
        match self.horizon.now() {
            0 => crate::protocol::clock::Clock::now(&crate::protocol::clock::SystemClock),
            horizon => {
                let idle = monotonic_ms().saturating_sub(self.observed_at.load(Ordering::Relaxed));
                horizon.saturating_add(idle / 1000)
            }
        }
    }
}

fn monotonic_ms() -> u64 {
    u64::try_from(crate::protocol::clock::process_monotonic().as_millis()).unwrap_or(u64::MAX)
}

/// Four times a second, for as long as the store lives: reads Redis's
/// memory (pressure), and each node's `run_id`. A node that restarted
/// from a snapshot brings back epochs older than the entries it lost, so
/// when a `run_id` changes every epoch is written anew with the time now:
/// requests signed before are refused from then on.
pub(super) fn watch(
    connection: Connection,
    nodes: Nodes,
    mut run_ids: HashMap<String, String>,
    pressure: Weak<Pressure>,
) {
    tokio::spawn(async move {
        // The highest horizon seen: a step back of the layer's clock is
        // followed by the horizon, but requests accepted before it keep
        // their later timestamps, and a restart must fence them too.
        let mut highest = 0;
        loop {
            tokio::time::sleep(MEMORY_POLL).await;
            let Some(pressure) = pressure.upgrade() else {
                return;
            };
            highest = highest.max(pressure.horizon.now());
            if let Ok((used, max)) = connection.memory().await {
                let under = max > 0 && used.saturating_mul(2) >= max;
                pressure.under.store(under, Ordering::Relaxed);
            }
            let now_ids = nodes.run_ids().await;
            // A node down is not a restart yet; one that answers with
            // another run_id is.
            let restarted = now_ids
                .iter()
                .any(|(node, id)| run_ids.get(node).is_some_and(|before| before != id));
            if restarted {
                let prefix = Arc::clone(&pressure.prefix);
                // On the layer's clock, as the requests tell it (bounded by
                // its monotonic clock: a glitch forward cannot fence the
                // future); past that second, which the lost writes may
                // have used.
                let latest = highest
                    .max(pressure.horizon.now())
                    .max(pressure.accepted.load(Ordering::Relaxed));
                let now = match latest {
                    // No request served yet: the system clock's second.
                    0 => pressure.layer_now() + 1,
                    latest => latest.saturating_add(1),
                };
                // The layer's clock now (not the idle horizon), to date
                // Redis's start on it: what this instance served is not all
                // the Redis before held (a client ahead served by another
                // instance), and a watch's fence keeps every first use from
                // dating the epoch.
                let layer_now = pressure.layer_now();
                match write_epochs(&connection, &prefix, now, Some(layer_now)).await {
                    Ok(()) => {
                        pressure.restarts.fetch_add(1, Ordering::SeqCst);
                        tracing::warn!(
                            "ARMOR-PSK Redis replay store: a Redis node restarted; requests signed \
                         before now are refused"
                        );
                    }
                    Err(error) => {
                        tracing::error!(%error, "ARMOR-PSK Redis replay store: cannot write the epochs");
                        continue;
                    }
                }
            }
            run_ids.extend(now_ids);
        }
    });
}

/// Raises every group's epoch to `began` (an epoch is never lowered: that
/// would let through requests a fence refuses), and marks it a fence, so
/// that no request dates it from Redis's start. With `layer_now` (a
/// watch's fence after a restart), at least to Redis's start on the
/// layer's clock plus 4 s, as a first use would have dated it: the fence
/// knows what this instance served, not what a client ahead sent through
/// another (the chaos harness, seed 3, saw one served again that way).
pub(super) async fn write_epochs(
    connection: &Connection,
    prefix: &[u8],
    began: u64,
    layer_now: Option<u64>,
) -> Result<(), redis::RedisError> {
    // The uptime is the node's that holds the group (the script runs there).
    const RAISE: &str = "\
local began = tonumber(ARGV[1])
if ARGV[2] ~= '' then
    local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
    if uptime ~= nil and tonumber(ARGV[2]) - uptime + 4 > began then
        began = tonumber(ARGV[2]) - uptime + 4
    end
end
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held < began then redis.call('SET', KEYS[1], string.format('%d', began)) end
redis.call('SET', KEYS[2], '1')
return 1";
    // Each group's bound read as its script runs: reaching a node can take
    // seconds, and its uptime grows meanwhile.
    let started = std::time::Instant::now();
    for group in 0..GROUPS {
        let layer_now = layer_now.map_or_else(String::new, |now| {
            now.saturating_add(started.elapsed().as_secs()).to_string()
        });
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(RAISE)
            .arg(2)
            .arg([prefix, &group_name(group)[..], b"epoch"].concat())
            .arg(super::store::fence_key(prefix, group))
            .arg(began)
            .arg(&layer_now)
            .ignore();
        connection.pipeline(&pipe).await?;
    }
    Ok(())
}
