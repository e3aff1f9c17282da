//! The Attention view: type a sentence, pick a layer and head, and read the token × token
//! attention (with exact values on hover), a grid of every head, mean / max over heads,
//! rollout, and subword → word merging.
//!
//! Every map on screen is computed once per change of what it shows (result, layer, head,
//! mode, merging, colormap) on a view job; the previous map stays on screen meanwhile. The
//! rollout and the word groups of a result are computed once and shared by all its maps.

mod heads;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use egui::TextureHandle;

use super::widgets::{heatmap_ui, texture, HeatmapMarks, HoveredCell};
use crate::analysis::{merge_groups, word_groups, AttentionMaps};
use crate::jobs::{Jobs, Slot, Stale};
use crate::types::{HeadSteps, TextModelInfo, TextOutput};
use crate::viz::{heatmap, Colormap, Raster, ValueRange};
use crate::worker::text::{TextRequest, TextResponse, TextWorker};
use heads::{head_view_ui, strongest_links, thumbnails};

/// The default sentences (DESIGN.md).
pub const DEFAULT_TEXT: &str =
    "Le chat noir mange le poisson. Le chat mange du poisson sur la table.";

/// What the heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AttnMode {
    /// One head.
    #[default]
    Head,
    /// Mean over the layer's heads.
    Mean,
    /// Max over the layer's heads.
    Max,
    /// Attention rollout up to the layer.
    Rollout,
}

impl AttnMode {
    const ALL: [AttnMode; 4] = [
        AttnMode::Head,
        AttnMode::Mean,
        AttnMode::Max,
        AttnMode::Rollout,
    ];

    fn label(self, ui: &egui::Ui) -> String {
        match self {
            Self::Head => crate::tr!(ui, "attn-mode-head"),
            Self::Mean => crate::tr!(ui, "attn-mode-mean"),
            Self::Max => crate::tr!(ui, "attn-mode-max"),
            Self::Rollout => crate::tr!(ui, "attn-mode-rollout"),
        }
    }
}

/// Persisted settings of the view.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AttentionSettings {
    /// The text.
    pub text: String,
    /// Layer shown.
    pub layer: usize,
    /// Head shown.
    pub head: usize,
    /// What is shown.
    pub mode: AttnMode,
    /// Merge subword pieces into words.
    pub merge_words: bool,
    /// Show the BertViz-style head view (lines) instead of the heatmap.
    pub head_view: bool,
    /// Heatmap colours.
    pub colormap: Colormap,
    /// The word (a row of the shown map) whose attention the bar list shows; `None` until
    /// one is picked: the view starts from `chat` ([`super::attention_lesson::default_word`]).
    pub word: Option<usize>,
    /// Show one head's computation for the word, step by step, instead of the layer × head
    /// thumbnails.
    pub step_view: bool,
}

impl Default for AttentionSettings {
    fn default() -> Self {
        Self {
            text: DEFAULT_TEXT.into(),
            layer: 0,
            head: 0,
            mode: AttnMode::Head,
            // Words, not subword pieces, for the lesson.
            merge_words: true,
            head_view: false,
            colormap: Colormap::Viridis,
            word: None,
            step_view: false,
        }
    }
}

/// The largest value, the top of a map's colour range (which starts at 0).
pub(super) fn largest(values: &[f32]) -> f32 {
    values.iter().copied().fold(0f32, f32::max).max(1e-6)
}

/// What a displayed heatmap shows: a map is recomputed only when this changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewKey {
    /// The result it comes from.
    pub result: u64,
    /// Layer.
    pub layer: usize,
    /// Head (used in [`AttnMode::Head`]).
    pub head: usize,
    /// Head, mean, max or rollout.
    pub mode: AttnMode,
    /// Subwords merged into words.
    pub merge: bool,
    /// Colours.
    pub colormap: Colormap,
}

/// The strongest links drawn per row by the head view when no token is hovered.
const HEAD_VIEW_LINKS: usize = 8;

/// A computed heatmap: its numbers, labels, picture and texture.
pub struct ShownMap {
    /// What it shows.
    pub key: ViewKey,
    /// Rows and columns.
    pub n: usize,
    /// Labels of rows / columns.
    pub labels: Vec<String>,
    /// `n × n` values.
    pub values: Vec<f32>,
    /// Masked (future) cells for causal models.
    pub causal: bool,
    /// The value the brightest colour stands for (the darkest is 0).
    pub scale_max: f32,
    /// The row the bar list shows until the user picks one
    /// ([`super::attention_lesson::default_word`]).
    pub start_word: usize,
    /// The coloured raster (what export writes).
    pub raster: Raster,
    /// Each row's strongest links `(column, weight)`, strongest first (the head view).
    pub links: Vec<Vec<(usize, f32)>>,
    texture: TextureHandle,
}

