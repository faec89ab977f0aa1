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
            let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                loop {
                    match poll_fn(|cx| connection.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(change))) => {
                            let _ = sender.send(change.payload().to_owned());
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
                    let _ = store.source().reload_ids().await;
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
                                    let _ = store.source().reload_ids().await;
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
        store.expire_all();
        drop(store);
        tracing::warn!(
            "ARMOR-PSK key store: the change feed is lost or silent; cached keys ask the \
             database again, reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
