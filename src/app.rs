//! The desktop app: persisted settings, the workers, and the three views.

use std::path::PathBuf;

use crate::download::{Download, DownloadEvent, DownloadOptions, DownloadSpec, ModelKind};
use crate::model::positional::Matrix;
use crate::model::sam::SamModel;
use crate::model::text::TextModel;
use crate::ui::attention_view::{AttentionSettings, AttentionState};
use crate::ui::encodings_view::{EncodingsSettings, EncodingsState};
use crate::ui::segment_view::{ImageSource, SegmentSettings, SegmentState, SAMPLES};
use crate::ui::status_bar::Status;
use crate::ui::View;
use crate::worker::sam::{SamRequest, SamResponse, SamWorker};
use crate::worker::text::{TextRequest, TextResponse, TextWorker};
use crate::worker::Repaint;

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
    /// An image to open (else the last one, else the bundled cat).
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
    pub device: crate::cli::DeviceChoice,
    /// Format of SAM's image encoder.
    pub dtype: crate::cli::DTypeChoice,
    /// Where model downloads come from and go (default: the Hub and its standard cache).
    pub downloads: DownloadOptions,
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
    /// The status bar.
    pub status: Status,
    sam: SamWorker,
    text: TextWorker,
    frames: u64,
    exit_after_frames: Option<u64>,
    show_models: bool,
    repaint: Repaint,
    downloads: DownloadOptions,
    /// The running download and its last progress.
    download: Option<(Download, Option<FileProgress>)>,
}

