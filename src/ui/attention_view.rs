//! The Attention view: type a sentence, pick a layer and head, and read the token × token
//! attention (with exact values on hover), a grid of every head, mean / max over heads,
//! rollout, and subword → word merging.

use std::path::Path;
use std::sync::Arc;

use egui::{Color32, Pos2, Rect, Sense, TextureHandle, Vec2};

use super::widgets::{heatmap_ui, texture};
use crate::analysis::{merge_groups, AttentionMaps};
use crate::model::text::{word_groups, TextOutput};
use crate::viz::{heatmap, Colormap, Raster, ValueRange};
use crate::worker::text::{TextRequest, TextResponse, TextWorker};

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

    fn label(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Mean => "mean of heads",
            Self::Max => "max of heads",
            Self::Rollout => "rollout",
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
}

impl Default for AttentionSettings {
    fn default() -> Self {
        Self {
            text: DEFAULT_TEXT.into(),
            layer: 0,
            head: 0,
            mode: AttnMode::Head,
            merge_words: false,
            head_view: false,
            colormap: Colormap::Viridis,
        }
    }
}

/// Colour range from 0 to the largest value.
fn zero_to_max(values: &[f32]) -> ValueRange {
    ValueRange::Fixed(0.0, values.iter().copied().fold(0f32, f32::max).max(1e-6))
}

/// The key of a displayed heatmap: a texture is rebuilt only when it changes.
#[derive(Debug, Clone, PartialEq)]
struct ViewKey {
    result: u64,
    layer: usize,
    head: usize,
    mode: AttnMode,
    merge: bool,
    colormap: Colormap,
}

/// A computed heatmap (plain data + texture).
pub struct ShownMap {
    key: ViewKey,
    /// Rows and columns.
    pub n: usize,
    /// Labels of rows / columns.
    pub labels: Vec<String>,
    /// `n × n` values.
    pub values: Vec<f32>,
    /// Masked (future) cells for causal models.
    pub causal: bool,
    /// The coloured raster (what export writes).
    pub raster: Raster,
    texture: TextureHandle,
}

/// Runtime state of the view.
#[derive(Default)]
pub struct AttentionState {
    /// The newest result.
    pub output: Option<Arc<TextOutput>>,
    result_id: u64,
    last_sent: Option<String>,
    /// A model folder picked in the view, for the app to load.
    model_request: Option<std::path::PathBuf>,
    /// Text model folders found on disk (looked up when the picker first opens).
    known_models: Option<Vec<std::path::PathBuf>>,
    next_request: u64,
    /// A request is in flight.
    pub awaiting: bool,
    /// Loaded model name.
    pub model_name: Option<String>,
    /// The heatmap on screen.
    pub shown: Option<ShownMap>,
    grid: Option<(u64, Colormap, Vec<TextureHandle>)>,
    /// Last forward time.
    pub forward_ms: Option<f64>,
    /// The query token under the pointer in the head view (kept while the pointer is away).
    pub head_view_hover: Option<usize>,
}

impl AttentionState {
    /// Handles a text worker response.
    pub fn on_response(&mut self, r: TextResponse) {
        match r {
            TextResponse::ModelLoaded { name, .. } => {
                self.model_name = Some(name);
                self.known_models = None; // look again next time the picker opens
                self.last_sent = None; // re-run the text on the new model
            }
            TextResponse::Output { output, ms, .. } => {
                self.awaiting = false;
                self.result_id += 1;
                self.output = Some(Arc::new(*output));
                self.forward_ms = Some(ms);
                self.shown = None;
            }
            TextResponse::Error { .. } => self.awaiting = false,
        }
    }

