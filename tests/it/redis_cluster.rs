//! The Redis replay store on a real Redis Cluster, never a mock.
//!
//! The cluster comes from `ARMOR_PSK_REDIS_CLUSTER_URLS` (comma-separated
//! node URLs; `.ci/run` starts three nodes of its own and sets it); the
//! outage test starts a cluster of its own. Without one these tests print
//! that they SKIPPED, loudly, unless `ARMOR_PSK_REQUIRE_REDIS=1` (as in CI),
//! where they fail instead.
#![cfg(feature = "redis")]

use crate::common;

use std::time::{Duration, Instant};

use armor_psk::{ArmorPskLayer, ManualClock, replay::redis::RedisReplayStore};
use common::cluster::OwnCluster;
use common::{NOW, app, request_with_header, send, signed, signer};
use http::StatusCode;

use common::redis::{cluster_urls, prefix};

/// One instance's store: its own connection to the cluster.
async fn store(urls: &[String], prefix: &str) -> RedisReplayStore {
    assert!(urls.len() > 1, "a cluster has several nodes");
    common::redis::store(urls, prefix).await
}

fn layer_with(store: RedisReplayStore, unique_nonces: bool) -> ArmorPskLayer {
    common::layer_with(store).with_unique_nonces(unique_nonces)
}

#[tokio::test]
async fn replays_and_re_cuts_are_refused_across_two_instances_in_both_modes() {
    let Some(urls) = cluster_urls(common::test_name!()) else {
        return;
    };
    for unique_nonces in [true, false] {
        let prefix = prefix();
        let first = app(layer_with(store(&urls, &prefix).await, unique_nonces));
        let second = app(layer_with(store(&urls, &prefix).await, unique_nonces));
        let header = signer().sign_at("GET", "/me", b"", "n-1", NOW).unwrap();
        let accepted = send(&first, request_with_header("GET", "/me", &header, b"")).await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.json);
        let replayed = send(&second, request_with_header("GET", "/me", &header, b"")).await;
        assert_eq!(
            replayed.code(),
            "replayed_request",
            "unique nonces {unique_nonces}"
        );
        common::assert_replays_and_the_path_nonce_forgery_are_refused(&first).await;
    }
}

