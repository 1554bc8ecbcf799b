//! Operator metrics in CloudWatch's embedded metric format: one JSON line on standard output
//! per figure, which Lambda's log delivery turns into a metric in namespace `Keyward` (no API
//! call, no extra permission). The template's alarms watch them.

use serde_json::{Map, Value, json};

/// The metrics namespace.
pub const NAMESPACE: &str = "Keyward";

/// Writes one EMF record: `metrics` (name, value, unit) under `dimensions` (name, value).
pub fn emit(metrics: &[(&str, f64, &str)], dimensions: &[(&str, &str)]) {
    println!("{}", record(metrics, dimensions, now_ms()));
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The wall clock in Unix milliseconds.
#[must_use]
pub fn now_ms_i64() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

/// The EMF JSON of one record at `at_ms`.
#[must_use]
pub fn record(metrics: &[(&str, f64, &str)], dimensions: &[(&str, &str)], at_ms: u128) -> Value {
    let mut root = Map::new();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter()
                    .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).to_owned(), json!(v));
    }
    for (name, value, _) in metrics {
        root.insert((*name).to_owned(), json!(value));
    }
    Value::Object(root)
}

/// Verifications the edge reported, by outcome (`usage`).
pub fn verifications(outcome: &str, count: u64) {
    #[allow(clippy::cast_precision_loss)] // counts per batch are far below 2^52
    emit(
        &[("Verifications", count as f64, "Count")],
        &[("Outcome", outcome)],
    );
}

/// How long a stream record waited before `sync` sent it to the edge.
pub fn sync_lag(lag_ms: i64) {
    #[allow(clippy::cast_precision_loss)]
    emit(&[("SyncLag", lag_ms.max(0) as f64, "Milliseconds")], &[]);
}

/// One webhook attempt.
pub fn webhook_attempt(delivered: bool, latency_ms: u64) {
    let result = if delivered { "delivered" } else { "failed" };
    #[allow(clippy::cast_precision_loss)]
    emit(
        &[
            ("WebhookAttempts", 1.0, "Count"),
            ("WebhookLatency", latency_ms as f64, "Milliseconds"),
        ],
        &[("Result", result)],
    );
}

/// An endpoint switched off at the end of its retry schedule.
pub fn webhook_disabled() {
    emit(&[("WebhookEndpointsDisabled", 1.0, "Count")], &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_its_metrics_and_dimensions_and_carries_their_values() {
        let r = record(
            &[("Verifications", 3.0, "Count")],
            &[("Outcome", "valid")],
            5,
        );
        assert_eq!(
            r,
            json!({
                "_aws": {"Timestamp": 5, "CloudWatchMetrics": [{
                    "Namespace": "Keyward", "Dimensions": [["Outcome"]],
                    "Metrics": [{"Name": "Verifications", "Unit": "Count"}]}]},
                "Outcome": "valid", "Verifications": 3.0,
            })
        );
    }
}
