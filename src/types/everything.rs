//! "Everything" mode as plain data: the parameters of SAM's automatic mask generator (the
//! official `SamAutomaticMaskGenerator`, segment_anything 1.0; sam2 1.1.0's
//! `SAM2AutomaticMaskGenerator` for SAM 2.1 models), its output records and its progress.

use serde::{Deserialize, Serialize};

/// The automatic mask generator's parameters, named and defaulted as the official ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EverythingParams {
    /// Points sampled along one side of the image (the grid is `n × n`).
    pub points_per_side: usize,
    /// Points run through the decoder together.
    pub points_per_batch: usize,
    /// Masks whose predicted IoU is not above this are dropped (only when it is > 0).
    pub pred_iou_thresh: f32,
    /// Masks whose stability score is below this are dropped (only when it is > 0).
    pub stability_score_thresh: f32,
    /// How far the mask threshold moves either way for the stability score.
    pub stability_score_offset: f32,
    /// Box IoU above which a mask is a duplicate within one crop.
    pub box_nms_thresh: f32,
    /// Layers of crops (layer `i` has `(2^i)²` crops); 0 runs on the whole image only.
    pub crop_n_layers: usize,
    /// Box IoU above which a mask is a duplicate across crops.
    pub crop_nms_thresh: f32,
    /// Overlap of neighbouring crops, as a fraction of the image's short side (layer 1).
    pub crop_overlap_ratio: f32,
    /// Points per side on crop layer `i` are `points_per_side / factor^i`.
    pub crop_n_points_downscale_factor: usize,
    /// Holes and islands smaller than this many pixels are removed (when > 0). SAM 2.1, as
    /// the official generator: holes and islands of at most this many pixels of each 256 × 256
    /// low-res mask, before its upscale.
    pub min_mask_region_area: usize,
}

impl Default for EverythingParams {
    fn default() -> Self {
        Self {
            points_per_side: 32,
            points_per_batch: 64,
            pred_iou_thresh: 0.88,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            box_nms_thresh: 0.7,
            crop_n_layers: 0,
            crop_nms_thresh: 0.7,
            crop_overlap_ratio: 512.0 / 1500.0,
            crop_n_points_downscale_factor: 1,
            min_mask_region_area: 0,
        }
    }
}

impl EverythingParams {
    /// The official defaults of SAM 2's `SAM2AutomaticMaskGenerator`: those of SAM 1 but a
    /// predicted-IoU threshold of 0.8 instead of 0.88.
    pub fn sam2() -> Self {
        Self {
            pred_iou_thresh: 0.8,
            ..Self::default()
        }
    }

    /// The official defaults for a SAM 2.1 model (`sam2`) or a SAM / MobileSAM one.
    pub fn defaults_for(sam2: bool) -> Self {
        if sam2 {
            Self::sam2()
        } else {
            Self::default()
        }
    }

    /// Why these parameters cannot run, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.points_per_side == 0 {
            return Err("points per side must be at least 1".into());
        }
        if self.points_per_side > 256 {
            return Err(format!(
                "{} points per side is too many (at most 256)",
                self.points_per_side
            ));
        }
        if self.points_per_batch == 0 {
            return Err("points per batch must be at least 1".into());
        }
        if self.crop_n_layers > 4 {
            return Err(format!(
                "{} crop layers is too many (at most 4)",
                self.crop_n_layers
            ));
        }
        if self.crop_n_points_downscale_factor == 0 {
            return Err("the crop points downscale factor must be at least 1".into());
        }
        let finite = [
            self.pred_iou_thresh,
            self.stability_score_thresh,
            self.stability_score_offset,
            self.box_nms_thresh,
            self.crop_nms_thresh,
            self.crop_overlap_ratio,
        ];
        if finite.iter().any(|v| !v.is_finite()) {
            return Err("every threshold must be a finite number".into());
        }
        if !(0.0..1.0).contains(&self.crop_overlap_ratio) {
            return Err("the crop overlap ratio must lie in [0, 1)".into());
        }
        Ok(())
    }
}

/// An uncompressed run-length encoding of a mask, as COCO stores it: column-major (down each
/// column, then the next column), alternating runs of 0s and 1s, starting with 0s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    /// `[height, width]`
    pub size: [usize; 2],
    /// Run lengths, the first one of 0s (possibly 0).
    pub counts: Vec<u32>,
}

/// One mask of the automatic generator, with the official record's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskRecord {
    /// The mask over the whole image.
    pub segmentation: Rle,
    /// Pixels inside.
    pub area: u64,
    /// `[x, y, w, h]` of the mask's box (inclusive pixel bounds, so a one-pixel mask has
    /// `w = h = 0`, as in the official code).
    pub bbox: [u32; 4],
    /// The decoder's predicted IoU.
    pub predicted_iou: f32,
    /// The grid point that produced the mask, in image pixels.
    pub point_coords: [f64; 2],
    /// IoU of the mask thresholded at `threshold ± offset`.
    pub stability_score: f32,
    /// `[x, y, w, h]` of the crop it came from.
    pub crop_box: [u32; 4],
}

/// How far a run of the generator has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EverythingProgress {
    /// Grid points decoded so far, over all crops.
    pub points_done: usize,
    /// Grid points over all crops.
    pub points_total: usize,
    /// Crops finished.
    pub crops_done: usize,
    /// Crops (1 without crop layers).
    pub crops_total: usize,
}
