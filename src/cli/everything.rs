//! `segattn everything`: SAM's automatic masks of a whole image (the official
//! `SamAutomaticMaskGenerator`, or `SAM2AutomaticMaskGenerator` for SAM 2.1 models, with
//! `output_mode="coco_rle"`), as a JSON list of records.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::analysis::amg::record_json;
use crate::model::sam::automatic::generate;
use crate::runtime::{device_name, DTypeChoice, DeviceChoice};
use crate::types::EverythingParams;

/// Arguments of `segattn everything` (the generator's parameters keep the official names and
/// defaults).
#[derive(Debug, clap::Args)]
pub struct EverythingArgs {
    /// SAM, MobileSAM or SAM 2.1 checkpoint (.pth, .pt or .safetensors); the architecture is
    /// detected.
    #[arg(long)]
    pub weights: PathBuf,
    /// The image to segment.
    #[arg(long)]
    pub image: PathBuf,
    /// Points sampled along one side of the image.
    #[arg(long, default_value_t = 32)]
    pub points_per_side: usize,
    /// Points decoded together.
    #[arg(long, default_value_t = 64)]
    pub points_per_batch: usize,
    /// Keep masks whose predicted IoU is above this (no filter when ≤ 0) [default: 0.88;
    /// 0.8 with a SAM 2.1 model, as the official SAM2AutomaticMaskGenerator].
    #[arg(long, allow_hyphen_values = true)]
    pub pred_iou_thresh: Option<f32>,
    /// Keep masks whose stability score is at least this (no filter when ≤ 0).
    #[arg(long, default_value_t = 0.95, allow_hyphen_values = true)]
    pub stability_score_thresh: f32,
    /// Shift of the mask threshold for the stability score.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub stability_score_offset: f32,
    /// Box IoU above which masks of one crop are duplicates.
    #[arg(long, default_value_t = 0.7, allow_hyphen_values = true)]
    pub box_nms_thresh: f32,
    /// Crop layers (0: the whole image only).
    #[arg(long, default_value_t = 0)]
    pub crop_n_layers: usize,
    /// Box IoU above which masks of different crops are duplicates.
    #[arg(long, default_value_t = 0.7, allow_hyphen_values = true)]
    pub crop_nms_thresh: f32,
    /// Overlap of neighbouring crops as a fraction of the image's short side.
    #[arg(long, default_value_t = 512.0 / 1500.0)]
    pub crop_overlap_ratio: f32,
    /// Points per side on crop layer i: points-per-side / factor^i.
    #[arg(long, default_value_t = 1)]
    pub crop_n_points_downscale_factor: usize,
    /// Remove holes and islands smaller than this many pixels (0: keep them).
    #[arg(long, default_value_t = 0)]
    pub min_mask_region_area: usize,
    /// Where to run.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    /// Format of the image encoder.
    #[arg(long, value_enum, default_value_t)]
    pub dtype: DTypeChoice,
    /// Output JSON file (a list of records).
    #[arg(long)]
    pub out: PathBuf,
}

impl EverythingArgs {
    /// The generator's parameters for a SAM 2.1 model (`sam2`) or a SAM / MobileSAM one.
    pub fn params(&self, sam2: bool) -> EverythingParams {
        EverythingParams {
            points_per_side: self.points_per_side,
            points_per_batch: self.points_per_batch,
            pred_iou_thresh: self
                .pred_iou_thresh
                .unwrap_or(EverythingParams::defaults_for(sam2).pred_iou_thresh),
            stability_score_thresh: self.stability_score_thresh,
            stability_score_offset: self.stability_score_offset,
            box_nms_thresh: self.box_nms_thresh,
            crop_n_layers: self.crop_n_layers,
            crop_nms_thresh: self.crop_nms_thresh,
            crop_overlap_ratio: self.crop_overlap_ratio,
            crop_n_points_downscale_factor: self.crop_n_points_downscale_factor,
            min_mask_region_area: self.min_mask_region_area,
        }
    }
}

/// Runs `segattn everything`.
pub fn run(args: &EverythingArgs) -> Result<()> {
    // Checked before the model loads and the image encodes (the model only changes a default).
    args.params(false).validate().map_err(anyhow::Error::msg)?;
    let super::Encoded {
        image,
        model,
        emb,
        encode_ms,
    } = super::load_and_encode(&args.image, &args.weights, args.device, args.dtype)?;
    let params = args.params(model.config().is_sam2());
    let device = model.device().clone();
    let t1 = Instant::now();
    let records = generate(&model, &image, &params, Some(&emb), &mut |_| {}, &|| false)?;
    let generate_ms = t1.elapsed().as_secs_f64() * 1e3;
    let json: Vec<_> = records.iter().map(record_json).collect();
    crate::files::write_atomic(&args.out, |w| {
        serde_json::to_writer(&mut *w, &json)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        w.write_all(b"\n")
            .with_context(|| format!("cannot write {}", args.out.display()))
    })?;
    eprintln!(
        "{}: {} masks from {}x{} points on {} (encoder {}): encode {encode_ms:.0} ms, \
         generate {generate_ms:.0} ms",
        args.out.display(),
        records.len(),
        params.points_per_side,
        params.points_per_side,
        device_name(&device),
        model.precision().name()
    );
    Ok(())
}
