//! The Segment view: open an image, click foreground / background points or drag a box, see
//! SAM's mask at once, pick among the candidates, keep objects, export, and overlay the mask
//! decoder's attention for the current prompt.
//!
//! Its rooms: [`everything`] (the automatic mask generator), [`hover`] (the preview under the
//! pointer), [`loading`] (images in, decoded off the UI thread), [`view`] (zoom, pan and
//! screen ↔ image coordinates), [`history`] (prompts with undo / redo), [`objects`] (candidates,
//! kept objects, their overlays), [`outline`] (the chosen mask as the exports' polygons),
//! [`export`], [`folder`] (a folder's images and their annotation file), [`attention`] (the
//! decoder's attention overlay),
//! and the drawing: [`canvas`] (the image and what is on it) and [`controls`] (the side panel).
//! This file holds the state and its answers to the SAM worker.

pub mod attention;
pub mod canvas;
pub mod controls;
pub mod editing;
pub mod everything;
pub mod export;
pub mod folder;
pub mod folder_ui;
pub mod history;
pub mod hover;
pub mod loading;
pub mod objects;
pub mod outline;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::annotate::CocoShape;
use crate::jobs::{Jobs, Slot};
use crate::types::{EverythingParams, Mask, Prediction, Prompts};
use crate::ui::problems::error_text;
pub use crate::ui::Notify;
use crate::viz::mask::OBJECT_COLORS;
use crate::worker::sam::{SamRequest, SamResponse, SamTask, SamWorker};
use attention::{AttentionOverlay, AttentionPick};
use everything::EverythingState;
use export::ExportResult;
use folder::{FolderScan, FolderState};
use history::PromptHistory;
use hover::HoverState;
pub use loading::{decode_image, ImageSource, LoadedImage, SAMPLES};
use loading::{file_stamp, Decoded, FileStamp, ImageLoader, Opened};
use objects::{best, Candidates, Overlays, SegObject};
use outline::Outline;
use view::ImageView;

/// State of the image encoder for the current image.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeState {
    /// No image yet.
    Idle,
    /// The image waits for a SAM model (the view says how to get one).
    NeedsModel,
    /// Waiting for the encoder.
    Encoding {
        /// When the request was sent.
        since: Instant,
    },
    /// The embedding is ready.
    Ready {
        /// Encoder time in milliseconds (reading the disk cache, when it came from there).
        ms: f64,
        /// The embedding came from the disk cache.
        cached: bool,
    },
    /// The user cancelled the encoding.
    Cancelled,
    /// The encoder could not run (the message says why).
    Failed(crate::types::Problem),
}

/// The label of a first object.
pub const DEFAULT_LABEL: &str = "object";

/// Settings of the Segment view that persist.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SegmentSettings {
    /// Ask for 3 candidate masks.
    pub multimask: bool,
    /// Mask overlay opacity.
    pub opacity: f32,
    /// The last image opened from disk.
    pub last_image: Option<PathBuf>,
    /// The last folder opened (reopened at start-up).
    pub last_folder: Option<PathBuf>,
    /// Preview the mask under the pointer (H toggles).
    pub hover_preview: bool,
    /// Everything mode's parameters.
    pub everything: EverythingParams,
    /// The labels (categories) objects get, in the order exports number them.
    pub labels: Vec<String>,
    /// The label the next object gets.
    pub label: String,
    /// Polygon simplification of the exports, in pixels.
    pub simplify_px: f32,
    /// Draw the chosen mask's polygon outline.
    pub show_outline: bool,
    /// How objects go to COCO.
    pub coco_shape: CocoShape,
    /// Exports hold every object (else only the chosen mask).
    pub export_all: bool,
    /// Feed the chosen candidate's low-res logits to the next click as SAM's `mask_input`.
    pub refine: bool,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        Self {
            multimask: true,
            opacity: 0.5,
            last_image: None,
            last_folder: None,
            hover_preview: true,
            everything: EverythingParams::default(),
            labels: vec![DEFAULT_LABEL.into()],
            label: DEFAULT_LABEL.into(),
            simplify_px: 1.0,
            show_outline: true,
            coco_shape: CocoShape::Auto,
            export_all: true,
            refine: false,
        }
    }
}

