//! Everything mode in the Segment view: the automatic mask generator runs on the SAM worker
//! (progress, Cancel), its masks come back as objects in their own colours that the user keeps,
//! hides or deletes.

use crate::tr;
use std::sync::Arc;
use std::time::Instant;

use egui::{Color32, Sense, Vec2};

use super::objects::{mask_texture, SegObject};
use super::{EncodeState, Notify, SegmentState};
use crate::analysis::amg::rle_to_mask;
use crate::jobs::{Jobs, Slot};
use crate::types::{EverythingParams, EverythingProgress, Mask, MaskRecord};
use crate::viz::mask::OBJECT_COLORS;
use crate::worker::sam::{SamRequest, SamResponse, SamTask, SamWorker};

/// A mask the generator found, not yet kept.
pub struct Found {
    /// Shown like an object.
    pub object: SegObject,
    /// The decoder's predicted IoU.
    pub predicted_iou: f32,
    /// The stability score.
    pub stability_score: f32,
}

/// The masks of one run with their overlays, made on a job.
type Decoded = (u64, Vec<(Arc<Mask>, egui::TextureHandle)>);

/// Everything mode's state.
pub struct EverythingState {
    /// The run on the worker: its id, progress and start.
    pub running: Option<(u64, EverythingProgress, Instant)>,
    /// The last run's records, being turned into overlays.
    records: Option<(u64, Arc<Vec<MaskRecord>>)>,
    decoded: Slot<Decoded>,
    /// Masks found and not yet kept or deleted.
    pub found: Vec<Found>,
    /// How the last run went: masks and seconds.
    pub last: Option<(usize, f64)>,
}

impl EverythingState {
    /// Nothing found yet; overlays are made on `jobs`.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            running: None,
            records: None,
            decoded: Slot::new(jobs),
            found: Vec::new(),
            last: None,
        }
    }

    /// Forgets the run and what it found (a new image).
    pub fn reset(&mut self) {
        self.running = None;
        self.records = None;
        self.decoded.cancel();
        self.found.clear();
        self.last = None;
    }
}

impl SegmentState {
    /// Starts the automatic mask generator on the current image's embedding.
    pub fn start_everything(&mut self, sam: &SamWorker, params: EverythingParams, notify: Notify) {
        let Some(img) = &self.image else { return };
        if !matches!(self.encode, EncodeState::Ready { .. }) || self.everything.running.is_some() {
            return;
        }
        if let Err(e) = params.validate() {
            notify(Err(e));
            return;
        }
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        match sam.send(SamRequest::Everything {
            image_id: img.id,
            request_id,
            params,
        }) {
            Ok(()) => {
                self.everything.running =
                    Some((request_id, EverythingProgress::default(), Instant::now()));
                self.hover.clear();
            }
            Err(e) => notify(Err(super::send_error_text(self.lang, &e))),
        }
    }

    /// Handles the worker's answers about everything mode; other responses pass through.
    pub(super) fn on_everything_response(
        &mut self,
        ctx: &egui::Context,
        r: SamResponse,
        notify: Notify,
    ) -> Option<SamResponse> {
        let running = self.everything.running.as_ref().map(|r| r.0);
        match r {
            SamResponse::EverythingProgress {
                image_id,
                request_id,
                progress,
            } if self.is_current(image_id) && running == Some(request_id) => {
                if let Some(r) = &mut self.everything.running {
                    r.1 = progress;
                }
            }
            SamResponse::Everything {
                image_id,
                request_id,
                records,
                ms,
            } if self.is_current(image_id) && running == Some(request_id) => {
                self.everything.running = None;
                self.everything.last = Some((records.len(), ms / 1e3));
                self.decode_found(ctx, request_id, records);
            }
            SamResponse::EverythingCancelled {
                image_id,
                request_id,
            } if self.is_current(image_id) && running == Some(request_id) => {
                self.everything.running = None;
                notify(Ok(crate::tr_ctx!(ctx, "ev-cancelled")));
            }
            SamResponse::Failed {
                task: SamTask::Everything,
                ..
            } => {
                self.everything.running = None;
                return Some(r);
            }
            SamResponse::EverythingProgress { .. }
            | SamResponse::Everything { .. }
            | SamResponse::EverythingCancelled { .. } => {}
            other => return Some(other),
        }
        None
    }

