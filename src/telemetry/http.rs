//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (process alive), `/readyz`
//! (consuming, dependencies answering).

use axum::{http::StatusCode, routing::get, Router};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Readiness shared between the pipeline and the endpoint: the pipeline's own flag (consuming)
/// and a count of the dependencies failing right now, each held by the worker retrying it (its
/// state store calls, its deliveries to the broker, Schema Registry fetches). One worker
/// recovering drops only its own hold, so it cannot hide another worker still failing.
#[derive(Debug, Default, Clone)]
pub struct Health {
    ready: Arc<AtomicBool>,
    /// Dependencies currently failing and being retried: per worker at most one state store
    /// call and one delivery, and Schema Registry fetches.
    failing: Arc<AtomicUsize>,
}

/// Held while a state store call, a delivery or a Schema Registry fetch fails and is retried:
/// `/readyz` answers 503 until every one is dropped.
#[derive(Debug)]
pub struct DependencyFailing(Health);

impl Drop for DependencyFailing {
    fn drop(&mut self) {
        self.0.failing.fetch_sub(1, Ordering::Relaxed);
        self.0.publish();
    }
}

impl Health {
    /// Marks the pipeline ready or not: consuming.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        self.publish();
    }

    /// Whether the pipeline is consuming (what [`Health::serving`] needs besides no dependency
    /// failing).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the Schema Registry as failing (a batch waits for a writer schema) until the guard
    /// is dropped.
    pub fn registry_failing(&self) -> DependencyFailing {
        self.dependency_failing()
    }

    /// Marks a worker's state store as failing until the guard is dropped.
    pub fn state_failing(&self) -> DependencyFailing {
        self.dependency_failing()
    }

    /// Marks a delivery as failing until the guard is dropped.
    pub fn delivery_failing(&self) -> DependencyFailing {
        self.dependency_failing()
    }

    fn dependency_failing(&self) -> DependencyFailing {
        self.failing.fetch_add(1, Ordering::Relaxed);
        self.publish();
        DependencyFailing(self.clone())
    }

    /// What `/readyz` answers and `nbo_ready` shows: consuming, and no dependency failing.
    pub fn serving(&self) -> bool {
        self.is_ready() && self.failing.load(Ordering::Relaxed) == 0
    }

    fn publish(&self) {
        super::metrics()
            .ready
            .set(if self.serving() { 1.0 } else { 0.0 });
    }
}

/// Binds `listen` and serves until the process ends. Returns the bound address (port 0 picks one).
pub async fn serve(listen: &str, health: Health) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(|| async { super::metrics::render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move {
                    if health.serving() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_recovering_does_not_hide_another_still_failing() {
        let health = Health::default();
        health.set_ready(true);
        assert!(health.serving());
        let first = health.state_failing();
        let second = health.state_failing();
        assert!(!health.serving());
        drop(first);
        assert!(!health.serving(), "the second worker still fails");
        drop(second);
        assert!(health.serving());
        let delivery = health.delivery_failing();
        health.set_ready(true);
        assert!(!health.serving(), "a failing delivery keeps it unready");
        drop(delivery);
        health.set_ready(false);
        assert!(!health.serving(), "not consuming");
    }
}
