//! The SAM worker: owns the model, the current image's embedding and the decoder cache.
//!
//! Long tasks (loading a checkpoint, encoding an image) stop early in two ways: the user's
//! Cancel ([`SamWorker::cancel`], answered with [`SamResponse::LoadCancelled`] or
//! [`SamResponse::Cancelled`]), or a newer request that makes them pointless (another image or
//! model was asked for), which stops them silently: the newer request answers instead.
//!
//! With an [`EmbeddingCache`] ([`SamRequest::SetCache`]), every embedding the worker makes is
//! stored on disk and an image seen before is not encoded again, across restarts. The
//! pre-encoder ([`SamRequest::Preencode`]: the folder's next image) runs on a thread of its
//! own with a compute pool at the lowest priority, sharing the model: the clicks on the
//! current image keep the CPU, and the next image's embedding lands in the disk cache only
//! (never a second embedding held in memory). Any new image or model stops it, except the
//! image it is encoding: opened meanwhile, its encoding is handed over (the worker waits for
//! it and reads the result from the disk) instead of being started again.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

mod preencode;

use super::{Generations, Handler, Repaint, SendError, CHANNEL_CAPACITY};
use crate::analysis::positional::RandomFourierEncoding;
use crate::embed_cache::{image_digest, EmbeddingCache, EmbeddingKey, Lookup, StoredEmbedding};
use crate::model::sam::{ImageEmbedding, SamModel};
use crate::runtime::Runtime;
use crate::types::{
    EverythingParams, EverythingProgress, MaskRecord, Prediction, Problem, Prompts, Rgb8,
};
use crate::weights::Weights;
use preencode::{PreEncoder, PreJob};

/// What the UI asks of the SAM worker.
pub enum SamRequest {
    /// Load a checkpoint (architecture detected from its tensors).
    LoadModel {
        /// The checkpoint file.
        path: PathBuf,
    },
    /// Use an already built model (tests, deterministic weights).
    UseModel(Box<SamModel>),
    /// Encode an image (once per image and model: asked again, the worker answers from its
    /// cache).
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
    /// Keep embeddings in this disk cache from now on (`None`: none). Send it before loading
    /// a model: a checkpoint's SHA-256 is taken when it loads with a cache set.
    SetCache(Option<EmbeddingCache>),
    /// Encode `image` into the disk cache in the background (the image the user will likely
    /// open next). Answered with [`SamResponse::Preencoded`]; stopped by any new image or
    /// model; nothing without a disk cache.
    Preencode {
        /// Identifies the request in the answer.
        token: u64,
        /// The pixels.
        image: Arc<Rgb8>,
    },
    /// Segment the whole current image with the automatic mask generator (on the embedding
    /// the worker already has). Stopped by [`SamWorker::cancel`] or a new image or model.
    Everything {
        /// The image.
        image_id: u64,
        /// Identifies the run in responses.
        request_id: u64,
        /// The generator's parameters.
        params: EverythingParams,
    },
}

/// What the SAM worker was doing when something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamTask {
    /// Loading a checkpoint.
    LoadModel,
    /// Encoding an image.
    Encode,
    /// Decoding a prompt.
    Predict,
    /// Segmenting everything.
    Everything,
    /// Encoding an image ahead.
    Preencode,
}

impl SamTask {
    /// What the task is, for messages ("loading the SAM model").
    pub fn describe(self) -> &'static str {
        match self {
            Self::LoadModel => "loading the SAM model",
            Self::Encode => "encoding the image",
            Self::Predict => "predicting the mask",
            Self::Everything => "segmenting everything",
            Self::Preencode => "encoding the next image",
        }
    }
}

