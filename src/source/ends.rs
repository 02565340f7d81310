//! Where each input topic-partition ends, for the event-time alignment ([`super::align`]):
//! whether a topic-partition with nothing buffered may still hold records not fetched yet.
//!
//! The end is librdkafka's cached high watermark, which every fetch response updates (no broker
//! round trip). The position is the offset after the last record received; before the first
//! record of an assignment it is the committed offset, read once when the assignment changes (no
//! committed offset: the partition is read from its start, `auto.offset.reset = earliest`).

use super::align::Ends;
use super::Consumer;
use rdkafka::consumer::Consumer as _;
use rdkafka::Offset;
use rustc_hash::FxHashMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

/// How long a high watermark read is trusted before it is read again. The end only grows, so a
/// stale reading can only make a topic-partition look caught up a little early: at the live
/// tail, where nothing older can come anyway.
const FRESH: Duration = Duration::from_millis(20);

/// The input topics' ends and starting positions.
pub struct Watermarks {
    /// Topic names by rank, NUL-terminated for librdkafka.
    topics: Vec<CString>,
    /// By (rank, partition): the low and high watermarks and when they were read.
    high: FxHashMap<(usize, i32), (i64, i64, Instant)>,
    /// By (rank, partition): the committed offset at the assignment (the first position).
    committed: FxHashMap<(usize, i32), i64>,
}

impl Watermarks {
    /// Over the input topics `topics`, by rank.
    pub fn new(topics: &[String]) -> Self {
        Self {
            topics: topics
                .iter()
                .map(|t| CString::new(t.as_str()).unwrap_or_default())
                .collect(),
            high: FxHashMap::default(),
            committed: FxHashMap::default(),
        }
    }

    /// Reads the committed offsets of the new assignment (a broker round trip, once per
    /// rebalance); forgets the old assignment's readings.
    pub fn reset(&mut self, consumer: &Consumer) {
        self.high.clear();
        self.committed.clear();
        let Ok(assigned) = consumer.assignment() else {
            return;
        };
        let committed = match consumer.committed_offsets(assigned, Duration::from_secs(5)) {
            Ok(c) => c,
            Err(e) => {
                // Without them a partition is waited for once, up to `kafka.max_idle`.
                tracing::warn!(error = %e, "alignment: committed offsets not read");
                return;
            }
        };
        for e in committed.elements() {
            let Some(rank) = self
                .topics
                .iter()
                .position(|t| t.to_bytes() == e.topic().as_bytes())
            else {
                continue;
            };
            if let Offset::Offset(o) = e.offset() {
                self.committed.insert((rank, e.partition()), o);
            }
        }
    }

    /// The view the aligner asks, over `consumer` now.
    pub fn view<'a>(&'a mut self, consumer: &'a Consumer) -> View<'a> {
        View {
            marks: self,
            consumer,
            now: Instant::now(),
        }
    }
}

/// [`Watermarks`] over a consumer, at one instant.
pub struct View<'a> {
    marks: &'a mut Watermarks,
    consumer: &'a Consumer,
    now: Instant,
}

impl View<'_> {
    /// The cached (low, high) watermarks of a topic-partition; `None` before its first fetch.
    fn read(&self, rank: usize, partition: i32) -> Option<(i64, i64)> {
        let topic = self.marks.topics.get(rank)?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client pointer is valid while `self.consumer` lives; `topic` is a
        // NUL-terminated string that outlives the call; librdkafka only writes the two
        // out-parameters, under its own lock, and takes no ownership of anything.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some((low, high))
    }
}

impl Ends for View<'_> {
    fn behind(&mut self, rank: usize, partition: i32, next: Option<i64>) -> bool {
        let key = (rank, partition);
        let position = next.or_else(|| self.marks.committed.get(&key).copied());
        let cached = self.marks.high.get(&key).copied();
        if let (Some(p), Some((_, high, _))) = (position, cached) {
            if p < high {
                return true; // the end only grows: still behind
            }
        }
        let now = self.now;
        let (low, high) =
            match cached.filter(|(_, _, at)| now.saturating_duration_since(*at) < FRESH) {
                Some((low, high, _)) => (low, high),
                None => match self.read(rank, partition) {
                    Some((low, high)) => {
                        self.marks.high.insert(key, (low, high, now));
                        (low, high)
                    }
                    // Not fetched yet: it may hold anything.
                    None => return true,
                },
            };
        match position {
            Some(p) => p < high,
            // Never committed: read from the start (`auto.offset.reset = earliest`); the low
            // watermark is known only with statistics on, so an unknown one counts as 0.
            None => high > low.max(0),
        }
    }
}
