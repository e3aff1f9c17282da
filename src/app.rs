//! The desktop app: persisted settings, the workers and view jobs, the models' states, and the
//! four views.

use std::path::PathBuf;
use std::time::Instant;

use crate::download::{Download, DownloadEvent, DownloadOptions, DownloadSpec, ModelKind};
use crate::embed_cache::{CacheUsage, EmbeddingCache};
use crate::jobs::{Jobs, Slot};
use crate::model::sam::SamModel;
use crate::model::text::TextModel;
use crate::runtime::{DTypeChoice, DeviceChoice, Runtime};
use crate::ui::attention_view::{AttentionSettings, AttentionState};
use crate::ui::encodings_view::{EncodingsSettings, EncodingsState};
use crate::ui::first_run::{model_needed_ui, DownloadView, FirstRunAction};
use crate::ui::i18n::Lang;
use crate::ui::segment::{ImageSource, SegmentSettings, SegmentState, SAMPLES};
use crate::ui::status_bar::Status;
use crate::ui::train_view::{TrainState, TrainViewSettings};
use crate::ui::{ModelActivity, ModelStatus, View};
use crate::weights::Catalog;
use crate::worker::sam::{SamRequest, SamWorker};
use crate::worker::text::{TextRequest, TextWorker};
use crate::worker::train::TrainWorker;
use crate::worker::Repaint;
use crate::{tr_ctx, tr_lang};

mod models_window;
mod responses;

/// Settings kept between sessions (eframe storage).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The open view.
    pub view: View,
    /// Dark or light theme.
    pub dark_mode: bool,
    /// The last SAM checkpoint that loaded.
    pub sam_weights: Option<PathBuf>,
    /// The last text model folder that loaded.
    pub text_model: Option<PathBuf>,
    /// Segment view.
    pub segment: SegmentSettings,
    /// Attention view.
    pub attention: AttentionSettings,
    /// Encodings view.
    pub encodings: EncodingsSettings,
    /// Train view.
    pub train: TrainViewSettings,
    /// Keep image embeddings on disk.
    pub embedding_cache: bool,
    /// The embedding cache's bound, in GB.
    pub embedding_cache_gb: f32,
    /// The UI's language, once the user picked one (else the system's).
    pub language: Option<Lang>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            view: View::Segment,
            dark_mode: true,
            sam_weights: None,
            text_model: None,
            segment: SegmentSettings::default(),
            attention: AttentionSettings::default(),
            encodings: EncodingsSettings::default(),
            train: TrainViewSettings::default(),
            embedding_cache: true,
            embedding_cache_gb: (crate::embed_cache::DEFAULT_MAX_BYTES as f64 / 1e9) as f32,
            language: None,
        }
    }
}

/// How the app starts.
#[derive(Default)]
pub struct AppOptions {
    /// A SAM checkpoint to load (else the remembered or discovered one).
    pub sam_weights: Option<PathBuf>,
    /// A text model folder to load (else the remembered or discovered one).
    pub text_model: Option<PathBuf>,
    /// An image or a folder of images to open (else the last folder or image, else the
    /// bundled cat).
    pub image: Option<PathBuf>,
    /// Close after this many frames (smoke tests).
    pub exit_after_frames: Option<u64>,
    /// The view to open (else the last one).
    pub view: Option<View>,
    /// Look for weights on disk and restore settings (off in tests).
    pub discover: bool,
    /// An already built SAM model (tests).
    pub sam_model: Option<SamModel>,
    /// An already built text model (tests).
    pub text_model_built: Option<TextModel>,
    /// Where models run.
    pub device: DeviceChoice,
    /// Format of SAM's image encoder.
    pub dtype: DTypeChoice,
    /// Where model downloads come from and go (default: the Hub and its standard cache).
    pub downloads: DownloadOptions,
    /// The folder of the embedding cache (else, with `discover`, the standard one:
    /// [`EmbeddingCache::default_dir`]; else none).
    pub cache_dir: Option<PathBuf>,
    /// The UI's language (else the remembered one; else, with `discover`, the system's; else
    /// English).
    pub lang: Option<Lang>,
    /// Where the Train view saves the models it opens in the Attention view (else, with
    /// `discover`, [`default_trained_dir`]; else none, and the button is not shown).
    pub trained_dir: Option<PathBuf>,
    /// Open the Train view and start training with its settings.
    pub start_training: bool,
}