    /// Sends the text when it changed and a model is loaded.
    pub fn sync(&mut self, worker: &TextWorker, settings: &AttentionSettings) {
        if self.model_name.is_none() || self.last_sent.as_deref() == Some(settings.text.as_str()) {
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

    fn compute(&mut self, ctx: &egui::Context, s: &AttentionSettings) {
        let Some(out) = &self.output else { return };
        let maps = &out.attentions;
        let key = ViewKey {
            result: self.result_id,
            layer: s.layer.min(maps.layers - 1),
            head: s.head.min(maps.heads - 1),
            mode: s.mode,
            merge: s.merge_words,
            colormap: s.colormap,
        };
        if self.shown.as_ref().is_some_and(|m| m.key == key) {
            return;
        }
        let mut values = match key.mode {
            AttnMode::Head => maps.head(key.layer, key.head).to_vec(),
            AttnMode::Mean => maps.mean_over_heads(key.layer),
            AttnMode::Max => maps.max_over_heads(key.layer),
            AttnMode::Rollout => maps.rollout().swap_remove(key.layer),
        };
        let mut n = maps.n;
        let mut labels = maps.tokens.clone();
        let mut causal = maps.causal;
        if key.merge {
            let (group, words) = word_groups(&out.encoded.tokens, &s.text);
            values = merge_groups(&values, n, &group);
            n = words.len();
            labels = words;
            causal = false;
        }
        // Colours span 0 … the map's largest value (attention rarely nears 1 away from [CLS]);
        // the hover tooltip gives the exact number.
        let raster = heatmap(&values, n, n, zero_to_max(&values), key.colormap, |r, c| {
            causal && c > r
        });
        let texture = texture(ctx, "attention", &raster, true);
        self.shown = Some(ShownMap {
            key,
            n,
            labels,
            values,
            causal,
            raster,
            texture,
        });
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
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let mut out = String::from("from\\to");
        for l in &m.labels {
            out.push(',');
            out.push_str(&quote(l));
        }
        out.push('\n');
        for r in 0..m.n {
            out.push_str(&quote(&m.labels[r]));
            for c in 0..m.n {
                if m.causal && c > r {
                    out.push(',');
                } else {
                    out.push_str(&format!(",{}", m.values[r * m.n + c]));
                }
            }
            out.push('\n');
        }
        std::fs::write(path, out)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
    }

    /// A text model folder the user picked in the view's model list; the app loads it.
    pub fn take_model_request(&mut self) -> Option<std::path::PathBuf> {
        self.model_request.take()
    }

    /// The model picker: the loaded model and every other text model found on disk.
    fn model_picker(&mut self, ui: &mut egui::Ui) {
        let current = self.model_name.clone().unwrap_or_else(|| "none".into());
        egui::ComboBox::from_label("model")
            .selected_text(&current)
            .show_ui(ui, |ui| {
                if self.known_models.is_none() {
                    self.known_models = Some(crate::weights::find_text_models());
                }
                for dir in self.known_models.iter().flatten() {
                    let name = crate::weights::model_folder_label(dir);
                    if ui.selectable_label(name == current, &name).clicked() {
                        self.model_request = Some(dir.clone());
                    }
                }
                ui.label("More: Models window (open a folder or download).");
            });
    }

    /// Draws the view.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        worker: &TextWorker,
        s: &mut AttentionSettings,
        notify: &mut dyn FnMut(Result<String, String>),
    ) {
        self.model_picker(ui);
        ui.horizontal(|ui| {
            ui.label("Text:");
            ui.add(
                egui::TextEdit::multiline(&mut s.text)
                    .desired_rows(2)
                    .desired_width(f32::INFINITY)
                    .hint_text("Type a sentence"),
            );
        });
        self.sync(worker, s);
        let Some(out) = self.output.clone() else {
            match &self.model_name {
                None => ui.label(
                    "Open a text model folder (Models window): e.g. all-MiniLM-L6-v2 or GPT-2.",
                ),
                Some(_) if self.awaiting => ui.spinner(),
                Some(_) => ui.label("Type a sentence."),
            };
            return;
        };
        if let Some(notice) = out.encoded.notice() {
            ui.colored_label(ui.visuals().warn_fg_color, notice);
        }
        let maps: &AttentionMaps = &out.attentions;
        ui.horizontal_wrapped(|ui| {
            ui.add(egui::Slider::new(&mut s.layer, 0..=maps.layers - 1).text("layer"));
            ui.add_enabled(
                s.mode == AttnMode::Head,
                egui::Slider::new(&mut s.head, 0..=maps.heads - 1).text("head"),
            );
            egui::ComboBox::from_label("show")
                .selected_text(s.mode.label())
                .show_ui(ui, |ui| {
                    for m in AttnMode::ALL {
                        ui.selectable_value(&mut s.mode, m, m.label());
                    }
                });
            ui.checkbox(&mut s.merge_words, "merge subwords into words");
            ui.checkbox(&mut s.head_view, "head view (lines)");
            egui::ComboBox::from_label("colormap")
                .selected_text(s.colormap.name())
                .show_ui(ui, |ui| {
                    for c in Colormap::ALL {
                        ui.selectable_value(&mut s.colormap, c, c.name());
                    }
                });
            if ui.button("PNG…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .set_file_name("attention.png")
                    .save_file()
                {
                    notify(
                        self.export_png(&p)
                            .map(|()| format!("wrote {}", p.display()))
                            .map_err(|e| e.to_string()),
                    );
                }
            }
            if ui.button("CSV…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .set_file_name("attention.csv")
                    .save_file()
                {
                    notify(
                        self.export_csv(&p)
                            .map(|()| format!("wrote {}", p.display()))
                            .map_err(|e| e.to_string()),
                    );
                }
            }
        });
        s.layer = s.layer.min(maps.layers - 1);
        s.head = s.head.min(maps.heads - 1);
        self.compute(ui.ctx(), s);
        ui.horizontal_top(|ui| {
            let side = (ui.available_height() - 90.0)
                .min(ui.available_width() * 0.55)
                .max(120.0);
            if let (true, Some(m)) = (s.head_view, &self.shown) {
                self.head_view_hover = head_view_ui(ui, m, side, self.head_view_hover);
            } else if let Some(m) = &self.shown {
                let (vals, n, causal, labels) = (&m.values, m.n, m.causal, &m.labels);
                heatmap_ui(ui, &m.texture, (n, n), labels, labels, side, |r, c| {
                    if causal && c > r {
                        format!(
                            "{} → {}: masked (a causal model cannot see later tokens)",
                            labels[r], labels[c]
                        )
                    } else {
                        format!("{} → {}: {:.4}", labels[r], labels[c], vals[r * n + c])
                    }
                });
            }
            ui.vertical(|ui| {
                ui.label("All layers × heads (click one):");
                self.grid_ui(ui, maps, s);
            });
        });
    }

    fn grid_ui(&mut self, ui: &mut egui::Ui, maps: &AttentionMaps, s: &mut AttentionSettings) {
        if self
            .grid
            .as_ref()
            .is_none_or(|(id, cm, _)| *id != self.result_id || *cm != s.colormap)
        {
            let causal = maps.causal;
            let textures = (0..maps.layers * maps.heads)
                .map(|i| {
                    let head = maps.head(i / maps.heads, i % maps.heads);
                    let r = heatmap(
                        head,
                        maps.n,
                        maps.n,
                        zero_to_max(head),
                        s.colormap,
                        |r, c| causal && c > r,
                    );
                    texture(ui.ctx(), &format!("head-{i}"), &r, true)
                })
                .collect();
            self.grid = Some((self.result_id, s.colormap, textures));
        }
        let Some((_, _, textures)) = &self.grid else {
            return;
        };
        let gap = 2.0;
        let cell = ((ui.available_width() - gap * maps.heads as f32) / maps.heads as f32)
            .clamp(10.0, 48.0);
        for l in 0..maps.layers {
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing = Vec2::splat(gap);
                for h in 0..maps.heads {
                    let (resp, painter) = ui.allocate_painter(Vec2::splat(cell), Sense::click());
                    painter.image(
                        textures[l * maps.heads + h].id(),
                        resp.rect,
                        Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                        Color32::WHITE,
                    );
                    let selected = s.mode == AttnMode::Head && s.layer == l && s.head == h;
                    if selected {
                        painter.rect_stroke(
                            resp.rect,
                            0.0,
                            egui::Stroke::new(2.0, Color32::WHITE),
                            egui::StrokeKind::Inside,
                        );
                    }
                    let label = format!("Layer {l} head {h}");
                    resp.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
                    if resp.on_hover_text(&label).clicked() {
                        s.layer = l;
                        s.head = h;
                        s.mode = AttnMode::Head;
                    }
                }
            });
        }
    }
}

