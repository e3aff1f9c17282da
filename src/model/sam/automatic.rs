//! "Everything" mode: SAM's automatic mask generator, step for step the official
//! `SamAutomaticMaskGenerator` of segment_anything 1.0 (a grid of single-point prompts per
//! crop, decoded in batches; masks filtered by predicted IoU, stability and crop edges; box
//! NMS within and across crops; optional removal of small holes and islands). With a SAM 2.1
//! model it is sam2 1.1.0's `SAM2AutomaticMaskGenerator` (without `use_m2m`): the same steps
//! on SAM 2's frame (points as f32, scaled by 1024 / W and 1024 / H; masks upsampled straight
//! to the crop's size) and its defaults ([`EverythingParams::sam2`]); there
//! `min_mask_region_area` fills holes and drops islands of each low-res mask before its
//! upscale ([`amg::sam2_fill_holes_and_sprinkles`]) instead of cleaning the final masks.
//!
//! PERF: the official code upscales every candidate mask to the image size before filtering;
//! here the predicted IoU (which needs no mask) is filtered first and only the prompts with a
//! surviving mask go through the upscaler, and each mask is upscaled once into the three
//! thresholds it needs (the records are the same).

use anyhow::{bail, Result};
use rayon::prelude::*;

use super::transforms::{self, ABOVE_THRESHOLD};
use super::{Cancelled, ImageEmbedding, SamModel, MASK_THRESHOLD};
use crate::analysis::amg::{self, CropBox, RegionMode};
use crate::types::{EverythingParams, EverythingProgress, MaskRecord, Rgb8, LOW_RES};

/// One mask that passed the per-batch filters, in its crop's frame.
struct Candidate {
    rle: crate::types::Rle,
    /// `[x0, y0, x1, y1]` inclusive, in the crop.
    bbox: [u32; 4],
    iou: f32,
    stability: f32,
    /// The grid point, in crop pixels.
    point: [f64; 2],
}

