//! Shared widgets: textures from rasters and a heatmap with axis labels and hover values.

use egui::{Color32, ColorImage, Pos2, Rect, Sense, TextureHandle, TextureOptions, Vec2};

use crate::viz::Raster;

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

/// What the pointer is over in a heatmap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoveredCell {
    /// Row (query token).
    pub row: usize,
    /// Column (key token).
    pub col: usize,
}

/// Draws a `rows × cols` heatmap texture filling `size`, with row labels on the left and column
/// labels on top, and returns the hovered cell. `value_text(r, c)` fills the tooltip.
pub fn heatmap_ui(
    ui: &mut egui::Ui,
    texture: &TextureHandle,
    (rows, cols): (usize, usize),
    row_labels: &[String],
    col_labels: &[String],
    size: f32,
    value_text: impl Fn(usize, usize) -> String,
) -> (egui::Response, Option<HoveredCell>) {
    let label_w = 90.0;
    let label_h = 70.0;
    let (response, painter) =
        ui.allocate_painter(Vec2::new(label_w + size, label_h + size), Sense::hover());
    response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Attention heatmap"));
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
    if let Some(h) = hovered {
        let r = Rect::from_min_size(
            origin + Vec2::new(h.col as f32 * cell.x, h.row as f32 * cell.y),
            cell,
        );
        painter.rect_stroke(
            r,
            0.0,
            egui::Stroke::new(1.5, Color32::WHITE),
            egui::StrokeKind::Outside,
        );
    }
    let response = match hovered {
        Some(h) => response.on_hover_text_at_pointer(value_text(h.row, h.col)),
        None => response,
    };
    (response, hovered)
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