/// What the SAM worker answers.
#[derive(Debug, Clone)]
pub enum SamResponse {
    /// A model is ready (any earlier image embedding is gone).
    ModelLoaded {
        /// Human name ("MobileSAM (TinyViT)").
        name: String,
        /// Load time in milliseconds.
        ms: f64,
        /// The prompt encoder's random-Fourier point encoding (for the encodings view).
        point_encoding: RandomFourierEncoding,
        /// A SAM 2.1 model (its automatic mask generator has other defaults).
        sam2: bool,
    },
    /// The user cancelled loading a checkpoint; the previous model, if any, is kept.
    LoadCancelled,
    /// The encoder started on an image.
    Encoding {
        /// The image.
        image_id: u64,
    },
    /// The image embedding is ready.
    Encoded {
        /// The image.
        image_id: u64,
        /// Encoder time in milliseconds (reading the disk cache, when it came from there).
        ms: f64,
        /// It came from the disk cache.
        from_cache: bool,
    },
    /// A [`SamRequest::Preencode`] missed the disk cache: its encoder runs.
    Preencoding {
        /// The request.
        token: u64,
    },
    /// A [`SamRequest::Preencode`] is done: the image's embedding is in the disk cache.
    Preencoded {
        /// The request.
        token: u64,
        /// Encoder time in milliseconds (0 when it was there already).
        ms: f64,
    },
    /// The user cancelled the encoding.
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
    /// How far "everything" has got (sent after each batch; dropped when the channel is full).
    EverythingProgress {
        /// The image.
        image_id: u64,
        /// The run.
        request_id: u64,
        /// Points and crops done.
        progress: EverythingProgress,
    },
    /// The automatic masks of the whole image.
    Everything {
        /// The image.
        image_id: u64,
        /// The run.
        request_id: u64,
        /// The records, in the official order.
        records: Arc<Vec<MaskRecord>>,
        /// Generation time in milliseconds.
        ms: f64,
    },
    /// The user cancelled "everything".
    EverythingCancelled {
        /// The image.
        image_id: u64,
        /// The run.
        request_id: u64,
    },
    /// A task failed; the previous state is kept.
    Failed {
        /// What was being done.
        task: SamTask,
        /// Why, as the UI words it.
        problem: Problem,
    },
    /// A task panicked: the worker dropped its model and embedding and started again.
    Crashed {
        /// What was being done.
        task: SamTask,
        /// The panic's message.
        message: String,
    },
}

/// Handle to the SAM worker thread.
pub struct SamWorker {
    tx: SyncSender<Queued>,
    rx: Receiver<SamResponse>,
    control: Arc<Generations>,
}

struct State {
    control: Arc<Generations>,
    runtime: Runtime,
    model: Option<Arc<SamModel>>,
    /// Embeddings on disk.
    cache: Option<EmbeddingCache>,
    /// The background encoder, started with the first [`SamRequest::Preencode`].
    preencoder: Option<PreEncoder>,
    /// Bumped on every new model, so a cached embedding is never used with another one.
    model_generation: u64,
    /// The embedding of `(model_generation, image_id)`, how long it took, and the image's
    /// pixels (everything mode crops them).
    embedding: Option<(u64, u64, ImageEmbedding, f64, Arc<Rgb8>)>,
    out: SyncSender<SamResponse>,
    repaint: Repaint,
}

/// A request as it travels: with the generation it was queued at (its own, for an image or a
/// model).
struct Queued {
    request: SamRequest,
    generation: u64,
}

impl State {
    fn send(&self, r: SamResponse) {
        // The UI may have gone away at shutdown; nothing to do then.
        let _ = self.out.send(r);
        (self.repaint)();
    }

    fn fail(&self, task: SamTask, e: &anyhow::Error) {
        self.send(SamResponse::Failed {
            task,
            problem: crate::error::problem(e),
        });
    }

    /// Why the task queued at `generation` should stop, if it should (see [`Generations`]).
    fn stop_reason(&self, generation: u64) -> Option<bool> {
        self.control.stop_reason(generation)
    }

    fn load(&mut self, path: PathBuf, generation: u64) {
        let t = Instant::now();
        let control = self.control.clone();
        // Only the user's Cancel stops a load: an image opened meanwhile waits for the model.
        let cancel: crate::weights::CancelCheck = Arc::new(move || control.cancelled(generation));
        let loaded = Weights::open(&path)
            .map_err(anyhow::Error::from)
            .and_then(|w| {
                SamModel::load_as(
                    &w.with_cancel(cancel),
                    &self.runtime.device,
                    self.runtime.precision,
                )
            });
        match loaded {
            Ok(m) => {
                // The checkpoint's digest keys its embeddings (read once, then remembered).
                let m = match self.cache.as_ref().map(|c| c.checkpoint_digest(&path)) {
                    Some(Ok(d)) => m.with_identity(format!("sha256:{d}")),
                    Some(Err(e)) => {
                        eprintln!("segattn: embeddings of this model are not cached: {e:#}");
                        m
                    }
                    None => m,
                };
                self.set_model(m, t)
            }
            Err(_) if self.control.cancelled(generation) => self.send(SamResponse::LoadCancelled),
            Err(e) => self.fail(SamTask::LoadModel, &e),
        }
    }

