//! Assignment generations and the batches in progress under them: what lets a revoke wait for the
//! work of the partitions it takes away.
//!
//! Every revoke and assign starts a new generation. A worker starts a batch only if the batch was
//! polled under the current generation, and registers it as in progress under the same lock; a
//! rebalance bumps the generation under that lock and then waits (bounded) until no batch is in
//! progress. So when a revoke returns, every batch of the old assignment has finished — its state
//! flushed, its outputs produced, its offsets stored or committed — and the next owner of the
//! partitions never races a write of ours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    in_progress: usize,
}

/// The current generation and the count of batches in progress.
#[derive(Debug, Default)]
pub struct Assignment {
    inner: Mutex<Inner>,
    idle: Condvar,
    /// The generation, readable without the lock (the poll loop reads it per record).
    current: AtomicU64,
}

/// A batch in progress; dropping it (at the end of the batch, or on an error) releases it.
#[derive(Debug)]
pub struct InProgress<'a>(&'a Assignment);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.in_progress -= 1;
        if inner.in_progress == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Assignment {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    /// Starts a batch polled under `generation`, or `None` if the assignment changed since (the
    /// batch is discarded: its records are read again by whoever owns the partitions now).
    pub fn begin(&self, generation: u64) -> Option<InProgress<'_>> {
        let mut inner = self.lock();
        if inner.generation != generation {
            return None;
        }
        inner.in_progress += 1;
        Some(InProgress(self))
    }

    /// Starts a new generation, then waits up to `timeout` for the batches in progress to finish.
    /// Returns false if some were still running at the deadline (they then finish on their own;
    /// the caller logs it: their partitions' next owner may replay their records).
    pub fn rebalance(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        inner.generation += 1;
        self.current.store(inner.generation, Ordering::Release);
        while inner.in_progress > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self
                .idle
                .wait_timeout(inner, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_rebalance_waits_for_the_batch_in_progress_and_stale_batches_do_not_start() {
        let a = Arc::new(Assignment::default());
        let g = a.generation();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a2, f2) = (a.clone(), finished.clone());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let guard = a2.begin(g).expect("current generation");
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            f2.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(guard);
        });
        started_rx.recv().unwrap();
        assert!(a.rebalance(Duration::from_secs(5)));
        assert!(
            finished.load(std::sync::atomic::Ordering::SeqCst),
            "the revoke returned only after the batch finished"
        );
        worker.join().unwrap();
        assert!(
            a.begin(g).is_none(),
            "a batch of the old generation is discarded"
        );
        assert!(a.begin(g + 1).is_some());
    }

    #[test]
    fn the_wait_is_bounded() {
        let a = Assignment::default();
        let _stuck = a.begin(0).unwrap();
        let t = Instant::now();
        assert!(!a.rebalance(Duration::from_millis(100)));
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
