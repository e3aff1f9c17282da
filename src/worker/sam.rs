//! The SAM worker: owns the model, the current image's embedding and the decoder cache.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;

use super::{drain, Repaint, SendError, CHANNEL_CAPACITY};
use crate::model::sam::prompt_encoder::RandomFourierEncoding;
use crate::model::sam::{ImageEmbedding, Precision, Prediction, Prompts, Rgb8, SamModel};
use crate::weights::Weights;

/// What the UI asks of the SAM worker.
pub enum SamRequest {
    /// Load a checkpoint (architecture detected from its tensors).
    LoadModel {
        /// The checkpoint file.
        path: PathBuf,
    },
    /// Use an already built model (tests, deterministic weights).
    UseModel(Box<SamModel>),
    /// Encode a new image (once per image).
    SetImage {
        /// Identifies the image in responses.
        image_id: u64,
        /// The pixels.
        image: Arc<Rgb8>,
    },
    /// Decode a prompt on the current image. Only the newest queued prompt is run.
    Predict {
        /// The image the prompt was made on.
        image_id: u64,
        /// Identifies the prompt in responses.
        request_id: u64,
        /// Points, box, mask.
        prompts: Prompts,
        /// Three candidate masks instead of one.
        multimask: bool,
    },
}

/// What the SAM worker answers.
#[derive(Debug, Clone)]
pub enum SamResponse {
    /// A model is ready.
    ModelLoaded {
        /// Human name ("MobileSAM (TinyViT)").
        name: String,
        /// Where it runs.
        device: String,
        /// Load time in milliseconds.
        ms: f64,
        /// The prompt encoder's random-Fourier point encoding (for the encodings view).
        point_encoding: RandomFourierEncoding,
    },
    /// The encoder started on an image.
    Encoding {
        /// The image.
        image_id: u64,
    },
    /// The image embedding is ready.
    Encoded {
        /// The image.
        image_id: u64,
        /// Encoder time in milliseconds.
        ms: f64,
    },
    /// The encoder was stopped on request.
    Cancelled {
        /// The image.
        image_id: u64,
    },
    /// Masks for a prompt.
    Prediction {
        /// The image.
        image_id: u64,
        /// The prompt.
        request_id: u64,
        /// Masks, IoU predictions, decoder attention.
        prediction: Box<Prediction>,
        /// Prompt-to-mask time in milliseconds.
        ms: f64,
    },
    /// Something failed; the previous state is kept.
    Error {
        /// What was being done ("loading the model", "encoding the image", …).
        during: &'static str,
        /// The one-line message.
        message: String,
    },
}

/// Handle to the SAM worker thread.
pub struct SamWorker {
    tx: SyncSender<SamRequest>,
    rx: Receiver<SamResponse>,
    cancel: Arc<AtomicBool>,
}

struct State {
    cancel: Arc<AtomicBool>,
    device: Device,
    /// The image encoder's format for models this worker loads.
    precision: Precision,
    model: Option<SamModel>,
    embedding: Option<(u64, ImageEmbedding)>,
    out: SyncSender<SamResponse>,
    repaint: Repaint,
}

impl State {
    fn send(&self, r: SamResponse) {
        // The UI may have gone away at shutdown; nothing to do then.
        let _ = self.out.send(r);
        (self.repaint)();
    }

    fn error(&self, during: &'static str, e: &anyhow::Error) {
        self.send(SamResponse::Error {
            during,
            message: crate::error::one_line(e),
        });
    }

    fn handle(&mut self, req: SamRequest) {
        match req {
            SamRequest::LoadModel { path } => {
                let t = Instant::now();
                match Weights::open(&path)
                    .map_err(anyhow::Error::from)
                    .and_then(|w| SamModel::load_as(&w, &self.device, self.precision))
                {
                    Ok(m) => self.set_model(m, t),
                    Err(e) => self.error("loading the SAM model", &e),
                }
            }
            SamRequest::UseModel(m) => self.set_model(*m, Instant::now()),
            SamRequest::SetImage { image_id, image } => {
                let Some(model) = &self.model else {
                    self.send(SamResponse::Error {
                        during: "encoding the image",
                        message:
                            "no SAM model is loaded: open or download one in the Models window"
                                .into(),
                    });
                    return;
                };
                self.send(SamResponse::Encoding { image_id });
                let t = Instant::now();
                self.cancel.store(false, Ordering::SeqCst);
                let cancel = self.cancel.clone();
                match model.embed_cancellable(&image, &|| cancel.load(Ordering::SeqCst)) {
                    Ok(emb) => {
                        self.embedding = Some((image_id, emb));
                        self.send(SamResponse::Encoded {
                            image_id,
                            ms: t.elapsed().as_secs_f64() * 1e3,
                        });
                    }
                    Err(e) if e.is::<crate::model::sam::Cancelled>() => {
                        self.send(SamResponse::Cancelled { image_id });
                    }
                    Err(e) => self.error("encoding the image", &e),
                }
            }
            SamRequest::Predict {
                image_id,
                request_id,
                prompts,
                multimask,
            } => {
                let (Some(model), Some((id, emb))) = (&self.model, &self.embedding) else {
                    return; // Nothing to decode against yet; the UI shows the encoding state.
                };
                if *id != image_id {
                    return; // A prompt for an image that is no longer current.
                }
                let t = Instant::now();
                match model.predict(emb, &prompts, multimask) {
                    Ok(p) => self.send(SamResponse::Prediction {
                        image_id,
                        request_id,
                        prediction: Box::new(p),
                        ms: t.elapsed().as_secs_f64() * 1e3,
                    }),
                    Err(e) => self.error("predicting the mask", &e),
                }
            }
        }
    }