    fn everything(
        &mut self,
        image_id: u64,
        request_id: u64,
        params: &EverythingParams,
        generation: u64,
    ) {
        let (Some(model), Some((gen, id, emb, _, image))) = (&self.model, &self.embedding) else {
            self.send(SamResponse::Failed {
                task: SamTask::Everything,
                problem: Problem::NotEncoded,
            });
            return;
        };
        if (*gen, *id) != (self.model_generation, image_id) {
            return; // for an image that is no longer current
        }
        let t = Instant::now();
        let (out, repaint) = (self.out.clone(), self.repaint.clone());
        let mut progress = |progress| {
            // Never blocks: a dropped progress report is replaced by the next one.
            let _ = out.try_send(SamResponse::EverythingProgress {
                image_id,
                request_id,
                progress,
            });
            repaint();
        };
        let stop = || self.stop_reason(generation).is_some();
        let result = crate::model::sam::automatic::generate(
            model,
            image,
            params,
            Some(emb),
            &mut progress,
            &stop,
        );
        match result {
            Ok(records) => self.send(SamResponse::Everything {
                image_id,
                request_id,
                records: Arc::new(records),
                ms: t.elapsed().as_secs_f64() * 1e3,
            }),
            Err(e) if e.is::<crate::model::sam::Cancelled>() => {
                if self.stop_reason(generation) == Some(true) {
                    self.send(SamResponse::EverythingCancelled {
                        image_id,
                        request_id,
                    });
                }
            }
            Err(e) => self.fail(SamTask::Everything, &e),
        }
    }

    fn encode(&mut self, image_id: u64, image: &Arc<Rgb8>, generation: u64) {
        let Some(model) = &self.model else {
            self.send(SamResponse::Failed {
                task: SamTask::Encode,
                problem: Problem::NoSamModel,
            });
            return;
        };
        if let Some((gen, id, _, ms, _)) = &self.embedding {
            if (*gen, *id) == (self.model_generation, image_id) {
                self.send(SamResponse::Encoded {
                    image_id,
                    ms: *ms,
                    from_cache: false,
                });
                return;
            }
        }
        let t = Instant::now();
        let key = cache_key(model, self.cache.as_ref(), image);
        if let (Some(p), Some(key)) = (&self.preencoder, &key) {
            if p.is_encoding(key) {
                // Encoded ahead as the user arrives: its result is waited for, not redone.
                self.send(SamResponse::Encoding { image_id });
                if !p.wait_for(key, || self.stop_reason(generation).is_some()) {
                    if self.stop_reason(generation) == Some(true) {
                        p.stop();
                        self.send(SamResponse::Cancelled { image_id });
                    }
                    return; // cancelled, or superseded: the newer image answers
                }
            }
        }
        if let Some(p) = &self.preencoder {
            p.stop(); // the user went elsewhere: this image comes first
        }
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            match cache.get(key) {
                Lookup::Hit(stored) if stored.original_hw == (image.height, image.width) => {
                    match model.embedding_from_features(
                        stored.features,
                        stored.high_res,
                        stored.original_hw,
                    ) {
                        Ok(emb) => {
                            let ms = t.elapsed().as_secs_f64() * 1e3;
                            self.embedding =
                                Some((self.model_generation, image_id, emb, ms, image.clone()));
                            self.send(SamResponse::Encoded {
                                image_id,
                                ms,
                                from_cache: true,
                            });
                            return;
                        }
                        Err(e) => eprintln!("segattn: a cached embedding was not usable: {e:#}"),
                    }
                }
                Lookup::Corrupt(why) => eprintln!("segattn: embedding cache: {why}"),
                _ => {}
            }
        }
        self.send(SamResponse::Encoding { image_id });
        let t = Instant::now();
        let stop = || self.stop_reason(generation).is_some();
        // The device's queued work finished before the clock is read (a GPU encoder returns
        // at its launch); a failed synchronisation is the encoder's error.
        let embedded = model.embed_cancellable(image, &stop).and_then(|emb| {
            model.device().synchronize()?;
            Ok(emb)
        });
        match embedded {
            Ok(emb) => {
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let stored = key
                    .as_ref()
                    .and_then(|_| Some((emb.to_vec().ok()?, emb.high_res_to_vec().ok()?)));
                self.embedding = Some((self.model_generation, image_id, emb, ms, image.clone()));
                self.send(SamResponse::Encoded {
                    image_id,
                    ms,
                    from_cache: false,
                });
                // Stored after the answer: the first click does not wait for the disk.
                if let (Some(cache), Some(key), Some((features, high_res))) =
                    (&self.cache, &key, stored)
                {
                    let stored = StoredEmbedding {
                        features,
                        high_res,
                        original_hw: (image.height, image.width),
                    };
                    if let Err(e) = cache.put(key, &stored) {
                        eprintln!("segattn: cannot store the embedding: {e:#}");
                    }
                }
            }
            Err(e) if e.is::<crate::model::sam::Cancelled>() => {
                if self.stop_reason(generation) == Some(true) {
                    self.send(SamResponse::Cancelled { image_id });
                }
                // Superseded: the newer image or model answers.
            }
            Err(e) => self.fail(SamTask::Encode, &e),
        }
    }

    fn set_model(&mut self, m: SamModel, t: Instant) {
        let name = m.config().name();
        let sam2 = m.config().is_sam2();
        let point_encoding = m.prompt_encoder().positional_encoding().clone();
        if let Some(p) = &self.preencoder {
            p.stop();
        }
        self.model = Some(Arc::new(m));
        self.model_generation += 1;
        self.embedding = None;
        self.send(SamResponse::ModelLoaded {
            name,
            ms: t.elapsed().as_secs_f64() * 1e3,
            point_encoding,
            sam2,
        });
    }
}

