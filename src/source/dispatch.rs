//! Hands polled batches to the workers' bounded queues without blocking the poll loop for long.
//!
//! A worker whose queue is full (its state store or producer is slow or down) cannot take the
//! next batch. A short wait for room is the normal backpressure of catching up, and the poll
//! loop waits, up to `kafka.pause_after`. Waiting longer would be a risk: a consumer that is not
//! polled for `max.poll.interval.ms` is dropped from its group, so a long Redis outage would
//! become a rebalance. So past that bound the dispatcher keeps the batch in hand and **pauses**
//! the partitions the worker owns. The poll loop goes on calling `recv()`, which serves rebalance callbacks and keeps the
//! group membership, while the paused partitions deliver nothing new. Each linger tick offers the
//! held batch again; once the queue takes it, the partitions are resumed. librdkafka discards
//! what it had prefetched for a paused partition and fetches again from the position after the
//! last record handed to us, so pausing loses and repeats nothing.
//!
//! Memory stays bounded: per worker, `queue_batches` queued batches, one held batch and the
//! partial batch being filled (records already in flight when the pause took effect).
//!
//! Pausing is kept for stalls longer than `pause_after` because it is not free: librdkafka drops
//! what it had prefetched for the paused partitions and fetches it again on resume, from the
//! middle of a record batch. (Tansu 0.6 answers a fetch from the middle of a batch with the
//! *next* batch, skipping the rest of that one: on that broker a pause loses records, which is
//! why the tests that pause run on a broker that fetches correctly.)

use super::batch::Batch;
use crate::telemetry::metrics;
use rdkafka::TopicPartitionList;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};

/// The consumer operations the dispatcher needs (a trait so that unit tests need no broker).
pub trait Pausable {
    /// The partitions assigned to this instance now.
    fn assigned(&self) -> TopicPartitionList;
    /// Stops fetching `partitions`.
    fn pause(&self, partitions: &TopicPartitionList);
    /// Fetches `partitions` again from the position after the last record delivered.
    fn resume(&self, partitions: &TopicPartitionList);
}

impl<C: rdkafka::consumer::ConsumerContext + 'static> Pausable
    for rdkafka::consumer::StreamConsumer<C>
{
    fn assigned(&self) -> TopicPartitionList {
        use rdkafka::consumer::Consumer;
        self.assignment().unwrap_or_default()
    }

    fn pause(&self, partitions: &TopicPartitionList) {
        if let Err(e) = rdkafka::consumer::Consumer::pause(self, partitions) {
            tracing::warn!(error = %e, "pausing partitions failed; the queue bounds memory regardless");
        }
    }

    fn resume(&self, partitions: &TopicPartitionList) {
        // Fails only for partitions no longer assigned, which need no resume.
        if let Err(e) = rdkafka::consumer::Consumer::resume(self, partitions) {
            tracing::debug!(error = %e, "resuming partitions failed (revoked meanwhile)");
        }
    }
}

/// The queues were closed: the workers have stopped.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// The workers' queues, with at most one held batch and one paused partition set per worker.
pub struct Dispatcher {
    queues: Vec<mpsc::Sender<Batch>>,
    held: Vec<Option<Batch>>,
    paused: Vec<Option<TopicPartitionList>>,
    pause_after: Duration,
}

impl Dispatcher {
    /// A dispatcher over the workers' queues; worker `w` owns the partitions `p` with
    /// `p mod queues.len() == w` of every input topic. A full queue is waited on for up to
    /// `pause_after` before its worker's partitions are paused.
    pub fn new(queues: Vec<mpsc::Sender<Batch>>, pause_after: Duration) -> Self {
        let n = queues.len();
        Self {
            queues,
            held: (0..n).map(|_| None).collect(),
            paused: (0..n).map(|_| None).collect(),
            pause_after,
        }
    }