    fn set_model(&mut self, m: SamModel, t: Instant) {
        let name = m.config().name();
        let point_encoding = m.prompt_encoder().positional_encoding().clone();
        self.model = Some(m);
        self.embedding = None;
        self.send(SamResponse::ModelLoaded {
            name,
            device: crate::cli::device_name(&self.device),
            ms: t.elapsed().as_secs_f64() * 1e3,
            point_encoding,
        });
    }
}

/// Keeps requests in order but drops every `Predict` that a later `Predict` or `SetImage`
/// makes stale: the newest click wins.
fn coalesce(reqs: Vec<SamRequest>) -> Vec<SamRequest> {
    let last_predict = reqs
        .iter()
        .rposition(|r| matches!(r, SamRequest::Predict { .. }));
    let last_image = reqs
        .iter()
        .rposition(|r| matches!(r, SamRequest::SetImage { .. }));
    reqs.into_iter()
        .enumerate()
        .filter(|(i, r)| match r {
            SamRequest::Predict { .. } => {
                Some(*i) == last_predict && last_image.is_none_or(|li| li < *i)
            }
            SamRequest::SetImage { .. } => Some(*i) == last_image,
            _ => true,
        })
        .map(|(_, r)| r)
        .collect()
}

impl SamWorker {
    /// Starts the worker thread on `device`.
    pub fn spawn(device: Device, precision: Precision, repaint: Repaint) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<SamRequest>(CHANNEL_CAPACITY);
        let (out, responses) = sync_channel::<SamResponse>(CHANNEL_CAPACITY);
        let cancel = Arc::new(AtomicBool::new(false));
        let worker_cancel = cancel.clone();
        std::thread::Builder::new()
            .name("sam-worker".into())
            .spawn(move || {
                let mut state = State {
                    cancel: worker_cancel,
                    device,
                    precision,
                    model: None,
                    embedding: None,
                    out,
                    repaint,
                };
                while let Ok(first) = rx.recv() {
                    for req in coalesce(drain(first, &rx)) {
                        state.handle(req);
                    }
                }
            })?;
        Ok(Self {
            tx,
            rx: responses,
            cancel,
        })
    }

    /// Queues a request without blocking. A new image cancels the encoding in progress.
    pub fn send(&self, req: SamRequest) -> Result<(), SendError> {
        if matches!(req, SamRequest::SetImage { .. }) {
            self.cancel_encoding();
        }
        Ok(self.tx.try_send(req)?)
    }

    /// Stops the image encoder at its next block (it answers [`SamResponse::Cancelled`]).
    pub fn cancel_encoding(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The next response, if any (never blocks).
    pub fn try_recv(&self) -> Option<SamResponse> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for the next response (tests and the CLI).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<SamResponse> {
        self.rx.recv_timeout(timeout).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predict(request_id: u64) -> SamRequest {
        SamRequest::Predict {
            image_id: 1,
            request_id,
            prompts: Prompts::default(),
            multimask: true,
        }
    }

    fn ids(reqs: &[SamRequest]) -> Vec<String> {
        reqs.iter()
            .map(|r| match r {
                SamRequest::Predict { request_id, .. } => format!("p{request_id}"),
                SamRequest::SetImage { image_id, .. } => format!("i{image_id}"),
                SamRequest::LoadModel { .. } => "load".into(),
                SamRequest::UseModel(_) => "use".into(),
            })
            .collect()
    }

    #[test]
    fn newest_click_wins() {
        let img = Arc::new(Rgb8 {
            width: 1,
            height: 1,
            data: vec![0; 3],
        });
        let q = coalesce(vec![predict(1), predict(2), predict(3)]);
        assert_eq!(ids(&q), ["p3"]);
        let q = coalesce(vec![
            predict(1),
            SamRequest::SetImage {
                image_id: 2,
                image: img.clone(),
            },
            predict(4),
        ]);
        assert_eq!(ids(&q), ["i2", "p4"]);
        let q = coalesce(vec![
            predict(1),
            SamRequest::SetImage {
                image_id: 2,
                image: img,
            },
        ]);
        assert_eq!(ids(&q), ["i2"]);
    }
}
