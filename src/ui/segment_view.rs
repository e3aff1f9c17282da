//! The Segment view: open an image, click foreground / background points or drag a box, see
//! SAM's mask at once, pick among the candidates, keep objects, export, and overlay the mask
//! decoder's attention for the current prompt.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use egui::{Color32, Pos2, Rect, Sense, Stroke, TextureHandle, Vec2};

use super::widgets::texture;
use crate::model::sam::transforms::preprocess_shape;
use crate::model::sam::{
    BoxPrompt, DecoderAttention, DecoderToken, Mask, PointLabel, PointPrompt, Prediction, Prompts,
    Rgb8, SparseToken,
};
use crate::viz::mask::{coco_json, cutout, overlay, save_mask_png, OBJECT_COLORS};
use crate::viz::{heatmap, Colormap, ValueRange};
use crate::worker::sam::{SamRequest, SamResponse, SamWorker};

/// Longest side of display textures (the model still sees and returns full resolution).
const MAX_DISPLAY_SIDE: usize = 2048;

/// Sample images bundled in the binary (see `assets/README.md` for their licences).
pub const SAMPLES: [(&str, &[u8]); 3] = [
    ("chelsea.png", include_bytes!("../../assets/chelsea.png")),
    (
        "astronaut.png",
        include_bytes!("../../assets/astronaut.png"),
    ),
    ("rocket.jpg", include_bytes!("../../assets/rocket.jpg")),
];

/// Where an image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// A file on disk (dialog, drag and drop, last session).
    File(PathBuf),
    /// A bundled sample.
    Sample(&'static str, &'static [u8]),
}

impl ImageSource {
    fn name(&self) -> String {
        match self {
            Self::File(p) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            Self::Sample(n, _) => (*n).to_string(),
        }
    }
}

/// Decodes an image (the same code path for the dialog, drag and drop and samples).
pub fn decode_image(src: &ImageSource) -> anyhow::Result<Rgb8> {
    match src {
        ImageSource::File(p) => Ok(crate::image_io::load_rgb8(p)?),
        ImageSource::Sample(name, bytes) => {
            let img = image::load_from_memory(bytes)
                .map_err(|e| anyhow::anyhow!("cannot decode sample {name}: {e}"))?;
            Ok(crate::image_io::dynamic_to_rgb8(img))
        }
    }
}

/// A decoded image (or why it could not be) from the loader thread.
type Decoded = (ImageSource, anyhow::Result<Rgb8>);

/// The image on screen.
pub struct LoadedImage {
    /// Identifies the image in worker messages.
    pub id: u64,
    /// File name.
    pub name: String,
    /// The file, when it came from disk.
    pub path: Option<PathBuf>,
    /// Full-resolution pixels.
    pub rgb: Arc<Rgb8>,
    texture: TextureHandle,
}

/// State of the image encoder for the current image.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeState {
    /// No image yet.
    Idle,
    /// Waiting for the encoder.
    Encoding {
        /// When the request was sent.
        since: Instant,
    },
    /// The embedding is ready.
    Ready {
        /// Encoder time in milliseconds.
        ms: f64,
    },
    /// The encoder could not run (the message says why).
    Failed(String),
}

/// The candidate masks answering the current prompt.
pub struct Candidates {
    /// Masks at the original size.
    pub masks: Vec<Mask>,
    /// Predicted IoU per mask.
    pub iou: Vec<f32>,
    /// Low-res logits per mask (refinement input).
    pub low_res: Vec<Vec<f32>>,
    /// Decoder attention for this prompt.
    pub attention: DecoderAttention,
    overlays: Vec<TextureHandle>,
}

/// A kept object.
pub struct SegObject {
    /// User-editable name.
    pub name: String,
    /// Overlay colour.
    pub color: [u8; 3],
    /// The mask.
    pub mask: Mask,
    /// Shown on the image.
    pub visible: bool,
    overlay: TextureHandle,
}

/// Which decoder attention map to overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionPick {
    /// Two-way block index, or `layers` for the final token → image attention.
    pub layer: usize,
    /// Head, or `None` for the mean over heads.
    pub head: Option<usize>,
    /// Token row.
    pub token: usize,
}

