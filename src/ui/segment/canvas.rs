//! The image canvas: the image, the kept objects and the chosen candidate, the decoder's
//! attention, the prompts; clicks add points, drags draw boxes, the wheel zooms around the
//! pointer and a middle-button drag pans.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2};

use super::objects::tint;
use super::view::Canvas;
use super::{EncodeState, Notify, SegmentState};
use crate::types::{BoxPrompt, PointLabel, PointPrompt};
use crate::worker::sam::SamWorker;

/// A drag shorter than this (screen pixels) is a click, not a box.
const MIN_BOX_DRAG: f32 = 4.0;

impl SegmentState {
    /// The image canvas with the masks, prompts and attention overlay.
    pub fn canvas_ui(&mut self, ui: &mut egui::Ui, sam: &SamWorker, opacity: f32, notify: Notify) {
        let Some(img) = &self.image else {
            ui.centered_and_justified(|ui| {
                ui.label(crate::tr!(ui, "canvas-empty"));
            });
            return;
        };
        let image_size = Vec2::new(img.rgb.width as f32, img.rgb.height as f32);
        let img_tex = img.texture.id();
        let avail = ui.available_size();
        let aspect = image_size.x / image_size.y;
        let size = if avail.x / avail.y.max(1.0) > aspect {
            Vec2::new(avail.y * aspect, avail.y)
        } else {
            Vec2::new(avail.x, avail.x / aspect)
        };
        let (resp, painter) = ui.allocate_painter(size, Sense::click_and_drag());
        let lang = crate::ui::i18n::lang(ui.ctx());
        resp.widget_info(move || {
            let name = crate::tr_lang!(lang, "a11y-image-canvas");
            egui::WidgetInfo::labeled(egui::Role::Image, true, name)
        });
        let mut canvas = Canvas {
            rect: resp.rect,
            uv: self.view.uv(),
            image_size,
        };
        // Zoom: scroll or pinch over the image (around the pointer); pan: middle-button drag.
        if let Some(p) = resp.hover_pos() {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = pinch * (scroll * 0.002).exp();
            if (factor - 1.0).abs() > 1e-4 {
                self.view.zoom_at(factor, canvas.uv_from_screen(p));
            }
        }
        if resp.dragged_by(egui::PointerButton::Middle) {
            self.view.pan(resp.drag_delta(), canvas.rect.size());
        }
        canvas.uv = self.view.uv();
        // The hover preview follows the pointer; it asks only while no button is down.
        self.hover.free = !ui.input(|i| i.pointer.any_down());
        self.hover.pointer = resp.hover_pos().and_then(|p| canvas.image_from_screen(p));
        self.draw(ui.ctx(), &painter, &canvas, img_tex, opacity);
        self.interact(ui, &resp, &painter, &canvas, sam, notify);
        self.update_hover(ui.ctx(), sam);
    }