/// The BertViz-style head view: tokens in two columns (queries left, keys right) and, from the
/// hovered query token (or every token when none is hovered), a line to each key with width
/// and opacity by weight. Returns the hovered query row.
fn head_view_ui(
    ui: &mut egui::Ui,
    m: &ShownMap,
    height: f32,
    previous: Option<usize>,
) -> Option<usize> {
    let n = m.n.max(1);
    let row_h = (height / n as f32).clamp(6.0, 22.0);
    let width = 420.0f32.min(ui.available_width() * 0.55).max(200.0);
    let (resp, painter) = ui.allocate_painter(Vec2::new(width, row_h * n as f32), Sense::hover());
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Head view"));
    let rect = resp.rect;
    let (left_x, right_x) = (rect.min.x + 110.0, rect.max.x - 110.0);
    let y = |i: usize| rect.min.y + (i as f32 + 0.5) * row_h;
    let hovered = resp
        .hover_pos()
        .filter(|p| p.x < left_x)
        .map(|p| (((p.y - rect.min.y) / row_h) as usize).min(n - 1))
        .or(previous.filter(|&r| r < n));
    let text = ui.visuals().text_color();
    let accent = ui.visuals().selection.bg_fill;
    let font = egui::FontId::proportional((row_h - 2.0).clamp(6.0, 14.0));
    for (i, l) in m.labels.iter().enumerate() {
        let strong = hovered == Some(i);
        let c = if strong { accent } else { text };
        painter.text(
            Pos2::new(left_x - 6.0, y(i)),
            egui::Align2::RIGHT_CENTER,
            l,
            font.clone(),
            c,
        );
        painter.text(
            Pos2::new(right_x + 6.0, y(i)),
            egui::Align2::LEFT_CENTER,
            l,
            font.clone(),
            text,
        );
    }
    let max = m.values.iter().copied().fold(0f32, f32::max).max(1e-6);
    let rows: Vec<usize> = match hovered {
        Some(r) => vec![r],
        None => (0..n).collect(),
    };
    for &r in &rows {
        for c in 0..n {
            if m.causal && c > r {
                continue;
            }
            let w = m.values[r * n + c] / max;
            if w < 0.02 {
                continue;
            }
            let alpha = (w * if hovered.is_some() { 255.0 } else { 120.0 }) as u8;
            let color = Color32::from_rgba_unmultiplied(accent.r(), accent.g(), accent.b(), alpha);
            painter.line_segment(
                [Pos2::new(left_x, y(r)), Pos2::new(right_x, y(c))],
                egui::Stroke::new(0.5 + 4.0 * w, color),
            );
        }
    }
    hovered
}