impl ShownMap {
    /// The row of the word the bar list shows: the picked one, else [`Self::start_word`].
    pub fn word(&self, s: &AttentionSettings) -> usize {
        s.word.filter(|&w| w < self.n).unwrap_or(self.start_word)
    }
}

/// What a result's maps share, computed once on first use.
#[derive(Default)]
struct Derived {
    rollout: OnceLock<Vec<Vec<f32>>>,
    words: OnceLock<(Vec<usize>, Vec<String>)>,
}

/// The thumbnails of every layer × head of a result.
struct Grid {
    key: (u64, Colormap),
    textures: Vec<TextureHandle>,
}

/// Thumbnails have at most this many cells per side (larger maps are max-pooled).
const THUMBNAIL_SIDE: usize = 64;

/// Runtime state of the view.
pub struct AttentionState {
    /// The newest result.
    pub output: Option<Arc<TextOutput>>,
    derived: Arc<Derived>,
    result_id: u64,
    last_sent: Option<String>,
    next_request: u64,
    /// A request is in flight.
    pub awaiting: bool,
    /// The loaded model.
    pub model: Option<TextModelInfo>,
    /// The heatmap on screen.
    pub shown: Option<ShownMap>,
    maps: Slot<ShownMap>,
    requested: Option<ViewKey>,
    grid: Option<Grid>,
    grids: Slot<Grid>,
    grid_requested: Option<(u64, Colormap)>,
    exports: Slot<Result<PathBuf, String>>,
    /// Last forward time.
    pub forward_ms: Option<f64>,
    /// The query token under the pointer in the head view (kept while the pointer is away).
    pub head_view_hover: Option<usize>,
    /// The column whose bar in the word list is under the pointer (outlined in the heatmap).
    pub bar_hover: Option<usize>,
    model_request: Option<PathBuf>,
    position_request: Option<usize>,
    /// The `request_id` of [`Self::output`] (step requests name it).
    output_request: u64,
    /// One head's steps for the chosen word, when the step view is open.
    pub steps: Option<HeadSteps>,
    /// The largest difference between [`Self::steps`]' softmax and the model's attention row.
    pub steps_gap: Option<f32>,
    steps_requested: Option<(u64, (usize, usize, usize))>,
    /// The sentence cut by every available tokenizer.
    pub tokenizers: super::attention_tokenizers::TokenizerComparison,
    /// Text model folders opened this session (compared with those found on disk).
    pub opened: Vec<PathBuf>,
}