    /// Whether worker `w` has a batch waiting for queue room (its partitions are paused).
    pub fn is_held(&self, w: usize) -> bool {
        self.held[w].is_some()
    }

    /// Hands `batch` to worker `w`, waiting up to `pause_after` for room; past that, holds it
    /// and pauses the worker's partitions. The caller sends nothing more to `w` while it is held
    /// (see [`is_held`]).
    ///
    /// [`is_held`]: Dispatcher::is_held
    pub async fn send(
        &mut self,
        consumer: &impl Pausable,
        w: usize,
        batch: Batch,
    ) -> Result<(), Closed> {
        debug_assert!(self.held[w].is_none(), "a second batch for a held worker");
        let queue = self.queues[w].clone();
        match tokio::time::timeout(self.pause_after, queue.reserve()).await {
            Ok(Ok(permit)) => {
                permit.send(batch);
                return Ok(());
            }
            Ok(Err(_)) => return Err(Closed),
            Err(_) => {}
        }
        self.held[w] = Some(batch);
        self.pause(consumer, w);
        Ok(())
    }

    /// Offers every held batch again; resumes the partitions of each worker that took it.
    pub fn retry(&mut self, consumer: &impl Pausable) -> Result<(), Closed> {
        for w in 0..self.queues.len() {
            let Some(batch) = self.held[w].take() else {
                continue;
            };
            match self.queues[w].try_send(batch) {
                Ok(()) => self.resume(consumer, w),
                Err(TrySendError::Closed(_)) => return Err(Closed),
                Err(TrySendError::Full(batch)) => self.held[w] = Some(batch),
            }
        }
        Ok(())
    }

    /// After a rebalance: held batches belong to the old assignment (a worker would discard them)
    /// and are dropped; paused partitions are resumed (a partition assigned again must not stay
    /// paused). A worker whose queue is still full is paused again by its next batch.
    pub fn reset(&mut self, consumer: &impl Pausable) {
        for w in 0..self.queues.len() {
            self.held[w] = None;
            self.resume(consumer, w);
        }
    }

    /// For shutdown: when `drain`, waits until each held batch is queued (otherwise drops them:
    /// after a worker failure nothing more is processed); then returns the queues, for the caller
    /// to send the partial batches and drop the queues so that the workers finish and stop.
    pub async fn into_queues(mut self, drain: bool) -> Vec<mpsc::Sender<Batch>> {
        for w in 0..self.queues.len() {
            if let Some(batch) = self.held[w].take() {
                if drain {
                    let _ = self.queues[w].send(batch).await;
                }
            }
        }
        metrics().paused_partitions.set(0);
        self.queues
    }

    fn pause(&mut self, consumer: &impl Pausable, w: usize) {
        let n = self.queues.len() as i32;
        let mut mine = TopicPartitionList::new();
        for e in consumer.assigned().elements() {
            if e.partition().rem_euclid(n) as usize == w {
                mine.add_partition(e.topic(), e.partition());
            }
        }
        consumer.pause(&mine);
        tracing::info!(
            worker = w,
            partitions = mine.count(),
            "worker queue full: its partitions are paused until it catches up"
        );
        let m = metrics();
        m.pauses.inc();
        m.paused_partitions.add(mine.count() as i64);
        self.paused[w] = Some(mine);
    }

