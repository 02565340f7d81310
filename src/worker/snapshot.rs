//! A dirty customer's write, from the cache to what the state store sends: [`snapshot`] takes
//! it on the worker (the state shared, copy on write), [`Snapshot::encode`] encodes it beside
//! the worker (the state, and the delta of the customer's public feature hash against what the
//! hash holds), and [`Encoded::restore`] gives the cached customer what encoding learned. Also
//! what a loaded customer's hash is known to hold ([`hash_at_load`]). The checkpoint
//! (`checkpoint`) decides when; this module decides what is written.

use super::cache::{Cached, Shard};
use super::checkpoint::WRITE_CHUNK;
use crate::customer::HashWritten;
use crate::operator::Operator;
use crate::state::{StateError, StateWrite};
use crate::telemetry::metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a cached customer's public feature hash is rewritten whole rather than as a delta.
pub const FULL_REWRITE: Duration = Duration::from_secs(600);

/// A dirty customer as a checkpoint took it (`snapshot`, on the worker under the cache's lock):
/// its state, shared with the cache (a batch that changes it meanwhile changes a copy of its
/// own, so the snapshot is what the worker's next batches no longer touch), and what its hash
/// held. The checkpoint's task encodes it into its [`StateWrite`] ([`Snapshot::encode`]), so
/// the worker is held neither for a copy nor for an encoding.
pub struct Snapshot {
    /// The customer's id in the cache, to give it back what encoding learned ([`Encoded`]).
    pub id: compact_str::CompactString,
    key: crate::state::CustomerKey,
    /// The state as the checkpoint took it, shared with the cache until a batch changes it.
    state: Arc<crate::customer::CustomerState>,
    /// What the hash held before this write (taken from the cache until [`Encoded::restore`]).
    published: Option<Vec<Option<crate::features::FeatureValue>>>,
    replace: bool,
    /// The hash does not exist (`Cached::hash_absent`): a whole write need not delete it.
    absent: bool,
    erased: bool,
    /// The state's size when last encoded.
    state_len: usize,
}

/// What encoding a [`Snapshot`] tells its cached customer: what its hash holds after the write,
/// and its state's size.
pub struct Encoded {
    published: Option<Vec<Option<crate::features::FeatureValue>>>,
    state_len: usize,
}

impl Encoded {
    /// Gives the cached customer what encoding its snapshot learned (before the next checkpoint
    /// takes it again).
    pub fn restore(self, cached: &mut Cached) {
        cached.published = self.published;
        cached.state_len = self.state_len;
    }
}

/// Takes `cached`'s snapshot for a checkpoint: decides whether its hash is rewritten whole,
/// records in its state what the hash will hold, and shares the state (no copy: a batch that
/// changes it before the snapshot is encoded changes a copy of its own). Until the snapshot's
/// [`Encoded::restore`], the cache does not know what the hash holds (`published` is `None`);
/// only the next checkpoint reads it, and it waits for this one.
pub fn snapshot(operator: &Operator, cached: &mut Cached, id: &str) -> Snapshot {
    let erased = cached
        .state
        .erased_before
        .is_some_and(|t| cached.state.max_event_time <= t);
    let replace = cached.published.is_none()
        || cached
            .full_written
            .is_none_or(|t| t.elapsed() > FULL_REWRITE);
    if replace {
        cached.full_written = Some(Instant::now());
    }
    // After this write the hash exists (or, erased, is deleted as always).
    let absent = std::mem::take(&mut cached.hash_absent);
    // What the hash holds after this write, recorded in the state written with it, so that a
    // reload can go on with deltas (`hash_at_load`). Erased, the hash is gone.
    // The last snapshot was encoded and dropped (the checkpoint before this one has ended), so
    // this copies nothing.
    debug_assert_eq!(
        Arc::strong_count(&cached.state),
        1,
        "a snapshot outlived its checkpoint"
    );
    Arc::make_mut(&mut cached.state).hash = (!erased).then(|| HashWritten {
        features: operator.features().fingerprint(),
        whole_at: if replace {
            crate::clock::now_ms()
        } else {
            cached.state.hash.map_or(0, |h| h.whole_at)
        },
    });
    Snapshot {
        id: id.into(),
        key: cached.key.clone(),
        state: cached.state.clone(),
        published: cached.published.take(),
        replace,
        absent,
        erased,
        state_len: cached.state_len,
    }
}

