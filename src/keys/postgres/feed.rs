//! The change feed: `LISTEN armor_psk_keys` on a connection of its own,
//! checked alive every heartbeat; each change drops its key from the cache
//! (and notes its id); a feed lost or silent for three beats makes every
//! cached key ask the database again; the set of key ids is read anew at
//! every (re)connection and every 30 s. The listener holds the cache
//! weakly: it ends when the store is dropped.

use std::future::poll_fn;
use std::time::{Duration, Instant};

use tokio_postgres::AsyncMessage;

use super::PostgresKeyStore;
use super::admin::CHANNEL;
use crate::keys::cached::WeakCachedKeyStore;

/// How often the set of key ids is read anew, should a change be missed.
const RESYNC: Duration = Duration::from_secs(30);

/// Beats without an answer before the cache stops trusting itself.
const MISSED_BEATS: u32 = 3;

/// Notifications waiting at most; past it the feed counts as lost.
const QUEUE: usize = 10_000;

/// Whether a notification's payload can be a key id: what the header
/// parser accepts (1 to 256 visible ASCII characters, no colon).
fn is_key_id(payload: &str) -> bool {
    crate::protocol::header::check_key_id(payload).is_ok()
}

/// Reads the set of ids on a task of its own (it can take seconds with
/// millions of keys; the feed goes on meanwhile). A failed read leaves the
/// set unused until the next one succeeds.
fn reload_in_background(store: PostgresKeyStore) {
    tokio::spawn(async move {
        if store.reload_ids().await.is_err() {
            store.forget_ids();
        }
    });
}

pub(super) async fn listen(cache: WeakCachedKeyStore<PostgresKeyStore>) {
    loop {
        let Some(store) = cache.upgrade() else {
            return;
        };
        let config = store.source().inner.config.clone();
        let tls = store.source().inner.tls.clone();
        let heartbeat = store.source().inner.options.heartbeat;
        drop(store);
        if let Ok(Ok((client, mut connection))) =
            tokio::time::timeout(heartbeat * MISSED_BEATS, config.connect(tls)).await
        {
            let (sender, mut changes) = tokio::sync::mpsc::channel(QUEUE);
            let driver = tokio::spawn(async move {
                loop {
                    match poll_fn(|cx| connection.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(change))) => {
                            // A flood (any role that can connect may NOTIFY):
                            // past the queue, the feed counts as lost, and
                            // the cache stops trusting itself.
                            if sender.try_send(change.payload().to_owned()).is_err() {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return,
                    }
                }
            });
            let listening = tokio::time::timeout(
                heartbeat * MISSED_BEATS,
                client.batch_execute(&format!("LISTEN {CHANNEL}")),
            )
            .await;
            if matches!(listening, Ok(Ok(()))) {
                // Whatever changed before we listened may be cached.
                if let Some(store) = cache.upgrade() {
                    reload_in_background(store.source().clone());
                    store.expire_all();
                }
                let mut beat = tokio::time::interval(heartbeat);
                let mut resynced = Instant::now();
                let mut confirmed = Instant::now();
                loop {
                    tokio::select! {
                        change = changes.recv() => {
                            let Some(key_id) = change else { break };
                            let Some(store) = cache.upgrade() else {
                                driver.abort();
                                return;
                            };
                            // Only what can be a key id (the header's
                            // grammar); anything else is noise.
                            if !is_key_id(&key_id) {
                                continue;
                            }
                            store.source().note_id(&key_id);
                            store.invalidate(&key_id).await;
                        }
                        _ = beat.tick() => {
                            if cache.upgrade().is_none() {
                                driver.abort();
                                return;
                            }
                            let alive = tokio::time::timeout(heartbeat, client.simple_query("SELECT 1")).await;
                            if matches!(alive, Ok(Ok(_))) {
                                confirmed = Instant::now();
                            } else if confirmed.elapsed() >= heartbeat * MISSED_BEATS {
                                break;
                            }
                            if resynced.elapsed() >= RESYNC {
                                resynced = Instant::now();
                                if let Some(store) = cache.upgrade() {
                                    reload_in_background(store.source().clone());
                                }
                            }
                        }
                    }
                }
            }
            driver.abort();
        }
        let Some(store) = cache.upgrade() else {
            return;
        };
        // Without the feed, the set of ids may be missing new keys: ask the
        // database (within the lookup budget) until it is read again.
        store.source().forget_ids();
        store.expire_all();
        drop(store);
        tracing::warn!(
            "ARMOR-PSK key store: the change feed is lost or silent; cached keys ask the \
             database again, reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