/// Where the Train view keeps trained models: `$XDG_DATA_HOME/segattn/trained`, else
/// `~/.local/share/segattn/trained` (`%APPDATA%` on Windows).
pub fn default_trained_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("APPDATA").map(PathBuf::from))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share"))
        })?;
    Some(base.join("segattn").join("trained"))
}

/// Progress of one file of a download: name, position in the list, bytes done, bytes in all.
type FileProgress = (String, usize, u64, u64);

/// What a look around the disk found, and the models to load from it at start-up.
struct Found {
    catalog: Catalog,
    sam: Option<PathBuf>,
    text: Option<PathBuf>,
}

/// The app.
pub struct SegattnApp {
    /// Persisted settings.
    pub settings: Settings,
    /// Segment view state.
    pub segment: SegmentState,
    /// Attention view state.
    pub attention: AttentionState,
    /// Encodings view state.
    pub encodings: EncodingsState,
    /// Train view state.
    pub train: TrainState,
    /// The status bar.
    pub status: Status,
    /// SAM's model in use and what is happening to it.
    pub sam_model: ModelStatus,
    /// The text model in use and what is happening to it.
    pub text_model: ModelStatus,
    sam: SamWorker,
    text: TextWorker,
    trainer: TrainWorker,
    trained_dir: Option<PathBuf>,
    /// The checkpoint being loaded, remembered once it loads.
    sam_loading: Option<PathBuf>,
    /// The model folder being loaded, remembered once it loads.
    text_loading: Option<PathBuf>,
    /// The last model that loaded from a file, to load again after a worker crash.
    sam_path: Option<PathBuf>,
    text_path: Option<PathBuf>,
    /// The models found on disk.
    pub catalog: Catalog,
    found: Slot<Found>,
    frames: u64,
    exit_after_frames: Option<u64>,
    show_models: bool,
    repaint: Repaint,
    /// The window's context: the language of the messages the app writes.
    ctx: egui::Context,
    downloads: DownloadOptions,
    /// The running download and its last progress.
    download: Option<(Download, Option<FileProgress>)>,
    /// The embedding cache's folder, if any.
    pub cache_dir: Option<PathBuf>,
    /// The cache settings the worker has: on, bound.
    cache_sent: Option<(bool, f32)>,
    cache_slider_held: bool,
    /// The cache's entries and bytes, measured on a job when the Models window opens or the
    /// cache is cleared (`None` until the first answer).
    pub cache_usage: Option<CacheUsage>,
    cache_usage_job: Slot<CacheUsage>,
}