/// Everything the Segment view holds between frames (runtime only).
pub struct SegmentState {
    loader: ImageLoader,
    /// The image on screen.
    pub image: Option<LoadedImage>,
    /// Encoder state of that image.
    pub encode: EncodeState,
    /// The prompts of the object being segmented, with undo and redo.
    pub history: PromptHistory,
    /// SAM's answer to the newest prompt, shown once its overlays are ready.
    pub candidates: Option<Candidates>,
    /// A newer answer whose overlays are being made (the older one stays on screen meanwhile).
    incoming: Option<Candidates>,
    overlays: Slot<Overlays>,
    /// Chosen candidate.
    pub selected: usize,
    /// Kept objects.
    pub objects: Vec<SegObject>,
    /// Overlay the decoder attention.
    pub show_attention: bool,
    /// Which attention map.
    pub attention_pick: AttentionPick,
    attention_overlay: AttentionOverlay,
    drag_from: Option<[f32; 2]>,
    next_image_id: u64,
    next_request_id: u64,
    /// The prompt whose answer is awaited from the worker.
    pub awaiting: Option<u64>,
    /// The newest prompt and when its pointer event came.
    click_started: Option<(u64, Instant)>,
    /// The app's click time: from the pointer event to the mask's overlay ready to draw.
    pub last_click_ms: Option<f64>,
    exports: Slot<ExportResult>,
    /// Ask for 3 candidates (mirrors the setting).
    pub multimask: bool,
    /// Refine each click with the previous answer (mirrors the setting).
    pub refine: bool,
    /// Zoom and pan of the canvas.
    pub view: ImageView,
    /// Everything mode: its run and the masks it found.
    pub everything: EverythingState,
    /// The loaded model is a SAM 2.1 one (everything mode's defaults are SAM 2's).
    pub sam2_model: bool,
    /// The hover preview.
    pub hover: HoverState,
    /// Preview under the pointer (mirrors the setting).
    pub hover_enabled: bool,
    /// The label the next object gets (mirrors the setting).
    pub label: String,
    /// The chosen mask's polygon outline.
    pub outline: Outline,
    /// A label being renamed: its index and the text typed so far.
    label_edit: Option<(usize, String)>,
    /// The object whose editing tools are open.
    pub editing: Option<usize>,
    /// "Remove parts under" this many pixels.
    pub min_part_px: usize,
    object_overlays: Slot<editing::ObjectOverlay>,
    /// The edit of an object's mask in progress.
    edit_job: Slot<editing::EditDone>,
    /// The open folder.
    pub folder: Option<FolderState>,
    folder_scan: Slot<anyhow::Result<FolderScan>>,
    /// The worker keeps embeddings on disk (so encoding the next image ahead is worth it).
    pub cache_enabled: bool,
    /// The folder's image encoded ahead: its file, and the token of the request once sent.
    ahead: Option<(PathBuf, Option<u64>)>,
    /// The image encoded ahead, decoded (with its file's stamp).
    ahead_image: Slot<(
        PathBuf,
        Option<FileStamp>,
        anyhow::Result<crate::types::Rgb8>,
    )>,
    /// The pixels of the image encoded ahead: moving to it shows them without decoding its
    /// file again (one image at most; dropped when another is encoded ahead).
    ahead_pixels: Option<(PathBuf, Decoded)>,
    /// The request to encode ahead whose encoder the worker said runs.
    preencoding: Option<u64>,
    next_token: u64,
    /// The last step through the folder (+1 next, -1 previous): the image encoded ahead is
    /// one more step that way.
    direction: isize,
    /// The folder images whose embedding the worker encoded ahead into the disk cache.
    pub encoded_ahead: Vec<PathBuf>,
    /// The UI's language at the last [`Self::poll`], for messages made away from a frame.
    lang: crate::ui::i18n::Lang,
    jobs: Jobs,
}

/// A request a worker could not take, in `lang`.
pub fn send_error_text(lang: crate::ui::i18n::Lang, e: &crate::worker::SendError) -> String {
    let problem = match e {
        crate::worker::SendError::Busy => crate::types::Problem::WorkerBusy,
        crate::worker::SendError::Stopped => crate::types::Problem::WorkerStopped,
    };
    crate::ui::problems::problem_text(lang, &problem)
}