    fn draw(
        &mut self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        canvas: &Canvas,
        image: egui::TextureId,
        opacity: f32,
    ) {
        let (rect, uv) = (canvas.rect, canvas.uv);
        painter.image(image, rect, uv, Color32::WHITE);
        for o in self.objects.iter().filter(|o| o.visible) {
            if let Some(t) = &o.overlay {
                painter.image(t.id(), rect, uv, tint(o.color, opacity));
            }
        }
        for f in self.everything.found.iter().filter(|f| f.object.visible) {
            if let Some(t) = &f.object.overlay {
                painter.image(t.id(), rect, uv, tint(f.object.color, opacity));
            }
        }
        if let Some(c) = &self.candidates {
            if let Some(t) = c.overlays.as_ref().and_then(|o| o.get(self.selected)) {
                painter.image(t.id(), rect, uv, tint(self.next_color(), opacity));
            }
        }
        if let Some(p) = self.selected_mask().and_then(|m| self.outline.of(m)) {
            super::outline::Outline::draw(painter, canvas, p);
        }
        if self.awaiting.is_none() {
            if let Some(t) = self.preview_overlay() {
                // Lighter than a committed mask: it is only what a click here would give.
                painter.image(t.id(), rect, uv, tint(self.next_color(), opacity * 0.6));
            }
        }
        if self.show_attention {
            if let Some(c) = &self.candidates {
                let tex = self.attention_overlay.texture(
                    ctx,
                    c.request_id,
                    &c.attention,
                    self.attention_pick,
                );
                // The 64×64 grid covers the padded 1024² frame; show the part over the image.
                let [fx, fy] = c.attention.image_extent;
                let grid_uv = Rect::from_min_max(
                    Pos2::new(uv.min.x * fx, uv.min.y * fy),
                    Pos2::new(uv.max.x * fx, uv.max.y * fy),
                );
                painter.image(tex.id(), rect, grid_uv, Color32::WHITE);
            }
        }
        let prompts = self.history.current();
        for p in &prompts.points {
            let pos = canvas.screen_from_image(p.pos_in_image);
            if !rect.contains(pos) {
                continue;
            }
            let fill = match p.label {
                PointLabel::Foreground => Color32::from_rgb(40, 200, 60),
                PointLabel::Background => Color32::from_rgb(220, 50, 50),
            };
            painter.circle(pos, 6.0, fill, Stroke::new(1.5, Color32::WHITE));
        }
        if let Some(b) = prompts.bbox {
            let [x0, y0, x1, y1] = b.corners_in_image;
            let r = Rect::from_two_pos(
                canvas.screen_from_image([x0, y0]),
                canvas.screen_from_image([x1, y1]),
            );
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(2.0, Color32::from_rgb(60, 160, 255)),
                egui::StrokeKind::Middle,
            );
        }
        if self.awaiting.is_some() || matches!(self.encode, EncodeState::Encoding { .. }) {
            painter.text(
                rect.left_top() + Vec2::new(8.0, 8.0),
                egui::Align2::LEFT_TOP,
                "…",
                egui::FontId::proportional(18.0),
                Color32::WHITE,
            );
        }
    }

    /// Clicks add points (left: foreground, right: background), a left drag draws a box.
    fn interact(
        &mut self,
        ui: &egui::Ui,
        resp: &egui::Response,
        painter: &egui::Painter,
        canvas: &Canvas,
        sam: &SamWorker,
        notify: Notify,
    ) {
        if resp.drag_started_by(egui::PointerButton::Primary) {
            // Start the box where the button went down, not where the drag was recognised.
            let origin = ui
                .input(|i| i.pointer.press_origin())
                .or(resp.interact_pointer_pos());
            self.drag_from = origin.and_then(|p| canvas.image_from_screen(p));
        }
        if let (Some(from), Some(pos), true) =
            (self.drag_from, resp.interact_pointer_pos(), resp.dragged())
        {
            let r = Rect::from_two_pos(canvas.screen_from_image(from), pos);
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(1.5, Color32::from_rgb(60, 160, 255)),
                egui::StrokeKind::Middle,
            );
        }
        if resp.drag_stopped_by(egui::PointerButton::Primary) {
            let to = resp
                .interact_pointer_pos()
                .and_then(|p| canvas.image_from_screen(p));
            if let (Some(from), Some(to)) = (self.drag_from.take(), to) {
                let scale = canvas.scale();
                let on_screen = Vec2::new((to[0] - from[0]) * scale.x, (to[1] - from[1]) * scale.y);
                if on_screen.length() > MIN_BOX_DRAG {
                    let corners = [
                        from[0].min(to[0]),
                        from[1].min(to[1]),
                        from[0].max(to[0]),
                        from[1].max(to[1]),
                    ];
                    self.edit(sam, notify, |p| {
                        p.bbox = Some(BoxPrompt {
                            corners_in_image: corners,
                        })
                    });
                    return;
                }
            }
        }
        let label = if resp.clicked() {
            Some(PointLabel::Foreground)
        } else if resp.secondary_clicked() {
            Some(PointLabel::Background)
        } else {
            None
        };
        if let (Some(label), Some(pos)) = (label, resp.interact_pointer_pos()) {
            if let Some(p) = canvas.image_from_screen(pos) {
                self.edit(sam, notify, |pr| {
                    pr.points.push(PointPrompt {
                        pos_in_image: p,
                        label,
                    })
                });
            }
        }
    }
}
