//! The text worker: owns the loaded text model and runs sentences through it.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use super::{Generations, Handler, Repaint, SendError, CHANNEL_CAPACITY};
use crate::analysis::positional::Matrix;
use crate::model::text::TextModel;
use crate::runtime::Runtime;
use crate::types::{HeadSteps, Problem, TextModelInfo, TextOutput};

/// What the UI asks of the text worker.
pub enum TextRequest {
    /// Load a Hugging Face model folder.
    LoadModel {
        /// The folder.
        dir: PathBuf,
    },
    /// Use an already built model (tests).
    UseModel(Box<TextModel>),
    /// Tokenize and run a text. Only the newest queued text is run.
    Run {
        /// Identifies the text in responses.
        request_id: u64,
        /// The text.
        text: String,
    },
    /// One head's computation for one token of the last text run ([`HeadSteps`]). Only the
    /// newest queued one is computed; one for an older text than the last run is dropped.
    Steps {
        /// The run it belongs to (its `request_id`).
        request_id: u64,
        /// Layer, head, token.
        at: (usize, usize, usize),
    },
}

/// What the text worker was doing when something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextTask {
    /// Loading a model folder.
    LoadModel,
    /// Running a text through the model.
    Run,
    /// Computing one head's steps.
    Steps,
}

impl TextTask {
    /// What the task is, for messages ("loading the text model").
    pub fn describe(self) -> &'static str {
        match self {
            Self::LoadModel => "loading the text model",
            Self::Run => "running the text model",
            Self::Steps => "computing the head's steps",
        }
    }
}

/// What the text worker answers.
#[derive(Debug, Clone)]
pub enum TextResponse {
    /// A model is ready.
    ModelLoaded {
        /// What it is.
        info: TextModelInfo,
        /// The learned position table `[positions, hidden]` (empty when the model has none).
        positions: Matrix,
    },
    /// The user cancelled loading a model; the previous one, if any, is kept.
    LoadCancelled,
    /// Attention for a text.
    Output {
        /// The text's request.
        request_id: u64,
        /// Tokens, attentions, hidden states.
        output: Box<TextOutput>,
        /// Forward time in milliseconds.
        ms: f64,
    },
    /// One head's computation, step by step.
    Steps {
        /// The run it belongs to.
        request_id: u64,
        /// The steps.
        steps: Box<HeadSteps>,
    },
    /// A task failed; the previous state is kept.
    Failed {
        /// What was being done.
        task: TextTask,
        /// Why, as the UI words it.
        problem: Problem,
    },
    /// A task panicked: the worker dropped its model and started again.
    Crashed {
        /// What was being done.
        task: TextTask,
        /// The panic's message.
        message: String,
    },
}

/// Handle to the text worker thread.
pub struct TextWorker {
    tx: SyncSender<(TextRequest, u64)>,
    rx: Receiver<TextResponse>,
    control: Arc<Generations>,
}

/// What the step view needs of the last run: its tokens and hidden states.
struct LastRun {
    request_id: u64,
    tokens: Vec<String>,
    hidden_states: Vec<Vec<f32>>,
}

struct State {
    runtime: Runtime,
    model: Option<TextModel>,
    last_run: Option<LastRun>,
    control: Arc<Generations>,
    out: SyncSender<TextResponse>,
    repaint: Repaint,
}

impl State {
    fn send(&self, r: TextResponse) {
        let _ = self.out.send(r);
        (self.repaint)();
    }

    fn fail(&self, task: TextTask, e: &anyhow::Error) {
        self.send(TextResponse::Failed {
            task,
            problem: crate::error::problem(e),
        });
    }

    fn set_model(&mut self, m: TextModel) {
        let name = crate::weights::model_folder_label(m.dir());
        let positions = m
            .position_table()
            .map(|(rows, cols, data)| Matrix { rows, cols, data })
            .unwrap_or(Matrix {
                rows: 0,
                cols: 0,
                data: Vec::new(),
            });
        self.send(TextResponse::ModelLoaded {
            info: m.info(name),
            positions,
        });
        self.model = Some(m);
        self.last_run = None;
    }
}

impl Handler for State {
    type Request = (TextRequest, u64);
    type Task = TextTask;

    fn task((r, _): &(TextRequest, u64)) -> TextTask {
        match r {
            TextRequest::LoadModel { .. } | TextRequest::UseModel(_) => TextTask::LoadModel,
            TextRequest::Run { .. } => TextTask::Run,
            TextRequest::Steps { .. } => TextTask::Steps,
        }
    }