    /// Turns the records into masks and overlays on a job.
    fn decode_found(
        &mut self,
        ctx: &egui::Context,
        request_id: u64,
        records: Arc<Vec<MaskRecord>>,
    ) {
        let Some(img) = &self.image else { return };
        let (size, ctx, recs) = (img.display_size, ctx.clone(), records.clone());
        self.everything.records = Some((request_id, records));
        self.everything.decoded.submit(move |stale| {
            let mut out = Vec::with_capacity(recs.len());
            for (i, r) in recs.iter().enumerate() {
                if stale() {
                    break;
                }
                let [h, w] = r.segmentation.size;
                let mask = Arc::new(Mask {
                    width: w,
                    height: h,
                    data: rle_to_mask(&r.segmentation),
                });
                let tex = mask_texture(&ctx, &format!("everything {i}"), &mask, size);
                out.push((mask, tex));
            }
            (request_id, out)
        });
    }

    /// Applies finished overlays of a run (call once per frame).
    pub(super) fn poll_everything(&mut self) {
        let Some((request_id, masks)) = self.everything.decoded.poll() else {
            return;
        };
        let Some((id, records)) = self.everything.records.take() else {
            return;
        };
        if id != request_id {
            return;
        }
        let offset = self.objects.len();
        self.everything.found = records
            .iter()
            .zip(masks)
            .enumerate()
            .map(|(i, (r, (mask, tex)))| Found {
                object: SegObject::new(
                    self.label.clone(),
                    OBJECT_COLORS[(offset + i) % OBJECT_COLORS.len()],
                    mask,
                    Some(tex),
                ),
                predicted_iou: r.predicted_iou,
                stability_score: r.stability_score,
            })
            .collect();
    }

    /// Keeps found mask `i` as an object.
    pub fn keep_found(&mut self, i: usize) {
        if i < self.everything.found.len() {
            let mut f = self.everything.found.remove(i);
            f.object.label = self.label.clone();
            self.objects.push(f.object);
        }
    }

    /// Keeps every found mask as an object.
    pub fn keep_all_found(&mut self) {
        while !self.everything.found.is_empty() {
            self.keep_found(0);
        }
    }

