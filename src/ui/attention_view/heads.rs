//! The Attention view's views of many heads: the layers × heads grid of thumbnails (clicked to
//! pick one) and the BertViz-style head view (lines from a token to those it attends to).

use egui::{Color32, Pos2, Sense, TextureHandle, Vec2};

use super::{
    largest, AttentionSettings, AttentionState, AttnMode, ShownMap, HEAD_VIEW_LINKS, THUMBNAIL_SIDE,
};
use crate::analysis::AttentionMaps;
use crate::jobs::Stale;
use crate::ui::widgets::{texture, thumbnail_ui};
use crate::viz::{heatmap, Colormap, ValueRange};

impl AttentionState {
    /// Every layer × head as a thumbnail; a click shows that head.
    pub(super) fn grid_ui(
        &mut self,
        ui: &mut egui::Ui,
        maps: &AttentionMaps,
        s: &mut AttentionSettings,
    ) {
        let textures = self
            .grid
            .as_ref()
            .filter(|g| g.key == (self.result_id, s.colormap))
            .map(|g| g.textures.as_slice());
        let gap = 2.0;
        let cell = ((ui.available_width() - gap * maps.heads as f32) / maps.heads.max(1) as f32)
            .clamp(10.0, 48.0);
        for l in 0..maps.layers {
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing = Vec2::splat(gap);
                for h in 0..maps.heads {
                    let texture = textures.and_then(|t| t.get(l * maps.heads + h));
                    let selected = s.mode == AttnMode::Head && s.layer == l && s.head == h;
                    let label = crate::tr!(ui, "grid-cell", layer = l, head = h);
                    if thumbnail_ui(ui, texture, cell, selected, &label).clicked() {
                        s.layer = l;
                        s.head = h;
                        s.mode = AttnMode::Head;
                    }
                }
            });
        }
    }
}

/// Each row's strongest links, strongest first, at most [`HEAD_VIEW_LINKS`] when the map is
/// large (every link of a small one).
pub(super) fn strongest_links(values: &[f32], n: usize, causal: bool) -> Vec<Vec<(usize, f32)>> {
    let keep = if n <= 32 { n } else { HEAD_VIEW_LINKS };
    values
        .chunks(n.max(1))
        .enumerate()
        .map(|(r, row)| {
            let mut links: Vec<(usize, f32)> = row
                .iter()
                .copied()
                .enumerate()
                .filter(|&(c, _)| !(causal && c > r))
                .collect();
            links.sort_by(|a, b| b.1.total_cmp(&a.1));
            links.truncate(keep);
            links
        })
        .collect()
}

/// Thumbnails of every head, at most [`THUMBNAIL_SIDE`] cells per side (max-pooled), each
/// coloured from 0 to its own maximum.
pub(super) fn thumbnails(
    ctx: &egui::Context,
    maps: &AttentionMaps,
    colormap: Colormap,
    stale: Stale,
) -> Vec<TextureHandle> {
    let n = maps.n;
    let side = n.clamp(1, THUMBNAIL_SIDE);
    let mut out = Vec::with_capacity(maps.layers * maps.heads);
    for i in 0..maps.layers * maps.heads {
        if stale() {
            break;
        }
        let head = maps.head(i / maps.heads, i % maps.heads);
        let pooled = max_pool(head, n, side);
        let masked = |r: usize, c: usize| maps.causal && c * n / side >= (r + 1) * n / side;
        let raster = heatmap(
            &pooled,
            side,
            side,
            ValueRange::Fixed(0.0, largest(&pooled)),
            colormap,
            masked,
        );
        out.push(texture(ctx, &format!("head-{i}"), &raster, true));
    }
    out
}

/// `n × n` values max-pooled to `side × side`.
fn max_pool(values: &[f32], n: usize, side: usize) -> Vec<f32> {
    if side == n {
        return values.to_vec();
    }
    let mut out = vec![0f32; side * side];
    for r in 0..n {
        for c in 0..n {
            let o = &mut out[(r * side / n) * side + c * side / n];
            *o = o.max(values[r * n + c]);
        }
    }
    out
}

/// The BertViz-style head view: tokens in two columns (queries left, keys right) and, from the
/// hovered query token, a line to each key with width and opacity by weight; with no token
/// hovered, every row's strongest links. Returns the hovered query row.
pub(super) fn head_view_ui(
    ui: &mut egui::Ui,
    m: &ShownMap,
    height: f32,
    previous: Option<usize>,
) -> Option<usize> {
    let n = m.n.max(1);
    let row_h = (height / n as f32).clamp(6.0, 22.0);
    let width = 420.0f32.min(ui.available_width() * 0.55).max(200.0);
    let (resp, painter) = ui.allocate_painter(Vec2::new(width, row_h * n as f32), Sense::hover());
    let lang = crate::ui::i18n::lang(ui.ctx());
    resp.widget_info(move || {
        let name = crate::tr_lang!(lang, "a11y-head-view");
        egui::WidgetInfo::labeled(egui::Role::Image, true, name)
    });
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
    let visible = ui.clip_rect();
    for (i, l) in m.labels.iter().enumerate() {
        if !visible.y_range().contains(y(i)) {
            continue;
        }
        let c = if hovered == Some(i) { accent } else { text };
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
    let line = |r: usize, c: usize, v: f32, strong: bool| {
        let w = v / max;
        if w < 0.02 {
            return;
        }
        let alpha = (w * if strong { 255.0 } else { 120.0 }) as u8;
        let color = Color32::from_rgba_unmultiplied(accent.r(), accent.g(), accent.b(), alpha);
        painter.line_segment(
            [Pos2::new(left_x, y(r)), Pos2::new(right_x, y(c))],
            egui::Stroke::new(0.5 + 4.0 * w, color),
        );
    };
    match hovered {
        Some(r) => {
            for c in 0..n {
                if !(m.causal && c > r) {
                    line(r, c, m.values[r * n + c], true);
                }
            }
        }
        None => {
            for (r, links) in m.links.iter().enumerate() {
                for &(c, v) in links {
                    line(r, c, v, false);
                }
            }
        }
    }
    hovered
}