#[tokio::test]
async fn a_nonce_reused_with_another_timestamp_is_refused() {
    let Some(urls) = cluster_urls(common::test_name!()) else {
        return;
    };
    let router = app(layer_with(store(&urls, &prefix()).await, true));
    let first = send(&router, signed("GET", "/me", b"", "reused", NOW)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    for offset in 1..20 {
        // Other signatures: the nonce's key must not depend on them.
        let again = send(&router, signed("GET", "/me", b"", "reused", NOW - offset)).await;
        assert_eq!(again.code(), "replayed_request", "{}", again.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_200_concurrent_copies_over_two_instances_exactly_one_is_accepted() {
    let Some(urls) = cluster_urls(common::test_name!()) else {
        return;
    };
    for unique_nonces in [true, false] {
        let prefix = prefix();
        // Exactly once is the point here, not speed: 200 requests at once
        // on a machine that starts clusters for the other tests beside
        // this one can take longer than the default 100 ms.
        let patient = || async {
            common::redis::store_with(
                &urls,
                RedisReplayStore::options()
                    .prefix(&prefix)
                    .timeout(Duration::from_secs(2)),
            )
            .await
        };
        let instances = [
            app(layer_with(patient().await, unique_nonces)),
            app(layer_with(patient().await, unique_nonces)),
        ];
        common::assert_exactly_one_of_200_concurrent_copies_is_accepted(&instances).await;
    }
}

#[tokio::test]
async fn the_cluster_outlives_a_clock_stepped_back() {
    let Some(urls) = cluster_urls(common::test_name!()) else {
        return;
    };
    common::assert_a_clock_stepped_back_still_refuses_the_replay(store(&urls, &prefix()).await)
        .await;
}

#[tokio::test]
async fn the_cluster_shared_by_clocks_apart_refuses_replays_while_valid() {
    let Some(urls) = cluster_urls(common::test_name!()) else {
        return;
    };
    common::assert_clocks_apart_refuse_the_replay_while_it_is_valid(store(&urls, &prefix()).await)
        .await;
}

/// One node of a cluster of the test's own is killed: requests whose
/// entries it holds get 503 `replay_store_unavailable`, none is accepted
/// twice, and once the node is back the same layer serves again.
#[tokio::test]
async fn a_node_down_is_a_503_for_its_keys_and_the_layer_recovers() {
    let Some(_) = cluster_urls(common::test_name!()) else {
        return;
    };
    let mut cluster = OwnCluster::start("outage").expect("start a cluster of the test's own");
    let store = store(&cluster.urls(), &prefix()).await;
    let clock = ManualClock::new(NOW);
    let router = app(layer_with(store.clone(), true).with_clock(clock.clone()));
    let ok = send(&router, signed("GET", "/me", b"", "before", NOW)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);

    cluster.stop(1);
    let mut accepted = Vec::new();
    let mut unavailable = 0;
    for i in 0..30 {
        let header = signer()
            .sign_at("GET", "/me", b"", &format!("down-{i}"), NOW)
            .unwrap();
        // A liveness guard, not a speed check: the store's own timeout
        // answers in 100 ms.
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            send(&router, request_with_header("GET", "/me", &header, b"")),
        )
        .await
        .expect("an answer, not a hang");
        match answer.status {
            StatusCode::OK => accepted.push(header),
            _ => {
                assert_eq!(answer.code(), "replay_store_unavailable", "{}", answer.json);
                unavailable += 1;
            }
        }
    }
    assert!(
        unavailable > 0,
        "no request's entries were on the stopped node"
    );
    // Accepted while a node was down, still refused as replays.
    for header in &accepted {
        let again = send(&router, request_with_header("GET", "/me", header, b"")).await;
        assert_ne!(again.status, StatusCode::OK, "accepted twice");
    }
    let last_request = Instant::now();

    assert!(cluster.resume(1), "restart the node");
    assert!(cluster.wait_until_ok(), "the cluster heals");
    // The node came back empty: the store's watch sees its new run_id and
    // writes every epoch past the second it served and the node's start
    // plus 4 s, on the layer's clock as the store reads it (the time of
    // its last request and the real time since: this test's clock stood
    // still meanwhile). Requests signed later are served.
    common::redis::wait_until_restart_seen(&[&store]).await;
    let later = last_request.elapsed().as_secs() + 5;
    clock.advance(later);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    loop {
        i += 1;
        let answer = send(
            &router,
            signed("GET", "/me", b"", &format!("after-{i}"), NOW + later),
        )
        .await;
        if answer.status == StatusCode::OK {
            // And every node serves: twenty fresh requests in a row.
            for j in 0..20 {
                let answer = send(
                    &router,
                    signed("GET", "/me", b"", &format!("healed-{j}"), NOW + later),
                )
                .await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the node came back",
            answer.code()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A cluster node restarted (here without its data; from a snapshot the
/// same applies) is seen by every store's watch, through a connection of
/// its own to each primary: each raises every epoch past the second it
/// served, so a request accepted before the restart is refused by both
/// instances, whichever node held its entries, and one signed after is
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_restart_is_seen_by_the_watch_of_every_instance() {
    let Some(_) = cluster_urls(common::test_name!()) else {
        return;
    };
    let mut cluster = OwnCluster::start("watch").expect("start a cluster of the test's own");
    let prefix = prefix();
    let (store_a, store_b) = (
        store(&cluster.urls(), &prefix).await,
        store(&cluster.urls(), &prefix).await,
    );
    let clock = ManualClock::new(NOW);
    let a = app(layer_with(store_a.clone(), true).with_clock(clock.clone()));
    let b = app(layer_with(store_b.clone(), true).with_clock(clock.clone()));
    // Requests whose entries fall on every node.
    let headers: Vec<String> = (0..30)
        .map(|i| {
            signer()
                .sign_at("GET", "/me", b"", &format!("before-{i}"), NOW)
                .unwrap()
        })
        .collect();
    for header in &headers {
        let answer = send(&a, request_with_header("GET", "/me", header, b"")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    // Both serve: each store knows the layer's clock from its requests
    // (one that has served none writes the system clock's time).
    let served = send(&b, signed("GET", "/me", b"", "b-before", NOW)).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.json);

    cluster.stop(1);
    assert!(cluster.resume(1), "restart the node");
    assert!(cluster.wait_until_ok(), "the cluster heals");
    common::redis::wait_until_restart_seen(&[&store_a, &store_b]).await;
    // The watches fence through Redis's start plus 4 s on the layer's
    // clock, on the restarted node (a client ahead may have been served by
    // an instance whose watch is gone), 5 with the seconds rounded down.
    clock.advance(5);
    for instance in [&a, &b] {
        for header in &headers {
            let answer = send(instance, request_with_header("GET", "/me", header, b"")).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
        }
    }
    for i in 0..30 {
        let fresh = send(
            &b,
            signed("GET", "/me", b"", &format!("after-{i}"), NOW + 5),
        )
        .await;
        assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.json);
    }
}
