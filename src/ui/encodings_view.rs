//! The Positional-encodings view: sinusoidal with sliders, the loaded model's learned table,
//! rotary angles and decay, position × position cosine similarity, curves of chosen
//! dimensions, and SAM's random-Fourier point encoding over the image grid.
//!
//! The matrix, its similarity and its texture are computed once per change of the settings on
//! a view job (SAM's 4096 grid cells make a 4096 × 4096 similarity); the previous picture
//! stays on screen meanwhile. Curves are columns of the computed matrix.

use std::sync::Arc;

use egui::TextureHandle;
use egui_plot::{Legend, Line, Plot, PlotPoint, PlotPoints};

use super::widgets::texture;
use crate::analysis::positional::{
    cosine_similarity, rope_cos, rope_decay, sam_point_encoding, sinusoidal, Matrix,
    RandomFourierEncoding,
};
use crate::jobs::{Jobs, Slot, Stale};
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

    fn label(self, ui: &egui::Ui) -> String {
        match self {
            Self::Sinusoidal => crate::tr!(ui, "enc-kind-sinusoidal"),
            Self::Learned => crate::tr!(ui, "enc-kind-learned"),
            Self::Rotary => crate::tr!(ui, "enc-kind-rotary"),
            Self::SamPoints => crate::tr!(ui, "enc-kind-sam"),
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
    /// A position whose row is outlined (a word's position, from the Attention view).
    pub highlight: Option<usize>,
    /// Show the learned table beside the sinusoidal one of the same size.
    pub beside_sinusoidal: bool,
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
            highlight: None,
            beside_sinusoidal: false,
        }
    }
}

/// The side of SAM's point-encoding grid (the image embedding's 64 × 64).
const SAM_GRID: usize = 64;

/// Display textures have at most this many texels per side (larger matrices are sampled;
/// hovering reads the exact value).
const MAX_TEXTURE_SIDE: usize = 1024;

/// What a picture depends on: the settings that choose the matrix, and the tables it reads.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    kind: EncodingKind,
    positions: usize,
    dims: usize,
    base: f64,
    similarity: bool,
    /// The learned table drawn beside the sinusoidal one.
    beside: bool,
    /// Which learned table / SAM encoding (bumped when a new model loads).
    source: u64,
}

/// A computed picture.
pub struct Shown {
    key: Key,
    /// The position × dimension matrix (curves are its columns).
    pub base: Arc<Matrix>,
    /// What the heatmap shows: `base`, or its position × position cosine similarity.
    pub shown: Arc<Matrix>,
    /// RoPE's distance decay `(Δ, q·k)`, for the rotary encoding.
    decay: Option<Vec<PlotPoint>>,
    texture: TextureHandle,
    /// The sinusoidal table of the learned one's size, as shown (`base` or its similarity),
    /// when it is drawn beside it.
    pub beside: Option<(Arc<Matrix>, TextureHandle)>,
}

/// The curves' points: for which dimensions and picture, and each dimension's points.
type Curves = (Vec<usize>, u64, Vec<(usize, Vec<PlotPoint>)>);

/// Runtime state: the loaded tables and the picture on screen.
pub struct EncodingsState {
    /// The text model's learned table and its name.
    pub learned: Option<(String, Arc<Matrix>)>,
    /// First rows of the model's table that no token reads (RoBERTa family), left out of
    /// [`Self::learned`].
    pub skipped_rows: usize,
    /// How the loaded text model encodes positions.
    pub table_kind: crate::types::train::Positions,
    /// SAM's point encoding layer.
    pub sam_pe: Option<Arc<RandomFourierEncoding>>,
    /// Bumped when either table changes.
    source: u64,
    /// The picture on screen.
    pub current: Option<Shown>,
    slot: Slot<Option<Shown>>,
    requested: Option<Key>,
    curves: Option<Curves>,
    shown_id: u64,
}

