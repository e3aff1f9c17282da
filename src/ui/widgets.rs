//! Shared widgets: textures from rasters and a heatmap with axis labels and hover values.

use egui::{Color32, ColorImage, Pos2, Rect, Sense, TextureHandle, TextureOptions, Vec2};

use crate::viz::{Colormap, Raster};

/// Uploads a raster as a texture (call once per result, never per frame).
pub fn texture(ctx: &egui::Context, name: &str, r: &Raster, nearest: bool) -> TextureHandle {
    let img = ColorImage::from_rgba_unmultiplied([r.width, r.height], &r.rgba);
    let opts = if nearest {
        TextureOptions::NEAREST
    } else {
        TextureOptions::LINEAR
    };
    ctx.load_texture(name, img, opts)
}

/// One head's thumbnail in a layers × heads grid, `side` pixels square: its texture (a
/// placeholder while none is made), outlined when `selected`, a button named `label` (shown on
/// hover). Returns the response (it senses clicks).
pub fn thumbnail_ui(
    ui: &mut egui::Ui,
    texture: Option<&TextureHandle>,
    side: f32,
    selected: bool,
    label: &str,
) -> egui::Response {
    let (resp, painter) = ui.allocate_painter(Vec2::splat(side), Sense::click());
    match texture {
        Some(t) => {
            painter.image(
                t.id(),
                resp.rect,
                Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        None => {
            painter.rect_filled(resp.rect, 0.0, ui.visuals().faint_bg_color);
        }
    }
    if selected {
        painter.rect_stroke(
            resp.rect,
            0.0,
            egui::Stroke::new(2.0, Color32::WHITE),
            egui::StrokeKind::Inside,
        );
    }
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, label));
    resp.on_hover_text(label)
}

/// What the pointer is over in a heatmap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoveredCell {
    /// Row (query token).
    pub row: usize,
    /// Column (key token).
    pub col: usize,
}

/// What a heatmap shows besides its cells.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeatmapMarks<'a> {
    /// Titles of the row and column axes (what a row stands for, what a column stands for).
    pub axis_titles: Option<(&'a str, &'a str)>,
    /// A row drawn outlined (the selected word).
    pub row: Option<usize>,
    /// A cell drawn outlined (the bar under the pointer elsewhere).
    pub cell: Option<HoveredCell>,
    /// A colour scale beside the map: the colours and the values they stand for, from the
    /// first (bottom) to the second (top).
    pub scale: Option<(Colormap, f32, f32)>,
}

/// Draws a `rows × cols` heatmap texture filling `size`, with row labels on the left and column
/// labels on top (and the axes' titles beyond them), and returns the response (it senses
/// clicks) and the hovered cell. `value_text(r, c)` fills the tooltip.
#[allow(clippy::too_many_arguments)]
pub fn heatmap_ui(
    ui: &mut egui::Ui,
    texture: &TextureHandle,
    (rows, cols): (usize, usize),
    row_labels: &[String],
    col_labels: &[String],
    size: f32,
    marks: HeatmapMarks<'_>,
    value_text: impl Fn(usize, usize) -> String,
) -> (egui::Response, Option<HoveredCell>) {
    let title_h = if marks.axis_titles.is_some() {
        16.0
    } else {
        0.0
    };
    let label_w = 90.0 + title_h;
    let label_h = 70.0 + title_h;
    let scale_w = if marks.scale.is_some() { 64.0 } else { 0.0 };
    let (response, painter) = ui.allocate_painter(
        Vec2::new(label_w + size + scale_w, label_h + size),
        Sense::click(),
    );
    let lang = crate::ui::i18n::lang(ui.ctx());
    response.widget_info(move || {
        let name = crate::tr_lang!(lang, "a11y-attention-heatmap");
        egui::WidgetInfo::labeled(egui::Role::Image, true, name)
    });
    let origin = response.rect.min + Vec2::new(label_w, label_h);
    let map_rect = Rect::from_min_size(origin, Vec2::splat(size));
    painter.image(
        texture.id(),
        map_rect,
        Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
        Color32::WHITE,
    );
    let cell = Vec2::new(size / cols.max(1) as f32, size / rows.max(1) as f32);
    let text_color = ui.visuals().text_color();
    let font = egui::FontId::proportional(cell.y.clamp(6.0, 13.0));
    if cell.y >= 6.0 {
        for (r, l) in row_labels.iter().enumerate().take(rows) {
            let pos = Pos2::new(origin.x - 4.0, origin.y + (r as f32 + 0.5) * cell.y);
            painter.text(pos, egui::Align2::RIGHT_CENTER, l, font.clone(), text_color);
        }
    }
    if cell.x >= 6.0 {
        for (c, l) in col_labels.iter().enumerate().take(cols) {
            let galley = painter.layout_no_wrap(l.clone(), font.clone(), text_color);
            let pos = Pos2::new(
                origin.x + (c as f32 + 0.5) * cell.x - galley.size().y / 2.0,
                origin.y - 4.0,
            );
            painter.add(
                egui::epaint::TextShape::new(pos, galley, text_color)
                    .with_angle(-std::f32::consts::FRAC_PI_2),
            );
        }
    }
    let hovered = response
        .hover_pos()
        .filter(|p| map_rect.contains(*p))
        .map(|p| {
            let rel = p - origin;
            HoveredCell {
                row: ((rel.y / cell.y) as usize).min(rows.saturating_sub(1)),
                col: ((rel.x / cell.x) as usize).min(cols.saturating_sub(1)),
            }
        });
    if let Some((row_title, col_title)) = marks.axis_titles {
        let (font, color) = (
            egui::FontId::proportional(12.0),
            ui.visuals().weak_text_color(),
        );
        let galley = painter.layout_no_wrap(row_title.to_owned(), font.clone(), color);
        let pos = Pos2::new(
            response.rect.min.x,
            map_rect.center().y + galley.size().x / 2.0,
        );
        painter.add(
            egui::epaint::TextShape::new(pos, galley, color)
                .with_angle(-std::f32::consts::FRAC_PI_2),
        );
        painter.text(
            Pos2::new(map_rect.center().x, response.rect.min.y),
            egui::Align2::CENTER_TOP,
            col_title,
            font,
            color,
        );
    }
    if let Some((colormap, low, high)) = marks.scale {
        scale_ui(&painter, map_rect, colormap, (low, high), text_color);
    }
    let outline = |row: usize, col: usize, cells: Vec2, width: f32| {
        let r = Rect::from_min_size(
            origin + Vec2::new(col as f32 * cell.x, row as f32 * cell.y),
            cells,
        );
        painter.rect_stroke(
            r,
            0.0,
            egui::Stroke::new(width, Color32::WHITE),
            egui::StrokeKind::Outside,
        );
    };
    if let Some(r) = marks.row.filter(|&r| r < rows) {
        outline(r, 0, Vec2::new(size, cell.y), 1.0);
    }
    for h in hovered.iter().chain(&marks.cell) {
        outline(h.row, h.col, cell, 1.5);
    }
    let response = match hovered {
        Some(h) => response.on_hover_text_at_pointer(value_text(h.row, h.col)),
        None => response,
    };
    (response, hovered)
}

