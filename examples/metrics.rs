//! The layer's metrics through the `metrics` facade: three requests (one
//! accepted, one replayed, one unsigned) go through the layer, then the
//! recorder's snapshot is printed. A real service installs an exporter
//! (Prometheus, StatsD, ...) instead of this debugging recorder.
//!
//! ```text
//! cargo run --features metrics --example metrics
//! ```

use armor_psk::{ArmorPskLayer, Signer, describe_metrics, keys::MemoryKeyStore};
use axum::Router;
use axum::body::Body;
use http::Request;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install()?;
    describe_metrics();

    let keys = MemoryKeyStore::new().with_key("key-1", "secret-1");
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(ArmorPskLayer::new(keys));
    let header = Signer::new("key-1", "secret-1")?.sign("GET", "/me", b"");
    for authorization in [Some(&header), Some(&header), None] {
        let mut request = Request::get("/me");
        if let Some(value) = authorization {
            request = request.header("authorization", value.as_str());
        }
        let response = app.clone().oneshot(request.body(Body::empty())?).await?;
        println!("request: {}", response.status());
    }

    println!("\nmetrics:");
    for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let value = match value {
            DebugValue::Counter(n) => n.to_string(),
            DebugValue::Gauge(g) => g.to_string(),
            DebugValue::Histogram(samples) => format!(
                "{} samples, max {:.1} µs",
                samples.len(),
                samples.iter().map(|s| s.into_inner()).fold(0.0, f64::max) * 1e6
            ),
        };
        println!(
            "  {} {{{}}} = {value}  ({}{})",
            key.key().name(),
            labels.join(", "),
            description.map(|d| d.to_string()).unwrap_or_default(),
            unit.map(|u| format!(", {}", u.as_str()))
                .unwrap_or_default(),
        );
    }
    Ok(())
}