    /// The newest text wins, and the newest step request.
    fn coalesce(requests: Vec<(TextRequest, u64)>) -> Vec<(TextRequest, u64)> {
        let last_run = requests
            .iter()
            .rposition(|(r, _)| matches!(r, TextRequest::Run { .. }));
        let last_steps = requests
            .iter()
            .rposition(|(r, _)| matches!(r, TextRequest::Steps { .. }));
        requests
            .into_iter()
            .enumerate()
            .filter(|(i, (r, _))| match r {
                TextRequest::Run { .. } => Some(*i) == last_run,
                TextRequest::Steps { .. } => Some(*i) == last_steps,
                _ => true,
            })
            .map(|(_, r)| r)
            .collect()
    }

    fn handle(&mut self, (request, generation): (TextRequest, u64)) {
        match request {
            TextRequest::LoadModel { dir } => {
                let control = self.control.clone();
                let cancelled = move || control.cancelled(generation);
                let check: crate::weights::CancelCheck = Arc::new(cancelled.clone());
                match TextModel::load_dir_cancellable(&dir, &self.runtime.device, check) {
                    Ok(m) => self.set_model(m),
                    Err(_) if cancelled() => self.send(TextResponse::LoadCancelled),
                    Err(e) => self.fail(TextTask::LoadModel, &e),
                }
            }
            TextRequest::UseModel(m) => self.set_model(*m),
            TextRequest::Run { request_id, text } => {
                let Some(m) = &self.model else {
                    self.send(TextResponse::Failed {
                        task: TextTask::Run,
                        problem: Problem::NoTextModel,
                    });
                    return;
                };
                let t = Instant::now();
                match m.run(&text) {
                    Ok(output) => {
                        self.last_run = Some(LastRun {
                            request_id,
                            tokens: output.attentions.tokens.clone(),
                            hidden_states: output.hidden_states.clone(),
                        });
                        self.send(TextResponse::Output {
                            request_id,
                            output: Box::new(output),
                            ms: t.elapsed().as_secs_f64() * 1e3,
                        });
                    }
                    Err(e) => self.fail(TextTask::Run, &e),
                }
            }
            TextRequest::Steps { request_id, at } => {
                let (Some(m), Some(last)) = (&self.model, &self.last_run) else {
                    return;
                };
                if last.request_id != request_id {
                    return; // an older text: its view has moved on
                }
                let input = last.hidden_states.get(at.0).map_or(&[][..], Vec::as_slice);
                match m.head_steps(last.tokens.clone(), input, at) {
                    Ok(steps) => self.send(TextResponse::Steps {
                        request_id,
                        steps: Box::new(steps),
                    }),
                    Err(e) => self.fail(TextTask::Steps, &e),
                }
            }
        }
    }

    fn reset(&mut self) {
        self.model = None;
        self.last_run = None;
    }

    fn report_panic(&mut self, task: TextTask, message: String) {
        self.send(TextResponse::Crashed { task, message });
    }
}

impl TextWorker {
    /// Starts the worker thread on `runtime`'s device.
    pub fn spawn(runtime: Runtime, repaint: Repaint) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<(TextRequest, u64)>(CHANNEL_CAPACITY);
        let (out, responses) = sync_channel::<TextResponse>(CHANNEL_CAPACITY);
        let control = Arc::new(Generations::default());
        let state = State {
            runtime,
            model: None,
            last_run: None,
            control: control.clone(),
            out,
            repaint,
        };
        std::thread::Builder::new()
            .name("text-worker".into())
            .spawn(move || {
                crate::runtime::lower_thread_priority();
                super::run(state, &rx)
            })?;
        Ok(Self {
            tx,
            rx: responses,
            control,
        })
    }

    /// Queues a request without blocking.
    pub fn send(&self, req: TextRequest) -> Result<(), SendError> {
        let generation = if matches!(req, TextRequest::LoadModel { .. }) {
            self.control.next()
        } else {
            self.control.current()
        };
        Ok(self.tx.try_send((req, generation))?)
    }

    /// The user's Cancel: stops loading a model (one running or queued) at its next tensor
    /// (answered with [`TextResponse::LoadCancelled`]).
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// The next response, if any (never blocks).
    pub fn try_recv(&self) -> Option<TextResponse> {
        self.rx.try_recv().ok()
    }
}
