//! The text worker: owns the loaded text model and runs sentences through it.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use candle_core::Device;

use super::{drain, Repaint, SendError, CHANNEL_CAPACITY};
use crate::model::text::{TextConfig, TextModel, TextOutput};

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
}

/// What the text worker answers.
#[derive(Debug, Clone)]
pub enum TextResponse {
    /// A model is ready.
    ModelLoaded {
        /// Folder name.
        name: String,
        /// Its configuration.
        config: TextConfig,
        /// The learned position table `(positions, hidden, values)`.
        positions: (usize, usize, Vec<f32>),
    },
    /// Attention for a text.
    Output {
        /// The text's request.
        request_id: u64,
        /// Tokens, attentions, hidden states.
        output: Box<TextOutput>,
        /// Forward time in milliseconds.
        ms: f64,
    },
    /// Something failed; the previous state is kept.
    Error {
        /// What was being done.
        during: &'static str,
        /// The one-line message.
        message: String,
    },
}

/// Handle to the text worker thread.
pub struct TextWorker {
    tx: SyncSender<TextRequest>,
    rx: Receiver<TextResponse>,
}

impl TextWorker {
    /// Starts the worker thread on `device`.
    pub fn spawn(device: Device, repaint: Repaint) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<TextRequest>(CHANNEL_CAPACITY);
        let (out, responses) = sync_channel::<TextResponse>(CHANNEL_CAPACITY);
        std::thread::Builder::new().name("text-worker".into()).spawn(move || {
            let mut model: Option<TextModel> = None;
            let send = |r: TextResponse| {
                let _ = out.send(r);
                repaint();
            };
            while let Ok(first) = rx.recv() {
                let reqs = drain(first, &rx);
                let last_run = reqs.iter().rposition(|r| matches!(r, TextRequest::Run { .. }));
                for (i, req) in reqs.into_iter().enumerate() {
                    match req {
                        TextRequest::LoadModel { dir } => match TextModel::load_dir(&dir, &device) {
                            Ok(m) => {
                                send(loaded(&m));
                                model = Some(m);
                            }
                            Err(e) => send(TextResponse::Error {
                                during: "loading the text model",
                                message: crate::error::one_line(&e),
                            }),
                        },
                        TextRequest::UseModel(m) => {
                            send(loaded(&m));
                            model = Some(*m);
                        }
                        TextRequest::Run { request_id, text } => {
                            if Some(i) != last_run {
                                continue; // The newest text wins.
                            }
                            let Some(m) = &model else {
                                send(TextResponse::Error {
                                    during: "running the text model",
                                    message: "no text model is loaded: open a model folder in the Models window".into(),
                                });
                                continue;
                            };
                            let t = Instant::now();
                            match m.run(&text) {
                                Ok(output) => send(TextResponse::Output {
                                    request_id,
                                    output: Box::new(output),
                                    ms: t.elapsed().as_secs_f64() * 1e3,
                                }),
                                Err(e) => send(TextResponse::Error {
                                    during: "running the text model",
                                    message: crate::error::one_line(&e),
                                }),
                            }
                        }
                    }
                }
            }
        })?;
        Ok(Self { tx, rx: responses })
    }

    /// Queues a request without blocking.
    pub fn send(&self, req: TextRequest) -> Result<(), SendError> {
        Ok(self.tx.try_send(req)?)
    }

    /// The next response, if any (never blocks).
    pub fn try_recv(&self) -> Option<TextResponse> {
        self.rx.try_recv().ok()
    }
}

fn loaded(m: &TextModel) -> TextResponse {
    let name = crate::weights::model_folder_label(m.dir());
    TextResponse::ModelLoaded {
        name,
        config: m.config().clone(),
        positions: m.position_table().unwrap_or((0, 0, Vec::new())),
    }
}