/// Progress of one file of a download: name, position in the list, bytes done, bytes in all.
type FileProgress = (String, usize, u64, u64);

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
        let ctx = cc.egui_ctx.clone();
        let repaint: Repaint = std::sync::Arc::new(move || ctx.request_repaint());
        let device = crate::cli::select_device(opts.device)?;
        let precision = opts.dtype.resolve(&device);
        let sam = SamWorker::spawn(device.clone(), precision, repaint.clone())?;
        let text = TextWorker::spawn(device.clone(), repaint.clone())?;
        let mut app = Self {
            settings,
            segment: SegmentState::default(),
            attention: AttentionState::default(),
            encodings: EncodingsState::default(),
            status: Status {
                device: crate::cli::device_name(&device),
                precision: precision.name().into(),
                ..Status::default()
            },
            sam,
            text,
            frames: 0,
            exit_after_frames: opts.exit_after_frames,
            show_models: false,
            repaint,
            downloads: opts.downloads,
            download: None,
        };
        app.segment.multimask = app.settings.segment.multimask;
        if let Some(v) = opts.view {
            app.settings.view = v;
        }
        let remembered = |p: &Option<PathBuf>| p.clone().filter(|p| p.exists());
        if let Some(m) = opts.sam_model {
            app.send_sam(SamRequest::UseModel(Box::new(m)));
        } else if let Some(p) = opts.sam_weights.or_else(|| {
            if opts.discover {
                remembered(&app.settings.sam_weights).or_else(crate::weights::find_sam_checkpoint)
            } else {
                None
            }
        }) {
            app.load_sam(p);
        }
        if let Some(m) = opts.text_model_built {
            app.send_text(TextRequest::UseModel(Box::new(m)));
        } else if let Some(p) = opts.text_model.or_else(|| {
            if opts.discover {
                remembered(&app.settings.text_model).or_else(crate::weights::find_text_model)
            } else {
                None
            }
        }) {
            app.load_text(p);
        }
        let image = opts.image.map(ImageSource::File).or_else(|| {
            remembered(&app.settings.segment.last_image)
                .filter(|_| opts.discover)
                .map(ImageSource::File)
        });
        let (name, bytes) = SAMPLES[0];
        app.segment.open(
            image.unwrap_or(ImageSource::Sample(name, bytes)),
            &cc.egui_ctx,
        );
        Ok(app)
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

    /// Loads a SAM checkpoint on the worker.
    pub fn load_sam(&mut self, path: PathBuf) {
        self.status
            .notify(Ok(format!("loading {}…", path.display())));
        self.settings.sam_weights = Some(path.clone());
        self.send_sam(SamRequest::LoadModel { path });
    }

    /// Loads a text model folder on the worker.
    pub fn load_text(&mut self, dir: PathBuf) {
        self.status
            .notify(Ok(format!("loading {}…", dir.display())));
        self.settings.text_model = Some(dir.clone());
        self.send_text(TextRequest::LoadModel { dir });
    }

    /// Starts downloading `spec` (one download at a time); the model loads when it is done.
    pub fn start_download(&mut self, spec: DownloadSpec) {
        if self.download.is_some() {
            self.status
                .notify(Err("a download is already running".into()));
            return;
        }
        let label = spec.label.clone();
        match Download::start(spec, self.downloads.clone(), self.repaint.clone()) {
            Ok(d) => {
                self.status.notify(Ok(format!("downloading {label}…")));
                self.download = Some((d, None));
            }
            Err(e) => self.status.notify(Err(format!("download {label}: {e}"))),
        }
    }

    /// Whether a download is running.
    pub fn downloading(&self) -> bool {
        self.download.is_some()
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
            DownloadEvent::Failed(message) => self.status.notify(Err(format!(
                "download {}: {message} (without a network, see weights/README.md for where to put the files)",
                spec.label
            ))),
            DownloadEvent::Cancelled => self.status.notify(Ok(format!(
                "download of {} cancelled; it resumes where it stopped next time",
                spec.label
            ))),
            DownloadEvent::Progress { .. } => {}
        }
    }

    /// The SAM worker (tests drive it directly too).
    pub fn sam_worker(&self) -> &SamWorker {
        &self.sam
    }

    /// Applies worker responses, decoded images and dropped files.
    pub fn poll(&mut self, ctx: &egui::Context) {
        self.poll_download();
        let status = &mut self.status;
        let mut notify = |m: Result<String, String>| status.notify(m);
        self.segment
            .poll(ctx, &self.sam, &mut self.settings.segment, &mut notify);
        while let Some(mut r) = self.sam.try_recv() {
            self.segment
                .on_response(ctx, &mut r, &self.settings.segment);
            match &r {
                SamResponse::ModelLoaded {
                    name,
                    ms,
                    point_encoding,
                    ..
                } => {
                    self.status.sam_model = Some(name.clone());
                    self.status
                        .notify(Ok(format!("{name} loaded in {ms:.0} ms")));
                    self.encodings.sam_pe = Some(point_encoding.clone());
                    let status = &mut self.status;
                    self.segment
                        .encode_current(&self.sam, &mut |m| status.notify(m));
                }
                SamResponse::Encoded { ms, .. } => self.status.encode_ms = Some(*ms),
                SamResponse::Prediction { ms, .. } => self.status.decode_ms = Some(*ms),
                SamResponse::Error { during, message } => {
                    if during.contains("loading") {
                        self.settings.sam_weights = None;
                    }
                    self.status.notify(Err(format!("{during}: {message}")));
                }
                SamResponse::Encoding { .. } => {}
                SamResponse::Cancelled { .. } => {
                    self.status.notify(Ok("encoding cancelled".into()))
                }
            }
        }
        while let Some(r) = self.text.try_recv() {
            match &r {
                TextResponse::ModelLoaded {
                    name,
                    config,
                    positions,
                } => {
                    self.status.text_model =
                        Some(format!("{name} ({})", config.model_type.as_str()));
                    self.status.notify(Ok(format!("{name} loaded")));
                    let (rows, cols, data) = positions.clone();
                    self.encodings
                        .set_learned(name.clone(), Matrix { rows, cols, data });
                }
                TextResponse::Output { ms, .. } => self.status.forward_ms = Some(*ms),
                TextResponse::Error { during, message } => {
                    if during.contains("loading") {
                        self.settings.text_model = None;
                    }
                    self.status.notify(Err(format!("{during}: {message}")));
                }
            }
            // Last: the view takes ownership of the (possibly large) output, no copy.
            self.attention.on_response(r);
        }
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
            self.segment.open(ImageSource::File(p), ctx);
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
        if ctx.input_mut(|i| i.consume_shortcut(&redo)) {
            self.segment.redo(&self.sam, &mut notify);
        } else if ctx.input_mut(|i| i.consume_shortcut(&undo)) {
            self.segment.undo(&self.sam, &mut notify);
        }
    }

    fn models_window(&mut self, ctx: &egui::Context) {
        let mut open = self.show_models;
        let mut load_sam = None;
        let mut load_text = None;
        let mut download = None;
        egui::Window::new("Models").open(&mut open).show(ctx, |ui| {
            ui.heading("Segment Anything");
            ui.label(format!("loaded: {}", self.status.sam_model.as_deref().unwrap_or("none")));
            if ui.button("Open SAM checkpoint…").clicked() {
                load_sam = rfd::FileDialog::new().add_filter("checkpoints", &["pt", "pth", "safetensors"]).pick_file();
            }
            ui.label("Looked for, in order:");
            for d in crate::weights::search_dirs() {
                ui.monospace(d.display().to_string());
            }
            ui.label(format!("file names: {}", crate::weights::SAM_FILE_NAMES.join(", ")));
            ui.separator();
            ui.heading("Text model");
            ui.label(format!("loaded: {}", self.status.text_model.as_deref().unwrap_or("none")));
            if ui.button("Open model folder…").clicked() {
                load_text = rfd::FileDialog::new().pick_folder();
            }
            ui.label("A Hugging Face folder with config.json, tokenizer.json and model.safetensors, e.g. weights/all-MiniLM-L6-v2 or weights/gpt2.");
            ui.separator();
            ui.heading("Download from the Hugging Face Hub");
            match &self.download {
                Some((d, progress)) => {
                    ui.label(format!("{} ({})", d.spec.label, d.spec.repo));
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
                        None => ("connecting…".to_string(), 0.0),
                    };
                    ui.add(egui::ProgressBar::new(fraction).text(text));
                    if ui.button("Cancel download").clicked() {
                        d.cancel();
                    }
                }
                None => {
                    for spec in crate::download::defaults() {
                        ui.horizontal(|ui| {
                            if ui.button(format!("Download {}", spec.label)).clicked() {
                                download = Some(spec.clone());
                            }
                            ui.label(format!("{}, about {} MB", spec.repo, spec.approx_mb));
                        });
                    }
                }
            }
            ui.label("Files go to the Hugging Face cache (HF_HOME), where segattn also looks. Without a network, weights/README.md says which files to put where.");
        });
        self.show_models = open;
        if let Some(spec) = download {
            self.start_download(spec);
        }
        if let Some(p) = load_sam {
            self.load_sam(p);
        }
        if let Some(p) = load_text {
            self.load_text(p);
        }
    }
}

