//! Worker threads that own the models and their caches. The UI talks to them over bounded
//! channels with plain-data requests and responses; a worker calls the `repaint` callback after
//! each response so the UI wakes up. No egui here.
//!
//! Every worker runs the same loop: it takes all queued requests at once, keeps those worth
//! running (the newest click wins) and handles them in order. A panic while handling one is
//! caught: the worker drops its state (the model and its caches), reports the panic as a
//! `Crashed` response and goes on with the next request.

pub mod sam;
pub mod text;
pub mod train;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// Called by a worker after it sends a response (the app passes `ctx.request_repaint`).
pub type Repaint = Arc<dyn Fn() + Send + Sync>;

/// Capacity of every request and response channel.
pub const CHANNEL_CAPACITY: usize = 32;

/// Why a request could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue is full; try again in a moment.
    #[error("the worker is busy; try again")]
    Busy,
    /// The worker thread has stopped.
    #[error("the worker has stopped")]
    Stopped,
}

impl<T> From<std::sync::mpsc::TrySendError<T>> for SendError {
    fn from(e: std::sync::mpsc::TrySendError<T>) -> Self {
        match e {
            std::sync::mpsc::TrySendError::Full(_) => Self::Busy,
            std::sync::mpsc::TrySendError::Disconnected(_) => Self::Stopped,
        }
    }
}

/// Which long tasks (a load, an encoding) should stop, shared by a worker's handle (the UI
/// thread) and its thread. Each queued long task takes a new generation; the user's Cancel
/// stops every task queued up to then, including one not started yet.
#[derive(Default)]
pub(crate) struct Generations {
    /// The newest generation handed out.
    current: AtomicU64,
    /// The generation current when the user last pressed Cancel.
    cancelled_up_to: AtomicU64,
}

impl Generations {
    /// A new generation, for a long task being queued (it makes older ones pointless).
    pub(crate) fn next(&self) -> u64 {
        self.current.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The newest generation, for a short task being queued.
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::SeqCst)
    }

    /// The user's Cancel: every task queued so far stops.
    pub(crate) fn cancel(&self) {
        self.cancelled_up_to
            .fetch_max(self.current(), Ordering::SeqCst);
    }

    /// True when the user cancelled the task queued at `generation`.
    pub(crate) fn cancelled(&self, generation: u64) -> bool {
        self.cancelled_up_to.load(Ordering::SeqCst) >= generation
    }

    /// Why the task queued at `generation` should stop, if it should: `true` when the user
    /// cancelled it, `false` when a newer long task made it pointless.
    pub(crate) fn stop_reason(&self, generation: u64) -> Option<bool> {
        if self.cancelled(generation) {
            Some(true)
        } else if self.current() != generation {
            Some(false)
        } else {
            None
        }
    }
}

/// What a worker does with its requests.
pub(crate) trait Handler {
    /// What the UI asks.
    type Request;
    /// What a request is doing, for the report of a panic.
    type Task: Copy;

    /// The task `request` stands for.
    fn task(request: &Self::Request) -> Self::Task;

    /// Of all requests queued at once (in order), those worth running.
    fn coalesce(requests: Vec<Self::Request>) -> Vec<Self::Request> {
        requests
    }

    /// Runs one request (sending its responses).
    fn handle(&mut self, request: Self::Request);

    /// Drops everything a panic may have left half-made (the model, its caches): the worker
    /// starts again from nothing.
    fn reset(&mut self);

    /// Tells the UI that `task` panicked with `message` and the worker started again.
    fn report_panic(&mut self, task: Self::Task, message: String);
}

/// The request loop of a worker thread; returns when every sender is gone.
pub(crate) fn run<H: Handler>(mut handler: H, rx: &Receiver<H::Request>) {
    while let Ok(first) = rx.recv() {
        for request in H::coalesce(drain(first, rx)) {
            let task = H::task(&request);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request)));
            if let Err(payload) = outcome {
                handler.reset();
                handler.report_panic(task, panic_message(payload.as_ref()));
            }
        }
    }
}

/// The message a panic was raised with.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Drains every request already queued behind `first`.
fn drain<T>(first: T, rx: &Receiver<T>) -> Vec<T> {
    let mut all = vec![first];
    while let Ok(r) = rx.try_recv() {
        all.push(r);
    }
    all
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{sync_channel, SyncSender};

    use super::*;

    /// Adds numbers to a running total; `0` panics (a stand-in for a bug in a model).
    struct Summer {
        total: u32,
        out: SyncSender<Result<u32, String>>,
    }

    impl Handler for Summer {
        type Request = u32;
        type Task = u32;

        fn task(request: &u32) -> u32 {
            *request
        }

        fn handle(&mut self, n: u32) {
            assert!(n != 0, "zero is not allowed");
            self.total += n;
            let _ = self.out.send(Ok(self.total));
        }

        fn reset(&mut self) {
            self.total = 0;
        }

        fn report_panic(&mut self, task: u32, message: String) {
            let _ = self.out.send(Err(format!("{task}: {message}")));
        }
    }

    /// A panic is caught and reported, the state starts again, and later requests are served.
    #[test]
    fn a_panic_is_reported_and_the_worker_goes_on() {
        let (tx, rx) = sync_channel(8);
        let (out, results) = sync_channel(8);
        let thread = std::thread::spawn(move || run(Summer { total: 0, out }, &rx));
        for n in [2, 3, 0, 4] {
            tx.send(n).expect("send");
        }
        drop(tx);
        thread
            .join()
            .expect("the worker thread itself never panics");
        let got: Vec<_> = results.try_iter().collect();
        assert_eq!(
            got,
            [
                Ok(2),
                Ok(5),
                Err("0: zero is not allowed".to_string()),
                Ok(4)
            ]
        );
    }
}