/// Everything the Segment view holds between frames (runtime only).
pub struct SegmentState {
    /// The image on screen.
    pub image: Option<LoadedImage>,
    /// Encoder state of that image.
    pub encode: EncodeState,
    /// The prompts of the object being segmented.
    pub prompts: Prompts,
    undo: Vec<Prompts>,
    redo: Vec<Prompts>,
    /// SAM's answer to the newest prompt.
    pub candidates: Option<Candidates>,
    /// Chosen candidate.
    pub selected: usize,
    /// Kept objects.
    pub objects: Vec<SegObject>,
    /// Overlay the decoder attention.
    pub show_attention: bool,
    /// Which attention map.
    pub attention_pick: AttentionPick,
    attention_texture: Option<(AttentionPick, TextureHandle)>,
    drag_from: Option<[f32; 2]>,
    next_image_id: u64,
    next_request_id: u64,
    /// The request whose answer is awaited.
    pub awaiting: Option<u64>,
    loader: (SyncSender<Decoded>, Receiver<Decoded>),
    /// An image being decoded.
    pub loading: Option<String>,
    /// Ask for 3 candidates (mirrors the setting).
    pub multimask: bool,
    /// Zoom and pan of the canvas.
    pub view: ImageView,
}

/// The visible part of the image: zoom ≥ 1 around a centre in normalised image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageView {
    /// 1 = the whole image.
    pub zoom: f32,
    /// Centre of the view, `[0, 1]²` of the image.
    pub center: [f32; 2],
}

impl Default for ImageView {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            center: [0.5, 0.5],
        }
    }
}

impl ImageView {
    /// Largest zoom (a 16× close-up).
    pub const MAX_ZOOM: f32 = 16.0;

    /// The visible window of the image in texture coordinates.
    pub fn uv(&self) -> Rect {
        let half = 0.5 / self.zoom;
        let c = |v: f32| v.clamp(half, 1.0 - half);
        let (cx, cy) = (c(self.center[0]), c(self.center[1]));
        Rect::from_min_max(
            Pos2::new(cx - half, cy - half),
            Pos2::new(cx + half, cy + half),
        )
    }

    /// Zooms by `factor`, keeping the texture point `anchor` under the pointer.
    pub fn zoom_at(&mut self, factor: f32, anchor: Pos2) {
        let uv = self.uv();
        let new_zoom = (self.zoom * factor).clamp(1.0, Self::MAX_ZOOM);
        let k = self.zoom / new_zoom;
        let c = Pos2::new(uv.center().x, uv.center().y);
        self.center = [
            anchor.x + (c.x - anchor.x) * k,
            anchor.y + (c.y - anchor.y) * k,
        ];
        self.zoom = new_zoom;
        let uv = self.uv();
        self.center = [uv.center().x, uv.center().y];
    }
}

impl Default for SegmentState {
    fn default() -> Self {
        Self {
            image: None,
            encode: EncodeState::Idle,
            prompts: Prompts::default(),
            undo: Vec::new(),
            redo: Vec::new(),
            candidates: None,
            selected: 0,
            objects: Vec::new(),
            show_attention: false,
            attention_pick: AttentionPick {
                layer: 2,
                head: None,
                token: 1,
            },
            attention_texture: None,
            drag_from: None,
            next_image_id: 1,
            next_request_id: 1,
            awaiting: None,
            loader: std::sync::mpsc::sync_channel(4),
            loading: None,
            multimask: true,
            view: ImageView::default(),
        }
    }
}

/// Settings of the Segment view that persist.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SegmentSettings {
    /// Ask for 3 candidate masks.
    pub multimask: bool,
    /// Mask overlay opacity.
    pub opacity: f32,
    /// The last image opened from disk.
    pub last_image: Option<PathBuf>,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        Self {
            multimask: true,
            opacity: 0.5,
            last_image: None,
        }
    }
}

/// Messages for the status bar.
pub type Notify<'a> = &'a mut dyn FnMut(Result<String, String>);

impl SegmentState {
    /// Starts decoding `src` on a background thread (never on the UI thread).
    pub fn open(&mut self, src: ImageSource, ctx: &egui::Context) {
        self.loading = Some(src.name());
        let tx = self.loader.0.clone();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("image-loader".into())
            .spawn(move || {
                let result = decode_image(&src);
                let _ = tx.send((src, result));
                ctx.request_repaint();
            });
        if spawned.is_err() {
            self.loading = None;
        }
    }