impl eframe::App for SegattnApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        ctx.set_theme(if self.settings.dark_mode {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
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
                    ui.selectable_value(&mut self.settings.view, v, v.label());
                }
                ui.separator();
                if ui.button("Models…").clicked() {
                    self.show_models = !self.show_models;
                }
                let theme = if self.settings.dark_mode {
                    "Light theme"
                } else {
                    "Dark theme"
                };
                if ui.button(theme).clicked() {
                    self.settings.dark_mode = !self.settings.dark_mode;
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status.ui(ui));
        let status = &mut self.status;
        let mut notify = |m: Result<String, String>| status.notify(m);
        match self.settings.view {
            View::Segment => {
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
                egui::CentralPanel::default_margins().show(ui, |ui| {
                    self.segment.canvas_ui(ui, &self.sam, &mut notify);
                });
            }
            View::Attention => {
                egui::CentralPanel::default_margins().show(ui, |ui| {
                    self.attention
                        .ui(ui, &self.text, &mut self.settings.attention, &mut notify);
                });
                if let Some(dir) = self.attention.take_model_request() {
                    self.load_text(dir);
                }
            }
            View::Encodings => {
                egui::CentralPanel::default_margins().show(ui, |ui| {
                    self.encodings.ui(ui, &mut self.settings.encodings);
                });
            }
        }
        self.models_window(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
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
