//! The pre-encoder: encodes the folder's next image into the disk cache on a thread and a
//! compute pool of its own at the lowest priority, and lets the worker wait for the image it
//! is encoding when the user opens that very image.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::SamResponse;
use crate::embed_cache::{image_digest, EmbeddingCache, EmbeddingKey, StoredEmbedding};
use crate::model::sam::SamModel;
use crate::types::Rgb8;
use crate::worker::Repaint;

/// One image to encode ahead.
pub(super) struct PreJob {
    pub(super) token: u64,
    pub(super) image: Arc<Rgb8>,
    pub(super) model: Arc<SamModel>,
    pub(super) cache: EmbeddingCache,
    /// The key but for the image's digest.
    pub(super) key: EmbeddingKey,
    /// The generation it was submitted at (set by [`PreEncoder::submit`]).
    pub(super) generation: u64,
}

/// The background encoder: a thread and a compute pool of its own at the lowest priority.
pub(super) struct PreEncoder {
    tx: SyncSender<PreJob>,
    /// Bumped to stop the job in progress and drop those queued.
    generation: Arc<AtomicU64>,
    /// What its encoder runs on now, signalled when it ends.
    running: Arc<Running>,
}

/// The key of the image the pre-encoder's encoder runs on, with the generation it runs at.
#[derive(Default)]
struct Running {
    now: Mutex<Option<(EmbeddingKey, u64)>>,
    ended: Condvar,
}

/// Marks the pre-encoder's encoder as running on a key until dropped.
struct RunningGuard<'a>(&'a Running);

impl<'a> RunningGuard<'a> {
    fn start(running: &'a Running, key: EmbeddingKey, generation: u64) -> Self {
        *running.now.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, generation));
        Self(running)
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        *self.0.now.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.0.ended.notify_all();
    }
}

impl PreEncoder {
    pub(super) fn spawn(out: SyncSender<SamResponse>, repaint: Repaint) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<PreJob>(2);
        let generation = Arc::new(AtomicU64::new(0));
        let current = generation.clone();
        let running = Arc::new(Running::default());
        let marks = running.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|i| format!("sam-preencode-{i}"))
            .start_handler(|_| crate::runtime::idle_thread_priority())
            .build()
            .map_err(std::io::Error::other)?;
        std::thread::Builder::new()
            .name("sam-preencode".into())
            .spawn(move || {
                crate::runtime::idle_thread_priority();
                while let Ok(job) = rx.recv() {
                    let run = std::panic::AssertUnwindSafe(|| {
                        preencode_one(&pool, job, &current, &marks, &out, &repaint)
                    });
                    if std::panic::catch_unwind(run).is_err() {
                        eprintln!(
                            "segattn: encoding the next image stopped with an internal error"
                        );
                    }
                }
            })?;
        Ok(Self {
            tx,
            generation,
            running,
        })
    }

    /// Whether its encoder runs on `key` now, not stopped.
    pub(super) fn is_encoding(&self, key: &EmbeddingKey) -> bool {
        let now = self.running.now.lock().unwrap_or_else(|e| e.into_inner());
        now.as_ref()
            .is_some_and(|(k, g)| k == key && *g == self.generation.load(Ordering::SeqCst))
    }

    /// Waits until its encoder is no longer on `key` (true), or `stop` says to give up
    /// (false); `stop` is asked every few milliseconds.
    pub(super) fn wait_for(&self, key: &EmbeddingKey, stop: impl Fn() -> bool) -> bool {
        let mut now = self.running.now.lock().unwrap_or_else(|e| e.into_inner());
        while now.as_ref().is_some_and(|(k, _)| k == key) {
            if stop() {
                return false;
            }
            now = match self
                .running
                .ended
                .wait_timeout(now, Duration::from_millis(5))
            {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }

    /// Stops the job in progress (at its next encoder block) and those queued.
    pub(super) fn stop(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Queues `job` behind a stop of what runs (only the newest is worth doing); dropped
    /// when the queue is full.
    pub(super) fn submit(&self, mut job: PreJob) {
        self.stop();
        job.generation = self.generation.load(Ordering::SeqCst);
        let _ = self.tx.try_send(job);
    }
}

/// Encodes one image ahead into the disk cache, unless it is there or a stop came.
fn preencode_one(
    pool: &rayon::ThreadPool,
    job: PreJob,
    current: &AtomicU64,
    running: &Running,
    out: &SyncSender<SamResponse>,
    repaint: &Repaint,
) {
    let stopped = || current.load(Ordering::SeqCst) != job.generation;
    if stopped() {
        return;
    }
    let key = EmbeddingKey {
        image: image_digest(&job.image),
        ..job.key
    };
    let done = |ms| {
        let _ = out.send(SamResponse::Preencoded {
            token: job.token,
            ms,
        });
        repaint();
    };
    if job.cache.contains(&key) {
        return done(0.0);
    }
    // Until the embedding is on disk (or the encoder stopped), a worker asked for this image
    // waits for it: `done` is sent before the guard ends.
    let _running = RunningGuard::start(running, key.clone(), job.generation);
    let _ = out.send(SamResponse::Preencoding { token: job.token });
    repaint();
    let t = Instant::now();
    let Ok(emb) = pool.install(|| job.model.embed_cancellable(&job.image, &stopped)) else {
        return; // stopped, or it failed: the image is encoded when opened, and says why then
    };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let stored = emb.to_vec().and_then(|features| {
        Ok(StoredEmbedding {
            features,
            high_res: emb.high_res_to_vec()?,
            original_hw: (job.image.height, job.image.width),
        })
    });
    drop(emb);
    match stored.map(|s| job.cache.put(&key, &s)) {
        Ok(Ok(())) => done(ms),
        Ok(Err(e)) => eprintln!("segattn: cannot store the embedding: {e:#}"),
        Err(e) => eprintln!("segattn: cannot store the embedding: {e:#}"),
    }
}