    /// Applies decoded images and worker responses. Call once per frame before drawing.
    pub fn poll(
        &mut self,
        ctx: &egui::Context,
        sam: &SamWorker,
        settings: &mut SegmentSettings,
        notify: Notify,
    ) {
        while let Ok((src, result)) = self.loader.1.try_recv() {
            self.loading = None;
            match result {
                Ok(rgb) => {
                    if let ImageSource::File(p) = &src {
                        settings.last_image = Some(p.clone());
                    }
                    self.set_image(ctx, sam, src, rgb, notify);
                }
                Err(e) => notify(Err(crate::error::one_line(&e))),
            }
        }
    }

    /// Handles one SAM worker response.
    pub fn on_response(
        &mut self,
        ctx: &egui::Context,
        r: &mut SamResponse,
        settings: &SegmentSettings,
    ) {
        match r {
            SamResponse::Encoding { image_id }
                if self.is_current(*image_id)
                    && !matches!(self.encode, EncodeState::Encoding { .. }) =>
            {
                self.encode = EncodeState::Encoding {
                    since: Instant::now(),
                };
            }
            SamResponse::Cancelled { image_id } if self.is_current(*image_id) => {
                self.encode = EncodeState::Failed("cancelled".into());
            }
            SamResponse::Encoded { image_id, ms } if self.is_current(*image_id) => {
                self.encode = EncodeState::Ready { ms: *ms };
            }
            SamResponse::Prediction {
                image_id,
                request_id,
                prediction,
                ..
            } if self.is_current(*image_id) => {
                if self.awaiting == Some(*request_id) {
                    self.awaiting = None;
                }
                // Take the masks: they can be large (full image size), so no copy.
                let p = std::mem::replace(
                    &mut **prediction,
                    Prediction {
                        masks: Vec::new(),
                        iou_predictions: Vec::new(),
                        low_res_logits: Vec::new(),
                        decoder_attention: DecoderAttention {
                            num_heads: 0,
                            tokens: Vec::new(),
                            grid_hw: (0, 0),
                            layers: Vec::new(),
                            final_token_to_image: Vec::new(),
                        },
                    },
                );
                self.set_candidates(ctx, p, settings);
            }
            SamResponse::Error { during, message } if during.contains("encoding") => {
                self.encode = EncodeState::Failed(message.clone())
            }
            SamResponse::ModelLoaded { .. } => {
                // A new model needs a new embedding of the current image.
                self.candidates = None;
                self.encode = EncodeState::Idle;
            }
            _ => {}
        }
    }

    fn is_current(&self, image_id: u64) -> bool {
        self.image.as_ref().is_some_and(|i| i.id == image_id)
    }

    fn set_image(
        &mut self,
        ctx: &egui::Context,
        sam: &SamWorker,
        src: ImageSource,
        rgb: Rgb8,
        notify: Notify,
    ) {
        let id = self.next_image_id;
        self.next_image_id += 1;
        let display = display_raster(&rgb);
        let tex = texture(ctx, &format!("image-{id}"), &display, false);
        let rgb = Arc::new(rgb);
        self.image = Some(LoadedImage {
            id,
            name: src.name(),
            path: match &src {
                ImageSource::File(p) => Some(p.clone()),
                ImageSource::Sample(..) => None,
            },
            rgb: rgb.clone(),
            texture: tex,
        });
        self.prompts = Prompts::default();
        self.view = ImageView::default();
        self.undo.clear();
        self.redo.clear();
        self.candidates = None;
        self.objects.clear();
        self.attention_texture = None;
        self.awaiting = None;
        self.encode_current(sam, notify);
    }

    /// (Re-)encodes the current image, e.g. after a model was loaded.
    pub fn encode_current(&mut self, sam: &SamWorker, notify: Notify) {
        let Some(img) = &self.image else { return };
        match sam.send(SamRequest::SetImage {
            image_id: img.id,
            image: img.rgb.clone(),
        }) {
            Ok(()) => {
                self.encode = EncodeState::Encoding {
                    since: Instant::now(),
                }
            }
            Err(e) => notify(Err(e.to_string())),
        }
        if !self.prompts.is_empty() {
            self.request(sam, notify);
        }
    }