impl SegattnApp {
    /// Builds the app: restores settings, starts the workers, loads models and the first image.
    pub fn new(cc: &eframe::CreationContext<'_>, opts: AppOptions) -> anyhow::Result<Self> {
        let settings: Settings = if opts.discover {
            cc.storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default()
        } else {
            Settings::default()
        };
        crate::ui::install_fonts(&cc.egui_ctx);
        let system = if opts.discover {
            Lang::system()
        } else {
            Lang::En
        };
        let lang = opts.lang.or(settings.language).unwrap_or(system);
        crate::ui::i18n::set_lang(&cc.egui_ctx, lang);
        let ctx = cc.egui_ctx.clone();
        let repaint: Repaint = std::sync::Arc::new(move || ctx.request_repaint());
        let runtime = Runtime::select(opts.device, opts.dtype)?;
        let jobs = Jobs::new(2, repaint.clone())?;
        let sam = SamWorker::spawn(runtime.clone(), repaint.clone())?;
        let text = TextWorker::spawn(runtime.clone(), repaint.clone())?;
        let trainer = TrainWorker::spawn(repaint.clone())?;
        let trained_dir = opts
            .trained_dir
            .or_else(|| opts.discover.then(default_trained_dir).flatten());
        let mut app = Self {
            settings,
            segment: SegmentState::new(&jobs),
            attention: AttentionState::new(&jobs),
            encodings: EncodingsState::new(&jobs),
            train: TrainState::default(),
            status: Status {
                device: runtime.device_name(),
                precision: runtime.precision.name().into(),
                ..Status::default()
            },
            sam_model: ModelStatus::default(),
            text_model: ModelStatus::default(),
            sam,
            text,
            trainer,
            trained_dir,
            sam_loading: None,
            text_loading: None,
            sam_path: None,
            text_path: None,
            // The folders are known at once (no disk access), so the Models window's layout does
            // not grow under the pointer when the scan's result comes.
            catalog: Catalog {
                search_dirs: crate::weights::search_dirs(),
                ..Catalog::default()
            },
            found: Slot::new(&jobs),
            frames: 0,
            exit_after_frames: opts.exit_after_frames,
            show_models: false,
            repaint,
            ctx: cc.egui_ctx.clone(),
            downloads: opts.downloads,
            download: None,
            cache_dir: None,
            cache_sent: None,
            cache_slider_held: false,
            cache_usage: None,
            cache_usage_job: Slot::new(&jobs),
        };
        app.segment.multimask = app.settings.segment.multimask;
        app.segment.refine = app.settings.segment.refine;
        // Before any model loads: a checkpoint's digest is taken as it loads.
        app.cache_dir = opts
            .cache_dir
            .or_else(|| opts.discover.then(EmbeddingCache::default_dir).flatten());
        app.apply_cache_settings();
        if let Some(v) = opts.view {
            app.settings.view = v;
        }
        if opts.start_training {
            app.settings.view = View::Train;
            let status = &mut app.status;
            app.train
                .start(&app.trainer, &app.settings.train.settings, &mut |m| {
                    status.notify(m)
                });
        }
        if let Some(m) = opts.sam_model {
            app.use_sam(m);
        } else if let Some(p) = opts.sam_weights {
            app.load_sam(p);
        } else if opts.discover {
            app.sam_model.activity = ModelActivity::Searching;
        }
        if let Some(m) = opts.text_model_built {
            app.text_model.activity = ModelActivity::Loading {
                label: "the test model".into(),
                since: Instant::now(),
            };
            app.send_text(TextRequest::UseModel(Box::new(m)));
        } else if let Some(p) = opts.text_model {
            app.load_text(p);
        } else if opts.discover {
            app.text_model.activity = ModelActivity::Searching;
        }
        // Look around the disk off the UI thread: the Models window lists what is there, and
        // a model to load at start-up is the remembered one, else the first found.
        let remembered = (
            app.settings.sam_weights.clone().filter(|_| opts.discover),
            app.settings.text_model.clone().filter(|_| opts.discover),
        );
        app.found.submit(move |_| {
            let catalog = Catalog::scan();
            let pick = |remembered: Option<PathBuf>, found: &[PathBuf]| {
                remembered
                    .filter(|p| p.exists())
                    .or_else(|| found.first().cloned())
            };
            Found {
                sam: pick(remembered.0, &catalog.sam),
                text: pick(remembered.1, &catalog.text),
                catalog,
            }
        });
        let remembered = |p: &Option<PathBuf>| p.clone().filter(|p| opts.discover && p.exists());
        let start = opts
            .image
            .or_else(|| remembered(&app.settings.segment.last_folder))
            .or_else(|| remembered(&app.settings.segment.last_image));
        match start {
            Some(dir) if dir.is_dir() => app.segment.open_folder(dir, &cc.egui_ctx),
            Some(file) => app.segment.open(ImageSource::File(file), &cc.egui_ctx),
            None => {
                let (name, bytes) = SAMPLES[0];
                app.segment
                    .open(ImageSource::Sample(name, bytes), &cc.egui_ctx);
            }
        }
        Ok(app)
    }

