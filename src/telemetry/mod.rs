//! Telemetry: the metrics registry, the `/metrics` `/healthz` `/readyz` endpoint, and logs.

pub mod escape;
pub mod http;
pub mod metrics;

pub use metrics::metrics;

use crate::config::{LogFormat, TelemetrySettings};

/// Starts tracing with the configured format and filter (`RUST_LOG` overrides the filter).
pub fn init_logs(settings: &TelemetrySettings) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.fmt_fields(escape::fields()).try_init(),
    };
}
