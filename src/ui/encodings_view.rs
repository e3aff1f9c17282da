//! The Positional-encodings view: sinusoidal with sliders, the loaded model's learned table,
//! rotary angles and decay, position × position cosine similarity, curves of chosen
//! dimensions, and SAM's random-Fourier point encoding over the image grid.

use egui::TextureHandle;
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::widgets::texture;
use crate::model::positional::{
    cosine_similarity, rope_cos, rope_decay, sam_point_encoding, sinusoidal, Matrix,
};
use crate::model::sam::prompt_encoder::RandomFourierEncoding;
use crate::viz::{heatmap, Colormap, ValueRange};

/// Which encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum EncodingKind {
    /// Vaswani et al.
    #[default]
    Sinusoidal,
    /// The loaded text model's table.
    Learned,
    /// RoPE.
    Rotary,
    /// SAM's random-Fourier point encoding.
    SamPoints,
}

impl EncodingKind {
    const ALL: [EncodingKind; 4] = [
        Self::Sinusoidal,
        Self::Learned,
        Self::Rotary,
        Self::SamPoints,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Sinusoidal => "sinusoidal",
            Self::Learned => "learned (text model)",
            Self::Rotary => "rotary (RoPE)",
            Self::SamPoints => "SAM point encoding",
        }
    }
}

/// Persisted settings of the view.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EncodingsSettings {
    /// Which encoding.
    pub kind: EncodingKind,
    /// Positions (rows).
    pub positions: usize,
    /// Dimensions (sinusoidal width, RoPE head size).
    pub dims: usize,
    /// Frequency base.
    pub base: f64,
    /// Show position × position cosine similarity.
    pub similarity: bool,
    /// Dimensions drawn as curves.
    pub curves: Vec<usize>,
}

impl Default for EncodingsSettings {
    fn default() -> Self {
        Self {
            kind: EncodingKind::Sinusoidal,
            positions: 128,
            dims: 128,
            base: 10000.0,
            similarity: false,
            curves: vec![0, 1, 8, 32],
        }
    }
}

/// Runtime state: the loaded tables and the current texture.
#[derive(Default)]
pub struct EncodingsState {
    /// The text model's learned table and its name.
    pub learned: Option<(String, Matrix)>,
    /// SAM's point encoding layer.
    pub sam_pe: Option<RandomFourierEncoding>,
    shown: Option<(EncodingsSettings, Option<usize>, Matrix, TextureHandle)>,
    learned_version: usize,
}

impl EncodingsState {
    /// Sets the learned table of a newly loaded text model.
    pub fn set_learned(&mut self, name: String, m: Matrix) {
        self.learned = Some((name, m));
        self.learned_version += 1;
    }

