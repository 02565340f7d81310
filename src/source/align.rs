//! Event-time alignment of the co-partitioned inputs: **where the order of a customer's events
//! across topics is decided.**
//!
//! Kafka orders records within a partition only. Partition p of every input topic holds the
//! same customers (the inputs are co-partitioned, which the assignment checks), and one worker
//! applies them, so the order in which the records of the partition group p reach the worker is
//! the order in which a customer's profile, payments, clicks and complaints are applied. Fetch
//! timing alone would decide it: after downtime or in a backfill every topic has a backlog, and
//! a customer's activity could be decided before the older profile that carries their consent.
//!
//! So the poll loop buffers each topic-partition's records and releases, per group, always the
//! buffered head with the smallest record timestamp (ties: the topic's rank, profiles first,
//! then arrival), as Kafka Streams does for a task's partitions. A topic-partition with nothing
//! buffered might hold an older record not fetched yet: while it is behind its end (or not
//! fetched yet), the group waits for it. The records it waits for may sit in librdkafka's queue
//! behind thousands of others, so the wait runs out only when the consumer has delivered
//! nothing at all for `kafka.max_idle` (the broker is not sending them), or after
//! [`HARD_BOUND`] × `kafka.max_idle` in any case; the group then goes on and the records released
//! meanwhile are counted as unaligned. A topic-partition at its end (the live tail) holds
//! nothing older, and is not waited for. The order within a topic-partition is always
//! kept. A group whose buffer reaches `kafka.align_max_buffered` records releases its oldest
//! head without waiting, so memory stays bounded however skewed the topics are.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// However busy the consumer, a group waits at most this many times `kafka.max_idle`.
pub const HARD_BOUND: u32 = 30;

/// How a record was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// In timestamp order across the group's topics.
    Aligned,
    /// While a topic-partition behind its end had nothing buffered and was waited out.
    Waited,
    /// Without waiting, because the group's buffer was full.
    Full,
}

/// What the aligner needs to know of a topic-partition it has nothing buffered for.
pub trait Ends {
    /// Whether topic `rank`'s partition `partition` may hold records at or past `next` (the
    /// offset after the last one received; `None` before any) that have not been received yet.
    fn behind(&mut self, rank: usize, partition: i32, next: Option<i64>) -> bool;
}

/// One partition group: per topic rank, the buffered records with their timestamps.
struct Group<R> {
    queues: Vec<VecDeque<(i64, R)>>,
    next: Vec<Option<i64>>,
    buffered: usize,
    waiting_since: Option<Instant>,
}

/// The buffered heads of every partition group; see the module docs.
pub struct Aligner<R> {
    topics: usize,
    max_idle: Duration,
    max_buffered: usize,
    groups: BTreeMap<i32, Group<R>>,
    buffered: usize,
}

impl<R> Aligner<R> {
    /// An aligner over `topics` input topics (ranks `0..topics`, lowest first on equal
    /// timestamps), waiting at most `max_idle` for a topic-partition behind its end and holding
    /// at most `max_buffered` records per group.
    pub fn new(topics: usize, max_idle: Duration, max_buffered: usize) -> Self {
        Self {
            topics,
            max_idle,
            max_buffered: max_buffered.max(1),
            groups: BTreeMap::new(),
            buffered: 0,
        }
    }

    /// Buffers record `record` of topic `rank`, partition `partition`, at `offset` with record
    /// timestamp `timestamp` (ms). Returns whether the topic-partition had nothing buffered: only
    /// then can the group release more than before (a group stops releasing at an empty queue;
    /// a wait that runs out is found at the next release or linger tick).
    pub fn push(
        &mut self,
        rank: usize,
        partition: i32,
        offset: i64,
        timestamp: i64,
        record: R,
    ) -> bool {
        let topics = self.topics;
        let group = self.groups.entry(partition).or_insert_with(|| Group {
            queues: (0..topics).map(|_| VecDeque::new()).collect(),
            next: vec![None; topics],
            buffered: 0,
            waiting_since: None,
        });
        let was_empty = group.queues[rank].is_empty();
        group.queues[rank].push_back((timestamp, record));
        group.next[rank] = Some(offset + 1);
        group.buffered += 1;
        self.buffered += 1;
        was_empty
    }