impl State {
    /// Hands `image` to the pre-encoder (started on first use).
    fn preencode(&mut self, token: u64, image: Arc<Rgb8>) {
        let (Some(model), Some(cache)) = (&self.model, &self.cache) else {
            return; // nothing to encode with, or nowhere to keep it
        };
        let Some(identity) = model.identity() else {
            return;
        };
        if self.preencoder.is_none() {
            match PreEncoder::spawn(self.out.clone(), self.repaint.clone()) {
                Ok(p) => self.preencoder = Some(p),
                Err(e) => {
                    eprintln!("segattn: no background encoding: {e}");
                    return;
                }
            }
        }
        let key = EmbeddingKey {
            image: String::new(), // its digest is taken on the pre-encoder's thread
            model: identity.to_owned(),
            encoder: encoder_label(model),
        };
        let job = PreJob {
            token,
            image,
            model: model.clone(),
            cache: cache.clone(),
            key,
            generation: 0,
        };
        if let Some(p) = &self.preencoder {
            p.submit(job);
        }
    }
}

/// Where and in which format `model`'s encoder runs, for cache keys (`cpu f32`).
fn encoder_label(model: &SamModel) -> String {
    let device = if model.device().is_cuda() {
        "cuda"
    } else if model.device().is_metal() {
        "metal"
    } else {
        "cpu"
    };
    format!("{device} {}", model.precision().name())
}

/// The cache key of `image` with `model`, when there is a cache and the model has an identity.
fn cache_key(
    model: &SamModel,
    cache: Option<&EmbeddingCache>,
    image: &Rgb8,
) -> Option<EmbeddingKey> {
    cache?;
    Some(EmbeddingKey {
        image: image_digest(image),
        model: model.identity()?.to_owned(),
        encoder: encoder_label(model),
    })
}

impl Handler for State {
    type Request = Queued;
    type Task = SamTask;

    fn task(q: &Queued) -> SamTask {
        match q.request {
            SamRequest::LoadModel { .. } | SamRequest::UseModel(_) => SamTask::LoadModel,
            SamRequest::SetImage { .. } => SamTask::Encode,
            SamRequest::Predict { .. } => SamTask::Predict,
            SamRequest::Everything { .. } => SamTask::Everything,
            SamRequest::SetCache(_) => SamTask::Encode,
            SamRequest::Preencode { .. } => SamTask::Preencode,
        }
    }

    fn coalesce(requests: Vec<Queued>) -> Vec<Queued> {
        coalesce(requests)
    }

    fn handle(&mut self, q: Queued) {
        match q.request {
            SamRequest::LoadModel { path } => self.load(path, q.generation),
            SamRequest::UseModel(m) => self.set_model(*m, Instant::now()),
            SamRequest::SetImage { image_id, image } => self.encode(image_id, &image, q.generation),
            SamRequest::SetCache(cache) => {
                if let Some(c) = &cache {
                    c.evict(); // the bound may have shrunk
                }
                self.cache = cache;
            }
            SamRequest::Preencode { token, image } => self.preencode(token, image),
            SamRequest::Everything {
                image_id,
                request_id,
                params,
            } => self.everything(image_id, request_id, &params, q.generation),
            SamRequest::Predict {
                image_id,
                request_id,
                prompts,
                multimask,
            } => {
                let (Some(model), Some((gen, id, emb, ..))) = (&self.model, &self.embedding) else {
                    return; // Nothing to decode against yet; the UI shows the encoding state.
                };
                if (*gen, *id) != (self.model_generation, image_id) {
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
                    Err(e) => self.fail(SamTask::Predict, &e),
                }
            }
        }
    }