impl SegmentState {
    /// An empty view whose background work runs on `jobs`.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            loader: ImageLoader::new(jobs),
            image: None,
            encode: EncodeState::Idle,
            history: PromptHistory::default(),
            candidates: None,
            incoming: None,
            overlays: Slot::new(jobs),
            selected: 0,
            objects: Vec::new(),
            show_attention: false,
            attention_pick: AttentionPick::default(),
            attention_overlay: AttentionOverlay::default(),
            drag_from: None,
            next_image_id: 1,
            next_request_id: 1,
            awaiting: None,
            click_started: None,
            last_click_ms: None,
            exports: Slot::new(jobs),
            multimask: true,
            refine: false,
            view: ImageView::default(),
            everything: EverythingState::new(jobs),
            sam2_model: false,
            hover: HoverState::new(jobs),
            hover_enabled: true,
            label: DEFAULT_LABEL.into(),
            outline: Outline::new(jobs),
            label_edit: None,
            editing: None,
            min_part_px: 100,
            object_overlays: Slot::new(jobs),
            edit_job: Slot::new(jobs),
            folder: None,
            folder_scan: Slot::new(jobs),
            cache_enabled: false,
            ahead: None,
            ahead_image: Slot::new(jobs),
            ahead_pixels: None,
            preencoding: None,
            next_token: 1,
            direction: 1,
            encoded_ahead: Vec::new(),
            lang: crate::ui::i18n::Lang::default(),
            jobs: jobs.clone(),
        }
    }

    /// The prompts of the object being segmented.
    pub fn prompts(&self) -> &Prompts {
        self.history.current()
    }

    /// The name of the image being decoded, if any.
    pub fn loading(&self) -> Option<&str> {
        self.loader.loading.as_deref()
    }

    /// Starts decoding `src` off the UI thread; it replaces the current image when ready. An
    /// image of the open folder comes with its stored objects.
    pub fn open(&mut self, src: ImageSource, ctx: &egui::Context) {
        let stored = self
            .folder
            .as_ref()
            .and_then(|f| Some(f.stored(f.index_of(src.path()?)?)))
            .unwrap_or_default();
        let decoded = match (&self.ahead_pixels, src.path()) {
            (Some((p, _)), Some(path)) if p == path => self.ahead_pixels.take().map(|(_, d)| d),
            _ => None,
        };
        self.loader.open(src, stored, decoded, ctx);
    }

    /// Starts reading folder `dir` (its images and annotation file) off the UI thread; its
    /// first image not done opens when it is read.
    pub fn open_folder(&mut self, dir: PathBuf, ctx: &egui::Context) {
        let lang = crate::ui::i18n::lang(ctx);
        self.folder_scan
            .submit(move |_| FolderScan::read(dir, lang));
    }

    /// True while a folder is being read.
    pub fn reading_folder(&self) -> bool {
        self.folder_scan.is_pending()
    }

    /// Opens image `i` of the open folder.
    pub fn go_to(&mut self, i: usize, ctx: &egui::Context) {
        let Some(path) = self
            .folder
            .as_ref()
            .filter(|f| i < f.images.len())
            .map(|f| f.path(i))
        else {
            return;
        };
        self.open(ImageSource::File(path), ctx);
    }

    /// Opens the folder's image `delta` places from the current one (wrapping around).
    pub fn step_image(&mut self, delta: isize, ctx: &egui::Context) {
        self.direction = delta.signum();
        let Some(f) = &self.folder else { return };
        let n = f.images.len() as isize;
        let here = self
            .loader
            .loading_path
            .as_ref()
            .and_then(|p| f.index_of(p))
            .or(f.current);
        let next = here.map_or(0, |i| (i as isize + delta).rem_euclid(n)) as usize;
        self.go_to(next, ctx);
    }

    /// Records the current image's objects in the folder (saved on a job) if they changed.
    fn sync_folder(&mut self, labels: &[String]) {
        if let Some(f) = &mut self.folder {
            let objects: Vec<folder::LabeledMask> = self
                .objects
                .iter()
                .map(|o| (o.label.clone(), o.mask.clone()))
                .collect();
            f.sync(&objects, labels);
        }
    }

    /// Writes the folder's unsaved changes now (at exit).
    pub fn flush_folder(&mut self, labels: &[String]) -> Result<(), crate::types::Problem> {
        self.sync_folder(labels);
        self.folder.as_mut().map_or(Ok(()), |f| f.flush(labels))
    }

    /// Closes the folder, its changes written first.
    pub fn close_folder(
        &mut self,
        settings: &mut SegmentSettings,
        lang: crate::ui::i18n::Lang,
        notify: Notify,
    ) {
        if let Err(e) = self.flush_folder(&settings.labels) {
            let message = crate::ui::problems::problem_text(lang, &e);
            notify(Err(crate::tr_lang!(
                lang,
                "msg-save-failed",
                message = message
            )));
            return; // kept open: the work is not on disk
        }
        self.folder = None;
        settings.last_folder = None;
    }

    fn poll_folder(&mut self, ctx: &egui::Context, settings: &mut SegmentSettings, notify: Notify) {
        if let Some(scan) = self.folder_scan.poll() {
            match scan {
                Ok(scan) => {
                    if let Err(e) = self.flush_folder(&settings.labels) {
                        let message = crate::ui::problems::problem_text(self.lang, &e);
                        notify(Err(crate::tr_ctx!(
                            ctx,
                            "msg-save-failed",
                            message = message
                        )));
                    }
                    for n in &scan.notices {
                        notify(Err(n.clone()));
                    }
                    for c in &scan.annotations.categories {
                        if !settings.labels.contains(c) {
                            settings.labels.push(c.clone());
                        }
                    }
                    let f = FolderState::new(scan, &self.jobs);
                    let (images, done) = (f.images.len(), f.done_count());
                    notify(Ok(crate::tr_ctx!(
                        ctx,
                        "seg-folder-opened",
                        name = f.name(),
                        images = images,
                        done = done
                    )));
                    let start = settings
                        .last_image
                        .as_ref()
                        .and_then(|p| f.index_of(p))
                        .or_else(|| f.next_not_done(None))
                        .unwrap_or(0);
                    settings.last_folder = Some(f.dir.clone());
                    self.folder = Some(f);
                    self.go_to(start, ctx);
                }
                Err(e) => notify(Err(error_text(crate::ui::i18n::lang(ctx), &e))),
            }
        }
        if let Some(Err(e)) = self.folder.as_mut().and_then(FolderState::poll) {
            let message = crate::ui::problems::problem_text(crate::ui::i18n::lang(ctx), &e);
            notify(Err(crate::tr_ctx!(
                ctx,
                "msg-save-failed",
                message = message
            )));
        }
    }

    /// While the current image of a folder is ready, has the worker encode the next one into
    /// the disk cache (decoded on a job first). A new image or model stops it in the worker;
    /// it starts again from here for the image after the new one.
    fn encode_ahead(&mut self, sam: &SamWorker) {
        if let Some((path, stamp, rgb)) = self.ahead_image.poll() {
            match (&mut self.ahead, rgb) {
                (Some((p, token @ None)), Ok(rgb)) if *p == path => {
                    let t = self.next_token;
                    self.next_token += 1;
                    let image = Arc::new(rgb);
                    let rgb = image.clone();
                    if sam.send(SamRequest::Preencode { token: t, image }).is_ok() {
                        *token = Some(t);
                    }
                    self.ahead_pixels = Some((path, Decoded { stamp, rgb }));
                }
                _ => {} // not needed any more, or undecodable: said when it is opened
            }
        }
        let next = self.folder.as_ref().and_then(|f| {
            let i = f.current?;
            let n = f.images.len() as isize;
            (n > 1).then(|| f.path((i as isize + self.direction).rem_euclid(n) as usize))
        });
        let ready = matches!(self.encode, EncodeState::Ready { .. });
        let Some(next) = next.filter(|p| {
            ready
                && self.cache_enabled
                && self.loading().is_none()
                && !self.encoded_ahead.contains(p)
        }) else {
            return;
        };
        if self.ahead.as_ref().is_some_and(|(p, _)| *p == next) {
            return; // on its way
        }
        self.ahead = Some((next.clone(), None));
        self.ahead_pixels = None; // another image's
        self.ahead_image.submit(move |_| {
            let stamp = file_stamp(&next);
            let rgb = decode_image(&ImageSource::File(next.clone()));
            (next, stamp, rgb)
        });
    }

    /// The folder image whose embedding the worker is encoding ahead now.
    pub fn encoding_ahead(&self) -> Option<&Path> {
        match &self.ahead {
            Some((p, Some(t))) if self.preencoding == Some(*t) => Some(p),
            _ => None,
        }
    }

    /// The worker answered a request to encode ahead.
    fn encoded_ahead(&mut self, token: u64) {
        if let Some((path, Some(t))) = &self.ahead {
            if *t == token {
                self.encoded_ahead.push(path.clone());
                self.ahead = None;
            }
        }
    }

    /// Applies finished background work: a decoded image, candidate overlays, an export. Call
    /// once per frame before drawing; `model_loaded` says whether SAM can encode.
    pub fn poll(
        &mut self,
        ctx: &egui::Context,
        sam: &SamWorker,
        settings: &mut SegmentSettings,
        model_loaded: bool,
        notify: Notify,
    ) {
        self.lang = crate::ui::i18n::lang(ctx);
        if let Some(result) = self.loader.poll() {
            match result {
                Ok(opened) => {
                    if let Some(p) = opened.source.path() {
                        settings.last_image = Some(p.clone());
                    }
                    self.set_image(opened, sam, &settings.labels, model_loaded, notify);
                }
                Err(e) => notify(Err(error_text(self.lang, &e))),
            }
        }
        if let Some((request_id, textures)) = self.overlays.poll() {
            if let Some(mut c) = self.incoming.take_if(|c| c.request_id == request_id) {
                c.overlays = Some(textures);
                // Keep the user's pick when the number of candidates is unchanged; else take
                // SAM's best.
                if self
                    .candidates
                    .as_ref()
                    .is_none_or(|old| old.masks.len() != c.masks.len())
                    || self.selected >= c.masks.len()
                {
                    self.selected = best(&c.iou);
                }
                self.candidates = Some(c);
                if let Some((id, t)) = self.click_started {
                    if id == request_id {
                        self.last_click_ms = Some(t.elapsed().as_secs_f64() * 1e3);
                        self.click_started = None;
                    }
                }
            }
        }
        if let Some(result) = self.exports.poll() {
            notify(result);
        }
        self.poll_everything();
        self.poll_hover();
        self.label.clone_from(&settings.label);
        let chosen = self.selected_mask().cloned();
        self.outline.update(
            chosen.as_ref().filter(|_| settings.show_outline),
            settings.simplify_px,
        );
        self.outline.poll();
        self.poll_folder(ctx, settings, notify);
        self.sync_folder(&settings.labels);
        self.encode_ahead(sam);
    }

    /// Handles one SAM worker response about the image or a prompt.
    pub fn on_response(&mut self, ctx: &egui::Context, r: SamResponse, notify: Notify) {
        let Some(r) = self.on_everything_response(ctx, r, notify) else {
            return;
        };
        match r {
            SamResponse::Encoding { image_id }
                if self.is_current(image_id)
                    && !matches!(self.encode, EncodeState::Encoding { .. }) =>
            {
                self.encode = EncodeState::Encoding {
                    since: Instant::now(),
                };
            }
            SamResponse::Preencoding { token } => self.preencoding = Some(token),
            SamResponse::Preencoded { token, .. } => self.encoded_ahead(token),
            SamResponse::Cancelled { image_id } if self.is_current(image_id) => {
                self.encode = EncodeState::Cancelled;
                notify(Ok(crate::tr_ctx!(ctx, "seg-encoding-cancelled")));
            }
            SamResponse::Encoded {
                image_id,
                ms,
                from_cache,
            } if self.is_current(image_id) => {
                self.encode = EncodeState::Ready {
                    ms,
                    cached: from_cache,
                };
            }
            SamResponse::Prediction {
                image_id,
                request_id,
                prediction,
                ..
            } if self.is_current(image_id) => {
                match self.hover.answered(request_id) {
                    Some(true) => return self.take_hover_prediction(ctx, request_id, *prediction),
                    Some(false) => return, // a preview a click made moot
                    None => {}
                }
                if self.awaiting == Some(request_id) {
                    self.awaiting = None;
                }
                if self.history.current().is_empty() {
                    return; // cleared or undone to nothing since the click
                }
                self.take_prediction(ctx, request_id, *prediction);
            }
            SamResponse::Failed {
                task: SamTask::Encode,
                problem,
            } if self.image.is_some() => self.encode = EncodeState::Failed(problem),
            SamResponse::Failed {
                task: SamTask::Predict,
                ..
            } => self.awaiting = None,
            SamResponse::Crashed { .. } => {
                self.awaiting = None;
                if self.image.is_some() {
                    self.encode = EncodeState::NeedsModel;
                }
            }
            _ => {}
        }
    }

    /// A new model is loaded: the current image needs a new embedding, the prompts new masks.
    /// `sam2`: a SAM 2.1 model, whose automatic mask generator has other official defaults;
    /// `everything` holding the other family's defaults moves to this one's (values the user
    /// changed are kept).
    pub fn on_model_loaded(
        &mut self,
        sam: &SamWorker,
        sam2: bool,
        everything: &mut EverythingParams,
        notify: Notify,
    ) {
        if *everything == EverythingParams::defaults_for(!sam2) {
            *everything = EverythingParams::defaults_for(sam2);
        }
        // The attention overlay stays on the first mask token when it was there.
        if self.attention_pick.token == AttentionPick::first_mask_token(!sam2) {
            self.attention_pick.token = AttentionPick::first_mask_token(sam2);
        }
        self.sam2_model = sam2;
        self.encoded_ahead.clear(); // those were another model's
        self.ahead = None;
        self.candidates = None;
        self.incoming = None;
        self.overlays.cancel();
        self.encode_current(sam, notify);
    }

    fn is_current(&self, image_id: u64) -> bool {
        self.image.as_ref().is_some_and(|i| i.id == image_id)
    }

    fn set_image(
        &mut self,
        opened: Opened,
        sam: &SamWorker,
        labels: &[String],
        model_loaded: bool,
        notify: Notify,
    ) {
        self.sync_folder(labels); // the image leaving: its last change saved
        self.ahead = None; // a new image stops the worker's encoding ahead: asked again
        let id = self.next_image_id;
        self.next_image_id += 1;
        self.image = Some(LoadedImage {
            id,
            name: opened.source.name(),
            path: opened.source.path().cloned(),
            rgb: opened.rgb,
            texture: opened.texture,
            display_size: opened.display_size,
        });
        self.history.reset();
        self.view = ImageView::default();
        self.candidates = None;
        self.incoming = None;
        self.overlays.cancel();
        self.objects = opened
            .objects
            .into_iter()
            .enumerate()
            .map(|(i, (label, mask, overlay))| {
                let color = OBJECT_COLORS[i % OBJECT_COLORS.len()];
                SegObject::new(label, color, mask, Some(overlay))
            })
            .collect();
        for n in &opened.notices {
            notify(Err(n.clone()));
        }
        if let Some(f) = &mut self.folder {
            let img = self.image.as_ref().expect("just set");
            match img.path.as_ref().and_then(|p| f.index_of(p)) {
                Some(i) => {
                    let fp = folder::fingerprint(
                        self.objects.iter().map(|o| (o.label.as_str(), &o.mask)),
                    );
                    f.arrived(i, (img.rgb.width, img.rgb.height), fp, opened.hidden);
                }
                None => f.current = None,
            }
        }
        self.editing = None;
        self.object_overlays.cancel();
        self.edit_job.cancel();
        self.awaiting = None;
        self.click_started = None;
        self.hover.clear();
        self.everything.reset();
        if model_loaded {
            self.encode_current(sam, notify);
        } else {
            self.encode = EncodeState::NeedsModel;
        }
    }

    /// (Re-)encodes the current image, e.g. after a model was loaded.
    pub fn encode_current(&mut self, sam: &SamWorker, notify: Notify) {
        let Some(img) = &self.image else { return };
        match sam.send(SamRequest::SetImage {
            image_id: img.id,
            image: img.rgb.clone(),
        }) {
            Ok(()) => {
                self.encode = EncodeState::Encoding {
                    since: Instant::now(),
                }
            }
            Err(e) => notify(Err(send_error_text(self.lang, &e))),
        }
        if !self.history.current().is_empty() {
            self.request(sam, notify);
        }
    }

    /// Keeps SAM's answer and starts making its overlays (shown when ready).
    fn take_prediction(&mut self, ctx: &egui::Context, request_id: u64, p: Prediction) {
        let Some(img) = &self.image else { return };
        let size = img.display_size;
        let c = Candidates::start(&mut self.overlays, ctx, request_id, p, size, "candidate");
        self.incoming = Some(c);
    }

    /// Sends the current prompts to SAM (the worker runs only the newest).
    fn request(&mut self, sam: &SamWorker, notify: Notify) {
        let Some(image_id) = self.image.as_ref().map(|i| i.id) else {
            return;
        };
        if self.history.current().is_empty() {
            self.candidates = None;
            self.incoming = None;
            self.overlays.cancel();
            return;
        }
        if !matches!(
            self.encode,
            EncodeState::Encoding { .. } | EncodeState::Ready { .. }
        ) {
            return; // nothing to decode against; the view says why
        }
        if let Some(request_id) = self.adopt_in_flight() {
            self.awaiting = Some(request_id);
            self.click_started = Some((request_id, Instant::now()));
            return;
        }
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let req = SamRequest::Predict {
            image_id,
            request_id,
            prompts: self.history.current().clone(),
            multimask: self.multimask,
        };
        // The worker runs only the newest prompt: a preview queued before this is dropped.
        self.hover.forget_in_flight();
        match sam.send(req) {
            Ok(()) => {
                self.awaiting = Some(request_id);
                self.click_started = Some((request_id, Instant::now()));
            }
            Err(e) => notify(Err(send_error_text(self.lang, &e))),
        }
    }

    /// The `mask_input` the next click gets: with refinement on, the chosen candidate's
    /// low-res logits (SAM's answer to the current prompts), as the official predictor takes
    /// them.
    pub(super) fn refinement_input(&self) -> Option<Vec<f32>> {
        if !self.refine || self.history.current().is_empty() {
            return None;
        }
        self.candidates
            .as_ref()?
            .low_res
            .get(self.selected)
            .cloned()
    }

    /// Changes the prompts (recording undo) and asks SAM.
    pub fn edit(&mut self, sam: &SamWorker, notify: Notify, change: impl FnOnce(&mut Prompts)) {
        let t = Instant::now();
        let input = self.refinement_input();
        self.history.edit(|p| {
            change(p);
            p.mask_input = input.filter(|_| !p.is_empty());
        });
        if self.commit_preview() {
            // A click where the preview rested: its answer is already on screen.
            self.hover.forget_in_flight();
            self.awaiting = None;
            self.click_started = None;
            self.last_click_ms = Some(t.elapsed().as_secs_f64() * 1e3);
            return;
        }
        self.request(sam, notify);
    }

    /// Undo the last prompt change.
    pub fn undo(&mut self, sam: &SamWorker, notify: Notify) {
        if self.history.undo() {
            self.request(sam, notify);
        }
    }

    /// Redo the last undone change.
    pub fn redo(&mut self, sam: &SamWorker, notify: Notify) {
        if self.history.redo() {
            self.request(sam, notify);
        }
    }

    /// Clears the prompts of the current object.
    pub fn clear(&mut self, sam: &SamWorker, notify: Notify) {
        if !self.history.current().is_empty() {
            self.edit(sam, notify, |p| *p = Prompts::default());
        }
    }

    /// The mask currently chosen, if any.
    pub fn selected_mask(&self) -> Option<&Arc<Mask>> {
        self.candidates
            .as_ref()
            .and_then(|c| c.masks.get(self.selected))
    }

    /// The colour the next object gets.
    fn next_color(&self) -> [u8; 3] {
        OBJECT_COLORS[self.objects.len() % OBJECT_COLORS.len()]
    }

    /// Keeps the chosen mask as a new object (its overlay reused, nothing rebuilt) and starts
    /// the next one.
    pub fn add_object(&mut self) {
        let Some(c) = self.candidates.take() else {
            return;
        };
        let Some(mask) = c.masks.get(self.selected).cloned() else {
            self.candidates = Some(c);
            return;
        };
        let overlay = c
            .overlays
            .as_ref()
            .and_then(|o| o.get(self.selected))
            .cloned();
        self.objects.push(SegObject::new(
            self.label.clone(),
            self.next_color(),
            mask,
            overlay,
        ));
        self.history.reset();
        self.incoming = None;
        self.overlays.cancel();
    }
}