    /// Gives the SAM worker the embedding cache as the settings say (when they changed).
    pub fn apply_cache_settings(&mut self) {
        let want = (
            self.settings.embedding_cache,
            self.settings.embedding_cache_gb,
        );
        if self.cache_sent == Some(want) || self.cache_slider_held {
            return;
        }
        let cache = self
            .cache_dir
            .clone()
            .filter(|_| want.0)
            .map(|dir| EmbeddingCache::new(dir, (f64::from(want.1.max(0.0)) * 1e9) as u64));
        self.segment.cache_enabled = cache.is_some();
        // Evicting to a smaller bound runs on the worker, not here.
        self.send_sam(SamRequest::SetCache(cache));
        self.cache_sent = Some(want);
    }

    fn send_sam(&mut self, r: SamRequest) {
        if let Err(e) = self.sam.send(r) {
            self.status.notify(Err(e.to_string()));
        }
    }

    fn send_text(&mut self, r: TextRequest) {
        if let Err(e) = self.text.send(r) {
            self.status.notify(Err(e.to_string()));
        }
    }

    fn use_sam(&mut self, m: SamModel) {
        self.sam_model.activity = ModelActivity::Loading {
            label: m.config().name(),
            since: Instant::now(),
        };
        self.send_sam(SamRequest::UseModel(Box::new(m)));
    }

    /// Loads a SAM checkpoint on the worker.
    pub fn load_sam(&mut self, path: PathBuf) {
        self.sam_model.activity = ModelActivity::Loading {
            label: file_label(&path),
            since: Instant::now(),
        };
        let path_text = path.display().to_string();
        let message = tr_lang!(self.lang(), "msg-loading", path = path_text);
        self.status.notify(Ok(message));
        self.sam_loading = Some(path.clone());
        self.send_sam(SamRequest::LoadModel { path });
    }

    /// Loads a text model folder on the worker.
    pub fn load_text(&mut self, dir: PathBuf) {
        self.text_model.activity = ModelActivity::Loading {
            label: crate::weights::model_folder_label(&dir),
            since: Instant::now(),
        };
        let path_text = dir.display().to_string();
        let message = tr_lang!(self.lang(), "msg-loading", path = path_text);
        self.status.notify(Ok(message));
        self.text_loading = Some(dir.clone());
        self.send_text(TextRequest::LoadModel { dir });
    }

    /// Stops loading `kind`'s model (the previous one stays in use).
    pub fn cancel_load(&mut self, kind: ModelKind) {
        match kind {
            ModelKind::Sam => self.sam.cancel(),
            ModelKind::Text => self.text.cancel(),
        }
    }

    /// Starts downloading `spec` (one download at a time); the model loads when it is done.
    pub fn start_download(&mut self, spec: DownloadSpec) {
        if self.download.is_some() {
            let message = tr_lang!(self.lang(), "msg-download-running");
            self.status.notify(Err(message));
            return;
        }
        let label = spec.label.clone();
        match Download::start(spec, self.downloads.clone(), self.repaint.clone()) {
            Ok(d) => {
                let message = tr_lang!(self.lang(), "msg-downloading", model = label.as_str());
                self.status.notify(Ok(message));
                self.download = Some((d, None));
            }
            Err(e) => {
                let (model, message) = (label.as_str(), e.to_string());
                let text = tr_lang!(
                    self.lang(),
                    "msg-download-failed",
                    model = model,
                    message = message
                );
                self.status.notify(Err(text));
            }
        }
    }

    /// Whether a look for models on disk is under way (its result may change the Models
    /// window's lists).
    pub fn scanning(&self) -> bool {
        self.found.is_pending()
    }

    /// Whether a download is running.
    pub fn downloading(&self) -> bool {
        self.download.is_some()
    }