    /// Records buffered in every group.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Forgets everything (a rebalance: the records are fetched again from the committed
    /// offsets, as the poll loop's partial batches are).
    pub fn clear(&mut self) {
        self.groups.clear();
        self.buffered = 0;
    }

    /// Releases what group `partition` can release now, in order, to `out`; `quiet_since` is
    /// when the consumer last delivered a record.
    pub fn release(
        &mut self,
        partition: i32,
        now: Instant,
        quiet_since: Instant,
        ends: &mut impl Ends,
        out: &mut impl FnMut(R, Release),
    ) {
        let Some(group) = self.groups.get_mut(&partition) else {
            return;
        };
        let released = release_group(
            group,
            partition,
            (now, quiet_since),
            self.max_idle,
            self.max_buffered,
            ends,
            out,
        );
        self.buffered -= released;
    }

    /// Releases what every group can release now (the poll loop's linger tick: a wait that
    /// has run out releases without a new record arriving).
    pub fn release_all(
        &mut self,
        now: Instant,
        quiet_since: Instant,
        ends: &mut impl Ends,
        out: &mut impl FnMut(R, Release),
    ) {
        let partitions: Vec<i32> = self
            .groups
            .iter()
            .filter(|(_, g)| g.buffered > 0)
            .map(|(p, _)| *p)
            .collect();
        for p in partitions {
            self.release(p, now, quiet_since, ends, out);
        }
    }
}