    /// The "Everything" section of the side panel.
    pub(super) fn everything_ui(
        &mut self,
        ui: &mut egui::Ui,
        sam: &SamWorker,
        params: &mut EverythingParams,
        notify: Notify,
    ) {
        ui.heading(tr!(ui, "ev-title"));
        ui.horizontal(|ui| {
            let label = ui.label(tr!(ui, "ev-points-per-side"));
            ui.add(egui::DragValue::new(&mut params.points_per_side).range(1..=128))
                .labelled_by(label.id);
        });
        let min_iou = tr!(ui, "ev-min-iou");
        ui.add(egui::Slider::new(&mut params.pred_iou_thresh, 0.0..=1.0).text(min_iou));
        let min_stability = tr!(ui, "ev-min-stability");
        ui.add(
            egui::Slider::new(&mut params.stability_score_thresh, 0.0..=1.0).text(min_stability),
        );
        egui::CollapsingHeader::new(tr!(ui, "ev-more"))
            .id_salt("everything-params")
            .show(ui, |ui| more_params_ui(ui, params, self.sam2_model));
        let ready = matches!(self.encode, EncodeState::Ready { .. });
        match &self.everything.running {
            Some((_, p, since)) => {
                let done = if p.points_total == 0 {
                    0.0
                } else {
                    p.points_done as f32 / p.points_total as f32
                };
                let seconds = format!("{:.0}", since.elapsed().as_secs_f32());
                let text = tr!(
                    ui,
                    "ev-progress",
                    points = p.points_done,
                    points_total = p.points_total,
                    crops = p.crops_done,
                    crops_total = p.crops_total,
                    seconds = seconds
                );
                ui.add(egui::ProgressBar::new(done).text(text));
                if ui.button(tr!(ui, "ev-cancel")).clicked() {
                    sam.cancel();
                }
            }
            None => {
                if ui
                    .add_enabled(ready, egui::Button::new(tr!(ui, "ev-run")))
                    .on_hover_text(tr!(ui, "ev-run-hover"))
                    .clicked()
                {
                    self.start_everything(sam, *params, notify);
                }
            }
        }
        if let Some((n, s)) = self.everything.last {
            ui.label(tr!(
                ui,
                "ev-last-run",
                masks = n,
                seconds = format!("{s:.1}")
            ));
        }
        if self.everything.found.is_empty() {
            return;
        }
        ui.horizontal(|ui| {
            if ui.button(tr!(ui, "ev-keep-all")).clicked() {
                self.keep_all_found();
            }
            if ui.button(tr!(ui, "ev-discard-all")).clicked() {
                self.everything.found.clear();
            }
        });
        let (mut keep, mut delete) = (None, None);
        for (i, f) in self.everything.found.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                let [r, g, b] = f.object.color;
                let (swatch, painter) = ui.allocate_painter(Vec2::splat(12.0), Sense::hover());
                painter.rect_filled(swatch.rect, 2.0, Color32::from_rgb(r, g, b));
                let mask = tr!(ui, "ev-mask", n = i + 1);
                ui.checkbox(&mut f.object.visible, mask);
                let (iou, stability) = (
                    format!("{:.2}", f.predicted_iou),
                    format!("{:.2}", f.stability_score),
                );
                ui.label(tr!(ui, "ev-scores", iou = iou, stability = stability));
                if ui.small_button(tr!(ui, "ev-keep")).clicked() {
                    keep = Some(i);
                }
                if ui
                    .small_button(tr!(ui, "ev-drop"))
                    .on_hover_text(tr!(ui, "ev-drop-hover"))
                    .clicked()
                {
                    delete = Some(i);
                }
            });
        }
        if let Some(i) = keep {
            self.keep_found(i);
        } else if let Some(i) = delete {
            self.everything.found.remove(i);
        }
    }
}

/// The generator's other parameters (official names and defaults), and a reset to the
/// official defaults of the loaded model's family (`sam2`: SAM 2.1).
fn more_params_ui(ui: &mut egui::Ui, p: &mut EverythingParams, sam2: bool) {
    fn row(ui: &mut egui::Ui, label: String, value: egui::DragValue<'_>) {
        ui.horizontal(|ui| {
            let l = ui.label(label);
            ui.add(value).labelled_by(l.id);
        });
    }
    row(
        ui,
        tr!(ui, "ev-points-per-batch"),
        egui::DragValue::new(&mut p.points_per_batch).range(1..=256),
    );
    row(
        ui,
        tr!(ui, "ev-stability-offset"),
        egui::DragValue::new(&mut p.stability_score_offset)
            .speed(0.01)
            .range(0.0..=10.0),
    );
    row(
        ui,
        tr!(ui, "ev-box-nms"),
        egui::DragValue::new(&mut p.box_nms_thresh)
            .speed(0.01)
            .range(0.0..=1.0),
    );
    row(
        ui,
        tr!(ui, "ev-crop-layers"),
        egui::DragValue::new(&mut p.crop_n_layers).range(0..=3),
    );
    row(
        ui,
        tr!(ui, "ev-crop-nms"),
        egui::DragValue::new(&mut p.crop_nms_thresh)
            .speed(0.01)
            .range(0.0..=1.0),
    );
    row(
        ui,
        tr!(ui, "ev-crop-overlap"),
        egui::DragValue::new(&mut p.crop_overlap_ratio)
            .speed(0.01)
            .range(0.0..=0.99),
    );
    row(
        ui,
        tr!(ui, "ev-crop-downscale"),
        egui::DragValue::new(&mut p.crop_n_points_downscale_factor).range(1..=8),
    );
    row(
        ui,
        tr!(ui, "ev-min-area"),
        egui::DragValue::new(&mut p.min_mask_region_area).range(0..=100_000),
    );
    if ui
        .button(tr!(ui, "ev-defaults"))
        .on_hover_text(tr!(ui, "ev-defaults-tip"))
        .clicked()
    {
        *p = EverythingParams::defaults_for(sam2);
    }
}