    /// The running download as the views show it.
    fn download_view(&self) -> Option<DownloadView> {
        let (d, progress) = self.download.as_ref()?;
        let (text, fraction) = match progress {
            Some((file, index, done, total)) => (
                format!(
                    "{file} ({}/{}): {:.1} / {:.1} MB",
                    index + 1,
                    d.spec.files.len(),
                    *done as f64 / 1e6,
                    *total as f64 / 1e6
                ),
                *done as f32 / (*total).max(1) as f32,
            ),
            None => (tr_lang!(self.lang(), "msg-connecting"), 0.0),
        };
        Some(DownloadView {
            label: d.spec.label.clone(),
            kind: d.spec.kind,
            fraction,
            text,
        })
    }

    fn poll_download(&mut self) {
        let Some((d, progress)) = &mut self.download else {
            return;
        };
        let end = loop {
            match d.try_recv() {
                None => return,
                Some(DownloadEvent::Progress {
                    file,
                    index,
                    done,
                    total,
                }) => *progress = Some((file, index, done, total)),
                Some(end) => break end,
            }
        };
        let Some((Download { spec, .. }, _)) = self.download.take() else {
            return;
        };
        match end {
            DownloadEvent::Finished(path) => match spec.kind {
                ModelKind::Sam => self.load_sam(path),
                ModelKind::Text => self.load_text(path),
            },
            DownloadEvent::Failed(message) => {
                let model = spec.label.as_str();
                let text = tr_lang!(
                    self.lang(),
                    "msg-download-offline",
                    model = model,
                    message = message
                );
                self.status.notify(Err(text));
            }
            DownloadEvent::Cancelled => {
                let text = tr_lang!(
                    self.lang(),
                    "msg-download-cancelled",
                    model = spec.label.as_str()
                );
                self.status.notify(Ok(text));
            }
            DownloadEvent::Progress { .. } => {}
        }
        self.rescan();
    }

    /// Looks around the disk again (the Models window lists what is there).
    fn rescan(&mut self) {
        self.found.submit(|_| Found {
            catalog: Catalog::scan(),
            sam: None,
            text: None,
        });
    }

    /// Measures the cache folder on a job; with `clear`, empties it first.
    pub(super) fn measure_cache(&mut self, clear: bool) {
        let Some(dir) = self.cache_dir.clone() else {
            return;
        };
        self.cache_usage_job.submit(move |_| {
            let cache = EmbeddingCache::new(dir, u64::MAX);
            if clear {
                cache.clear();
            }
            cache.usage()
        });
    }

    fn poll_found(&mut self) {
        if let Some(usage) = self.cache_usage_job.poll() {
            self.cache_usage = Some(usage);
        }
        let Some(found) = self.found.poll() else {
            return;
        };
        self.catalog = found.catalog;
        if self.sam_model.activity == ModelActivity::Searching {
            self.sam_model.activity = ModelActivity::Idle;
            if let Some(p) = found.sam {
                self.load_sam(p);
            }
        }
        if self.text_model.activity == ModelActivity::Searching {
            self.text_model.activity = ModelActivity::Idle;
            if let Some(p) = found.text {
                self.load_text(p);
            }
        }
    }

    /// The training worker.
    pub fn train_worker(&self) -> &TrainWorker {
        &self.trainer
    }

    /// The SAM worker (tests drive it directly too).
    pub fn sam_worker(&self) -> &SamWorker {
        &self.sam
    }