impl Snapshot {
    /// The customer's write: its state encoded, and the delta of its public feature hash
    /// against what the hash held (the whole hash when `replace`). The [`Encoded`] goes back
    /// to the cached customer whether or not the state encoded (when it did not, the hash is
    /// as it was).
    pub fn encode(
        self,
        operator: &Operator,
        ttl_secs: u64,
        format: u8,
    ) -> (Result<StateWrite, StateError>, Encoded) {
        // A quarter more than last time and 128 bytes: room for what the batches added (a
        // feature that held no tile and now holds one costs ~20 bytes; a small state grows by
        // far more than a quarter).
        let bytes = match self
            .state
            .to_bytes_as(format, self.state_len + self.state_len / 4 + 128)
        {
            Ok(bytes) => bytes,
            Err(e) => {
                let unchanged = Encoded {
                    published: self.published,
                    state_len: self.state_len,
                };
                return (Err(e), unchanged);
            }
        };
        let now = operator.snapshot(&self.state);
        let names = operator.features().defs();
        let (mut features, mut removed) = (Vec::with_capacity(now.len()), Vec::new());
        for (slot, value) in now.iter().enumerate() {
            let before = self
                .published
                .as_ref()
                .and_then(|p| p.get(slot).and_then(Option::as_ref));
            match value {
                Some(v) if self.replace || before != Some(v) => {
                    features.push((names[slot].name.clone(), v.clone()))
                }
                None if !self.replace && before.is_some() => removed.push(names[slot].name.clone()),
                _ => {}
            }
        }
        // After an erasure the hash is gone: the next write must rebuild it whole.
        let encoded = Encoded {
            published: if self.erased { None } else { Some(now) },
            state_len: bytes.len(),
        };
        let write = StateWrite {
            erased: self.erased,
            key: self.key,
            state: bytes,
            features,
            removed,
            replace: self.replace,
            absent: self.absent,
            updated_at: self.state.max_event_time,
            ttl_secs,
        };
        (Ok(write), encoded)
    }
}

/// The write for one dirty customer, taken and encoded at once: [`snapshot`], then
/// [`Snapshot::encode`] (in this release's state format), given back to `cached`. Public for the
/// allocation bench
/// (`benches/allocations.rs`) and the tests.
pub fn state_write(
    operator: &Operator,
    cached: &mut Cached,
    ttl_secs: u64,
) -> Result<StateWrite, StateError> {
    let (write, encoded) =
        snapshot(operator, cached, "").encode(operator, ttl_secs, crate::state::STATE_FORMAT);
    encoded.restore(cached);
    write
}

/// What a loaded customer's public hash holds, known without reading it, so that its next
/// writes are deltas, as they would have been in the process that wrote it: the stored state's
/// values, when that state was written with the hash under this feature set and release, and
/// the hash was last written whole less than [`FULL_REWRITE`] ago (its next whole write stays
/// due then). Otherwise (longer ago, another feature set or release, a state from before states
/// recorded this, an erased or corrupt one) the first write rewrites the hash whole, with its
/// TTL, as the first write after every load did before states recorded it. The bound is what heals a hash that differs from its state
/// (an expiry, a failover's lost writes, a late write of a partition's earlier owner): it is
/// whole again at the first write ten minutes after its last whole write, wherever that runs.
pub fn hash_at_load(operator: &Operator, cached: &mut Cached) {
    let Some(hash) = cached.state.hash else {
        return;
    };
    let age = crate::clock::now_ms().saturating_sub(hash.whole_at);
    if hash.features != operator.features().fingerprint()
        || !(0..FULL_REWRITE.as_millis() as i64).contains(&age)
    {
        return;
    }
    cached.published = Some(operator.snapshot(&cached.state));
    cached.full_written = Instant::now().checked_sub(Duration::from_millis(age as u64));
}

