//! The training worker: owns a [`Trainer`] and steps it while the UI stays free. It takes the
//! UI's requests between steps (pause, resume, step once, reset, save), runs steps in slices
//! of about 20 ms, and publishes its progress as one snapshot in a one-slot mailbox that the
//! UI takes when it draws (a newer snapshot replaces an unread one: the channel can never
//! fill up, and a snapshot of an older run is recognised by its run number and dropped).

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, RecvError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Repaint, SendError, CHANNEL_CAPACITY};
use crate::model::train::Trainer;
use crate::types::train::{TrainProgress, TrainReport, TrainSettings};

/// How long the worker steps before it looks at its requests again.
const SLICE: Duration = Duration::from_millis(20);
/// How often a running model publishes its progress (and at every evaluation).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// What the UI asks of the training worker.
#[derive(Debug, Clone)]
pub enum TrainRequest {
    /// Start training a fresh model (dropping the one there was).
    Start {
        /// Numbers this run's snapshots and events.
        run: u64,
        /// What to train.
        settings: TrainSettings,
    },
    /// Stop stepping; the model is kept.
    Pause,
    /// Go on stepping.
    Resume,
    /// One step (while paused), with an evaluation.
    StepOnce,
    /// Drop the model.
    Reset,
    /// Save the model as a model folder.
    Save(PathBuf),
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Stepping.
    Running,
    /// Paused by the user.
    Paused,
    /// All its steps done.
    Finished,
}

/// One run's progress as the UI draws it.
#[derive(Debug, Clone)]
pub struct TrainSnapshot {
    /// The run ([`TrainRequest::Start`]'s number).
    pub run: u64,
    /// Where it stands.
    pub state: RunState,
    /// Steps, losses, evaluations, speed, attention.
    pub progress: TrainProgress,
}

/// What the training worker tells the UI besides snapshots.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A run did all its steps.
    Finished {
        /// The run.
        run: u64,
        /// Its report.
        report: TrainReport,
    },
    /// The model was saved.
    Saved(PathBuf),
    /// Something failed; a failed run is dropped.
    Failed(crate::types::Problem),
}

/// Handle to the training worker thread.
pub struct TrainWorker {
    tx: SyncSender<TrainRequest>,
    events: Receiver<TrainEvent>,
    latest: Arc<Mutex<Option<TrainSnapshot>>>,
}

struct Job {
    run: u64,
    trainer: Trainer,
    state: RunState,
    progress: TrainProgress,
    /// Step and time of the last speed measurement.
    speed_mark: (usize, Instant),
    last_publish: Instant,
}

struct State {
    job: Option<Job>,
    events: SyncSender<TrainEvent>,
    latest: Arc<Mutex<Option<TrainSnapshot>>>,
    repaint: Repaint,
}

impl State {
    fn event(&self, e: TrainEvent) {
        let _ = self.events.send(e);
        (self.repaint)();
    }

    fn publish(&mut self) {
        let Some(job) = &mut self.job else {
            return;
        };
        let now = Instant::now();
        let (step0, t0) = job.speed_mark;
        let dt = now.duration_since(t0).as_secs_f32();
        if job.state == RunState::Running && dt > 0.05 {
            job.progress.steps_per_second = (job.progress.step - step0) as f32 / dt;
            job.speed_mark = (job.progress.step, now);
        }
        job.last_publish = now;
        let snapshot = TrainSnapshot {
            run: job.run,
            state: job.state,
            progress: job.progress.clone(),
        };
        if let Ok(mut slot) = self.latest.lock() {
            *slot = Some(snapshot);
        }
        (self.repaint)();
    }

    fn fail(&mut self, e: &anyhow::Error) {
        self.job = None;
        self.event(TrainEvent::Failed(crate::error::problem(e)));
    }

    fn start(&mut self, run: u64, settings: TrainSettings) -> anyhow::Result<()> {
        self.job = None;
        let trainer = Trainer::new(&settings, &candle_core::Device::Cpu)?;
        let first = trainer.evaluate()?;
        let attention = trainer.sample_attention()?;
        let now = Instant::now();
        self.job = Some(Job {
            run,
            trainer,
            state: RunState::Running,
            progress: TrainProgress {
                step: 0,
                losses: Vec::with_capacity(settings.steps),
                evals: vec![first],
                steps_per_second: 0.0,
                seconds: 0.0,
                attention: Some(attention),
            },
            speed_mark: (0, now),
            last_publish: now,
        });
        self.publish();
        Ok(())
    }