    fn set_candidates(&mut self, ctx: &egui::Context, p: Prediction, settings: &SegmentSettings) {
        let overlays = self.candidate_overlays(ctx, &p.masks, settings);
        // Keep the user's pick when the number of candidates is unchanged; else take SAM's best.
        if self
            .candidates
            .as_ref()
            .is_none_or(|c| c.masks.len() != p.masks.len())
            || self.selected >= p.masks.len()
        {
            self.selected = best(&p.iou_predictions);
        }
        self.candidates = Some(Candidates {
            masks: p.masks,
            iou: p.iou_predictions,
            low_res: p.low_res_logits,
            attention: p.decoder_attention,
            overlays,
        });
        self.attention_texture = None;
    }

    fn display_size(&self) -> (usize, usize) {
        self.image
            .as_ref()
            .map_or((1, 1), |i| display_dims(i.rgb.width, i.rgb.height))
    }

    /// Sends the current prompts to SAM (the worker runs only the newest).
    fn request(&mut self, sam: &SamWorker, notify: Notify) {
        let Some(img) = &self.image else { return };
        if self.prompts.is_empty() {
            self.candidates = None;
            return;
        }
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let req = SamRequest::Predict {
            image_id: img.id,
            request_id,
            prompts: self.prompts.clone(),
            multimask: self.multimask,
        };
        match sam.send(req) {
            Ok(()) => self.awaiting = Some(request_id),
            Err(e) => notify(Err(e.to_string())),
        }
    }

    /// Replaces the prompts (recording undo) and asks SAM.
    pub fn edit(&mut self, sam: &SamWorker, notify: Notify, change: impl FnOnce(&mut Prompts)) {
        self.undo.push(self.prompts.clone());
        self.redo.clear();
        change(&mut self.prompts);
        self.request(sam, notify);
    }

    /// Undo the last prompt change.
    pub fn undo(&mut self, sam: &SamWorker, notify: Notify) {
        if let Some(prev) = self.undo.pop() {
            self.redo.push(std::mem::replace(&mut self.prompts, prev));
            self.request(sam, notify);
        }
    }

    /// Redo the last undone change.
    pub fn redo(&mut self, sam: &SamWorker, notify: Notify) {
        if let Some(next) = self.redo.pop() {
            self.undo.push(std::mem::replace(&mut self.prompts, next));
            self.request(sam, notify);
        }
    }

    /// Clears the prompts of the current object.
    pub fn clear(&mut self, sam: &SamWorker, notify: Notify) {
        if !self.prompts.is_empty() {
            self.edit(sam, notify, |p| *p = Prompts::default());
        }
    }

    /// The mask currently chosen, if any.
    pub fn selected_mask(&self) -> Option<&Mask> {
        self.candidates
            .as_ref()
            .and_then(|c| c.masks.get(self.selected))
    }

    /// Keeps the chosen mask as a new object and starts the next one.
    pub fn add_object(&mut self, ctx: &egui::Context, settings: &SegmentSettings) {
        let Some(mask) = self.selected_mask().cloned() else {
            return;
        };
        let color = OBJECT_COLORS[self.objects.len() % OBJECT_COLORS.len()];
        let (dw, dh) = self.display_size();
        let alpha = (settings.opacity.clamp(0.0, 1.0) * 255.0) as u8;
        let overlay = texture(
            ctx,
            &format!("object-{}", self.objects.len()),
            &overlay(&mask, color, alpha, dw, dh),
            false,
        );
        self.objects.push(SegObject {
            name: format!("object {}", self.objects.len() + 1),
            color,
            mask,
            visible: true,
            overlay,
        });
        self.prompts = Prompts::default();
        self.undo.clear();
        self.redo.clear();
        self.candidates = None;
    }

    /// Writes the chosen mask as a grey PNG.
    pub fn export_mask_png(&self, path: &Path) -> anyhow::Result<()> {
        let m = self
            .selected_mask()
            .ok_or_else(|| anyhow::anyhow!("no mask to export: click on the image first"))?;
        save_mask_png(m, path)
    }

    /// Writes the chosen mask as a cut-out PNG with alpha.
    pub fn export_cutout_png(&self, path: &Path) -> anyhow::Result<()> {
        let m = self
            .selected_mask()
            .ok_or_else(|| anyhow::anyhow!("no mask to export: click on the image first"))?;
        let img = self
            .image
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no image"))?;
        cutout(&img.rgb, m).save_png(path)
    }

