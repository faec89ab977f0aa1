//! What the layer tells operators: one `tracing` span per verification,
//! and, with the `metrics` feature, counters, a histogram and a gauge
//! through the `metrics` facade (the application picks the exporter).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `armor_psk_accepted_total` | counter | `key_id` if opted in |
//! | `armor_psk_rejected_total` | counter | `reason` (the rejection code); `key_id` if opted in |
//! | `armor_psk_verification_seconds` | histogram | none |
//! | `armor_psk_replay_store_entries` | gauge | none (stores that can tell) |
//!
//! Key ids are not labels by default: anyone can send any key id, so they
//! would make the label set unbounded.

use tracing::Span;
use tracing::field::Empty;

use crate::protocol::identity::Identity;
use crate::protocol::rejection::Rejection;
use crate::replay::ReplayStore;

/// The span and clock of one verification.
#[derive(Debug)]
pub(crate) struct Observation {
    span: Span,
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl Observation {
    /// Opens the span `armor_psk.verify` with empty `key_id` and `outcome`
    /// fields: the service records the key id on the span it is handed as
    /// soon as the header parsed, [`finish`](Self::finish) the outcome.
    /// Neither the secret nor the signature is ever a field.
    pub(crate) fn start() -> Self {
        Self {
            span: tracing::info_span!("armor_psk.verify", key_id = Empty, outcome = Empty),
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }

    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records the outcome on the span and in the metrics (the key id as a
    /// label if `key_id_label`, the replay store's size as a gauge).
    pub(crate) fn finish(
        &self,
        outcome: Result<&Identity, &Rejection>,
        key_id_label: bool,
        replay: &dyn ReplayStore,
    ) {
        let (code, key_id) = match outcome {
            Ok(identity) => ("accepted", Some(identity.key_id())),
            Err(rejection) => (rejection.code(), rejection.key_id()),
        };
        if !self.span.is_disabled() {
            self.span.record("outcome", code);
        }
        if let Err(rejection) = outcome {
            log_rejection(rejection);
        }
        #[cfg(feature = "metrics")]
        {
            let key_id = key_id.filter(|_| key_id_label).map(str::to_owned);
            let counter = match (outcome.is_ok(), key_id) {
                (true, None) => metrics::counter!("armor_psk_accepted_total"),
                (true, Some(key_id)) => {
                    metrics::counter!("armor_psk_accepted_total", "key_id" => key_id)
                }
                (false, None) => metrics::counter!("armor_psk_rejected_total", "reason" => code),
                (false, Some(key_id)) => metrics::counter!(
                    "armor_psk_rejected_total", "reason" => code, "key_id" => key_id
                ),
            };
            counter.increment(1);
            metrics::histogram!("armor_psk_verification_seconds")
                .record(self.start.elapsed().as_secs_f64());
            if let Some(entries) = replay.len_hint() {
                metrics::gauge!("armor_psk_replay_store_entries").set(entries as f64);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (key_id, key_id_label, replay);
    }
}

/// One log line per refused request: the key id (at most
/// [`MAX_KEY_ID_LEN`](crate::protocol::MAX_KEY_ID_LEN) bytes, or `-`) and the reason;
/// a warning for the server's own failures (503).
fn log_rejection(rejection: &Rejection) {
    let key_id = rejection.key_id().unwrap_or("-");
    let reason = rejection.code();
    if rejection.status().is_server_error() {
        tracing::warn!(key_id, reason, "ARMOR-PSK request refused");
    } else {
        tracing::info!(key_id, reason, "ARMOR-PSK request refused");
    }
}

/// Registers the descriptions and units of the crate's metrics with the
/// installed recorder; call it once, after installing the exporter.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_counter!(
        "armor_psk_accepted_total",
        Unit::Count,
        "ARMOR-PSK requests that verified and reached the service"
    );
    metrics::describe_counter!(
        "armor_psk_rejected_total",
        Unit::Count,
        "ARMOR-PSK requests refused, by reason (the rejection code)"
    );
    metrics::describe_histogram!(
        "armor_psk_verification_seconds",
        Unit::Seconds,
        "Time from a request's arrival at the layer to its verdict, body included"
    );
    metrics::describe_gauge!(
        "armor_psk_replay_store_entries",
        Unit::Count,
        "Entries held by the replay store (stores that can tell)"
    );
}