    /// Applies worker responses, finished jobs and dropped files.
    pub fn poll(&mut self, ctx: &egui::Context) {
        self.poll_download();
        self.poll_found();
        let status = &mut self.status;
        let model_loaded = self.sam_model.loaded.is_some();
        self.segment.poll(
            ctx,
            &self.sam,
            &mut self.settings.segment,
            model_loaded,
            &mut |m| status.notify(m),
        );
        while let Some(r) = self.sam.try_recv() {
            self.on_sam_response(ctx, r);
        }
        while let Some(r) = self.text.try_recv() {
            self.on_text_response(r);
        }
        let status = &mut self.status;
        self.train
            .poll(ctx, &self.trainer, &mut |m| status.notify(m));
        self.status.train_speed = self.train.speed();
        if let Some(dir) = self.train.take_open_request() {
            self.load_text(dir);
            self.settings.view = View::Attention;
        }
        self.status.click_ms = self.segment.last_click_ms;
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if let Some(p) = dropped.into_iter().next() {
            self.settings.view = View::Segment;
            if p.is_dir() {
                self.segment.open_folder(p, ctx);
            } else {
                self.segment.open(ImageSource::File(p), ctx);
            }
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let redo = KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
        let undo = KeyboardShortcut::new(Modifiers::COMMAND, Key::Z);
        let status = &mut self.status;
        let mut notify = |m: Result<String, String>| status.notify(m);
        if self.settings.view != View::Segment {
            return;
        }
        let typing = ctx.egui_wants_keyboard_input();
        if !typing && ctx.input(|i| i.key_pressed(Key::H) && i.modifiers.is_none()) {
            let on = !self.settings.segment.hover_preview;
            self.settings.segment.hover_preview = on;
            self.segment.hover_enabled = on;
            notify(Ok(if on {
                tr_ctx!(ctx, "msg-hover-on")
            } else {
                tr_ctx!(ctx, "msg-hover-off")
            }));
        }
        let key = |k: Key| !typing && ctx.input(|i| i.key_pressed(k) && i.modifiers.is_none());
        if key(Key::D) {
            self.segment.step_image(1, ctx);
        } else if key(Key::A) {
            self.segment.step_image(-1, ctx);
        }
        if key(Key::Enter) {
            self.segment.add_object();
        }
        if key(Key::Space) {
            self.segment.toggle_done(&self.settings.segment.labels);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&redo)) {
            self.segment.redo(&self.sam, &mut notify);
        } else if ctx.input_mut(|i| i.consume_shortcut(&undo)) {
            self.segment.undo(&self.sam, &mut notify);
        }
    }

    /// Carries out what the user asked in a first-run panel or the Models window.
    fn act(&mut self, kind: ModelKind, action: FirstRunAction) {
        match action {
            FirstRunAction::Download(spec) => self.start_download(spec),
            FirstRunAction::Open => match kind {
                ModelKind::Sam => {
                    if let Some(p) = rfd::FileDialog::new()
                        .add_filter("checkpoints", &["pt", "pth", "safetensors"])
                        .pick_file()
                    {
                        self.load_sam(p);
                    }
                }
                ModelKind::Text => {
                    if let Some(p) = rfd::FileDialog::new().pick_folder() {
                        self.load_text(p);
                    }
                }
            },
            FirstRunAction::CancelLoad => self.cancel_load(kind),
            FirstRunAction::CancelDownload => {
                if let Some((d, _)) = &self.download {
                    d.cancel();
                }
            }
        }
    }

    fn segment_ui(&mut self, ui: &mut egui::Ui) {
        let download = self.download_view();
        let status = &mut self.status;
        let mut notify = |m: Result<String, String>| status.notify(m);
        egui::Panel::left("segment-controls")
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.segment.controls_ui(
                        ui,
                        &self.sam,
                        &mut self.settings.segment,
                        &mut notify,
                    );
                });
            });
        let mut action = None;
        egui::CentralPanel::default_margins().show(ui, |ui| {
            if self.sam_model.loaded.is_none() {
                action = model_needed_ui(ui, ModelKind::Sam, &self.sam_model, download.as_ref());
                ui.add_space(8.0);
            }
            let opacity = self.settings.segment.opacity;
            self.segment.canvas_ui(ui, &self.sam, opacity, &mut notify);
        });
        if let Some(a) = action {
            self.act(ModelKind::Sam, a);
        }
    }

    fn attention_ui(&mut self, ui: &mut egui::Ui) {
        let download = self.download_view();
        let mut action = None;
        let status = &mut self.status;
        let mut notify = |m: Result<String, String>| status.notify(m);
        let ctx = ui.ctx().clone();
        self.attention
            .poll(&ctx, &self.settings.attention, &mut notify);
        egui::CentralPanel::default_margins().show(ui, |ui| {
            if self.text_model.loaded.is_none() {
                action = model_needed_ui(ui, ModelKind::Text, &self.text_model, download.as_ref());
                return;
            }
            self.attention.ui(
                ui,
                &self.text,
                &mut self.settings.attention,
                &self.catalog.text,
                &mut notify,
            );
        });
        if let Some(a) = action {
            self.act(ModelKind::Text, a);
        }
        if let Some(dir) = self.attention.take_model_request() {
            self.load_text(dir);
        }
        if let Some(p) = self.attention.take_position_request() {
            self.encodings
                .show_position(&mut self.settings.encodings, p);
            self.settings.view = View::Encodings;
        }
    }
}