/// Encodes a checkpoint's snapshots into their writes, beside the worker, then gives the cached
/// customers what encoding learned, under the shard's lock (each still cached: a customer
/// whose write is in flight is not evicted, and a new assignment empties the cache only once
/// this checkpoint has ended). A state that does not encode stays in the cache only, as before.
/// The lock is taken per [`WRITE_CHUNK`] customers, so the worker's next batch waits for one
/// chunk's hand-back at most.
pub(super) fn encode(
    operator: &Operator,
    shard: &Shard,
    snapshots: Vec<Snapshot>,
    ttl_secs: u64,
    format: u8,
) -> Vec<StateWrite> {
    let mut writes = Vec::with_capacity(snapshots.len());
    let mut learned = Vec::with_capacity(snapshots.len());
    for mut snapshot in snapshots {
        let id = std::mem::take(&mut snapshot.id);
        let (write, encoded) = snapshot.encode(operator, ttl_secs, format);
        match write {
            Ok(write) => writes.push(write),
            Err(e) => {
                metrics().state_errors.with_label_values(&["encode"]).inc();
                tracing::error!(error = %e, "customer state does not serialize; it stays in the cache only");
            }
        }
        learned.push((id, encoded));
    }
    let mut learned = learned.into_iter().peekable();
    while learned.peek().is_some() {
        let mut cache = shard.lock();
        for (id, encoded) in learned.by_ref().take(WRITE_CHUNK) {
            if let Some(cached) = cache.get_mut(&id) {
                encoded.restore(cached);
            }
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::customer::CustomerState;
    use crate::operator::BatchStats;
    use crate::state::CustomerKey;
    use std::sync::Arc;

    /// An operator over `features` and no rules.
    fn operator_over(features: crate::features::FeatureSet) -> Operator {
        let rules = crate::rules::RuleSet {
            version: 0,
            offers: vec![],
            alerts: vec![],
        };
        Operator::new(
            Arc::new(features),
            rules,
            &crate::config::OperatorSettings::default(),
            0,
        )
    }

    #[test]
    fn a_snapshot_encodes_the_state_as_taken_while_batches_change_a_copy() {
        use crate::event::{ErasureRequest, Event};
        let op = operator_over(crate::features::spec::load(None).unwrap());
        let mut state = CustomerState::default();
        op.align(&mut state);
        state.max_event_time = 3;
        let mut c = Cached::loaded(CustomerKey("k".into()), state, 0);
        let taken = snapshot(&op, &mut c, "k");
        assert!(
            c.published.is_none(),
            "the snapshot holds what the hash held"
        );
        // A batch applied before the checkpoint's task encodes the snapshot.
        let erase = Event::Erasure(ErasureRequest {
            request_id: "r".into(),
            customer_id: "k".into(),
            requested_at: 5,
        });
        let mut decisions = Vec::new();
        op.apply(
            Arc::make_mut(&mut c.state),
            &erase,
            None,
            &mut decisions,
            &mut BatchStats::default(),
        );
        assert_eq!(
            c.state.erased_before,
            Some(5),
            "the batch changed the cached state"
        );
        let (write, encoded) = taken.encode(&op, 60, crate::state::STATE_FORMAT);
        let write = write.unwrap();
        let stored = CustomerState::from_bytes(&write.state).unwrap();
        assert_eq!(
            stored.erased_before, None,
            "the snapshot is the state as taken"
        );
        assert_eq!(stored.max_event_time, 3);
        assert!(write.replace && !write.erased);
        encoded.restore(&mut c);
        assert!(
            c.published.is_some(),
            "the cache knows what the hash holds again"
        );
        assert_eq!(c.state_len, write.state.len());
        // The next write goes on from the changed state: the erasure deletes the hash.
        assert!(state_write(&op, &mut c, 60).unwrap().erased);
    }

    /// A customer with no stored state has no hash: its first write sets the hash without
    /// deleting it; the next whole write deletes it first, as every whole write of a customer
    /// loaded with a state does.
    #[test]
    fn a_new_customers_first_write_does_not_delete_a_hash_it_cannot_have() {
        let op = operator_over(crate::features::spec::load(None).unwrap());
        let mut state = CustomerState::default();
        op.align(&mut state);
        let mut c = Cached::loaded(CustomerKey("k".into()), state.clone(), 0);
        c.hash_absent = true;
        let first = state_write(&op, &mut c, 60).unwrap();
        assert!(first.replace && first.absent);
        c.full_written = None;
        c.published = None;
        let whole = state_write(&op, &mut c, 60).unwrap();
        assert!(whole.replace && !whole.absent);
        let mut loaded = Cached::loaded(CustomerKey("k".into()), state, 0);
        let first = state_write(&op, &mut loaded, 60).unwrap();
        assert!(first.replace && !first.absent);
    }

    #[test]
    fn the_feature_hash_is_written_whole_then_as_deltas_and_deleted_after_an_erasure() {
        use crate::event::{ErasureRequest, Event};
        let op = operator_over(crate::features::spec::load(None).unwrap());
        let mut state = CustomerState::default();
        op.align(&mut state);
        let mut c = Cached::loaded(CustomerKey("k".into()), state, 0);
        let first = state_write(&op, &mut c, 60).unwrap();
        assert!(first.replace && !first.erased);
        let second = state_write(&op, &mut c, 60).unwrap();
        assert!(
            !second.replace && second.features.is_empty(),
            "nothing changed: empty delta"
        );
        let erase = Event::Erasure(ErasureRequest {
            request_id: "r".into(),
            customer_id: "c".into(),
            requested_at: 5,
        });
        op.apply(
            Arc::make_mut(&mut c.state),
            &erase,
            None,
            &mut Vec::new(),
            &mut BatchStats::default(),
        );
        let third = state_write(&op, &mut c, 60).unwrap();
        assert!(third.erased, "erased: the hash is deleted");
        assert!(c.published.is_none());
        Arc::make_mut(&mut c.state).max_event_time = 10; // activity after the erasure
        let fourth = state_write(&op, &mut c, 60).unwrap();
        assert!(
            fourth.replace && !fourth.erased,
            "rebuilt whole after the erasure"
        );
    }

    /// A customer loaded with a state written under the same feature set, its hash written whole
    /// less than `FULL_REWRITE` ago, writes its hash as a delta; otherwise whole.
    #[test]
    fn a_loaded_customer_writes_a_delta_when_its_hash_is_known() {
        let starter = crate::features::spec::load(None).unwrap();
        let op = operator_over(starter.clone());
        let key = CustomerKey("k".into());
        let mut state = CustomerState::default();
        op.align(&mut state);
        let mut first = Cached::loaded(key.clone(), state, 0);
        hash_at_load(&op, &mut first);
        let written = state_write(&op, &mut first, 60).unwrap();
        assert!(written.replace, "nothing known of the hash: whole");
        let load = |op: &Operator, bytes: &[u8]| {
            let mut state = CustomerState::from_bytes(bytes).unwrap();
            op.align(&mut state);
            let mut cached = Cached::loaded(key.clone(), state, 0);
            hash_at_load(op, &mut cached);
            cached
        };

        // Loaded again (another instance, after a rebalance) under the same features.
        let mut again = load(&op, &written.state);
        let w = state_write(&op, &mut again, 60).unwrap();
        assert!(!w.replace && w.features.is_empty(), "{w:?}");
        assert_eq!(
            again.state.hash, first.state.hash,
            "the whole write's time kept"
        );

        // Its last whole write longer ago than FULL_REWRITE: whole, as it would be if cached.
        let mut old = CustomerState::from_bytes(&written.state).unwrap();
        let hash = old.hash.as_mut().unwrap();
        hash.whole_at -= FULL_REWRITE.as_millis() as i64 + 1;
        let mut stale = load(&op, &old.to_bytes().unwrap());
        assert!(state_write(&op, &mut stale, 60).unwrap().replace);

        // Under another feature set the hash may hold other fields: whole.
        let fewer = operator_over(crate::features::FeatureSet::new(
            starter.defs()[1..].to_vec(),
        ));
        let mut other = load(&fewer, &written.state);
        assert!(state_write(&fewer, &mut other, 60).unwrap().replace);

        // Erased: the hash is gone, and the state says nothing of it.
        let mut erased = load(&op, &written.state);
        let at = erased.state.max_event_time;
        Arc::make_mut(&mut erased.state).erased_before = Some(at);
        let w = state_write(&op, &mut erased, 60).unwrap();
        assert!(w.erased);
        let mut after = load(&op, &w.state);
        assert!(after.state.hash.is_none());
        Arc::make_mut(&mut after.state).erased_before = None;
        assert!(state_write(&op, &mut after, 60).unwrap().replace);
    }
}