    /// The position × dimension matrix the settings ask for.
    pub fn matrix(&self, s: &EncodingsSettings) -> Option<Matrix> {
        Some(match s.kind {
            EncodingKind::Sinusoidal => sinusoidal(s.positions, s.dims, s.base),
            EncodingKind::Rotary => rope_cos(s.positions, s.dims, s.base),
            EncodingKind::Learned => {
                let (_, m) = self.learned.as_ref()?;
                m.top_left(s.positions, m.cols)
            }
            EncodingKind::SamPoints => sam_point_encoding(self.sam_pe.as_ref()?, 64, 64),
        })
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, s: &mut EncodingsSettings) {
        ui.horizontal_wrapped(|ui| {
            for k in EncodingKind::ALL {
                ui.selectable_value(&mut s.kind, k, k.label());
            }
        });
        ui.horizontal_wrapped(|ui| match s.kind {
            EncodingKind::Sinusoidal | EncodingKind::Rotary => {
                ui.add(egui::Slider::new(&mut s.positions, 2..=1024).text("positions"));
                ui.add(egui::Slider::new(&mut s.dims, 2..=1024).text(if s.kind == EncodingKind::Rotary { "head size" } else { "dimensions" }));
                ui.add(egui::Slider::new(&mut s.base, 10.0..=1_000_000.0).logarithmic(true).text("base"));
                s.dims += s.dims % 2;
            }
            EncodingKind::Learned => {
                ui.add(egui::Slider::new(&mut s.positions, 2..=1024).text("positions"));
            }
            EncodingKind::SamPoints => {
                ui.label("Each of the 64 × 64 grid cells encoded as SAM's prompt encoder encodes a point.");
            }
        });
        ui.checkbox(&mut s.similarity, "position × position cosine similarity");
        let Some(m) = self.cached(ui.ctx(), s) else {
            ui.label(match s.kind {
                EncodingKind::Learned => {
                    "Load a text model (Models window) to see its learned position table."
                }
                _ => "Load a SAM model (Models window) to see its point encoding.",
            });
            return;
        };
        let (rows, cols) = (m.rows, m.cols);
        ui.horizontal_top(|ui| {
            let side = (ui.available_height() - 20.0)
                .min(ui.available_width() * 0.5)
                .max(100.0);
            if let Some((_, _, _, tex)) = &self.shown {
                let size = if s.similarity {
                    egui::vec2(side, side)
                } else {
                    egui::vec2(side * (cols as f32 / rows as f32).clamp(0.25, 4.0), side)
                };
                let resp = ui.add(egui::Image::new((tex.id(), size)).sense(egui::Sense::hover()));
                if let Some(p) = resp.hover_pos() {
                    let rel = (p - resp.rect.min) / resp.rect.size();
                    let (r, c) = (
                        (rel.y * rows as f32) as usize,
                        (rel.x * cols as f32) as usize,
                    );
                    if r < rows && c < cols {
                        let what = if s.similarity {
                            format!("positions {r} and {c}")
                        } else {
                            format!("position {r}, dimension {c}")
                        };
                        resp.on_hover_text_at_pointer(format!(
                            "{what}: {:.4}",
                            m.data[r * cols + c]
                        ));
                    }
                }
            }
            ui.vertical(|ui| self.curves_ui(ui, s));
        });
    }

    fn cached(&mut self, ctx: &egui::Context, s: &EncodingsSettings) -> Option<Matrix> {
        let version = (s.kind == EncodingKind::Learned).then_some(self.learned_version);
        if let Some((key, v, m, _)) = &self.shown {
            if key == s && *v == version {
                return Some(m.clone());
            }
        }
        let base = self.matrix(s)?;
        let m = if s.similarity {
            cosine_similarity(&base)
        } else {
            base
        };
        let (range, cmap) = if s.similarity {
            (ValueRange::Fixed(-1.0, 1.0), Colormap::Viridis)
        } else {
            (ValueRange::Symmetric, Colormap::RdBu)
        };
        let raster = heatmap(&m.data, m.rows, m.cols, range, cmap, |_, _| false);
        let tex = texture(ctx, "encoding", &raster, true);
        self.shown = Some((s.clone(), version, m.clone(), tex));
        Some(m)
    }

    fn curves_ui(&self, ui: &mut egui::Ui, s: &mut EncodingsSettings) {
        if s.kind == EncodingKind::Rotary {
            ui.label("Relative-distance decay of q·k for constant vectors:");
            let decay = rope_decay(s.positions, s.dims, s.base);
            Plot::new("rope-decay")
                .height(220.0)
                .legend(Legend::default())
                .show(ui, |p| {
                    let pts: PlotPoints = decay
                        .iter()
                        .enumerate()
                        .map(|(d, v)| [d as f64, f64::from(*v)])
                        .collect();
                    p.line(Line::new("q·k(Δ) / d", pts));
                });
        }
        let Some(base) = self.matrix(&EncodingsSettings {
            similarity: false,
            ..s.clone()
        }) else {
            return;
        };
        ui.horizontal(|ui| {
            ui.label("curves of dimensions:");
            let mut text = s
                .curves
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            if ui.text_edit_singleline(&mut text).changed() {
                s.curves = text
                    .split(',')
                    .filter_map(|t| t.trim().parse().ok())
                    .filter(|&d| d < base.cols)
                    .take(8)
                    .collect();
            }
        });
        Plot::new("encoding-curves")
            .height(220.0)
            .legend(Legend::default())
            .show(ui, |p| {
                for &d in s.curves.iter().filter(|&&d| d < base.cols) {
                    let pts: PlotPoints = base
                        .column(d)
                        .iter()
                        .enumerate()
                        .map(|(i, v)| [i as f64, f64::from(*v)])
                        .collect();
                    p.line(Line::new(format!("dim {d}"), pts));
                }
            });
    }
}
