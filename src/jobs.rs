//! Background jobs for the views: anything that can take more than a millisecond (colouring a
//! heatmap, a rollout, a display downscale, an overlay, an export, a directory scan) runs on a
//! small pool of threads instead of the UI thread. No egui, no candle here: a job is a closure
//! the view hands over.
//!
//! Each kind of result a view waits for has a [`Slot`]. Submitting to a slot supersedes what
//! it was computing: an older job that has not started is skipped, one that has started can
//! stop early by asking its [`Stale`] check, and its result is dropped. A finished job puts
//! its result in the slot's one-place mailbox (the newest replaces an unread older one) and
//! calls `repaint`, so the UI wakes up and [`Slot::poll`]s it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::worker::Repaint;

/// A closure for the pool.
type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a thread, at most.
const QUEUE: usize = 64;

/// The pool: a few named threads taking jobs from one bounded queue. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    tx: SyncSender<Job>,
    repaint: Repaint,
}

impl Jobs {
    /// Starts `threads` threads (at least one); finished jobs call `repaint`.
    pub fn new(threads: usize, repaint: Repaint) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("view-jobs-{i}"))
                .spawn(move || run(&rx))?;
        }
        Ok(Self { tx, repaint })
    }
}

/// A pool thread: one job at a time until the pool is dropped, below the UI thread's priority.
fn run(rx: &Mutex<Receiver<Job>>) {
    crate::runtime::lower_thread_priority();
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        job();
    }
}

/// Asked by a running job: true once a newer job was submitted to its slot (the result would be
/// dropped, so a long job may stop).
pub type Stale<'a> = &'a dyn Fn() -> bool;

/// Where a finished job leaves its result (`None` if it panicked), tagged with its
/// generation: one place, the newest result replacing an unread older one.
type Mailbox<T> = Arc<Mutex<Option<(u64, Option<T>)>>>;

/// The results of one kind of job, newest request first.
pub struct Slot<T> {
    jobs: Jobs,
    /// The generation of the newest submitted job.
    current: Arc<AtomicU64>,
    mailbox: Mailbox<T>,
    /// A job the full queue could not take yet (sent on the next [`Slot::poll`]).
    deferred: Option<Job>,
    /// The generation whose result is awaited, if any.
    pending: Option<u64>,
}

impl<T: Send + 'static> Slot<T> {
    /// An empty slot on `jobs`' threads.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            jobs: jobs.clone(),
            current: Arc::new(AtomicU64::new(0)),
            mailbox: Arc::new(Mutex::new(None)),
            deferred: None,
            pending: None,
        }
    }

    /// Computes `f` in the background, superseding the slot's earlier jobs. `f` gets a check it
    /// may ask to stop early; what it returns after that is dropped.
    pub fn submit(&mut self, f: impl FnOnce(Stale) -> T + Send + 'static) {
        let generation = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.pending = Some(generation);
        let current = self.current.clone();
        let mailbox = self.mailbox.clone();
        let repaint = self.jobs.repaint.clone();
        let job: Job = Box::new(move || {
            let stale = || current.load(Ordering::SeqCst) != generation;
            if stale() {
                return;
            }
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&stale))).ok();
            if stale() {
                return;
            }
            if let Ok(mut slot) = mailbox.lock() {
                *slot = Some((generation, result));
            }
            repaint();
        });
        self.deferred = None; // superseded before it was even queued
        self.send(job);
    }

    fn send(&mut self, job: Job) {
        match self.jobs.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => self.deferred = Some(job),
            // The pool is gone (shutdown): nothing will come.
            Err(TrySendError::Disconnected(_)) => self.pending = None,
        }
    }

    /// The newest job's result, once, when it is ready (never blocks). A job that panicked
    /// (a bug; the panic is printed on stderr) ends the wait with no result.
    pub fn poll(&mut self) -> Option<T> {
        if let Some(job) = self.deferred.take() {
            self.send(job);
        }
        let (generation, value) = self.mailbox.lock().ok()?.take()?;
        if Some(generation) != self.pending {
            return None; // an older job's result that slipped in: stale
        }
        self.pending = None;
        value
    }

    /// True while a submitted job's result has not been taken by [`Slot::poll`].
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Forgets the submitted job: its result, if it comes, is dropped.
    pub fn cancel(&mut self) {
        self.current.fetch_add(1, Ordering::SeqCst);
        self.pending = None;
        self.deferred = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use super::*;

    fn pool() -> (Jobs, Arc<AtomicUsize>) {
        let repaints = Arc::new(AtomicUsize::new(0));
        let r = repaints.clone();
        let jobs = Jobs::new(
            2,
            Arc::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .expect("pool");
        (jobs, repaints)
    }

    fn wait<T: Send + 'static>(slot: &mut Slot<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = slot.poll() {
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no result");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Only the newest job's result comes back, even when older ones finish later.
    #[test]
    fn the_newest_request_wins() {
        let (jobs, repaints) = pool();
        let mut slot = Slot::new(&jobs);
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        slot.submit(move |stale| {
            s.fetch_add(1, Ordering::SeqCst);
            // A long job: runs until superseded.
            while !stale() {
                std::thread::sleep(Duration::from_millis(1));
            }
            1
        });
        while started.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        slot.submit(|_| 2);
        assert!(slot.is_pending());
        assert_eq!(wait(&mut slot), 2);
        assert!(!slot.is_pending());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(slot.poll(), None, "the superseded job's result never shows");
        assert!(repaints.load(Ordering::SeqCst) >= 1);
    }

    /// A cancelled job's result is dropped; a panicking job ends the wait and leaves the pool
    /// working.
    #[test]
    fn cancel_and_panics() {
        let (jobs, _) = pool();
        let mut slot: Slot<u32> = Slot::new(&jobs);
        slot.submit(|_| panic!("a bug in a job"));
        let start = Instant::now();
        while slot.is_pending() {
            assert_eq!(slot.poll(), None);
            assert!(start.elapsed() < Duration::from_secs(10), "still waiting");
            std::thread::sleep(Duration::from_millis(1));
        }
        slot.submit(|_| 7);
        assert_eq!(wait(&mut slot), 7);
        slot.submit(|_| 8);
        slot.cancel();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(slot.poll(), None);
    }
}
