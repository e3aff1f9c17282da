//! The Segment view's side panel: image, encoder state, prompt editing, candidates, objects,
//! export and the decoder-attention picker.

use crate::tr;
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
        self.poll_edit(crate::ui::i18n::lang(ui.ctx()), notify);
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
        ui.heading(tr!(ui, "seg-image"));
        ui.horizontal_wrapped(|ui| {
            if ui.button(tr!(ui, "seg-open-image")).clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("images", &crate::image_io::IMAGE_EXTENSIONS)
                    .pick_file()
                {
                    self.open(ImageSource::File(p), ui.ctx());
                }
            }
            if ui
                .button(tr!(ui, "seg-open-folder"))
                .on_hover_text(tr!(ui, "seg-open-folder-hover"))
                .clicked()
            {
                if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                    self.open_folder(dir, ui.ctx());
                }
            }
            for (name, bytes) in SAMPLES {
                if ui.button(tr!(ui, "seg-sample", name = name)).clicked() {
                    self.open(ImageSource::Sample(name, bytes), ui.ctx());
                }
            }
        });
        if self.reading_folder() {
            busy_ui(ui, &tr!(ui, "seg-reading-folder"));
        }
        if let Some(name) = self.loading() {
            busy_ui(ui, &tr!(ui, "seg-decoding", name = name));
        }
        match &self.encode {
            EncodeState::Encoding { since } => {
                ui.horizontal(|ui| {
                    let seconds = format!("{:.0}", since.elapsed().as_secs_f32());
                    busy_ui(ui, &tr!(ui, "seg-encoding", seconds = seconds));
                    if ui.button(tr!(ui, "cancel")).clicked() {
                        sam.cancel();
                    }
                });
            }
            EncodeState::Ready { ms, cached: false } => {
                ui.label(tr!(ui, "seg-encoded", ms = format!("{ms:.0}")));
            }
            EncodeState::Ready { ms, cached: true } => {
                ui.label(tr!(ui, "seg-encoded-cached", ms = format!("{ms:.0}")));
            }
            EncodeState::Cancelled => {
                ui.horizontal(|ui| {
                    ui.label(tr!(ui, "seg-encoding-cancelled"));
                    if ui.button(tr!(ui, "seg-encode")).clicked() {
                        self.encode_current(sam, &mut |_| {});
                    }
                });
            }
            EncodeState::Failed(problem) => {
                let why =
                    crate::ui::problems::problem_text(crate::ui::i18n::lang(ui.ctx()), problem);
                let text = tr!(ui, "seg-not-encoded", why = why);
                ui.colored_label(ui.visuals().error_fg_color, text);
            }
            EncodeState::NeedsModel => {
                ui.label(tr!(ui, "seg-waiting-model"));
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
        ui.heading(tr!(ui, "seg-prompt"));
        ui.label(tr!(ui, "seg-prompt-help"));
        shortcuts_ui(ui);
        ui.horizontal(|ui| {
            let percent = format!("{:.0}", self.view.zoom * 100.0);
            ui.label(tr!(ui, "seg-zoom", percent = percent));
            if ui
                .add_enabled(self.view.zoom > 1.0, egui::Button::new(tr!(ui, "seg-fit")))
                .clicked()
            {
                self.view = ImageView::default();
            }
        });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    self.history.can_undo(),
                    egui::Button::new(tr!(ui, "seg-undo")),
                )
                .on_hover_text("Ctrl+Z")
                .clicked()
            {
                self.undo(sam, notify);
            }
            if ui
                .add_enabled(
                    self.history.can_redo(),
                    egui::Button::new(tr!(ui, "seg-redo")),
                )
                .on_hover_text("Ctrl+Shift+Z")
                .clicked()
            {
                self.redo(sam, notify);
            }
            if ui
                .add_enabled(
                    !self.prompts().is_empty(),
                    egui::Button::new(tr!(ui, "seg-clear")),
                )
                .clicked()
            {
                self.clear(sam, notify);
            }
        });
        let hover = tr!(ui, "seg-hover-preview");
        ui.checkbox(&mut settings.hover_preview, hover)
            .on_hover_text("H");
        self.hover_enabled = settings.hover_preview;
        let before = settings.multimask;
        let multimask = tr!(ui, "seg-multimask");
        ui.checkbox(&mut settings.multimask, multimask);
        self.multimask = settings.multimask;
        if before != settings.multimask {
            self.request(sam, notify);
        }
        let refine = tr!(ui, "seg-refine");
        ui.checkbox(&mut settings.refine, refine)
            .on_hover_text(tr!(ui, "seg-refine-hover"));
        self.refine = settings.refine;
        // The overlays are tinted at draw time: dragging the slider rebuilds nothing.
        let opacity = tr!(ui, "seg-opacity");
        ui.add(egui::Slider::new(&mut settings.opacity, 0.1..=1.0).text(opacity));
    }

    fn candidates_ui(&mut self, ui: &mut egui::Ui, opacity: f32) {
        let Some(c) = &self.candidates else { return };
        ui.separator();
        ui.heading(tr!(ui, "seg-candidates"));
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
                    tr!(ui, "seg-stab", value = format!("{stability:.3}")),
                    egui::FontId::proportional(12.0),
                    ui.visuals().weak_text_color(),
                );
                let (iou, stability) = (format!("{iou:.3}"), format!("{stability:.3}"));
                let label = tr!(
                    ui,
                    "seg-candidate",
                    n = i + 1,
                    iou = iou,
                    stability = stability
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
            .button(tr!(ui, "seg-add-object"))
            .on_hover_text(tr!(ui, "seg-add-object-hover"))
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
            let outline = tr!(ui, "seg-outline");
            ui.checkbox(&mut settings.show_outline, outline);
            let simplify = tr!(ui, "seg-simplify");
            ui.add(
                egui::Slider::new(&mut settings.simplify_px, 0.0..=10.0)
                    .step_by(0.25)
                    .text(simplify),
            )
            .on_hover_text(tr!(ui, "seg-simplify-hover"));
        });
        if !settings.show_outline {
            return;
        }
        match self.outline.of(&mask) {
            Some(p) => {
                let parts = p.outer_rings().count();
                let vertices = p.vertex_count();
                let mut text = tr!(ui, "seg-vertices", vertices = vertices, parts = parts);
                if p.has_holes() {
                    text.push_str(&tr!(ui, "seg-holes", holes = p.hole_count()));
                }
                ui.label(text);
            }
            None => busy_ui(ui, &tr!(ui, "seg-tracing")),
        }
    }

    /// The labels objects get: pick the next one, rename (objects follow), add, remove.
    fn labels_ui(&mut self, ui: &mut egui::Ui, settings: &mut SegmentSettings) {
        ui.heading(tr!(ui, "seg-labels"));
        let mut remove = None;
        let removable = settings.labels.len() > 1;
        let mut rename = None;
        for i in 0..settings.labels.len() {
            ui.horizontal(|ui| {
                let label = settings.labels[i].clone();
                let radio = ui
                    .radio(settings.label == label, format!("{}", i + 1))
                    .on_hover_text(tr!(ui, "seg-next-label"));
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
                        .small_button(tr!(ui, "seg-remove"))
                        .on_hover_text(tr!(ui, "seg-remove-hover"))
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
        if ui.button(tr!(ui, "seg-add-label")).clicked() {
            let mut n = settings.labels.len() + 1;
            let name = |n: usize| tr!(ui, "seg-new-label", n = n);
            while settings.labels.contains(&name(n)) {
                n += 1;
            }
            settings.labels.push(name(n));
            settings.label = name(n);
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
        ui.heading(tr!(ui, "seg-objects"));
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
                ui.label(tr!(ui, "seg-object-area", area = o.mask.area()));
                if ui
                    .selectable_label(editing, tr!(ui, "seg-edit"))
                    .on_hover_text(tr!(ui, "seg-edit-hover"))
                    .clicked()
                {
                    self.editing = if editing { None } else { Some(i) };
                }
                if ui.small_button(tr!(ui, "seg-delete")).clicked() {
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
        ui.heading(tr!(ui, "seg-export"));
        ui.horizontal(|ui| {
            ui.label(tr!(ui, "seg-annotations-of"));
            ui.radio_value(&mut settings.export_all, true, tr!(ui, "seg-all-objects"));
            ui.radio_value(&mut settings.export_all, false, tr!(ui, "seg-chosen-mask"));
        });
        let shape_name = |ui: &egui::Ui, shape: CocoShape| match shape {
            CocoShape::Rle => tr!(ui, "seg-coco-rle"),
            CocoShape::Auto => tr!(ui, "seg-coco-auto"),
            CocoShape::Polygons => tr!(ui, "seg-coco-polygons"),
        };
        egui::ComboBox::from_label(tr!(ui, "seg-coco-shape"))
            .selected_text(shape_name(ui, settings.coco_shape))
            .show_ui(ui, |ui| {
                for shape in CocoShape::ALL {
                    let name = shape_name(ui, shape);
                    ui.selectable_value(&mut settings.coco_shape, shape, name);
                }
            })
            .response
            .on_hover_text(tr!(ui, "seg-coco-hover"));
        let name = self
            .image
            .as_ref()
            .map_or("mask".to_string(), |i| i.name.clone());
        ui.horizontal_wrapped(|ui| {
            for kind in ExportKind::ALL {
                if ui.button(kind.label(ui)).clicked() {
                    if let Some(p) = rfd::FileDialog::new()
                        .set_file_name(suggested(kind, &name).to_string_lossy())
                        .save_file()
                    {
                        let lang = crate::ui::i18n::lang(ui.ctx());
                        self.start_export(kind, settings, p, lang, notify);
                    }
                }
            }
            if self.exporting() {
                busy_ui(ui, &tr!(ui, "seg-writing"));
            }
        });
    }

    fn attention_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading(tr!(ui, "seg-sam-looked"));
        let overlay = tr!(ui, "seg-overlay-attention");
        ui.checkbox(&mut self.show_attention, overlay);
        let (true, Some(c)) = (self.show_attention, &self.candidates) else {
            return;
        };
        let a = &c.attention;
        let pick = &mut self.attention_pick;
        let layers = a.layers.len();
        pick.layer = pick.layer.min(layers);
        pick.token = pick.token.min(a.tokens.len().saturating_sub(1));
        egui::ComboBox::from_label(tr!(ui, "seg-attn-layer"))
            .selected_text(layer_name(ui, pick.layer, layers))
            .show_ui(ui, |ui| {
                for l in 0..=layers {
                    let name = layer_name(ui, l, layers);
                    ui.selectable_value(&mut pick.layer, l, name);
                }
            });
        let head_name = |ui: &egui::Ui, h: Option<usize>| match h {
            Some(h) => tr!(ui, "seg-attn-head-n", head = h),
            None => tr!(ui, "seg-attn-mean"),
        };
        egui::ComboBox::from_label(tr!(ui, "seg-attn-head"))
            .selected_text(head_name(ui, pick.head))
            .show_ui(ui, |ui| {
                for h in std::iter::once(None).chain((0..a.num_heads).map(Some)) {
                    let name = head_name(ui, h);
                    ui.selectable_value(&mut pick.head, h, name);
                }
            });
        if let Some(tok) = a.tokens.get(pick.token) {
            egui::ComboBox::from_label(tr!(ui, "seg-attn-token"))
                .selected_text(token_name(ui, tok))
                .show_ui(ui, |ui| {
                    for (t, tok) in a.tokens.iter().enumerate() {
                        let name = token_name(ui, tok);
                        ui.selectable_value(&mut pick.token, t, name);
                    }
                });
        }
    }
}
