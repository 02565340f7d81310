//! Assignment generations and the batches in progress under them: what lets a revoke wait for the
//! work of the partitions it takes away.
//!
//! Every revoke and assign starts a new generation. A worker starts a batch only if the batch was
//! polled under the current generation, and registers it as in progress under the same lock; a
//! worker whose checkpoint interval is open (state applied but not yet flushed, offsets not yet
//! stored or committed) holds a [`Hold`] the same way. A rebalance first closes the generation
//! (no new batch starts), asks every worker for a checkpoint ([`Assignment::requests`]), waits
//! (bounded) until no batch is in progress and no interval is open, and only then starts the new
//! generation. So when a revoke returns, the work of the old assignment is durable — state
//! flushed, outputs produced, offsets stored or committed — and the next owner of the partitions
//! never races a write of ours. Past the bound the generation moves anyway; work still retrying
//! then gives up (it checks the generation before every attempt) and the next owner replays it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    /// Batches in progress plus open checkpoint intervals.
    in_progress: usize,
    /// A rebalance is waiting: no new batch starts under this generation.
    closing: bool,
}

/// The current generation and the count of batches in progress.
#[derive(Debug)]
pub struct Assignment {
    inner: Mutex<Inner>,
    idle: Condvar,
    /// The generation, readable without the lock (the poll loop reads it per record).
    current: AtomicU64,
    /// Checkpoint requests: bumped when a rebalance begins, so that every worker with an open
    /// interval checkpoints now instead of at its interval's end.
    requests: tokio::sync::watch::Sender<u64>,
}

impl Default for Assignment {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            idle: Condvar::new(),
            current: AtomicU64::new(0),
            requests: tokio::sync::watch::channel(0).0,
        }
    }
}

/// An open checkpoint interval's registration (owned, so a worker can keep it across batches);
/// dropping it, once the interval's checkpoint is taken or given up, releases it.
#[derive(Debug)]
pub struct Hold(std::sync::Arc<Assignment>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A batch in progress; dropping it (at the end of the batch, or on an error) releases it.
#[derive(Debug)]
pub struct InProgress<'a>(&'a Assignment);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.release();
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

    fn release(&self) {
        let mut inner = self.lock();
        inner.in_progress -= 1;
        if inner.in_progress == 0 {
            self.idle.notify_all();
        }
    }

    /// Registers work under `generation` if it is current and (unless `closing_too`) no
    /// rebalance is waiting.
    fn enter(&self, generation: u64, closing_too: bool) -> bool {
        let mut inner = self.lock();
        if inner.generation != generation || (inner.closing && !closing_too) {
            return false;
        }
        inner.in_progress += 1;
        true
    }

    /// Starts a batch polled under `generation`, or `None` if the assignment changed since or a
    /// rebalance is waiting (the batch is discarded: its records are read again, from the offsets
    /// the rebalance's checkpoint stores, by whoever owns the partitions next).
    pub fn begin(&self, generation: u64) -> Option<InProgress<'_>> {
        self.enter(generation, false).then(|| InProgress(self))
    }

    /// Opens a checkpoint interval under `generation`; `None` if the generation has moved. Called
    /// by a worker inside a batch (which a waiting rebalance also waits for), so it is allowed
    /// while a rebalance waits: the interval is then checkpointed at once, on its request.
    pub fn hold(self: &std::sync::Arc<Self>, generation: u64) -> Option<Hold> {
        self.enter(generation, true).then(|| Hold(self.clone()))
    }

    /// Checkpoint requests, for a worker to wait on: the value changes when a rebalance begins.
    pub fn requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.requests.subscribe()
    }

    /// Closes the current generation and asks the workers for a checkpoint, waits up to
    /// `timeout` for the batches in progress and the open intervals to finish, then starts a new
    /// generation. Returns false if some were still running at the deadline (they then give up
    /// on their own; the caller logs it: their partitions' next owner replays their records).
    pub fn rebalance(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        inner.closing = true;
        self.requests.send_modify(|n| *n += 1);
        let mut finished = true;
        while inner.in_progress > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                finished = false;
                break;
            }
            inner = self
                .idle
                .wait_timeout(inner, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        inner.generation += 1;
        inner.closing = false;
        self.current.store(inner.generation, Ordering::Release);
        finished
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
    fn a_rebalance_asks_for_a_checkpoint_and_waits_for_the_open_interval() {
        let a = Arc::new(Assignment::default());
        let g = a.generation();
        let mut requests = a.requests();
        let hold = a.hold(g).expect("current generation");
        let checkpointed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a2, c2) = (a.clone(), checkpointed.clone());
        let worker = std::thread::spawn(move || {
            // The worker learns of the request, "checkpoints", then closes its interval.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(requests.changed()).unwrap();
            assert!(
                a2.begin(g).is_none(),
                "no new batch starts while a rebalance waits"
            );
            c2.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(hold);
        });
        assert!(a.rebalance(Duration::from_secs(5)));
        assert!(
            checkpointed.load(std::sync::atomic::Ordering::SeqCst),
            "the revoke returned only after the interval's checkpoint"
        );
        worker.join().unwrap();
        assert_eq!(a.generation(), g + 1);
        assert!(
            a.hold(g).is_none(),
            "no interval opens under the old generation"
        );
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
