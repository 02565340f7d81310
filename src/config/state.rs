//! `[state]` and `[redis]`: where customer state lives, and how it is cached and kept.

use super::*;
use serde::Deserialize;
use std::time::Duration;

/// Which state store backs the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// Redis (or Redis Cluster): durable, shared by all instances.
    Redis,
    /// In process (dashmap): for the demo and tests; lost on exit.
    Memory,
}

/// Where per-customer state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// `redis` or `memory`.
    pub backend: StateBackend,
    /// Most customers kept in the in-process cache before clean entries are evicted.
    pub cache_max_customers: usize,
    /// Added to the longest feature window to give every Redis key's TTL.
    #[serde(with = "humantime_serde")]
    pub ttl_margin: Duration,
    /// How long a worker keeps applied state in its cache before a checkpoint writes its dirty
    /// customers to the store and stores (at-least-once) or commits in one transaction
    /// (exactly-once) the offsets. A crash replays about this much input (see below); in exactly-once mode
    /// outputs become visible at each checkpoint, so it bounds their latency too: there a
    /// checkpoint starts early by what the last ones took to write (at most half the interval),
    /// so outputs are committed about one interval after their batch. Default `1s`: a
    /// customer touched many times in an interval is written once, and the checkpoint is written
    /// beside the worker's next batches. `0s` checkpoints after every batch (exactly-once outputs
    /// visible sooner, at about twice the Redis writes; see the README's "Checkpoints"). A crash
    /// replays up to two intervals and a checkpoint's write (one interval runs while the last
    /// one's checkpoint is written).
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Dirty customers (and, in exactly-once mode, outputs pending their transaction) per worker
    /// that make a checkpoint before its interval ends: the bound on the memory an interval
    /// holds. Default 50,000.
    pub checkpoint_max_dirty: usize,
    /// The format customer state is written in: `8` (default, the tiles packed) or `7` (what
    /// releases from before format 8 read). Every format is read whatever this says. Set `7`
    /// for the first step of an upgrade from a release that does not read format 8, while a
    /// rollback to it must stay possible; `8` once every instance runs a release that reads it
    /// (the README's "State in Redis").
    pub write_format: u8,
}

impl Default for StateSettings {
    fn default() -> Self {
        Self {
            backend: StateBackend::Redis,
            cache_max_customers: 500_000,
            ttl_margin: Duration::from_secs(24 * 3600),
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_max_dirty: 50_000,
            write_format: crate::state::STATE_FORMAT,
        }
    }
}

/// Redis connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port/db` or `rediss://` for TLS. For a cluster, any node.
    pub url: String,
    /// Use the Redis Cluster protocol.
    pub cluster: bool,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password; set through `NBO_REDIS__PASSWORD`.
    pub password: Option<Secret>,
    /// Timeout of one Redis round trip before it counts as failed and is retried.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        }
    }
}
