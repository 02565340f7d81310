//! The in-process cache of the customers a worker's partitions hold: each customer's state and
//! its Redis key, evicted least recently used between batches, emptied when the assignment changes.

use crate::customer::CustomerState;
use crate::state::CustomerKey;
use crate::worker::Decoded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A cached customer: its Redis key (the HMAC is computed once, on a miss) and its state.
#[derive(Debug, Clone)]
pub struct Cached {
    /// Keyed hash of the customer id, for the store.
    pub key: CustomerKey,
    /// The operator's state, shared with the snapshot of a checkpoint that has not encoded it
    /// yet (copy on write: a batch that changes it meanwhile changes a copy,
    /// `Arc::make_mut`), so that taking a checkpoint copies no state.
    pub state: std::sync::Arc<CustomerState>,
    /// Changed since the last flush.
    pub dirty: bool,
    /// The public feature values the hash holds, as far as this process knows, by slot (None:
    /// unknown, rewrite the hash whole): what it last wrote, or, loaded, what the stored state
    /// says (`snapshot::hash_at_load`).
    pub published: Option<Vec<Option<crate::features::FeatureValue>>>,
    /// When the hash was last written whole. It is rewritten whole every [`FULL_REWRITE`], so a
    /// hash lost in Redis (a failover, an expiry) heals, whichever process holds the customer.
    pub full_written: Option<Instant>,
    /// Loaded with no stored state and not written since: its hash does not exist either, so its
    /// first write sets the hash without deleting it first. A hash never outlives its state:
    /// both are written in one transaction, the state's TTL renewed at every write and the
    /// hash's at whole writes only, and state must not be evicted (Redis' `maxmemory-policy`).
    pub hash_absent: bool,
    /// The customer's partition (the same on every co-partitioned input topic).
    pub partition: i32,
    /// Number of the last batch that touched it (for eviction).
    pub last_used: u64,
    /// The size of its stored state when last written (0: not yet): the next encoding starts
    /// with a buffer a little larger.
    pub state_len: usize,
    /// The worker's checkpoint that last took its write (0: none). Until that checkpoint is
    /// durable (`Shard::durable`) the customer stays cached: reloaded from Redis it would miss
    /// the write still on its way.
    pub written_by: u64,
}

impl Cached {
    /// A customer just loaded (or new) from `partition`.
    pub fn loaded(key: CustomerKey, state: CustomerState, partition: i32) -> Self {
        Self {
            key,
            state: std::sync::Arc::new(state),
            dirty: false,
            published: None,
            full_written: None,
            hash_absent: false,
            partition,
            last_used: 0,
            state_len: 0,
            written_by: 0,
        }
    }
}

/// One worker's part of the cache: the customers of the partitions it owns. Only its worker
/// touches it during a batch, so revokes and evictions, which that worker applies between batches,
/// never remove a customer a batch is using.
#[derive(Debug, Default)]
pub struct Shard {
    /// The customers. Locked by its worker for each CPU step of a batch (never across an await):
    /// per-event lookups are then plain hash-map lookups.
    cache: std::sync::Mutex<Cache>,
    /// Customers cached (for the metric, readable without the lock).
    len: std::sync::atomic::AtomicUsize,
    /// The assignment generation the cached customers belong to.
    generation: AtomicU64,
    /// Batches processed.
    pub(super) batches: AtomicU64,
    /// The last of its worker's checkpoints that is durable (or given up); see
    /// [`Cached::written_by`].
    pub(super) durable: AtomicU64,
}

impl Shard {
    /// The shard's cache, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Customers cached.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no customer is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Before a batch of `generation`: a shard filled under an earlier assignment is emptied. Its
    /// customers were flushed by the checkpoint the rebalance asked for, so nothing is lost; if
    /// that checkpoint was given up (the rebalance stopped waiting), what they held past the last
    /// checkpoint is replayed by the partitions' next owner. They reload from Redis.
    pub(super) fn enter_generation(&self, generation: u64) {
        if self.generation.swap(generation, Ordering::Relaxed) != generation {
            let mut cache = self.lock();
            cache.clear();
            self.len.store(0, Ordering::Relaxed);
        }
    }

    /// Evicts the least recently used clean customers down to 90% of `max`. Dirty customers stay
    /// until their checkpoint (their state exists nowhere else), and customers whose checkpoint
    /// is still being written until it is durable (Redis does not hold their state yet);
    /// `state.checkpoint_max_dirty` bounds how many there are.
    pub(super) fn evict(&self, max: usize) {
        let durable = self.durable.load(Ordering::Relaxed);
        let mut cache = self.lock();
        if cache.len() > max {
            let held = |c: &Cached| c.dirty || c.written_by > durable;
            let mut ages: Vec<u64> = cache
                .values()
                .filter(|c| !held(c))
                .map(|c| c.last_used)
                .collect();
            let drop = (cache.len() - max * 9 / 10).min(ages.len());
            if drop > 0 {
                let (_, threshold, _) = ages.select_nth_unstable(drop - 1);
                let threshold = *threshold;
                cache.retain(|_, c| held(c) || c.last_used > threshold);
            }
        }
        self.len.store(cache.len(), Ordering::Relaxed);
    }
}

/// The in-process cache of customers owned by this instance's partitions, by customer id (the raw
/// id stays in process memory; only the keyed hash reaches Redis). Keys are inline strings: an id
/// of up to 24 bytes sits in the table slot itself, so a lookup compares it without following a
/// pointer to the heap (a cache miss per event with `String` keys: ~5% of a batch).
pub type Cache =
    std::collections::HashMap<compact_str::CompactString, Cached, rustc_hash::FxBuildHasher>;