    /// Writes every kept object (and the current mask) as COCO RLE JSON.
    pub fn export_coco_json(&self, path: &Path) -> anyhow::Result<()> {
        let img = self
            .image
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no image"))?;
        let mut masks: Vec<(&str, &Mask)> = self
            .objects
            .iter()
            .map(|o| (o.name.as_str(), &o.mask))
            .collect();
        if let Some(m) = self.selected_mask() {
            masks.push(("current", m));
        }
        if masks.is_empty() {
            anyhow::bail!("no mask to export: click on the image first");
        }
        let json = coco_json(&img.name, &masks);
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
    }

    /// Maps a screen position inside `rect` (where the visible part of the image is drawn) to
    /// image pixels.
    fn image_from_screen(&self, rect: Rect, pos: Pos2) -> Option<[f32; 2]> {
        let img = self.image.as_ref()?;
        let uv = self.view.uv();
        let rel = (pos - rect.min) / rect.size();
        let (u, v) = (
            uv.min.x + rel.x * uv.width(),
            uv.min.y + rel.y * uv.height(),
        );
        let (x, y) = (u * img.rgb.width as f32, v * img.rgb.height as f32);
        (rect.contains(pos)
            && x >= 0.0
            && y >= 0.0
            && x <= img.rgb.width as f32
            && y <= img.rgb.height as f32)
            .then_some([x, y])
    }

    fn screen_from_image(&self, rect: Rect, p: [f32; 2]) -> Pos2 {
        let (w, h) = self
            .image
            .as_ref()
            .map_or((1, 1), |i| (i.rgb.width, i.rgb.height));
        let uv = self.view.uv();
        let (u, v) = (p[0] / w as f32, p[1] / h as f32);
        rect.min
            + Vec2::new(
                (u - uv.min.x) / uv.width() * rect.width(),
                (v - uv.min.y) / uv.height() * rect.height(),
            )
    }

