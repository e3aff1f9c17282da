//! The Segment view's side panel: image, encoder state, prompt editing, candidates, objects,
//! export and the decoder-attention picker.

use std::path::Path;

use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2};

use super::attention::{layer_name, token_name};
use super::export::ExportKind;
use super::loading::{ImageSource, SAMPLES};
use super::objects::tint;
use super::view::ImageView;
use super::{EncodeState, Notify, SegmentSettings, SegmentState};
use crate::ui::widgets::busy_ui;
use crate::worker::sam::SamWorker;

/// File types the image dialog offers.
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"];

impl SegmentState {
    /// The side panel: image, prompts, candidates, objects, export, attention.
    pub fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        sam: &SamWorker,
        settings: &mut SegmentSettings,
        notify: Notify,
    ) {
        self.image_ui(ui, sam);
        ui.separator();
        self.prompt_ui(ui, sam, settings, notify);
        self.candidates_ui(ui, settings.opacity);
        self.objects_ui(ui);
        ui.separator();
        self.everything_ui(ui, sam, &mut settings.everything, notify);
        ui.separator();
        self.export_ui(ui, notify);
        ui.separator();
        self.attention_ui(ui);
    }

    fn image_ui(&mut self, ui: &mut egui::Ui, sam: &SamWorker) {
        ui.heading("Image");
        ui.horizontal_wrapped(|ui| {
            if ui.button("Open image…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("images", &IMAGE_EXTENSIONS)
                    .pick_file()
                {
                    self.open(ImageSource::File(p), ui.ctx());
                }
            }
            for (name, bytes) in SAMPLES {
                if ui.button(format!("Sample: {name}")).clicked() {
                    self.open(ImageSource::Sample(name, bytes), ui.ctx());
                }
            }
        });
        if let Some(name) = self.loading() {
            busy_ui(ui, &format!("decoding {name}…"));
        }
        match &self.encode {
            EncodeState::Encoding { since } => {
                ui.horizontal(|ui| {
                    busy_ui(
                        ui,
                        &format!("encoding… {:.0} s", since.elapsed().as_secs_f32()),
                    );
                    if ui.button("Cancel").clicked() {
                        sam.cancel();
                    }
                });
            }
            EncodeState::Ready { ms } => {
                ui.label(format!("image encoded in {ms:.0} ms: click to segment"));
            }
            EncodeState::Cancelled => {
                ui.horizontal(|ui| {
                    ui.label("encoding cancelled");
                    if ui.button("Encode").clicked() {
                        self.encode_current(sam, &mut |_| {});
                    }
                });
            }
            EncodeState::Failed(why) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("not encoded: {why}"));
            }
            EncodeState::NeedsModel => {
                ui.label("waiting for a SAM model");
            }
            EncodeState::Idle => {}
        }
    }

    fn prompt_ui(
        &mut self,
        ui: &mut egui::Ui,
        sam: &SamWorker,
        settings: &mut SegmentSettings,
        notify: Notify,
    ) {
        ui.heading("Prompt");
        ui.label("Left click: foreground point. Right click: background point. Drag: box.");
        ui.horizontal(|ui| {
            ui.label(format!(
                "Zoom {:.0}% (scroll; middle-drag pans)",
                self.view.zoom * 100.0
            ));
            if ui
                .add_enabled(self.view.zoom > 1.0, egui::Button::new("Fit"))
                .clicked()
            {
                self.view = ImageView::default();
            }
        });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(self.history.can_undo(), egui::Button::new("Undo"))
                .on_hover_text("Ctrl+Z")
                .clicked()
            {
                self.undo(sam, notify);
            }
            if ui
                .add_enabled(self.history.can_redo(), egui::Button::new("Redo"))
                .on_hover_text("Ctrl+Shift+Z")
                .clicked()
            {
                self.redo(sam, notify);
            }
            if ui
                .add_enabled(!self.prompts().is_empty(), egui::Button::new("Clear"))
                .clicked()
            {
                self.clear(sam, notify);
            }
        });
        ui.checkbox(
            &mut settings.hover_preview,
            "Preview the mask under the pointer",
        )
        .on_hover_text("H");
        self.hover_enabled = settings.hover_preview;
        let before = settings.multimask;
        ui.checkbox(&mut settings.multimask, "3 candidate masks");
        self.multimask = settings.multimask;
        if before != settings.multimask {
            self.request(sam, notify);
        }
        // The overlays are tinted at draw time: dragging the slider rebuilds nothing.
        ui.add(egui::Slider::new(&mut settings.opacity, 0.1..=1.0).text("mask opacity"));
    }

    fn candidates_ui(&mut self, ui: &mut egui::Ui, opacity: f32) {
        let Some(c) = &self.candidates else { return };
        ui.separator();
        ui.heading("Candidates");
        let mut pick = None;
        let color = tint(self.next_color(), opacity);
        ui.horizontal(|ui| {
            for (i, iou) in c.iou.iter().enumerate() {
                let stability = c.stability.get(i).copied().unwrap_or(f32::NAN);
                let size = Vec2::new(88.0, 66.0);
                let (resp, painter) =
                    ui.allocate_painter(size + Vec2::new(0.0, 30.0), Sense::click());
                let r = Rect::from_min_size(resp.rect.min, size);
                let full = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
                if let Some(img) = &self.image {
                    painter.image(img.texture.id(), r, full, Color32::WHITE);
                }
                if let Some(t) = c.overlays.as_ref().and_then(|o| o.get(i)) {
                    painter.image(t.id(), r, full, color);
                }
                let stroke = if i == self.selected {
                    Stroke::new(3.0, ui.visuals().selection.stroke.color)
                } else {
                    Stroke::new(1.0, ui.visuals().widgets.noninteractive.bg_stroke.color)
                };
                painter.rect_stroke(r, 2.0, stroke, egui::StrokeKind::Outside);
                painter.text(
                    Pos2::new(r.center().x, r.max.y + 8.0),
                    egui::Align2::CENTER_CENTER,
                    format!("IoU {iou:.3}"),
                    egui::FontId::proportional(12.0),
                    ui.visuals().text_color(),
                );
                painter.text(
                    Pos2::new(r.center().x, r.max.y + 22.0),
                    egui::Align2::CENTER_CENTER,
                    format!("stab {stability:.3}"),
                    egui::FontId::proportional(12.0),
                    ui.visuals().weak_text_color(),
                );
                let label = format!(
                    "Candidate {} (IoU {iou:.3}, stability {stability:.3})",
                    i + 1
                );
                resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if resp.clicked() {
                    pick = Some(i);
                }
            }
        });
        if let Some(i) = pick {
            self.selected = i;
        }
        if ui
            .button("Add object")
            .on_hover_text("Keep this mask and start a new object")
            .clicked()
        {
            self.add_object();
        }
    }

    fn objects_ui(&mut self, ui: &mut egui::Ui) {
        if self.objects.is_empty() {
            return;
        }
        ui.separator();
        ui.heading("Objects");
        let mut delete = None;
        for (i, o) in self.objects.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                let [r, g, b] = o.color;
                let (swatch, painter) = ui.allocate_painter(Vec2::splat(12.0), Sense::hover());
                painter.rect_filled(swatch.rect, 2.0, Color32::from_rgb(r, g, b));
                ui.checkbox(&mut o.visible, "");
                ui.add(egui::TextEdit::singleline(&mut o.name).desired_width(110.0));
                if ui.small_button("Delete").clicked() {
                    delete = Some(i);
                }
            });
        }
        if let Some(i) = delete {
            self.objects.remove(i);
        }
    }

    fn export_ui(&mut self, ui: &mut egui::Ui, notify: Notify) {
        ui.heading("Export");
        let stem = self.image.as_ref().map_or("mask".to_string(), |i| {
            Path::new(&i.name)
                .file_stem()
                .map_or("mask".into(), |s| s.to_string_lossy().into_owned())
        });
        ui.horizontal_wrapped(|ui| {
            for kind in ExportKind::ALL {
                if ui.button(kind.label()).clicked() {
                    if let Some(p) = rfd::FileDialog::new()
                        .set_file_name(kind.file_name(&stem))
                        .save_file()
                    {
                        self.start_export(kind, p, notify);
                    }
                }
            }
            if self.exporting() {
                busy_ui(ui, "writing…");
            }
        });
    }

    fn attention_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("What SAM looked at");
        ui.checkbox(&mut self.show_attention, "Overlay decoder attention");
        let (true, Some(c)) = (self.show_attention, &self.candidates) else {
            return;
        };
        let a = &c.attention;
        let pick = &mut self.attention_pick;
        let layers = a.layers.len();
        pick.layer = pick.layer.min(layers);
        pick.token = pick.token.min(a.tokens.len().saturating_sub(1));
        egui::ComboBox::from_label("layer")
            .selected_text(layer_name(pick.layer, layers))
            .show_ui(ui, |ui| {
                for l in 0..=layers {
                    ui.selectable_value(&mut pick.layer, l, layer_name(l, layers));
                }
            });
        egui::ComboBox::from_label("head")
            .selected_text(
                pick.head
                    .map_or("mean of heads".into(), |h| format!("head {h}")),
            )
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut pick.head, None, "mean of heads");
                for h in 0..a.num_heads {
                    ui.selectable_value(&mut pick.head, Some(h), format!("head {h}"));
                }
            });
        if let Some(tok) = a.tokens.get(pick.token) {
            egui::ComboBox::from_label("token")
                .selected_text(token_name(tok))
                .show_ui(ui, |ui| {
                    for (t, tok) in a.tokens.iter().enumerate() {
                        ui.selectable_value(&mut pick.token, t, token_name(tok));
                    }
                });
        }
    }
}