/// Events per step of [`each_prefetched`]: the customers of the next step are loaded while this
/// one is worked on (far enough ahead for main memory to answer, near enough for what it sent to
/// still be in the core's cache).
const PREFETCH_AHEAD: usize = 64;

/// Calls `f` for every event in order, with the customers of the next [`PREFETCH_AHEAD`] events
/// already on their way from memory. A batch's customers are scattered over the whole cache
/// (often hundreds of MB), so without this each event waits for main memory several times in a
/// row (`cargo bench --bench operator`). Changes nothing but timing.
pub fn each_prefetched(
    cache: &mut Cache,
    decoded: &[Decoded],
    mut f: impl FnMut(&mut Cache, &Decoded),
) {
    // Two steps ahead: a customer's entry and its state (the state is behind a pointer, see
    // `Cached::state`); one step ahead: the state's features and applied offsets, whose
    // addresses are read from the state prefetched a step earlier.
    let step = |i: usize| {
        let from = (i * PREFETCH_AHEAD).min(decoded.len());
        &decoded[from..(from + PREFETCH_AHEAD).min(decoded.len())]
    };
    let steps = decoded.len().div_ceil(PREFETCH_AHEAD);
    prefetch_states(cache, step(0));
    prefetch_states(cache, step(1));
    prefetch_contents(cache, step(0));
    for i in 0..steps {
        prefetch_states(cache, step(i + 2));
        prefetch_contents(cache, step(i + 1));
        for d in step(i) {
            f(cache, d);
        }
    }
}

/// Asks the CPU to start loading the cached customers of `decoded` and their states: the
/// lookups here are independent of one another, so their cache misses overlap.
fn prefetch_states(cache: &Cache, decoded: &[Decoded]) {
    for d in decoded {
        if let Some(c) = cache.get(d.event.customer_id()) {
            // The state's scalar fields (newest event time, retire time, erasure), which every
            // event reads first, and the headers of its vectors.
            prefetch_slice(std::slice::from_ref(&*c.state));
        }
    }
}

/// Asks the CPU to start loading the features and applied offsets of the states of `decoded`
/// (prefetched a step earlier by [`prefetch_states`]).
fn prefetch_contents(cache: &Cache, decoded: &[Decoded]) {
    for d in decoded {
        if let Some(c) = cache.get(d.event.customer_id()) {
            prefetch_slice(&c.state.features);
            prefetch_slice(&c.state.applied);
        }
    }
}

/// Prefetches the cache lines of a slice (a hint: no effect on what the program computes).
#[inline]
fn prefetch_slice<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = items.as_ptr().cast::<i8>();
        let bytes = std::mem::size_of_val(items);
        for offset in (0..bytes).step_by(64) {
            // SAFETY: a prefetch never faults and writes nothing; the address is inside the
            // live slice.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_with(n: usize) -> Shard {
        let shard = Shard::default();
        for i in 0..n {
            let mut c = Cached::loaded(
                CustomerKey(format!("k{i}")),
                CustomerState::default(),
                (i % 4) as i32,
            );
            c.last_used = i as u64;
            shard.lock().insert(format!("C{i}").into(), c);
        }
        shard
    }

    /// Applies `f` to customers C0..C`n` of `shard`.
    fn each_of_the_first(shard: &Shard, n: usize, f: impl Fn(&mut Cached)) {
        let mut cache = shard.lock();
        for i in 0..n {
            f(cache.get_mut(format!("C{i}").as_str()).unwrap());
        }
    }

    #[test]
    fn eviction_keeps_the_most_recently_used() {
        let shard = shard_with(100);
        shard.evict(50);
        assert_eq!(shard.lock().len(), 45);
        assert!(shard.lock().contains_key("C99") && !shard.lock().contains_key("C0"));
        shard.evict(50);
        assert_eq!(shard.lock().len(), 45, "under the bound: nothing evicted");
    }

    #[test]
    fn eviction_never_drops_a_dirty_customer() {
        let shard = shard_with(100);
        each_of_the_first(&shard, 60, |c| c.dirty = true);
        shard.evict(50);
        let cache = shard.lock();
        assert!((0..60).all(|i| cache.contains_key(format!("C{i}").as_str())));
        assert_eq!(
            cache.len(),
            60,
            "only clean customers go, and all of them here"
        );
    }

    #[test]
    fn eviction_keeps_customers_whose_checkpoint_is_still_being_written() {
        let shard = shard_with(100);
        each_of_the_first(&shard, 60, |c| c.written_by = 3);
        shard.durable.store(2, Ordering::Relaxed);
        shard.evict(50);
        assert_eq!(
            shard.lock().len(),
            60,
            "checkpoint 3 is not durable yet: its customers stay, the others go"
        );
        shard.durable.store(3, Ordering::Relaxed);
        shard.evict(50);
        assert_eq!(shard.lock().len(), 45, "durable now: evicted by age");
        assert!(shard.lock().contains_key("C59") && !shard.lock().contains_key("C0"));
    }

    #[test]
    fn a_new_assignment_empties_the_cache_before_the_next_batch() {
        let shard = shard_with(8);
        shard.enter_generation(0);
        assert_eq!(shard.lock().len(), 8, "same generation: kept");
        shard.enter_generation(1);
        assert!(
            shard.lock().is_empty(),
            "new generation: nothing cached from before is used"
        );
    }
}
