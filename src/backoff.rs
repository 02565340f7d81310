//! The one retry backoff: delivery to Kafka (`sink`), the state store (`worker::checkpoint`) and
//! the Schema Registry (`codec::fetch`) wait the same capped, doubling steps between attempts.

use std::time::Duration;

/// Capped exponential backoff between attempts: 100 ms, doubling, at most 5 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(5);

    /// The wait before the next attempt (each one twice the last, up to [`Backoff::MAX`]).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}