/// A vertical colour scale right of `map`: `colormap` from `low` (bottom) to `high` (top), with
/// the values at both ends and halfway.
fn scale_ui(
    painter: &egui::Painter,
    map: Rect,
    colormap: Colormap,
    (low, high): (f32, f32),
    text_color: Color32,
) {
    const STEPS: usize = 32;
    let strip = Rect::from_min_max(
        Pos2::new(map.max.x + 8.0, map.min.y),
        Pos2::new(map.max.x + 20.0, map.max.y),
    );
    let step_h = strip.height() / STEPS as f32;
    for i in 0..STEPS {
        let t = (i as f32 + 0.5) / STEPS as f32; // 0 at the bottom
        let [r, g, b, a] = colormap.rgba(t);
        let y1 = strip.max.y - i as f32 * step_h;
        let cell = Rect::from_min_max(
            Pos2::new(strip.min.x, y1 - step_h - 0.5),
            Pos2::new(strip.max.x, y1),
        );
        painter.rect_filled(cell, 0.0, Color32::from_rgba_unmultiplied(r, g, b, a));
    }
    let font = egui::FontId::proportional(11.0);
    for (t, align) in [
        (1.0, egui::Align2::LEFT_TOP),
        (0.5, egui::Align2::LEFT_CENTER),
        (0.0, egui::Align2::LEFT_BOTTOM),
    ] {
        let value = low + (high - low) * t;
        let pos = Pos2::new(strip.max.x + 4.0, strip.max.y - strip.height() * t);
        painter.text(pos, align, format!("{value:.2}"), font.clone(), text_color);
    }
}

/// How often a running task's indicator moves.
const BUSY_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// The sign that a task is running: three dots, one lit, stepping twice a second, then `text`.
///
/// PERF: egui's spinner animates by redrawing the window every frame; where the window is
/// drawn by the CPU (a software renderer such as Mesa's lavapipe: remote desktops, VMs, Xvfb)
/// a frame costs tens of milliseconds of the cores the task itself needs. Two frames a second
/// say as much.
pub fn busy_ui(ui: &mut egui::Ui, text: &str) {
    ui.horizontal(|ui| {
        let (resp, painter) = ui.allocate_painter(Vec2::new(22.0, 12.0), Sense::hover());
        let step = (ui.input(|i| i.time) / BUSY_TICK.as_secs_f64()) as usize % 3;
        let color = ui.visuals().text_color();
        for k in 0..3 {
            let c = resp.rect.left_center() + Vec2::new(4.0 + 7.0 * k as f32, 0.0);
            if k == step {
                painter.circle_filled(c, 3.0, color);
            } else {
                painter.circle_stroke(c, 2.5, egui::Stroke::new(1.0, color));
            }
        }
        if !text.is_empty() {
            ui.label(text);
        }
    });
    ui.ctx().request_repaint_after(BUSY_TICK);
}