    /// One step of the job, with an evaluation when one is due (or `force_eval`); returns true
    /// when it published.
    fn step(&mut self, force_eval: bool) -> anyhow::Result<bool> {
        let Some(job) = &mut self.job else {
            return Ok(false);
        };
        let (loss, eval) = job.trainer.advance(force_eval)?;
        job.progress.step = job.trainer.steps_done();
        job.progress.losses.push(loss);
        job.progress.seconds = job.trainer.seconds();
        let due = eval.is_some();
        if let Some(eval) = eval {
            job.progress.attention = Some(job.trainer.sample_attention()?);
            job.progress.evals.push(eval);
        }
        if job.trainer.finished() {
            job.state = RunState::Finished;
            let report = job.trainer.report();
            let run = job.run;
            self.publish();
            self.event(TrainEvent::Finished { run, report });
            return Ok(true);
        }
        if due || job.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish();
            return Ok(true);
        }
        Ok(false)
    }

    fn handle(&mut self, r: TrainRequest) -> anyhow::Result<()> {
        match r {
            TrainRequest::Start { run, settings } => self.start(run, settings)?,
            TrainRequest::Pause => {
                if let Some(job) = self.job.as_mut().filter(|j| j.state == RunState::Running) {
                    job.state = RunState::Paused;
                    self.publish();
                }
            }
            TrainRequest::Resume => {
                if let Some(job) = self.job.as_mut().filter(|j| j.state == RunState::Paused) {
                    job.state = RunState::Running;
                    job.speed_mark = (job.progress.step, Instant::now());
                    self.publish();
                }
            }
            TrainRequest::StepOnce => {
                if self
                    .job
                    .as_ref()
                    .is_some_and(|j| j.state == RunState::Paused)
                {
                    self.step(true)?;
                    self.publish();
                }
            }
            TrainRequest::Reset => self.job = None,
            TrainRequest::Save(dir) => {
                if let Some(job) = &self.job {
                    job.trainer.save(&dir)?;
                    self.event(TrainEvent::Saved(dir));
                }
            }
        }
        Ok(())
    }

    /// The thread's loop: requests first, then a slice of steps while running.
    fn run(mut self, rx: &Receiver<TrainRequest>) {
        loop {
            let running = self
                .job
                .as_ref()
                .is_some_and(|j| j.state == RunState::Running);
            let request = if running {
                match rx.try_recv() {
                    Ok(r) => Some(r),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match rx.recv() {
                    Ok(r) => Some(r),
                    Err(RecvError) => return,
                }
            };
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match request {
                Some(r) => self.handle(r),
                None => {
                    let start = Instant::now();
                    while start.elapsed() < SLICE
                        && self
                            .job
                            .as_ref()
                            .is_some_and(|j| j.state == RunState::Running)
                    {
                        self.step(false)?;
                    }
                    Ok(())
                }
            }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.fail(&e),
                Err(payload) => {
                    let message = super::panic_message(payload.as_ref());
                    self.fail(&anyhow::anyhow!("training crashed: {message}"));
                }
            }
        }
    }
}

impl TrainWorker {
    /// Starts the worker thread. It trains on the CPU whatever device the other models use:
    /// a tiny model's steps are too small for a GPU to pay off.
    pub fn spawn(repaint: Repaint) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<TrainRequest>(CHANNEL_CAPACITY);
        let (events, event_rx) = sync_channel::<TrainEvent>(CHANNEL_CAPACITY);
        let latest = Arc::new(Mutex::new(None));
        let state = State {
            job: None,
            events,
            latest: latest.clone(),
            repaint,
        };
        std::thread::Builder::new()
            .name("train-worker".into())
            .spawn(move || {
                crate::runtime::lower_thread_priority();
                state.run(&rx)
            })?;
        Ok(Self {
            tx,
            events: event_rx,
            latest,
        })
    }

    /// Queues a request without blocking.
    pub fn send(&self, r: TrainRequest) -> Result<(), SendError> {
        Ok(self.tx.try_send(r)?)
    }

    /// The newest snapshot, if one came since the last call (never blocks).
    pub fn take_snapshot(&self) -> Option<TrainSnapshot> {
        self.latest.lock().ok().and_then(|mut s| s.take())
    }

    /// The next event, if any (never blocks).
    pub fn try_recv(&self) -> Option<TrainEvent> {
        self.events.try_recv().ok()
    }
}