impl EncodingsState {
    /// An empty view whose background work runs on `jobs`.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            learned: None,
            skipped_rows: 0,
            table_kind: crate::types::train::Positions::Learned,
            sam_pe: None,
            source: 0,
            current: None,
            slot: Slot::new(jobs),
            requested: None,
            curves: None,
            shown_id: 0,
        }
    }

    /// Sets the position table of a newly loaded text model: its used rows, after the
    /// `skipped_rows` no token reads, and how the model encodes positions (a tiny model's
    /// table may be the sinusoidal one, or absent with rotary positions).
    pub fn set_learned(
        &mut self,
        name: String,
        m: Matrix,
        (skipped_rows, kind): (usize, crate::types::train::Positions),
    ) {
        self.learned = Some((name, Arc::new(m)));
        self.skipped_rows = skipped_rows;
        self.table_kind = kind;
        self.source += 1;
    }

    /// Opens position `p` as the Attention view asks: the loaded model's learned table when
    /// there is one (else the sinusoidal one), with enough positions to show it, its row
    /// outlined.
    pub fn show_position(&self, s: &mut EncodingsSettings, p: usize) {
        if self.learned.is_some() {
            s.kind = EncodingKind::Learned;
            // The row in the model's table and in the formula's.
            s.beside_sinusoidal = true;
        } else if s.kind != EncodingKind::Rotary {
            s.kind = EncodingKind::Sinusoidal;
        }
        s.positions = s.positions.max(p + 1);
        s.highlight = Some(p);
    }

    /// Sets the point encoding of a newly loaded SAM model.
    pub fn set_sam_encoding(&mut self, pe: RandomFourierEncoding) {
        self.sam_pe = Some(Arc::new(pe));
        self.source += 1;
    }

    fn key(&self, s: &EncodingsSettings) -> Key {
        Key {
            kind: s.kind,
            positions: s.positions,
            dims: s.dims,
            base: s.base,
            similarity: s.similarity,
            beside: s.kind == EncodingKind::Learned && s.beside_sinusoidal,
            source: self.source,
        }
    }

    /// True while the picture is not yet the one the settings ask for.
    pub fn is_computing(&self) -> bool {
        self.slot.is_pending()
    }

    /// Takes a finished picture and asks for the one the settings show now.
    pub fn poll(&mut self, ctx: &egui::Context, s: &EncodingsSettings) {
        if let Some(shown) = self.slot.poll() {
            self.current = shown;
            self.shown_id += 1;
        }
        let key = self.key(s);
        if self.current.as_ref().map(|c| &c.key) == Some(&key)
            || self.requested.as_ref() == Some(&key)
        {
            return;
        }
        self.requested = Some(key.clone());
        let learned = self.learned.as_ref().map(|(_, m)| m.clone());
        let sam = self.sam_pe.clone();
        let ctx = ctx.clone();
        self.slot
            .submit(move |stale| compute(&ctx, key, learned.as_deref(), sam.as_deref(), stale));
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, s: &mut EncodingsSettings) {
        ui.horizontal_wrapped(|ui| {
            for k in EncodingKind::ALL {
                let label = k.label(ui);
                ui.selectable_value(&mut s.kind, k, label);
            }
        });
        ui.horizontal_wrapped(|ui| match s.kind {
            EncodingKind::Sinusoidal | EncodingKind::Rotary => {
                let positions = crate::tr!(ui, "enc-positions");
                ui.add(egui::Slider::new(&mut s.positions, 2..=1024).text(positions));
                let dims = if s.kind == EncodingKind::Rotary {
                    crate::tr!(ui, "enc-head-size")
                } else {
                    crate::tr!(ui, "enc-dims")
                };
                ui.add(egui::Slider::new(&mut s.dims, 2..=1024).text(dims));
                let base = crate::tr!(ui, "enc-base");
                ui.add(
                    egui::Slider::new(&mut s.base, 10.0..=1_000_000.0)
                        .logarithmic(true)
                        .text(base),
                );
                s.dims += s.dims % 2;
            }
            EncodingKind::Learned => {
                let positions = crate::tr!(ui, "enc-positions");
                ui.add(egui::Slider::new(&mut s.positions, 2..=1024).text(positions));
            }
            EncodingKind::SamPoints => {
                ui.label(crate::tr!(ui, "enc-sam-cells"));
            }
        });
        ui.horizontal(|ui| {
            let similarity = crate::tr!(ui, "enc-similarity");
            ui.checkbox(&mut s.similarity, similarity);
            if s.kind == EncodingKind::Learned {
                let beside = crate::tr!(ui, "enc-beside");
                ui.checkbox(&mut s.beside_sinusoidal, beside);
            }
            if self.is_computing() {
                super::widgets::busy_ui(ui, "");
            }
        });
        self.poll(ui.ctx(), s);
        let Some(c) = &self.current else {
            match s.kind {
                EncodingKind::Learned if self.learned.is_none() => {
                    ui.label(crate::tr!(ui, "enc-need-text"));
                }
                EncodingKind::Learned
                    if self.table_kind == crate::types::train::Positions::Rope =>
                {
                    ui.label(crate::tr!(ui, "enc-model-rope"));
                }
                EncodingKind::SamPoints if self.sam_pe.is_none() => {
                    ui.label(crate::tr!(ui, "enc-need-sam"));
                }
                _ => super::widgets::busy_ui(ui, &crate::tr!(ui, "computing")),
            }
            return;
        };
        if s.kind == EncodingKind::Learned
            && self.table_kind == crate::types::train::Positions::Sinusoidal
        {
            ui.label(crate::tr!(ui, "enc-model-sinusoidal"));
        }
        if s.kind == EncodingKind::Learned && self.skipped_rows > 0 {
            let k = self.skipped_rows;
            ui.label(crate::tr!(ui, "enc-skipped-rows", last = k - 1, first = k));
        }
        if let Some(r) = s.highlight {
            ui.horizontal(|ui| {
                ui.label(crate::tr!(ui, "enc-outlined", row = r));
                if ui.small_button(crate::tr!(ui, "enc-clear")).clicked() {
                    s.highlight = None;
                }
            });
        }
        let similarity = c.key.similarity;
        // The map, and the sinusoidal one beside it (`true`) when asked for.
        let maps: Vec<(Arc<Matrix>, egui::TextureId, bool)> =
            std::iter::once((c.shown.clone(), c.texture.id(), false))
                .chain(c.beside.as_ref().map(|(m, t)| (m.clone(), t.id(), true)))
                .collect();
        ui.horizontal_top(|ui| {
            let count = maps.len() as f32;
            let side = (ui.available_height() - 40.0)
                .min(ui.available_width() * 0.5 / count)
                .max(100.0);
            for (i, (m, texture, beside)) in maps.iter().enumerate() {
                ui.vertical(|ui| {
                    if maps.len() > 1 {
                        let title = if i == 0 {
                            crate::tr!(ui, "enc-beside-learned")
                        } else {
                            crate::tr!(ui, "enc-beside-sinusoidal")
                        };
                        ui.label(title);
                    }
                    map_ui(ui, (m, *texture, *beside), side, similarity, s.highlight);
                });
            }
            ui.vertical(|ui| self.curves_ui(ui, s));
        });
    }

    fn curves_ui(&mut self, ui: &mut egui::Ui, s: &mut EncodingsSettings) {
        let Some(c) = &self.current else { return };
        if let Some(decay) = &c.decay {
            ui.label(crate::tr!(ui, "enc-rope-decay"));
            Plot::new("rope-decay")
                .height(220.0)
                .legend(Legend::default())
                .show(ui, |p| {
                    p.line(Line::new("q·k(Δ) / d", PlotPoints::Borrowed(decay)));
                });
        }
        let base = c.base.clone();
        ui.horizontal(|ui| {
            ui.label(crate::tr!(ui, "enc-curves"));
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
        // The curves' points, made once per picture and choice of dimensions.
        if self
            .curves
            .as_ref()
            .is_none_or(|(dims, id, _)| *dims != s.curves || *id != self.shown_id)
        {
            let lines = s
                .curves
                .iter()
                .filter(|&&d| d < base.cols)
                .map(|&d| {
                    let pts = base
                        .column(d)
                        .iter()
                        .enumerate()
                        .map(|(i, v)| PlotPoint::new(i as f64, f64::from(*v)))
                        .collect();
                    (d, pts)
                })
                .collect();
            self.curves = Some((s.curves.clone(), self.shown_id, lines));
        }
        let Some((_, _, lines)) = &self.curves else {
            return;
        };
        let names: Vec<String> = lines
            .iter()
            .map(|(d, _)| crate::tr!(ui, "enc-curve", dim = *d))
            .collect();
        Plot::new("encoding-curves")
            .height(220.0)
            .legend(Legend::default())
            .show(ui, |p| {
                for ((_, pts), name) in lines.iter().zip(names) {
                    p.line(Line::new(name, PlotPoints::Borrowed(pts)));
                }
            });
    }
}

/// One heatmap of `side` pixels high (a position × position map is square), the row of
/// `highlight` outlined (and its column in a similarity map), the exact value on hover.
fn map_ui(
    ui: &mut egui::Ui,
    (m, texture, beside): (&Matrix, egui::TextureId, bool),
    side: f32,
    similarity: bool,
    highlight: Option<usize>,
) {
    let size = if similarity {
        egui::vec2(side, side)
    } else {
        egui::vec2(
            side * (m.cols as f32 / m.rows.max(1) as f32).clamp(0.25, 4.0),
            side,
        )
    };
    let resp = ui.add(egui::Image::new((texture, size)).sense(egui::Sense::hover()));
    if let Some(r) = highlight.filter(|&r| r < m.rows) {
        let (rect, rows) = (resp.rect, m.rows as f32);
        let h = (rect.height() / rows).max(2.0);
        let y = rect.min.y + rect.height() * r as f32 / rows;
        let stroke = egui::Stroke::new(1.5, egui::Color32::WHITE);
        let row = egui::Rect::from_min_size(egui::pos2(rect.min.x, y), egui::vec2(rect.width(), h));
        ui.painter()
            .rect_stroke(row, 0.0, stroke, egui::StrokeKind::Outside);
        if similarity {
            let x = rect.min.x + rect.width() * r as f32 / rows;
            let col =
                egui::Rect::from_min_size(egui::pos2(x, rect.min.y), egui::vec2(h, rect.height()));
            ui.painter()
                .rect_stroke(col, 0.0, stroke, egui::StrokeKind::Outside);
        }
    }
    let lang = crate::ui::i18n::lang(ui.ctx());
    resp.widget_info(move || {
        let name = if beside {
            crate::tr_lang!(lang, "a11y-sinusoidal-heatmap")
        } else {
            crate::tr_lang!(lang, "a11y-encoding-heatmap")
        };
        egui::WidgetInfo::labeled(egui::Role::Image, true, name)
    });
    if let Some(p) = resp.hover_pos() {
        let rel = (p - resp.rect.min) / resp.rect.size();
        let (r, col) = (
            (rel.y * m.rows as f32) as usize,
            (rel.x * m.cols as f32) as usize,
        );
        if r < m.rows && col < m.cols {
            let value = format!("{:.4}", m.data[r * m.cols + col]);
            let text = if similarity {
                crate::tr!(ui, "enc-hover-pair", a = r, b = col, value = value)
            } else {
                crate::tr!(ui, "enc-hover-cell", row = r, col = col, value = value)
            };
            resp.on_hover_text_at_pointer(text);
        }
    }
}

/// The matrix `key` asks for, before any similarity (`None` when its table is not loaded).
pub fn encoding_matrix(
    key_kind: EncodingKind,
    positions: usize,
    dims: usize,
    base: f64,
    learned: Option<&Matrix>,
    sam: Option<&RandomFourierEncoding>,
) -> Option<Matrix> {
    Some(match key_kind {
        EncodingKind::Sinusoidal => sinusoidal(positions, dims, base),
        EncodingKind::Rotary => rope_cos(positions, dims, base),
        EncodingKind::Learned => {
            let m = learned.filter(|m| m.rows > 0)?;
            m.top_left(positions, m.cols)
        }
        EncodingKind::SamPoints => sam_point_encoding(sam?, SAM_GRID, SAM_GRID),
    })
}

/// The picture for `key` (a view job): matrix, similarity, texture, RoPE decay.
fn compute(
    ctx: &egui::Context,
    key: Key,
    learned: Option<&Matrix>,
    sam: Option<&RandomFourierEncoding>,
    stale: Stale,
) -> Option<Shown> {
    let base = Arc::new(encoding_matrix(
        key.kind,
        key.positions,
        key.dims,
        key.base,
        learned,
        sam,
    )?);
    if stale() {
        return None;
    }
    let (shown, texture) = picture(ctx, &base, key.similarity, "encoding");
    if stale() {
        return None;
    }
    // The formula's table of the same size, drawn and outlined the same way.
    let beside = key.beside.then(|| {
        // (An odd width: the formula's next even table, cut.)
        let even = base.cols + base.cols % 2;
        let sin = Arc::new(sinusoidal(base.rows, even, 10000.0).top_left(base.rows, base.cols));
        picture(ctx, &sin, key.similarity, "encoding beside")
    });
    let decay = (key.kind == EncodingKind::Rotary).then(|| {
        rope_decay(key.positions, key.dims, key.base)
            .iter()
            .enumerate()
            .map(|(d, v)| PlotPoint::new(d as f64, f64::from(*v)))
            .collect()
    });
    Some(Shown {
        key,
        base,
        shown,
        decay,
        texture,
        beside,
    })
}

/// What a heatmap of `base` shows (itself, or its cosine similarity) and its texture.
fn picture(
    ctx: &egui::Context,
    base: &Arc<Matrix>,
    similarity: bool,
    name: &str,
) -> (Arc<Matrix>, TextureHandle) {
    let (shown, range, cmap) = if similarity {
        (
            Arc::new(cosine_similarity(base)),
            ValueRange::Fixed(-1.0, 1.0),
            Colormap::Viridis,
        )
    } else {
        (base.clone(), ValueRange::Symmetric, Colormap::RdBu)
    };
    // The colour range of the whole matrix, not of the sampled texels.
    let (lo, hi) = range.resolve(&shown.data);
    let sampled = sample(&shown, MAX_TEXTURE_SIDE);
    let raster = heatmap(
        &sampled.data,
        sampled.rows,
        sampled.cols,
        ValueRange::Fixed(lo, hi),
        cmap,
        |_, _| false,
    );
    (shown, texture(ctx, name, &raster, true))
}

/// `m` sampled (nearest row and column) to at most `side` per side.
fn sample(m: &Matrix, side: usize) -> Matrix {
    if m.rows <= side && m.cols <= side {
        return m.clone();
    }
    let (rows, cols) = (m.rows.min(side), m.cols.min(side));
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = m.row(r * m.rows / rows);
        data.extend((0..cols).map(|c| row[c * m.cols / cols]));
    }
    Matrix { rows, cols, data }
}