    /// The side panel: image, prompts, candidates, objects, export, attention.
    pub fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        sam: &SamWorker,
        settings: &mut SegmentSettings,
        notify: Notify,
    ) {
        ui.heading("Image");
        ui.horizontal_wrapped(|ui| {
            if ui.button("Open image…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter(
                        "images",
                        &["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"],
                    )
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
        if let Some(name) = &self.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("decoding {name}…"));
            });
        }
        match &self.encode {
            EncodeState::Encoding { since } => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("encoding… {:.1} s", since.elapsed().as_secs_f32()));
                    if ui.button("Cancel").clicked() {
                        sam.cancel_encoding();
                    }
                });
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_millis(100));
            }
            EncodeState::Ready { ms } => {
                ui.label(format!("image encoded in {ms:.0} ms: click to segment"));
            }
            EncodeState::Failed(why) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("not encoded: {why}"));
            }
            EncodeState::Idle => {}
        }
        ui.separator();
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
                .add_enabled(!self.undo.is_empty(), egui::Button::new("Undo"))
                .on_hover_text("Ctrl+Z")
                .clicked()
            {
                self.undo(sam, notify);
            }
            if ui
                .add_enabled(!self.redo.is_empty(), egui::Button::new("Redo"))
                .on_hover_text("Ctrl+Shift+Z")
                .clicked()
            {
                self.redo(sam, notify);
            }
            if ui
                .add_enabled(!self.prompts.is_empty(), egui::Button::new("Clear"))
                .clicked()
            {
                self.clear(sam, notify);
            }
        });
        let before = settings.multimask;
        ui.checkbox(&mut settings.multimask, "3 candidate masks");
        self.multimask = settings.multimask;
        if before != settings.multimask {
            self.request(sam, notify);
        }
        if ui
            .add(egui::Slider::new(&mut settings.opacity, 0.1..=1.0).text("mask opacity"))
            .changed()
        {
            self.refresh_overlays(ui.ctx(), settings);
        }
        if let Some(c) = &self.candidates {
            ui.separator();
            ui.heading("Candidates");
            let mut pick = None;
            ui.horizontal(|ui| {
                for (i, (tex, iou)) in c.overlays.iter().zip(&c.iou).enumerate() {
                    let size = Vec2::new(88.0, 66.0);
                    let (resp, painter) =
                        ui.allocate_painter(size + Vec2::new(0.0, 16.0), Sense::click());
                    let r = Rect::from_min_size(resp.rect.min, size);
                    if let Some(img) = &self.image {
                        painter.image(img.texture.id(), r, unit_uv(), Color32::WHITE);
                    }
                    painter.image(tex.id(), r, unit_uv(), Color32::WHITE);
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
                    let label = format!("Candidate {} (IoU {iou:.3})", i + 1);
                    resp.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
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
                self.add_object(ui.ctx(), settings);
            }
        }
        if !self.objects.is_empty() {
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
        ui.separator();
        ui.heading("Export");
        ui.horizontal_wrapped(|ui| {
            let stem = self.image.as_ref().map_or("mask".to_string(), |i| {
                Path::new(&i.name)
                    .file_stem()
                    .map_or("mask".into(), |s| s.to_string_lossy().into_owned())
            });
            if ui.button("Mask PNG…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .set_file_name(format!("{stem}-mask.png"))
                    .save_file()
                {
                    report(notify, self.export_mask_png(&p), &p);
                }
            }
            if ui.button("Cut-out PNG…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .set_file_name(format!("{stem}-cutout.png"))
                    .save_file()
                {
                    report(notify, self.export_cutout_png(&p), &p);
                }
            }
            if ui.button("COCO JSON…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .set_file_name(format!("{stem}-coco.json"))
                    .save_file()
                {
                    report(notify, self.export_coco_json(&p), &p);
                }
            }
        });
        ui.separator();
        ui.heading("What SAM looked at");
        ui.checkbox(&mut self.show_attention, "Overlay decoder attention");
        if let (true, Some(c)) = (self.show_attention, &self.candidates) {
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
            egui::ComboBox::from_label("token")
                .selected_text(token_name(&a.tokens[pick.token]))
                .show_ui(ui, |ui| {
                    for (t, tok) in a.tokens.iter().enumerate() {
                        ui.selectable_value(&mut pick.token, t, token_name(tok));
                    }
                });
        }
    }

    /// Overlay textures of candidate masks in the next object's colour (built once per answer).
    fn candidate_overlays(
        &self,
        ctx: &egui::Context,
        masks: &[Mask],
        settings: &SegmentSettings,
    ) -> Vec<TextureHandle> {
        let alpha = (settings.opacity.clamp(0.0, 1.0) * 255.0) as u8;
        let color = OBJECT_COLORS[self.objects.len() % OBJECT_COLORS.len()];
        let (dw, dh) = self.display_size();
        masks
            .iter()
            .enumerate()
            .map(|(i, m)| {
                texture(
                    ctx,
                    &format!("candidate-{i}"),
                    &overlay(m, color, alpha, dw, dh),
                    false,
                )
            })
            .collect()
    }

    fn refresh_overlays(&mut self, ctx: &egui::Context, settings: &SegmentSettings) {
        let alpha = (settings.opacity.clamp(0.0, 1.0) * 255.0) as u8;
        let (dw, dh) = self.display_size();
        if let Some(masks) = self.candidates.as_ref().map(|c| c.masks.clone()) {
            let overlays = self.candidate_overlays(ctx, &masks, settings);
            if let Some(c) = &mut self.candidates {
                c.overlays = overlays;
            }
        }
        for (i, o) in self.objects.iter_mut().enumerate() {
            o.overlay = texture(
                ctx,
                &format!("object-{i}"),
                &overlay(&o.mask, o.color, alpha, dw, dh),
                false,
            );
        }
    }

    /// The image canvas with the masks, prompts and attention overlay.
    pub fn canvas_ui(&mut self, ui: &mut egui::Ui, sam: &SamWorker, notify: Notify) {
        let Some(img) = &self.image else {
            ui.centered_and_justified(|ui| {
                ui.label("Open an image (or drop one here), or pick a sample on the left.");
            });
            return;
        };
        let (img_w, img_h, img_tex) = (
            img.rgb.width as f32,
            img.rgb.height as f32,
            img.texture.id(),
        );
        let avail = ui.available_size();
        let aspect = img_w / img_h;
        let size = if avail.x / avail.y.max(1.0) > aspect {
            Vec2::new(avail.y * aspect, avail.y)
        } else {
            Vec2::new(avail.x, avail.x / aspect)
        };
        let (resp, painter) = ui.allocate_painter(size, Sense::click_and_drag());
        resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Image canvas"));
        let rect = resp.rect;
        // Zoom: scroll or pinch over the image (around the pointer); pan: middle-button drag.
        if let Some(p) = resp.hover_pos() {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = pinch * (scroll * 0.002).exp();
            if (factor - 1.0).abs() > 1e-4 {
                let uv = self.view.uv();
                let rel = (p - rect.min) / rect.size();
                self.view.zoom_at(
                    factor,
                    Pos2::new(
                        uv.min.x + rel.x * uv.width(),
                        uv.min.y + rel.y * uv.height(),
                    ),
                );
            }
        }
        if resp.dragged_by(egui::PointerButton::Middle) {
            let d = resp.drag_delta() / rect.size() / self.view.zoom;
            self.view.center = [self.view.center[0] - d.x, self.view.center[1] - d.y];
            let uv = self.view.uv();
            self.view.center = [uv.center().x, uv.center().y];
        }
        let uv = self.view.uv();
        painter.image(img_tex, rect, uv, Color32::WHITE);
        for o in self.objects.iter().filter(|o| o.visible) {
            painter.image(o.overlay.id(), rect, uv, Color32::WHITE);
        }
        if let Some(c) = &self.candidates {
            if let Some(t) = c.overlays.get(self.selected) {
                painter.image(t.id(), rect, uv, Color32::WHITE);
            }
        }
        if self.show_attention {
            self.draw_attention(ui.ctx(), &painter, rect);
        }
        // Prompts.
        for p in &self.prompts.points {
            let pos = self.screen_from_image(rect, p.pos_in_image);
            if !rect.contains(pos) {
                continue;
            }
            let fill = match p.label {
                PointLabel::Foreground => Color32::from_rgb(40, 200, 60),
                PointLabel::Background => Color32::from_rgb(220, 50, 50),
            };
            painter.circle(pos, 6.0, fill, Stroke::new(1.5, Color32::WHITE));
        }
        if let Some(b) = self.prompts.bbox {
            let [x0, y0, x1, y1] = b.corners_in_image;
            let r = Rect::from_two_pos(
                self.screen_from_image(rect, [x0, y0]),
                self.screen_from_image(rect, [x1, y1]),
            );
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(2.0, Color32::from_rgb(60, 160, 255)),
                egui::StrokeKind::Middle,
            );
        }
        // Interaction: click = point, drag = box.
        if resp.drag_started_by(egui::PointerButton::Primary) {
            // Start the box where the button went down, not where the drag was recognised.
            let origin = ui
                .input(|i| i.pointer.press_origin())
                .or(resp.interact_pointer_pos());
            self.drag_from = origin.and_then(|p| self.image_from_screen(rect, p));
        }
        if let (Some(from), Some(pos)) = (self.drag_from, resp.interact_pointer_pos()) {
            if resp.dragged() {
                let r = Rect::from_two_pos(self.screen_from_image(rect, from), pos);
                painter.rect_stroke(
                    r,
                    0.0,
                    Stroke::new(1.5, Color32::from_rgb(60, 160, 255)),
                    egui::StrokeKind::Middle,
                );
            }
        }
        if resp.drag_stopped_by(egui::PointerButton::Primary) {
            if let (Some(from), Some(to)) = (
                self.drag_from.take(),
                resp.interact_pointer_pos()
                    .and_then(|p| self.image_from_screen(rect, p)),
            ) {
                let (w, h) = (rect.width() / img_w, rect.height() / img_h);
                let screen_dist = Vec2::new((to[0] - from[0]) * w, (to[1] - from[1]) * h).length();
                if screen_dist > 4.0 {
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
            if let Some(p) = self.image_from_screen(rect, pos) {
                self.edit(sam, notify, |pr| {
                    pr.points.push(PointPrompt {
                        pos_in_image: p,
                        label,
                    })
                });
            }
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

    fn draw_attention(&mut self, ctx: &egui::Context, painter: &egui::Painter, rect: Rect) {
        let (Some(c), Some(img)) = (&self.candidates, &self.image) else {
            return;
        };
        let pick = self.attention_pick;
        if self
            .attention_texture
            .as_ref()
            .is_none_or(|(p, _)| *p != pick)
        {
            let map = attention_map(&c.attention, pick);
            let (gh, gw) = c.attention.grid_hw;
            let mut raster = heatmap(&map, gh, gw, ValueRange::Auto, Colormap::Magma, |_, _| {
                false
            });
            for px in raster.rgba.chunks_mut(4) {
                px[3] = 170;
            }
            self.attention_texture =
                Some((pick, texture(ctx, "decoder-attention", &raster, false)));
        }
        if let Some((_, tex)) = &self.attention_texture {
            // The 64×64 grid covers the padded 1024² frame; show the part over the image.
            let (ih, iw) = preprocess_shape(img.rgb.height, img.rgb.width, 1024);
            let (sx, sy) = (iw as f32 / 1024.0, ih as f32 / 1024.0);
            let v = self.view.uv();
            let uv = Rect::from_min_max(
                Pos2::new(v.min.x * sx, v.min.y * sy),
                Pos2::new(v.max.x * sx, v.max.y * sy),
            );
            painter.image(tex.id(), rect, uv, Color32::WHITE);
        }
    }
}

fn report(notify: Notify, r: anyhow::Result<()>, path: &Path) {
    notify(match r {
        Ok(()) => Ok(format!("wrote {}", path.display())),
        Err(e) => Err(crate::error::one_line(&e)),
    });
}

fn unit_uv() -> Rect {
    Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0))
}

fn best(iou: &[f32]) -> usize {
    iou.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn layer_name(l: usize, layers: usize) -> String {
    if l == layers {
        "final token → image".into()
    } else {
        format!("block {l} token → image")
    }
}

/// A short name for a decoder token row.
pub fn token_name(t: &DecoderToken) -> String {
    match t {
        DecoderToken::Iou => "IoU token".into(),
        DecoderToken::Mask { index } => format!("mask token {index}"),
        DecoderToken::Prompt { token } => match token {
            SparseToken::Point { index, foreground } => {
                format!(
                    "point {} ({})",
                    index + 1,
                    if *foreground { "fg" } else { "bg" }
                )
            }
            SparseToken::PaddingPoint => "padding point".into(),
            SparseToken::BoxCorner(i) => format!("box corner {}", i + 1),
        },
    }
}

/// The `h·w` token → image map for `pick` (mean over heads when no head is chosen).
pub fn attention_map(a: &DecoderAttention, pick: AttentionPick) -> Vec<f32> {
    let src = if pick.layer >= a.layers.len() {
        &a.final_token_to_image
    } else {
        &a.layers[pick.layer].token_to_image
    };
    let (gh, gw) = a.grid_hw;
    let hw = gh * gw;
    let t = a.tokens.len();
    let row = |h: usize| &src[(h * t + pick.token) * hw..][..hw];
    match pick.head {
        Some(h) => row(h.min(a.num_heads - 1)).to_vec(),
        None => {
            let mut out = vec![0f32; hw];
            for h in 0..a.num_heads {
                for (o, v) in out.iter_mut().zip(row(h)) {
                    *o += v / a.num_heads as f32;
                }
            }
            out
        }
    }
}

fn display_dims(w: usize, h: usize) -> (usize, usize) {
    let side = w.max(h);
    if side <= MAX_DISPLAY_SIDE {
        (w, h)
    } else {
        let s = MAX_DISPLAY_SIDE as f64 / side as f64;
        (
            ((w as f64 * s) as usize).max(1),
            ((h as f64 * s) as usize).max(1),
        )
    }
}

/// The image at display size (large photos are shrunk for the GPU; masks stay full size).
fn display_raster(rgb: &Rgb8) -> crate::viz::Raster {
    let (w, h) = display_dims(rgb.width, rgb.height);
    let small = if (w, h) == (rgb.width, rgb.height) {
        rgb.clone()
    } else {
        crate::model::sam::transforms::resize_rgb8_pillow(rgb, w, h)
    };
    let mut rgba = Vec::with_capacity(w * h * 4);
    for px in small.data.chunks_exact(3) {
        rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    crate::viz::Raster {
        width: w,
        height: h,
        rgba,
    }
}