    fn resume(&mut self, consumer: &impl Pausable, w: usize) {
        if let Some(partitions) = self.paused[w].take() {
            consumer.resume(&partitions);
            metrics().paused_partitions.sub(partitions.count() as i64);
            tracing::info!(
                worker = w,
                partitions = partitions.count(),
                "worker caught up: its partitions are resumed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct FakeConsumer {
        assigned: Vec<(String, i32)>,
        paused: RefCell<Vec<(String, i32)>>,
    }

    fn pairs(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
        tpl.elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect()
    }

    impl Pausable for FakeConsumer {
        fn assigned(&self) -> TopicPartitionList {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &self.assigned {
                tpl.add_partition(t, *p);
            }
            tpl
        }
        fn pause(&self, partitions: &TopicPartitionList) {
            self.paused.borrow_mut().extend(pairs(partitions));
        }
        fn resume(&self, partitions: &TopicPartitionList) {
            let gone = pairs(partitions);
            self.paused.borrow_mut().retain(|p| !gone.contains(p));
        }
    }

    fn batch(generation: u64) -> Batch {
        Batch {
            generation,
            ..Batch::default()
        }
    }

    fn consumer() -> FakeConsumer {
        let mut c = FakeConsumer::default();
        for t in ["a", "b"] {
            for p in 0..4 {
                c.assigned.push((t.to_string(), p));
            }
        }
        c
    }

    const PAUSE_AFTER: Duration = Duration::from_millis(30);

    #[tokio::test]
    async fn a_full_queue_pauses_only_its_workers_partitions_and_a_drained_one_resumes_them() {
        let c = consumer();
        let (tx0, mut rx0) = mpsc::channel(1);
        let (tx1, _rx1) = mpsc::channel(1);
        let mut d = Dispatcher::new(vec![tx0, tx1], PAUSE_AFTER);
        d.send(&c, 0, batch(1)).await.unwrap();
        assert!(!d.is_held(0) && c.paused.borrow().is_empty());
        d.send(&c, 0, batch(2)).await.unwrap();
        assert!(d.is_held(0));
        let mut paused = c.paused.borrow().clone();
        paused.sort();
        let want: Vec<(String, i32)> = ["a", "b"]
            .iter()
            .flat_map(|t| [(t.to_string(), 0), (t.to_string(), 2)])
            .collect();
        assert_eq!(
            paused, want,
            "worker 0 owns the even partitions of every topic"
        );

        d.retry(&c).unwrap();
        assert!(d.is_held(0), "still full: still held");
        assert_eq!(rx0.try_recv().unwrap().generation, 1);
        d.retry(&c).unwrap();
        assert!(!d.is_held(0) && c.paused.borrow().is_empty(), "resumed");
        assert_eq!(
            rx0.try_recv().unwrap().generation,
            2,
            "the held batch, in order"
        );
    }

    #[tokio::test]
    async fn a_short_wait_for_room_pauses_nothing() {
        let c = consumer();
        let (tx0, mut rx0) = mpsc::channel(1);
        let mut d = Dispatcher::new(vec![tx0], Duration::from_secs(5));
        d.send(&c, 0, batch(1)).await.unwrap();
        let worker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let first = rx0.recv().await.unwrap().generation;
            let second = rx0.recv().await.unwrap().generation;
            (first, second)
        });
        d.send(&c, 0, batch(2)).await.unwrap();
        assert!(!d.is_held(0) && c.paused.borrow().is_empty());
        assert_eq!(worker.await.unwrap(), (1, 2));
    }

    #[tokio::test]
    async fn a_rebalance_drops_held_batches_and_resumes() {
        let c = consumer();
        let (tx0, mut rx0) = mpsc::channel(1);
        let mut d = Dispatcher::new(vec![tx0], PAUSE_AFTER);
        d.send(&c, 0, batch(1)).await.unwrap();
        d.send(&c, 0, batch(1)).await.unwrap();
        assert_eq!(c.paused.borrow().len(), 8);
        d.reset(&c);
        assert!(!d.is_held(0) && c.paused.borrow().is_empty());
        assert_eq!(rx0.try_recv().unwrap().generation, 1);
        assert!(rx0.try_recv().is_err(), "the held batch was dropped");
    }

    #[tokio::test]
    async fn closed_queues_are_reported() {
        let c = consumer();
        let (tx0, rx0) = mpsc::channel(1);
        drop(rx0);
        let mut d = Dispatcher::new(vec![tx0], PAUSE_AFTER);
        assert_eq!(d.send(&c, 0, batch(1)).await, Err(Closed));
    }
}
