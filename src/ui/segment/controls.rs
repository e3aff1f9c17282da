//! The Segment view's side panel: image, encoder state, prompt editing, candidates, objects,
//! export and the decoder-attention picker.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2};

use super::attention::{layer_name, token_name};
use super::export::{suggested, ExportKind};
use super::folder_ui::shortcuts_ui;
use super::loading::{ImageSource, SAMPLES};
use super::objects::tint;
use super::view::ImageView;
use super::{EncodeState, Notify, SegmentSettings, SegmentState};
use crate::annotate::CocoShape;
use crate::ui::widgets::busy_ui;
use crate::worker::sam::SamWorker;

impl SegmentState {
    /// The side panel: image, prompts, candidates, objects, export, attention.
    pub fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        sam: &SamWorker,
        settings: &mut SegmentSettings,
        notify: Notify,
    ) {
        self.poll_edit(notify);
        self.poll_object_overlays(ui.ctx());
        self.image_ui(ui, sam);
        self.folder_ui(ui, settings, notify);
        ui.separator();
        self.prompt_ui(ui, sam, settings, notify);
        self.candidates_ui(ui, settings.opacity);
        self.polygon_ui(ui, settings);
        ui.separator();
        self.labels_ui(ui, settings);
        self.objects_ui(ui, &settings.labels, notify);
        ui.separator();
        self.everything_ui(ui, sam, &mut settings.everything, notify);
        ui.separator();
        self.export_ui(ui, settings, notify);
        ui.separator();
        self.attention_ui(ui);
    }

    fn image_ui(&mut self, ui: &mut egui::Ui, sam: &SamWorker) {
        ui.heading("Image");
        ui.horizontal_wrapped(|ui| {
            if ui.button("Open image…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("images", &crate::image_io::IMAGE_EXTENSIONS)
                    .pick_file()
                {
                    self.open(ImageSource::File(p), ui.ctx());
                }
            }
            if ui
                .button("Open folder…")
                .on_hover_text("Annotate a folder of images: objects are saved in it as COCO")
                .clicked()
            {
                if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                    self.open_folder(dir);
                }
            }
            for (name, bytes) in SAMPLES {
                if ui.button(format!("Sample: {name}")).clicked() {
                    self.open(ImageSource::Sample(name, bytes), ui.ctx());
                }
            }
        });
        if self.reading_folder() {
            busy_ui(ui, "reading the folder…");
        }
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
            EncodeState::Ready { ms, cached: false } => {
                ui.label(format!("image encoded in {ms:.0} ms: click to segment"));
            }
            EncodeState::Ready { ms, cached: true } => {
                ui.label(format!(
                    "embedding read from the disk cache in {ms:.0} ms: click to segment"
                ));
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
        shortcuts_ui(ui);
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
        ui.checkbox(
            &mut settings.refine,
            "Refine each click with the previous mask",
        )
        .on_hover_text(
            "The chosen candidate's low-res logits go to the next click as SAM's mask_input, \
                 as the official predictor refines a mask (undo brings back the input each \
                 step had)",
        );
        self.refine = settings.refine;
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
            .on_hover_text("Keep this mask and start a new object (Enter)")
            .clicked()
        {
            self.add_object();
        }
    }

    /// The chosen mask as the exports' polygons: the tolerance, the outline, its counts.
    fn polygon_ui(&mut self, ui: &mut egui::Ui, settings: &mut SegmentSettings) {
        let Some(mask) = self.selected_mask().cloned() else {
            return;
        };
        ui.horizontal(|ui| {
            ui.checkbox(&mut settings.show_outline, "Polygon outline");
            ui.add(
                egui::Slider::new(&mut settings.simplify_px, 0.0..=10.0)
                    .step_by(0.25)
                    .text("simplify (px)"),
            )
            .on_hover_text(
                "Douglas–Peucker tolerance: no border pixel is farther from the polygon. \
                 The COCO (polygons), YOLO and LabelMe exports use it.",
            );
        });
        if !settings.show_outline {
            return;
        }
        match self.outline.of(&mask) {
            Some(p) => {
                let parts = p.outer_rings().count();
                let mut text = format!(
                    "{} vertices in {parts} part{}",
                    p.vertex_count(),
                    if parts == 1 { "" } else { "s" }
                );
                if p.has_holes() {
                    text.push_str(&format!(
                        ", {} hole(s): lost in YOLO, LabelMe and COCO polygons",
                        p.hole_count()
                    ));
                }
                ui.label(text);
            }
            None => busy_ui(ui, "tracing the outline…"),
        }
    }

    /// The labels objects get: pick the next one, rename (objects follow), add, remove.
    fn labels_ui(&mut self, ui: &mut egui::Ui, settings: &mut SegmentSettings) {
        ui.heading("Labels");
        let mut remove = None;
        let removable = settings.labels.len() > 1;
        let mut rename = None;
        for i in 0..settings.labels.len() {
            ui.horizontal(|ui| {
                let label = settings.labels[i].clone();
                let radio = ui
                    .radio(settings.label == label, format!("{}", i + 1))
                    .on_hover_text("The next object's label");
                if radio.clicked() {
                    settings.label.clone_from(&label);
                }
                // Edited in a buffer, applied when the field loses focus (Enter, Tab, a click
                // elsewhere): an empty name or one already taken is undone.
                let mut text = match &self.label_edit {
                    Some((j, t)) if *j == i => t.clone(),
                    _ => label.clone(),
                };
                let edit = ui
                    .add(
                        egui::TextEdit::singleline(&mut text)
                            .desired_width(120.0)
                            .id_salt(("label", i)),
                    )
                    .labelled_by(radio.id);
                if edit.lost_focus() {
                    self.label_edit = None;
                    let new = text.trim().to_owned();
                    if !new.is_empty() && !settings.labels.contains(&new) {
                        rename = Some((i, new));
                    }
                } else if edit.has_focus() {
                    self.label_edit = Some((i, text));
                }
                if removable
                    && ui
                        .small_button("Remove")
                        .on_hover_text("Remove this label")
                        .clicked()
                {
                    remove = Some(i);
                }
            });
        }
        if let Some((i, new)) = rename {
            let old = std::mem::replace(&mut settings.labels[i], new.clone());
            for o in self.objects.iter_mut().filter(|o| o.label == old) {
                o.label.clone_from(&new);
            }
            if let Some(f) = &mut self.folder {
                f.relabel(&old, &new, &settings.labels);
            }
            if settings.label == old {
                settings.label = new;
            }
        }
        if let Some(i) = remove {
            self.label_edit = None;
            let gone = settings.labels.remove(i);
            let fallback = settings.labels[0].clone();
            for o in self.objects.iter_mut().filter(|o| o.label == gone) {
                o.label.clone_from(&fallback);
            }
            if let Some(f) = &mut self.folder {
                f.relabel(&gone, &fallback, &settings.labels);
            }
            if settings.label == gone {
                settings.label = fallback;
            }
        }
        if ui.button("Add label").clicked() {
            let mut n = settings.labels.len() + 1;
            while settings.labels.contains(&format!("label {n}")) {
                n += 1;
            }
            settings.labels.push(format!("label {n}"));
            settings.label = format!("label {n}");
        }
        if !settings.labels.contains(&settings.label) {
            settings.label = settings.labels[0].clone();
        }
    }

    fn objects_ui(&mut self, ui: &mut egui::Ui, labels: &[String], notify: Notify) {
        if self.objects.is_empty() {
            return;
        }
        ui.separator();
        ui.heading("Objects");
        let mut delete = None;
        for i in 0..self.objects.len() {
            let editing = self.editing == Some(i);
            ui.horizontal(|ui| {
                let o = &mut self.objects[i];
                let [r, g, b] = o.color;
                let (swatch, painter) = ui.allocate_painter(Vec2::splat(12.0), Sense::hover());
                painter.rect_filled(swatch.rect, 2.0, Color32::from_rgb(r, g, b));
                let shown = ui.checkbox(&mut o.visible, format!("{}", i + 1));
                egui::ComboBox::from_id_salt(("object label", i))
                    .selected_text(o.label.as_str())
                    .show_ui(ui, |ui| {
                        for l in labels {
                            ui.selectable_value(&mut o.label, l.clone(), l);
                        }
                    })
                    .response
                    .labelled_by(shown.id);
                ui.label(format!("{} px", o.mask.area()));
                if ui
                    .selectable_label(editing, "Edit")
                    .on_hover_text("Add or subtract masks, fill holes, remove small parts")
                    .clicked()
                {
                    self.editing = if editing { None } else { Some(i) };
                }
                if ui.small_button("Delete").clicked() {
                    delete = Some(i);
                }
            });
            if editing {
                ui.indent(("edit object", i), |ui| self.object_edit_ui(ui, i, notify));
            }
        }
        if let Some(i) = delete {
            self.objects.remove(i);
            self.editing = None;
            // A remade overlay in flight was for an index that moved: it is made again.
            self.object_overlays.cancel();
        }
    }

    fn export_ui(&mut self, ui: &mut egui::Ui, settings: &mut SegmentSettings, notify: Notify) {
        ui.heading("Export");
        ui.horizontal(|ui| {
            ui.label("Annotations of");
            ui.radio_value(&mut settings.export_all, true, "all objects");
            ui.radio_value(&mut settings.export_all, false, "the chosen mask");
        });
        egui::ComboBox::from_label("COCO segmentation")
            .selected_text(settings.coco_shape.label())
            .show_ui(ui, |ui| {
                for shape in CocoShape::ALL {
                    ui.selectable_value(&mut settings.coco_shape, shape, shape.label());
                }
            })
            .response
            .on_hover_text(
                "COCO polygons cannot carry holes: an object with holes goes as RLE unless \
                 polygons are forced.",
            );
        let name = self
            .image
            .as_ref()
            .map_or("mask".to_string(), |i| i.name.clone());
        ui.horizontal_wrapped(|ui| {
            for kind in ExportKind::ALL {
                if ui.button(kind.label()).clicked() {
                    if let Some(p) = rfd::FileDialog::new()
                        .set_file_name(suggested(kind, &name).to_string_lossy())
                        .save_file()
                    {
                        self.start_export(kind, settings, p, notify);
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
