//! The `metrics` feature: what the layer counts, measures and labels.
#![cfg(feature = "metrics")]

use crate::common;

use common::{NOW, app, harness, request_with_header, send, signed};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A metric: name, labels, value.
type Metric = (String, Vec<(String, String)>, DebugValue);

/// Sends an accepted request, its replay, and an unsigned one through a
/// layer, under a recorder of this thread's own; returns the snapshot as
/// (name, labels, value) triples.
fn run(label_key_ids: bool) -> Vec<Metric> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let router = app(harness().layer.with_key_id_metric_label(label_key_ids));
            assert_eq!(
                send(&router, signed("GET", "/me", b"", "n-1", NOW))
                    .await
                    .status,
                200
            );
            let replay = send(&router, signed("GET", "/me", b"", "n-1", NOW)).await;
            assert_eq!(replay.code(), "replayed_request");
            let unsigned = send(&router, request_with_header("GET", "/me", "Basic x", b"")).await;
            assert_eq!(unsigned.code(), "malformed_authorization");
        });
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.key().name().to_owned(), labels, value)
        })
        .collect()
}

fn counter(snapshot: &[Metric], name: &str, reason: Option<&str>) -> u64 {
    snapshot
        .iter()
        .filter(|(n, labels, _)| {
            n == name && reason.is_none_or(|r| labels.iter().any(|(k, v)| k == "reason" && v == r))
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

#[test]
fn accepted_and_rejected_requests_are_counted_and_timed_without_key_ids() {
    let snapshot = run(false);
    assert_eq!(counter(&snapshot, "armor_psk_accepted_total", None), 1);
    assert_eq!(
        counter(
            &snapshot,
            "armor_psk_rejected_total",
            Some("replayed_request")
        ),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            "armor_psk_rejected_total",
            Some("malformed_authorization")
        ),
        1
    );
    let samples = snapshot
        .iter()
        .find_map(|(name, _, value)| match value {
            DebugValue::Histogram(samples) if name == "armor_psk_verification_seconds" => {
                Some(samples.len())
            }
            _ => None,
        })
        .expect("verification time histogram");
    assert_eq!(samples, 3);
    let entries = snapshot
        .iter()
        .find_map(|(name, _, value)| match value {
            DebugValue::Gauge(g) if name == "armor_psk_replay_store_entries" => {
                Some(g.into_inner())
            }
            _ => None,
        })
        .expect("replay store gauge");
    assert_eq!(entries, 2.0, "the accepted request's two entries");
    assert!(
        snapshot
            .iter()
            .all(|(_, labels, _)| labels.iter().all(|(k, _)| k != "key_id")),
        "no key id labels by default"
    );
}

#[test]
fn key_id_labels_are_an_opt_in() {
    let snapshot = run(true);
    let labelled = snapshot
        .iter()
        .filter(|(name, labels, _)| {
            name.starts_with("armor_psk_")
                && labels
                    .iter()
                    .any(|(k, v)| k == "key_id" && v == common::KEY_ID)
        })
        .count();
    assert_eq!(
        labelled, 2,
        "accepted and replayed carry the key id; the malformed one has none"
    );
}