impl AttentionState {
    /// An empty view whose background work runs on `jobs`.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            output: None,
            derived: Arc::default(),
            result_id: 0,
            last_sent: None,
            next_request: 0,
            awaiting: false,
            model: None,
            shown: None,
            maps: Slot::new(jobs),
            requested: None,
            grid: None,
            grids: Slot::new(jobs),
            grid_requested: None,
            exports: Slot::new(jobs),
            forward_ms: None,
            head_view_hover: None,
            bar_hover: None,
            model_request: None,
            position_request: None,
            output_request: 0,
            steps: None,
            steps_gap: None,
            steps_requested: None,
            tokenizers: super::attention_tokenizers::TokenizerComparison::new(jobs),
            opened: Vec::new(),
        }
    }

    /// Handles a text worker response.
    pub fn on_response(&mut self, r: TextResponse) {
        match r {
            TextResponse::ModelLoaded { info, .. } => {
                self.model = Some(info);
                self.last_sent = None; // re-run the text on the new model
            }
            TextResponse::Output {
                output,
                ms,
                request_id,
            } => {
                self.awaiting = false;
                self.result_id += 1;
                self.output_request = request_id;
                self.steps = None;
                self.steps_gap = None;
                self.steps_requested = None;
                self.output = Some(Arc::new(*output));
                self.derived = Arc::default();
                self.forward_ms = Some(ms);
            }
            TextResponse::Steps { request_id, steps } => {
                if request_id == self.output_request {
                    self.steps_gap = self.output.as_ref().map(|o| {
                        let m = &o.attentions;
                        let row = &m.head(steps.layer, steps.head)[steps.token * m.n..][..m.n];
                        row.iter()
                            .zip(&steps.probs)
                            .fold(0f32, |g, (a, b)| g.max((a - b).abs()))
                    });
                    self.steps = Some(*steps);
                }
            }
            TextResponse::Failed { .. } => self.awaiting = false,
            TextResponse::Crashed { .. } => {
                self.awaiting = false;
                self.model = None;
            }
            TextResponse::LoadCancelled => {}
        }
    }

    /// Sends the text when it changed and a model is loaded.
    pub fn sync(&mut self, worker: &TextWorker, settings: &AttentionSettings) {
        if self.model.is_none() || self.last_sent.as_deref() == Some(settings.text.as_str()) {
            return;
        }
        self.next_request += 1;
        if worker
            .send(TextRequest::Run {
                request_id: self.next_request,
                text: settings.text.clone(),
            })
            .is_ok()
        {
            self.last_sent = Some(settings.text.clone());
            self.awaiting = true;
        }
    }

    /// Asks for the steps of the chosen word's (first) token and head when the step view is
    /// open and they changed.
    fn sync_steps(&mut self, worker: &TextWorker, s: &AttentionSettings) {
        let (true, Some(out), Some(m)) = (s.step_view, &self.output, &self.shown) else {
            return;
        };
        let token = self
            .position_of(m.word(s))
            .min(out.attentions.n.saturating_sub(1));
        let at = (s.layer, s.head, token);
        let key = (self.output_request, at);
        let have = self
            .steps
            .as_ref()
            .map(|st| (self.output_request, (st.layer, st.head, st.token)));
        if have == Some(key) || self.steps_requested == Some(key) {
            return;
        }
        let request = TextRequest::Steps {
            request_id: self.output_request,
            at,
        };
        if worker.send(request).is_ok() {
            self.steps_requested = Some(key);
        }
    }

    /// The key of the map the settings ask for, on the newest result.
    fn key(&self, s: &AttentionSettings) -> Option<ViewKey> {
        let maps = &self.output.as_ref()?.attentions;
        Some(ViewKey {
            result: self.result_id,
            layer: s.layer.min(maps.layers.saturating_sub(1)),
            head: s.head.min(maps.heads.saturating_sub(1)),
            mode: s.mode,
            merge: s.merge_words,
            colormap: s.colormap,
        })
    }

    /// Takes finished maps, thumbnails and exports; asks for what the settings show now.
    pub fn poll(&mut self, ctx: &egui::Context, s: &AttentionSettings, notify: super::Notify) {
        if let Some(m) = self.maps.poll() {
            self.shown = Some(m);
        }
        if let Some(g) = self.grids.poll() {
            self.grid = Some(g);
        }
        if let Some(r) = self.exports.poll() {
            notify(r.map(|p| {
                let path = p.display().to_string();
                crate::tr_ctx!(ctx, "wrote-file", path = path)
            }));
        }
        let (Some(out), Some(key)) = (self.output.clone(), self.key(s)) else {
            return;
        };
        if self.shown.as_ref().map(|m| m.key) != Some(key) && self.requested != Some(key) {
            self.requested = Some(key);
            let (derived, ctx) = (self.derived.clone(), ctx.clone());
            self.maps
                .submit(move |stale| compute_map(&ctx, &out, &derived, key, stale));
        }
        let grid_key = (self.result_id, s.colormap);
        if self.grid.as_ref().map(|g| g.key) != Some(grid_key)
            && self.grid_requested != Some(grid_key)
        {
            self.grid_requested = Some(grid_key);
            let (out, ctx) = (self.output.clone(), ctx.clone());
            self.grids.submit(move |stale| Grid {
                key: grid_key,
                textures: out.map_or_else(Vec::new, |o| {
                    thumbnails(&ctx, &o.attentions, grid_key.1, stale)
                }),
            });
        }
    }

    /// True while the shown map is not yet the one the settings ask for.
    pub fn is_computing(&self) -> bool {
        self.maps.is_pending() || self.grids.is_pending()
    }

    /// Writes the shown heatmap as a PNG (cells enlarged).
    pub fn export_png(&self, path: &Path) -> anyhow::Result<()> {
        let m = self
            .shown
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("nothing to export yet"))?;
        m.raster.scaled((512 / m.n.max(1)).max(1)).save_png(path)
    }

    /// Writes the shown numbers as CSV (first row and column: tokens).
    pub fn export_csv(&self, path: &Path) -> anyhow::Result<()> {
        let m = self
            .shown
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("nothing to export yet"))?;
        crate::files::write_bytes_atomic(path, csv(&m.labels, &m.values, m.causal).as_bytes())
    }

    /// A text model folder the user picked in the view's model list; the app loads it.
    pub fn take_model_request(&mut self) -> Option<PathBuf> {
        self.model_request.take()
    }

    /// The position the user asked to see in the Positional-encodings view, once.
    pub fn take_position_request(&mut self) -> Option<usize> {
        self.position_request.take()
    }

    /// The model position of row `row` of the shown map: the row itself for tokens, the
    /// position of a merged word's first piece.
    fn position_of(&self, row: usize) -> usize {
        let merged = self.shown.as_ref().is_some_and(|m| m.key.merge);
        match (merged, self.derived.words.get()) {
            (true, Some((group, _))) => group.iter().position(|&g| g == row).unwrap_or(row),
            _ => row,
        }
    }

    /// The model picker: the loaded model and every other text model found on disk.
    fn model_picker(&mut self, ui: &mut egui::Ui, known: &[PathBuf]) {
        let current = self
            .model
            .as_ref()
            .map_or_else(|| crate::tr!(ui, "model-none"), |m| m.name.clone());
        egui::ComboBox::from_label(crate::tr!(ui, "model-picker"))
            .selected_text(&current)
            .show_ui(ui, |ui| {
                for dir in known {
                    let name = crate::weights::model_folder_label(dir);
                    if ui.selectable_label(name == current, &name).clicked() {
                        self.model_request = Some(dir.clone());
                    }
                }
                ui.label(crate::tr!(ui, "model-more"));
            });
    }

    /// Draws the view; `known` are the text model folders found on disk.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        worker: &TextWorker,
        s: &mut AttentionSettings,
        known: &[PathBuf],
        notify: super::Notify,
    ) {
        self.model_picker(ui, known);
        ui.horizontal(|ui| {
            ui.label(crate::tr!(ui, "text-label"));
            let hint = crate::tr!(ui, "text-hint");
            ui.add(
                egui::TextEdit::multiline(&mut s.text)
                    .desired_rows(2)
                    .desired_width(f32::INFINITY)
                    .hint_text(hint),
            );
        });
        self.sync(worker, s);
        egui::CollapsingHeader::new(crate::tr!(ui, "tokenizers-title"))
            .id_salt("tokenizers side by side")
            .show(ui, |ui| {
                let mut dirs = self.opened.clone();
                dirs.extend(known.iter().filter(|d| !self.opened.contains(d)).cloned());
                self.tokenizers.sync(&s.text, &dirs);
                self.tokenizers.ui(ui);
            });
        let Some(out) = self.output.clone() else {
            if self.awaiting {
                super::widgets::busy_ui(ui, &crate::tr!(ui, "running-model"));
            } else {
                ui.label(crate::tr!(ui, "text-empty"));
            }
            return;
        };
        if let Some(total) = out.encoded.truncated_from {
            let kept = out.encoded.tokens.len();
            let notice = crate::tr!(ui, "text-truncated", kept = kept, total = total);
            ui.colored_label(ui.visuals().warn_fg_color, notice);
        }
        let maps: &AttentionMaps = &out.attentions;
        self.settings_ui(ui, maps, s, notify);
        s.layer = s.layer.min(maps.layers.saturating_sub(1));
        s.head = s.head.min(maps.heads.saturating_sub(1));
        self.sync_steps(worker, s);
        let word = self.shown.as_ref().map(|m| m.word(s));
        if let Some(m) = &self.shown {
            ui.label(
                egui::RichText::new(super::attention_lesson::caption(
                    crate::ui::i18n::lang(ui.ctx()),
                    m.key.mode,
                    m.key.layer,
                    m.key.head,
                    m.key.merge,
                    m.causal,
                ))
                .weak(),
            );
        }
        let mut bar_hover = None;
        ui.horizontal_top(|ui| {
            let side = (ui.available_height() - 110.0)
                .min(ui.available_width() * 0.55)
                .max(120.0);
            if let (true, Some(m)) = (s.head_view, &self.shown) {
                self.head_view_hover = head_view_ui(ui, m, side, self.head_view_hover);
            } else if let Some(m) = &self.shown {
                let (vals, n, causal, labels) = (&m.values, m.n, m.causal, &m.labels);
                let titles = (crate::tr!(ui, "axis-query"), crate::tr!(ui, "axis-key"));
                let lang = crate::ui::i18n::lang(ui.ctx());
                let marks = HeatmapMarks {
                    axis_titles: Some((&titles.0, &titles.1)),
                    row: word,
                    cell: word
                        .zip(self.bar_hover)
                        .map(|(row, col)| HoveredCell { row, col }),
                    scale: Some((m.key.colormap, 0.0, m.scale_max)),
                };
                let (resp, cell) = heatmap_ui(
                    ui,
                    &m.texture,
                    (n, n),
                    labels,
                    labels,
                    side,
                    marks,
                    |r, c| {
                        let (from, to) = (labels[r].as_str(), labels[c].as_str());
                        if causal && c > r {
                            crate::tr_lang!(lang, "cell-masked", from = from, to = to)
                        } else {
                            let value = format!("{:.4}", vals[r * n + c]);
                            crate::tr_lang!(lang, "cell-value", from = from, to = to, value = value)
                        }
                    },
                );
                if let (true, Some(cell)) = (resp.clicked(), cell) {
                    s.word = Some(cell.row);
                }
            }
            ui.vertical(|ui| {
                if let (Some(m), Some(w)) = (&self.shown, word) {
                    let row = &m.values[w * m.n..(w + 1) * m.n];
                    bar_hover = super::attention_lesson::word_bars_ui(
                        ui,
                        &m.labels,
                        w,
                        row,
                        m.causal,
                        (side * 0.45).max(120.0),
                    );
                    ui.separator();
                }
                if s.step_view {
                    match &self.steps {
                        Some(st) => {
                            if s.mode != AttnMode::Head {
                                let mode = s.mode.label(ui);
                                let head = st.head;
                                ui.label(crate::tr!(
                                    ui,
                                    "steps-follow-head",
                                    mode = mode,
                                    head = head
                                ));
                            }
                            let height = (ui.available_height() - 90.0).max(120.0);
                            super::attention_steps::steps_ui(ui, st, self.steps_gap, height);
                        }
                        None => super::widgets::busy_ui(ui, &crate::tr!(ui, "steps-computing")),
                    }
                } else {
                    ui.horizontal(|ui| {
                        ui.label(crate::tr!(ui, "grid-title"));
                        if self.is_computing() {
                            super::widgets::busy_ui(ui, "");
                        }
                    });
                    self.grid_ui(ui, maps, s);
                }
            });
        });
        self.bar_hover = bar_hover;
    }

    fn settings_ui(
        &mut self,
        ui: &mut egui::Ui,
        maps: &AttentionMaps,
        s: &mut AttentionSettings,
        notify: super::Notify,
    ) {
        ui.horizontal_wrapped(|ui| {
            let (layer, head) = (
                crate::tr!(ui, "slider-layer"),
                crate::tr!(ui, "slider-head"),
            );
            ui.add(egui::Slider::new(&mut s.layer, 0..=maps.layers.saturating_sub(1)).text(layer));
            ui.add_enabled(
                s.mode == AttnMode::Head,
                egui::Slider::new(&mut s.head, 0..=maps.heads.saturating_sub(1)).text(head),
            );
            egui::ComboBox::from_label(crate::tr!(ui, "show"))
                .selected_text(s.mode.label(ui))
                .show_ui(ui, |ui| {
                    for m in AttnMode::ALL {
                        let label = m.label(ui);
                        ui.selectable_value(&mut s.mode, m, label);
                    }
                });
            let merge = crate::tr!(ui, "merge-words");
            ui.checkbox(&mut s.merge_words, merge);
            if let Some(m) = &self.shown {
                let current = m.word(s);
                // Every row with its model position (a merged word: its first piece's).
                let lang = crate::ui::i18n::lang(ui.ctx());
                let name = |i: usize| {
                    let (word, position) = (m.labels[i].as_str(), self.position_of(i));
                    crate::tr_lang!(lang, "word-position", word = word, position = position)
                };
                egui::ComboBox::from_label(crate::tr!(ui, "word-picker"))
                    .selected_text(name(current))
                    .show_ui(ui, |ui| {
                        for i in 0..m.labels.len() {
                            if ui.selectable_label(i == current, name(i)).clicked() {
                                s.word = Some(i);
                            }
                        }
                    });
                // The word's position as a link: a click shows its row of the encodings.
                if ui
                    .link(name(current))
                    .on_hover_text(crate::tr!(ui, "word-position-hover"))
                    .clicked()
                {
                    self.position_request = Some(self.position_of(current));
                }
            }
            let (head_view, step_view) = (crate::tr!(ui, "head-view"), crate::tr!(ui, "step-view"));
            ui.checkbox(&mut s.head_view, head_view);
            ui.checkbox(&mut s.step_view, step_view)
                .on_hover_text(crate::tr!(ui, "step-view-hover"));
            egui::ComboBox::from_label(crate::tr!(ui, "colormap"))
                .selected_text(s.colormap.name())
                .show_ui(ui, |ui| {
                    for c in Colormap::ALL {
                        ui.selectable_value(&mut s.colormap, c, c.name());
                    }
                });
            for (label, file, png) in [
                ("PNG…", "attention.png", true),
                ("CSV…", "attention.csv", false),
            ] {
                if ui.button(label).clicked() {
                    if let Some(p) = rfd::FileDialog::new().set_file_name(file).save_file() {
                        let lang = crate::ui::i18n::lang(ui.ctx());
                        self.start_export(p, png, lang, notify);
                    }
                }
            }
        });
    }

    /// Writes the shown map (PNG or CSV) on a job; the status bar reports the outcome.
    fn start_export(
        &mut self,
        path: PathBuf,
        png: bool,
        lang: crate::ui::i18n::Lang,
        notify: super::Notify,
    ) {
        let Some(m) = &self.shown else {
            notify(Err(crate::tr_lang!(lang, "nothing-to-export")));
            return;
        };
        let (raster, n) = (m.raster.clone(), m.n);
        // Copies of the numbers (a 512-token map is 1 MB); the CSV is formatted on the job.
        let table = (!png).then(|| (m.labels.clone(), m.values.clone(), m.causal));
        self.exports.submit(move |_| {
            let written = match table {
                Some((labels, values, causal)) => crate::files::write_bytes_atomic(
                    &path,
                    csv(&labels, &values, causal).as_bytes(),
                ),
                None => raster.scaled((512 / n.max(1)).max(1)).save_png(&path),
            };
            written
                .map(|()| path)
                .map_err(|e| crate::ui::problems::error_text(lang, &e))
        });
    }
}