/// A file's name for messages ("mobile_sam.pt").
fn file_label(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl eframe::App for SegattnApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        ctx.set_theme(if self.settings.dark_mode {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        self.apply_cache_settings();
        self.poll(ctx);
        self.shortcuts(ctx);
        self.frames += 1;
        if let Some(n) = self.exit_after_frames {
            if self.frames >= n {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                ctx.request_repaint(); // keep drawing until the count is reached
            }
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("segattn");
                ui.separator();
                for v in View::ALL {
                    ui.selectable_value(&mut self.settings.view, v, v.label(&ctx));
                }
                ui.separator();
                if ui.button(crate::tr!(ui, "models-button")).clicked() {
                    self.show_models = !self.show_models;
                    if self.show_models {
                        self.rescan();
                        self.measure_cache(false);
                    }
                }
                let theme = if self.settings.dark_mode {
                    crate::tr!(ui, "theme-light")
                } else {
                    crate::tr!(ui, "theme-dark")
                };
                if ui.button(theme).clicked() {
                    self.settings.dark_mode = !self.settings.dark_mode;
                }
                let current = crate::ui::i18n::lang(&ctx);
                let mut chosen = current;
                egui::ComboBox::from_label(crate::tr!(ui, "language"))
                    .selected_text(current.name())
                    .show_ui(ui, |ui| {
                        for l in Lang::ALL {
                            ui.selectable_value(&mut chosen, l, l.name());
                        }
                    });
                if chosen != current {
                    crate::ui::i18n::set_lang(&ctx, chosen);
                    self.settings.language = Some(chosen);
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status.ui(ui));
        match self.settings.view {
            View::Segment => self.segment_ui(ui),
            View::Attention => self.attention_ui(ui),
            View::Encodings => {
                egui::CentralPanel::default_margins().show(ui, |ui| {
                    self.encodings.ui(ui, &mut self.settings.encodings);
                });
            }
            View::Train => {
                let status = &mut self.status;
                self.train.ui(
                    ui,
                    &self.trainer,
                    &mut self.settings.train,
                    self.trained_dir.clone(),
                    &mut |m| status.notify(m),
                );
            }
        }
        self.models_window(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // At exit (and every 30 s): the folder's annotations on disk before anything else.
        if let Err(e) = self.segment.flush_folder(&self.settings.segment.labels) {
            let message = crate::ui::problems::problem_text(self.lang(), &e);
            eprintln!("segattn: cannot save the annotations: {e:?}");
            self.status.notify(Err(tr_lang!(
                self.lang(),
                "msg-save-failed",
                message = message
            )));
        }
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

/// Opens the native window and runs the app until it is closed.
pub fn run(opts: AppOptions) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("segattn")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0]),
        ..Default::default()
    };
    let result = eframe::run_native(
        "segattn",
        native,
        Box::new(|cc| Ok(Box::new(SegattnApp::new(cc, opts)?) as Box<dyn eframe::App>)),
    );
    result.map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
