//! `[telemetry]`: logs and the metrics endpoint.

use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Metrics/health endpoint and logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// tracing filter, e.g. `info` or `nbo_stream=debug,rdkafka=warn`.
    pub log_level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            // 9464: the port OpenTelemetry's Prometheus exporter convention uses.
            listen: "0.0.0.0:9464".into(),
            log_format: LogFormat::Human,
            log_level: "info".into(),
        }
    }
}