    fn reset(&mut self) {
        if let Some(p) = &self.preencoder {
            p.stop();
        }
        self.model = None;
        self.embedding = None;
        self.model_generation += 1;
    }

    fn report_panic(&mut self, task: SamTask, message: String) {
        self.send(SamResponse::Crashed { task, message });
    }
}

/// Keeps requests in order but drops every `Predict` that a later `Predict` or `SetImage`
/// makes stale (the newest click wins), and every `SetImage` but the last.
fn coalesce(reqs: Vec<Queued>) -> Vec<Queued> {
    let last_predict = reqs
        .iter()
        .rposition(|q| matches!(q.request, SamRequest::Predict { .. }));
    let last_image = reqs
        .iter()
        .rposition(|q| matches!(q.request, SamRequest::SetImage { .. }));
    reqs.into_iter()
        .enumerate()
        .filter(|(i, q)| match q.request {
            SamRequest::Predict { .. } => {
                Some(*i) == last_predict && last_image.is_none_or(|li| li < *i)
            }
            SamRequest::SetImage { .. } => Some(*i) == last_image,
            _ => true,
        })
        .map(|(_, q)| q)
        .collect()
}

impl SamWorker {
    /// Starts the worker thread on `runtime`'s device.
    pub fn spawn(runtime: Runtime, repaint: Repaint) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Queued>(CHANNEL_CAPACITY);
        let (out, responses) = sync_channel::<SamResponse>(CHANNEL_CAPACITY);
        let control = Arc::new(Generations::default());
        let worker_control = control.clone();
        std::thread::Builder::new()
            .name("sam-worker".into())
            .spawn(move || {
                crate::runtime::lower_thread_priority();
                let state = State {
                    control: worker_control,
                    runtime,
                    model: None,
                    cache: None,
                    preencoder: None,
                    model_generation: 0,
                    embedding: None,
                    out,
                    repaint,
                };
                super::run(state, &rx);
            })?;
        Ok(Self {
            tx,
            rx: responses,
            control,
        })
    }

    /// Queues a request without blocking. A new image or model stops the encoding or loading
    /// in progress (silently: the new request answers).
    pub fn send(&self, request: SamRequest) -> Result<(), SendError> {
        let generation = if matches!(request, SamRequest::Predict { .. }) {
            self.control.current()
        } else {
            self.control.next()
        };
        Ok(self.tx.try_send(Queued {
            request,
            generation,
        })?)
    }

    /// The user's Cancel: stops the encoding, the loading or "everything" in progress at its
    /// next block, tensor or batch (answered with [`SamResponse::Cancelled`],
    /// [`SamResponse::LoadCancelled`] or [`SamResponse::EverythingCancelled`]).
    pub fn cancel(&self) {
        self.control.cancel();
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

    fn queued(request: SamRequest) -> Queued {
        Queued {
            request,
            generation: 0,
        }
    }

    fn predict(request_id: u64) -> Queued {
        queued(SamRequest::Predict {
            image_id: 1,
            request_id,
            prompts: Prompts::default(),
            multimask: true,
        })
    }

    fn image(image_id: u64) -> Queued {
        queued(SamRequest::SetImage {
            image_id,
            image: Arc::new(Rgb8 {
                width: 1,
                height: 1,
                data: vec![0; 3],
            }),
        })
    }

    fn ids(reqs: &[Queued]) -> Vec<String> {
        reqs.iter()
            .map(|q| match &q.request {
                SamRequest::Predict { request_id, .. } => format!("p{request_id}"),
                SamRequest::SetImage { image_id, .. } => format!("i{image_id}"),
                SamRequest::LoadModel { .. } => "load".into(),
                SamRequest::UseModel(_) => "use".into(),
                SamRequest::Everything { request_id, .. } => format!("e{request_id}"),
                SamRequest::SetCache(_) => "cache".into(),
                SamRequest::Preencode { token, .. } => format!("pre{token}"),
            })
            .collect()
    }

    #[test]
    fn newest_click_wins() {
        let q = coalesce(vec![predict(1), predict(2), predict(3)]);
        assert_eq!(ids(&q), ["p3"]);
        let q = coalesce(vec![predict(1), image(2), predict(4)]);
        assert_eq!(ids(&q), ["i2", "p4"]);
        let q = coalesce(vec![predict(1), image(2)]);
        assert_eq!(ids(&q), ["i2"]);
        let q = coalesce(vec![image(1), image(2), predict(5)]);
        assert_eq!(ids(&q), ["i2", "p5"]);
    }
}