/// Releases from one group; returns how many records.
fn release_group<R>(
    group: &mut Group<R>,
    partition: i32,
    (now, quiet_since): (Instant, Instant),
    max_idle: Duration,
    max_buffered: usize,
    ends: &mut impl Ends,
    out: &mut impl FnMut(R, Release),
) -> usize {
    let mut released = 0;
    // Whether an empty topic-partition is behind its end: asked once per empty queue, then
    // only of a queue this call empties (nothing arrives meanwhile).
    let mut blocked = (0..group.queues.len())
        .any(|r| group.queues[r].is_empty() && ends.behind(r, partition, group.next[r]));
    loop {
        // The head with the smallest timestamp; on a tie the lowest rank.
        let Some(rank) = (0..group.queues.len())
            .filter_map(|r| group.queues[r].front().map(|(ts, _)| (*ts, r)))
            .min()
            .map(|(_, r)| r)
        else {
            group.waiting_since = None;
            break;
        };
        let how = if !blocked {
            group.waiting_since = None;
            Release::Aligned
        } else if group.buffered >= max_buffered {
            Release::Full
        } else {
            let since = *group.waiting_since.get_or_insert(now);
            let quiet = now.saturating_duration_since(since.max(quiet_since));
            let waited = now.saturating_duration_since(since);
            if quiet < max_idle && waited < max_idle * HARD_BOUND {
                break;
            }
            Release::Waited
        };
        let Some((_, record)) = group.queues[rank].pop_front() else {
            break;
        };
        if !blocked && group.queues[rank].is_empty() {
            blocked = ends.behind(rank, partition, group.next[rank]);
        }
        group.buffered -= 1;
        released += 1;
        out(record, how);
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Topic-partitions (rank, partition) behind their end.
    #[derive(Default)]
    struct Behind(HashSet<(usize, i32)>);

    impl Ends for Behind {
        fn behind(&mut self, rank: usize, partition: i32, _: Option<i64>) -> bool {
            self.0.contains(&(rank, partition))
        }
    }

    /// Releases at `now`, the consumer having been quiet since `quiet`.
    fn drain(
        a: &mut Aligner<&'static str>,
        quiet: Instant,
        now: Instant,
        ends: &mut Behind,
    ) -> Vec<(&'static str, Release)> {
        let mut out = Vec::new();
        a.release_all(now, quiet, ends, &mut |r, how| out.push((r, how)));
        out
    }

    #[test]
    fn heads_are_released_oldest_first_across_topics_keeping_each_topics_order() {
        let mut a = Aligner::new(2, Duration::from_millis(50), 100);
        let t0 = Instant::now();
        // Activity (rank 1) fetched before the older profile (rank 0).
        a.push(1, 0, 10, 2_000, "pay@2000");
        a.push(
            1,
            0,
            11,
            1_500,
            "pay@1500 (out of order in its own partition)",
        );
        a.push(0, 0, 5, 1_000, "profile@1000");
        a.push(0, 0, 6, 2_000, "profile@2000");
        let out = drain(&mut a, t0, t0, &mut Behind::default());
        let order: Vec<_> = out.iter().map(|(r, _)| *r).collect();
        assert_eq!(
            order,
            [
                "profile@1000",
                "profile@2000",
                "pay@2000",
                "pay@1500 (out of order in its own partition)"
            ],
            "timestamp order across topics, profiles first on a tie, a partition's own order kept"
        );
        assert!(out.iter().all(|(_, how)| *how == Release::Aligned));
        assert_eq!(a.buffered(), 0);
    }

    #[test]
    fn an_empty_partition_behind_its_end_is_waited_for_up_to_the_bound() {
        let mut a = Aligner::new(2, Duration::from_millis(50), 100);
        let t0 = Instant::now();
        let mut ends = Behind(HashSet::from([(0, 3)]));
        a.push(1, 3, 0, 5_000, "pay");
        assert!(
            drain(&mut a, t0, t0, &mut ends).is_empty(),
            "the profile may come"
        );
        // The profile arrives within the bound: it goes first.
        a.push(0, 3, 0, 1_000, "profile");
        ends.0.clear();
        let out = drain(&mut a, t0, t0 + Duration::from_millis(10), &mut ends);
        assert_eq!(
            out,
            [("profile", Release::Aligned), ("pay", Release::Aligned)]
        );
        // Behind again, nothing comes: after the bound the group goes on, counted.
        ends.0.insert((0, 3));
        a.push(1, 3, 1, 6_000, "pay2");
        let t1 = t0 + Duration::from_millis(100);
        assert!(drain(&mut a, t0, t1, &mut ends).is_empty());
        assert!(drain(&mut a, t0, t1 + Duration::from_millis(49), &mut ends).is_empty());
        let out = drain(&mut a, t0, t1 + Duration::from_millis(50), &mut ends);
        assert_eq!(out, [("pay2", Release::Waited)]);
    }

    #[test]
    fn a_busy_consumer_keeps_the_wait_going_up_to_the_hard_bound() {
        let idle = Duration::from_millis(10);
        let mut a = Aligner::new(2, idle, 100);
        let t0 = Instant::now();
        let mut ends = Behind(HashSet::from([(0, 0)]));
        a.push(1, 0, 0, 5, "pay");
        // At each look, the consumer delivered a record 1 ms before.
        let mut look = |a: &mut Aligner<&'static str>, at: Duration| {
            let now = t0 + at;
            drain(a, now - Duration::from_millis(1), now, &mut ends)
        };
        assert!(look(&mut a, Duration::from_millis(1)).is_empty());
        assert!(look(&mut a, idle * (HARD_BOUND / 2)).is_empty());
        assert!(
            look(&mut a, idle * HARD_BOUND - Duration::from_millis(2)).is_empty(),
            "records still arrive: the awaited one may be among them"
        );
        let out = look(&mut a, idle * HARD_BOUND + Duration::from_millis(2));
        assert_eq!(out, [("pay", Release::Waited)]);
    }

    #[test]
    fn a_partition_at_its_end_is_not_waited_for_and_groups_are_independent() {
        let mut a = Aligner::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let mut ends = Behind(HashSet::from([(0, 1)]));
        a.push(2, 0, 0, 1, "group 0");
        a.push(2, 1, 0, 1, "group 1");
        let out = drain(&mut a, t0, t0, &mut ends);
        assert_eq!(
            out,
            [("group 0", Release::Aligned)],
            "group 1 waits for its profile"
        );
        assert_eq!(a.buffered(), 1);
        a.clear();
        assert_eq!(a.buffered(), 0);
        assert!(drain(&mut a, t0, t0, &mut ends).is_empty());
    }

    #[test]
    fn a_full_group_releases_without_waiting() {
        let mut a = Aligner::new(2, Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let mut ends = Behind(HashSet::from([(0, 0)]));
        a.push(1, 0, 0, 1, "a");
        assert!(drain(&mut a, t0, t0, &mut ends).is_empty());
        a.push(1, 0, 1, 2, "b");
        a.push(1, 0, 2, 3, "c");
        let out = drain(&mut a, t0, t0, &mut ends);
        assert_eq!(out, [("a", Release::Full), ("b", Release::Full)]);
        assert_eq!(a.buffered(), 1, "below the bound it waits again");
    }
}
