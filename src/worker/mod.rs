//! Worker threads that own the models and their caches. The UI talks to them over bounded
//! channels with plain-data requests and responses; a worker calls the `repaint` callback after
//! each response so the UI wakes up. No egui here.

pub mod sam;
pub mod text;

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

/// Drains every request already queued behind `first`.
pub(crate) fn drain<T>(first: T, rx: &std::sync::mpsc::Receiver<T>) -> Vec<T> {
    let mut all = vec![first];
    while let Ok(r) = rx.try_recv() {
        all.push(r);
    }
    all
}