/// Runs the automatic mask generator on `image`.
///
/// `full_image` is the image's embedding when the caller already has it (it serves the
/// whole-image crop; other crops are encoded here). `progress` hears after each batch and
/// crop; when `cancelled()` turns true the run stops with [`Cancelled`]. The records come in
/// the official order.
pub fn generate(
    model: &SamModel,
    image: &Rgb8,
    params: &EverythingParams,
    full_image: Option<&ImageEmbedding>,
    progress: &mut dyn FnMut(EverythingProgress),
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<MaskRecord>> {
    params.validate().map_err(anyhow::Error::msg)?;
    if image.width == 0 || image.height == 0 {
        bail!("the image is empty (0 pixels)");
    }
    let image_hw = (image.height, image.width);
    if let Some(e) = full_image {
        if e.original_hw != image_hw {
            bail!(
                "the embedding is of a {}x{} image, not of this {}x{} one",
                e.original_hw.1,
                e.original_hw.0,
                image.width,
                image.height
            );
        }
    }
    let crops = amg::crop_boxes(image_hw, params.crop_n_layers, params.crop_overlap_ratio);
    let grids = amg::layer_point_grids(
        params.points_per_side,
        params.crop_n_layers,
        params.crop_n_points_downscale_factor,
    );
    let mut state = EverythingProgress {
        points_total: crops.iter().map(|c| grids[c.layer].len()).sum(),
        crops_total: crops.len(),
        ..Default::default()
    };
    progress(state);

    // (candidate in the image frame, crop box)
    let mut all: Vec<(Candidate, [usize; 4])> = Vec::new();
    for crop in &crops {
        let owned;
        let emb = match full_image {
            Some(e) if crop.xyxy == [0, 0, image.width, image.height] => e,
            _ => {
                owned = model.embed_cancellable(&crop_image(image, crop), cancelled)?;
                &owned
            }
        };
        let found = process_crop(
            model,
            emb,
            crop,
            &grids[crop.layer],
            params,
            image_hw,
            &mut |n| {
                state.points_done += n;
                progress(state);
            },
            cancelled,
        )?;
        all.extend(found.into_iter().map(|c| (c, crop.xyxy)));
        state.crops_done += 1;
        progress(state);
    }

    // Duplicates across crops: masks of smaller crops first.
    if crops.len() > 1 {
        let boxes: Vec<[f32; 4]> = all.iter().map(|(c, _)| box_f32(&c.bbox)).collect();
        let scores: Vec<f32> = all
            .iter()
            .map(|(_, b)| 1.0 / ((b[2] - b[0]) * (b[3] - b[1])) as f32)
            .collect();
        all = select(all, &amg::nms(&boxes, &scores, params.crop_nms_thresh));
    }
    // SAM 2's generator cleans the low-res masks instead (in `process_batch`).
    if params.min_mask_region_area > 0 && !model.config().is_sam2() {
        all = remove_small_regions(
            all,
            params.min_mask_region_area,
            params.box_nms_thresh.max(params.crop_nms_thresh),
        );
    }
    Ok(all
        .into_iter()
        .map(|(c, crop)| MaskRecord {
            area: amg::rle_area(&c.rle),
            segmentation: c.rle,
            bbox: amg::xyxy_to_xywh(c.bbox),
            predicted_iou: c.iou,
            point_coords: c.point,
            stability_score: c.stability,
            crop_box: amg::xyxy_to_xywh(crop.map(|v| v as u32)),
        })
        .collect())
}

/// The official `_process_crop` on an encoded crop: its candidates in the image frame.
#[allow(clippy::too_many_arguments)]
fn process_crop(
    model: &SamModel,
    emb: &ImageEmbedding,
    crop: &CropBox,
    grid: &[[f64; 2]],
    params: &EverythingParams,
    image_hw: (usize, usize),
    done: &mut dyn FnMut(usize),
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<Candidate>> {
    let [x0, y0, x1, y1] = crop.xyxy;
    let crop_hw = (y1 - y0, x1 - x0);
    // SAM 2 takes the points as an f32 tensor (the official `torch.as_tensor(points,
    // dtype=torch.float32)`), and they stay f32 in its records.
    let sam2 = model.config().is_sam2();
    let points: Vec<[f64; 2]> = grid
        .iter()
        .map(|p| [p[0] * crop_hw.1 as f64, p[1] * crop_hw.0 as f64])
        .map(|p| {
            if sam2 {
                p.map(|v| f64::from(v as f32))
            } else {
                p
            }
        })
        .collect();
    let mut found = Vec::new();
    for batch in points.chunks(params.points_per_batch) {
        if cancelled() {
            return Err(Cancelled.into());
        }
        found.extend(process_batch(model, emb, batch, crop, params, image_hw)?);
        done(batch.len());
    }
    // Duplicates within the crop, by predicted IoU.
    let boxes: Vec<[f32; 4]> = found.iter().map(|c| box_f32(&c.bbox)).collect();
    let scores: Vec<f32> = found.iter().map(|c| c.iou).collect();
    let keep = amg::nms(&boxes, &scores, params.box_nms_thresh);
    let mut found = select(found, &keep);
    for c in &mut found {
        c.bbox = [
            c.bbox[0] + x0 as u32,
            c.bbox[1] + y0 as u32,
            c.bbox[2] + x0 as u32,
            c.bbox[3] + y0 as u32,
        ];
        c.point = [c.point[0] + x0 as f64, c.point[1] + y0 as f64];
        if sam2 {
            // The offset is added to SAM 2's f32 points in f32.
            c.point = c.point.map(|v| f64::from(v as f32));
        }
    }
    Ok(found)
}

/// Prompts decoded together inside one of the official batches.
///
/// PERF: each prompt's image side (`[4096, 256]` keys through two blocks, the final attention
/// and the upscaler) is its own work whatever the batch; only the token side and the first
/// block's products against the cached image projections are shared. Measured with MobileSAM
/// on 2 cores, 64 prompts took 1.57 s decoded as one batch of 64 (its `[64, 4096, 256]`
/// activations do not stay in cache), 0.95 s in batches of 16, 1.14 s of 4 and 1.71 s of 1.
const DECODE_CHUNK: usize = 16;

/// The official `_process_batch`: decodes `points` (crop pixels) and keeps the masks that
/// pass the filters, in prompt-major order (the official order).
fn process_batch(
    model: &SamModel,
    emb: &ImageEmbedding,
    points: &[[f64; 2]],
    crop: &CropBox,
    params: &EverythingParams,
    image_hw: (usize, usize),
) -> Result<Vec<Candidate>> {
    let crop_hw = emb.original_hw;
    let sam2 = model.config().is_sam2();
    let mut out = Vec::new();
    for chunk in points.chunks(DECODE_CHUNK) {
        // SAM 2's points are f32 already (`process_crop`).
        let input: Vec<[f64; 2]> = chunk
            .iter()
            .map(|&[x, y]| {
                if sam2 {
                    let (ix, iy) = transforms::sam2_coords((x as f32, y as f32), crop_hw);
                    [f64::from(ix), f64::from(iy)]
                } else {
                    transforms::apply_coords_f64((x, y), crop_hw)
                }
            })
            .collect();
        let batch = model.decode_point_batch(emb, &input)?;
        // The IoU filter needs no mask: only prompts with a surviving output are upscaled.
        let pass_iou = |iou: f32| params.pred_iou_thresh <= 0.0 || iou > params.pred_iou_thresh;
        let per_prompt = batch.multimask_iou(0).len();
        let prompts: Vec<usize> = (0..batch.len())
            .filter(|&p| batch.multimask_iou(p).iter().any(|&v| pass_iou(v)))
            .collect();
        let logits = model.point_batch_masks(emb, &batch, &prompts)?;
        let plane = LOW_RES * LOW_RES;
        let jobs: Vec<(usize, usize, &[f32])> = prompts
            .iter()
            .enumerate()
            .flat_map(|(row, &p)| (0..per_prompt).map(move |j| (row, p, j)))
            .filter(|&(_, p, j)| pass_iou(batch.multimask_iou(p)[j]))
            .map(|(row, p, j)| {
                let at = (row * per_prompt + j) * plane;
                (p, j, &logits[at..at + plane])
            })
            .collect();
        let candidates = jobs
            .into_par_iter()
            .map(|(p, j, low)| {
                let cleaned;
                let low = if sam2 && params.min_mask_region_area > 0 {
                    let mut l = low.to_vec();
                    amg::sam2_fill_holes_and_sprinkles(
                        &mut l,
                        (LOW_RES, LOW_RES),
                        MASK_THRESHOLD,
                        params.min_mask_region_area,
                    );
                    cleaned = l;
                    &cleaned[..]
                } else {
                    low
                };
                let classes = model.upscale_classes(emb, low, params.stability_score_offset);
                let stability = transforms::stability_of_classes(&classes);
                // `>=` is false for NaN (no pixel above the low threshold), as in PyTorch.
                let stable = stability >= params.stability_score_thresh;
                if params.stability_score_thresh > 0.0 && !stable {
                    return None;
                }
                let mask: Vec<u8> = classes
                    .iter()
                    .map(|&c| u8::from(c & ABOVE_THRESHOLD != 0))
                    .collect();
                let bbox = amg::mask_to_box(&mask, crop_hw);
                if amg::is_box_near_crop_edge(&bbox, &crop.xyxy, image_hw) {
                    return None;
                }
                Some(Candidate {
                    rle: amg::crop_mask_to_rle(&mask, &crop.xyxy, image_hw),
                    bbox,
                    iou: batch.multimask_iou(p)[j],
                    stability,
                    point: chunk[p],
                })
            })
            .collect::<Vec<_>>();
        out.extend(candidates.into_iter().flatten());
    }
    Ok(out)
}

/// The official `postprocess_small_regions`: fills small holes and removes small islands,
/// then NMS prefers the masks that needed no change; changed masks that survive get their
/// new mask and box.
fn remove_small_regions(
    all: Vec<(Candidate, [usize; 4])>,
    min_area: usize,
    nms_thresh: f32,
) -> Vec<(Candidate, [usize; 4])> {
    if all.is_empty() {
        return all;
    }
    let cleaned: Vec<(Vec<u8>, bool)> = all
        .par_iter()
        .map(|(c, _)| {
            let [h, w] = c.rle.size;
            let mask = amg::rle_to_mask(&c.rle);
            let (mask, a) = amg::remove_small_regions(&mask, (h, w), min_area, RegionMode::Holes);
            let (mask, b) = amg::remove_small_regions(&mask, (h, w), min_area, RegionMode::Islands);
            (mask, a || b)
        })
        .collect();
    let boxes: Vec<[u32; 4]> = all
        .iter()
        .zip(&cleaned)
        .map(|((c, _), (m, _))| {
            let [h, w] = c.rle.size;
            amg::mask_to_box(m, (h, w))
        })
        .collect();
    let scores: Vec<f32> = cleaned
        .iter()
        .map(|(_, ch)| f32::from(u8::from(!ch)))
        .collect();
    let boxes_f: Vec<[f32; 4]> = boxes.iter().map(box_f32).collect();
    let keep = amg::nms(&boxes_f, &scores, nms_thresh);
    let mut slots: Vec<Option<(Candidate, [usize; 4])>> = all.into_iter().map(Some).collect();
    keep.iter()
        .filter_map(|&i| {
            let (mut c, crop) = slots[i].take()?;
            let (mask, changed) = &cleaned[i];
            if *changed {
                let [h, w] = c.rle.size;
                c.rle = amg::mask_to_rle(mask, (h, w));
                c.bbox = boxes[i];
            }
            Some((c, crop))
        })
        .collect()
}

/// The items at `keep`, in that order.
fn select<T>(items: Vec<T>, keep: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    keep.iter().filter_map(|&i| slots[i].take()).collect()
}

fn box_f32(b: &[u32; 4]) -> [f32; 4] {
    b.map(|v| v as f32)
}

/// The pixels of `image` inside `crop`.
fn crop_image(image: &Rgb8, crop: &CropBox) -> Rgb8 {
    let [x0, y0, x1, y1] = crop.xyxy;
    let mut data = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
    for y in y0..y1 {
        data.extend_from_slice(&image.data[(y * image.width + x0) * 3..(y * image.width + x1) * 3]);
    }
    Rgb8 {
        width: x1 - x0,
        height: y1 - y0,
        data,
    }
}
