//! `segattn segment`: masks from point and box prompts, as PNG files.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::indexed_path;
use crate::runtime::{device_name, DTypeChoice, DeviceChoice};
use crate::types::{BoxPrompt, PointLabel, PointPrompt, Prompts, LOW_RES};

/// Arguments of `segattn segment`.
#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    /// SAM, MobileSAM or SAM 2.1 checkpoint (.pth, .pt or .safetensors); the architecture is
    /// detected.
    #[arg(long)]
    pub weights: PathBuf,
    /// The image to segment.
    #[arg(long)]
    pub image: PathBuf,
    /// A point `X,Y` or `X,Y,fg|bg` in image pixels (repeatable; `fg` by default).
    #[arg(long = "point", value_name = "X,Y[,fg|bg]", allow_hyphen_values = true)]
    pub points: Vec<PointArg>,
    /// A box `X0,Y0,X1,Y1` in image pixels.
    #[arg(long = "box", value_name = "X0,Y0,X1,Y1", allow_hyphen_values = true)]
    pub bbox: Option<BoxArg>,
    /// Output SAM's 3 candidate masks (`MASK-0.png` … `MASK-2.png`) instead of one.
    #[arg(long)]
    pub multimask: bool,
    /// Output mask PNG (8-bit grey, 255 inside).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write low-res logits, IoU predictions, the image embedding and the masks at the
    /// image's size (safetensors: `low_res_masks`, `iou_predictions`, `image_embeddings`,
    /// `masks` u8 `[n, height, width]`, 1 inside).
    #[arg(long)]
    pub logits_out: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Annotation files for the mask (with --multimask, the candidate of highest predicted
    /// IoU).
    #[command(flatten)]
    pub annotations: super::export::AnnotationArgs,
    /// Where to run.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    /// Format of the image encoder.
    #[arg(long, value_enum, default_value_t)]
    pub dtype: DTypeChoice,
}

/// A parsed `--point`.
#[derive(Debug, Clone, Copy)]
pub struct PointArg(pub PointPrompt);

impl FromStr for PointArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let num = |p: &str| {
            p.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{p}` is not a number in point `{s}`"))
        };
        let label = match parts.get(2).copied() {
            None | Some("fg") | Some("1") => PointLabel::Foreground,
            Some("bg") | Some("0") => PointLabel::Background,
            Some(other) => return Err(format!("label `{other}` in point `{s}` must be fg or bg")),
        };
        if parts.len() < 2 || parts.len() > 3 {
            return Err(format!("point `{s}` must be X,Y or X,Y,fg|bg"));
        }
        Ok(Self(PointPrompt {
            pos_in_image: [num(parts[0])?, num(parts[1])?],
            label,
        }))
    }
}

/// A parsed `--box`.
#[derive(Debug, Clone, Copy)]
pub struct BoxArg(pub BoxPrompt);

impl FromStr for BoxArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<f32> = s
            .split(',')
            .map(|p| p.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("box `{s}` must be four numbers X0,Y0,X1,Y1"))?;
        let [x0, y0, x1, y1] = v[..] else {
            return Err(format!("box `{s}` must be four numbers X0,Y0,X1,Y1"));
        };
        Ok(Self(BoxPrompt {
            corners_in_image: [x0, y0, x1, y1],
        }))
    }
}

/// The masks as one u8 tensor `[n, height, width]`, 1 inside.
fn masks_tensor(masks: &[crate::types::Mask]) -> Result<Tensor> {
    let (h, w) = masks.first().map_or((0, 0), |m| (m.height, m.width));
    let data: Vec<u8> = masks.iter().flat_map(|m| m.data.iter().copied()).collect();
    Ok(Tensor::from_vec(
        data,
        (masks.len(), h, w),
        &candle_core::Device::Cpu,
    )?)
}

/// Runs `segattn segment`.
pub fn run(args: &SegmentArgs) -> Result<()> {
    let prompts = Prompts {
        points: args.points.iter().map(|p| p.0).collect(),
        bbox: args.bbox.map(|b| b.0),
        mask_input: None,
    };
    if prompts.is_empty() {
        bail!("no prompt: give at least one --point X,Y or a --box X0,Y0,X1,Y1");
    }
    args.annotations.validate()?;
    let super::Encoded {
        image: _,
        model,
        emb,
        encode_ms,
    } = super::load_and_encode(&args.image, &args.weights, args.device, args.dtype)?;
    let device = model.device().clone();
    let t1 = Instant::now();
    let pred = model.predict(&emb, &prompts, args.multimask)?;
    let decode_ms = t1.elapsed().as_secs_f64() * 1e3;

    let mut files = Vec::new();
    for (i, mask) in pred.masks.iter().enumerate() {
        let path = if args.multimask {
            indexed_path(&args.out, i)
        } else {
            args.out.clone()
        };
        crate::viz::mask::save_mask_png(mask, &path)?;
        files.push(path);
    }
    let mut annotation_files = Vec::new();
    if args.annotations.any() {
        let best = crate::types::best_candidate(&pred.iou_predictions);
        let name = args
            .image
            .file_name()
            .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
        annotation_files = args.annotations.write(&pred.masks[best], &name)?;
    }
    if let Some(path) = &args.logits_out {
        let n = pred.low_res_logits.len();
        let logits: Vec<f32> = pred.low_res_logits.concat();
        let cpu = candle_core::Device::Cpu;
        let tensors = [
            (
                "low_res_masks",
                Tensor::from_vec(logits, (n, LOW_RES, LOW_RES), &cpu)?,
            ),
            (
                "iou_predictions",
                Tensor::from_vec(pred.iou_predictions.clone(), n, &cpu)?,
            ),
            (
                "image_embeddings",
                Tensor::from_vec(emb.to_vec()?, (256, 64, 64), &cpu)?,
            ),
            ("masks", masks_tensor(&pred.masks)?),
        ];
        candle_core::safetensors::save(&tensors.into_iter().collect(), path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let (kind, embed_dim, depth, heads) = model.config().summary();
    if args.json {
        let masks: Vec<_> = pred
            .masks
            .iter()
            .zip(&files)
            .zip(&pred.iou_predictions)
            .zip(&pred.stability_scores)
            .map(|(((m, f), iou), stability)| {
                serde_json::json!({
                    "file": f, "predicted_iou": iou, "stability_score": stability,
                    "area": m.area(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": {"name": model.config().name(), "kind": kind, "embed_dim": embed_dim, "depth": depth, "heads": heads},
            "masks": masks,
            "annotations": annotation_files,
            "timings_ms": {"encode": encode_ms, "decode": decode_ms},
        });
        println!("{out}");
    } else {
        let scores = pred.iou_predictions.iter().zip(&pred.stability_scores);
        for ((m, f), (iou, stability)) in pred.masks.iter().zip(&files).zip(scores) {
            println!(
                "{}: predicted IoU {iou:.3}, stability {stability:.3}, {} pixels",
                f.display(),
                m.area()
            );
        }
        for f in &annotation_files {
            println!("{}", f.display());
        }
        eprintln!(
            "{} on {} (encoder {}): encode {encode_ms:.0} ms, decode {decode_ms:.1} ms",
            model.config().name(),
            device_name(&device),
            model.precision().name()
        );
    }
    Ok(())
}