/// The map `key` asks for: values, labels, colours, texture and head-view links (a view job).
fn compute_map(
    ctx: &egui::Context,
    out: &TextOutput,
    derived: &Derived,
    key: ViewKey,
    stale: Stale,
) -> ShownMap {
    let maps = &out.attentions;
    let mut values = match key.mode {
        AttnMode::Head => maps.head(key.layer, key.head).to_vec(),
        AttnMode::Mean => maps.mean_over_heads(key.layer),
        AttnMode::Max => maps.max_over_heads(key.layer),
        AttnMode::Rollout => derived.rollout.get_or_init(|| maps.rollout())[key.layer].clone(),
    };
    let mut n = maps.n;
    let mut labels = maps.tokens.clone();
    let mut causal = maps.causal;
    if key.merge {
        let (group, words) = derived
            .words
            .get_or_init(|| word_groups(&out.encoded.tokens, &out.text));
        values = merge_groups(&values, n, group);
        n = words.len();
        labels = words.clone();
        causal = false;
    }
    // Colours span 0 … the map's largest value (attention rarely nears 1 away from [CLS]);
    // the hover tooltip gives the exact number.
    let scale_max = largest(&values);
    let range = ValueRange::Fixed(0.0, scale_max);
    let raster = heatmap(&values, n, n, range, key.colormap, |r, c| causal && c > r);
    let links = if stale() {
        Vec::new()
    } else {
        strongest_links(&values, n, causal)
    };
    let texture = texture(ctx, "attention", &raster, true);
    let start_word = super::attention_lesson::default_word(&labels);
    ShownMap {
        key,
        n,
        labels,
        values,
        causal,
        scale_max,
        start_word,
        raster,
        links,
        texture,
    }
}

/// The shown numbers as CSV (first row and column: tokens; masked cells empty).
fn csv(labels: &[String], values: &[f32], causal: bool) -> String {
    let n = labels.len();
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("from\\to");
    for l in labels {
        out.push(',');
        out.push_str(&quote(l));
    }
    out.push('\n');
    for (r, label) in labels.iter().enumerate() {
        out.push_str(&quote(label));
        for c in 0..n {
            if causal && c > r {
                out.push(',');
            } else {
                out.push_str(&format!(",{}", values[r * n + c]));
            }
        }
        out.push('\n');
    }
    out
}
