//! `segattn bench`: model timings (median of repeated runs after a warm-up), never a test.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::Device;

use super::peak_rss_bytes;
use crate::model::sam::automatic::generate;
use crate::model::sam::config::{EncoderConfig, HieraConfig, SamConfig, TinyVitConfig, VitConfig};
use crate::model::sam::SamModel;
use crate::model::text::TextModel;
use crate::runtime::{device_name, select_device, DTypeChoice, DeviceChoice};
use crate::types::{EverythingParams, PointLabel, PointPrompt, Prompts, Rgb8};

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum BenchTarget {
    /// SAM / MobileSAM / SAM 2.1 image encoder and one click.
    #[default]
    Sam,
    /// Text transformer forward with attention capture.
    Text,
    /// SAM's automatic mask generator ("everything") after the image is encoded.
    Everything,
    /// Everything.
    All,
}

/// Architectures for weight-free benchmarking (deterministic random weights at official shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum BenchArch {
    /// MobileSAM (TinyViT-5M).
    #[default]
    MobileSam,
    /// SAM ViT-B.
    VitB,
    /// SAM ViT-L.
    VitL,
    /// SAM ViT-H.
    VitH,
    /// SAM 2.1 Hiera-T.
    Sam2Tiny,
    /// SAM 2.1 Hiera-S.
    Sam2Small,
    /// SAM 2.1 Hiera-B+.
    Sam2BasePlus,
    /// SAM 2.1 Hiera-L.
    Sam2Large,
}

impl BenchArch {
    /// The architecture's configuration (official shapes).
    pub(super) fn config(self) -> SamConfig {
        SamConfig::with_encoder(match self {
            Self::MobileSam => EncoderConfig::TinyVit(TinyVitConfig::mobile_sam()),
            Self::VitB => EncoderConfig::Vit(VitConfig::vit_b()),
            Self::VitL => EncoderConfig::Vit(VitConfig::vit_l()),
            Self::VitH => EncoderConfig::Vit(VitConfig::vit_h()),
            Self::Sam2Tiny => EncoderConfig::Hiera(HieraConfig::tiny()),
            Self::Sam2Small => EncoderConfig::Hiera(HieraConfig::small()),
            Self::Sam2BasePlus => EncoderConfig::Hiera(HieraConfig::base_plus()),
            Self::Sam2Large => EncoderConfig::Hiera(HieraConfig::large()),
        })
    }
}

/// Arguments of `segattn bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to time.
    #[arg(value_enum, default_value_t)]
    pub target: BenchTarget,
    /// SAM checkpoint; without it, deterministic weights at `--arch`'s shapes (speed does not
    /// depend on the values).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Architecture to synthesise when no `--weights` is given.
    #[arg(long, value_enum, default_value_t)]
    pub arch: BenchArch,
    /// Text model folder (for `text`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Image for the click timing (default: a synthetic 451×300 image, the fixtures' size).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Timed encoder runs after the warm-up (at least 5).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Timed clicks after the warm-up (at least 20).
    #[arg(long, default_value_t = 20)]
    pub clicks: usize,
    /// Where to run.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    /// Format of SAM's image encoder (text models run in f32).
    #[arg(long, value_enum, default_value_t)]
    pub dtype: DTypeChoice,
    /// Sentence lengths (tokens) for `text`.
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 128])]
    pub tokens: Vec<usize>,
    /// Grid points per side for `everything`.
    #[arg(long, default_value_t = 32)]
    pub points_per_side: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Milliseconds `f` takes on `device`, the device's queued work finished before the clock is
/// read (GPU kernels run asynchronously: without it an encoder that leaves its output on the
/// device would be timed at its launch cost).
fn time_ms(device: &Device, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    device.synchronize()?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// A smooth synthetic test image.
fn synthetic_image(width: usize, height: usize) -> Rgb8 {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&[
                (x * 255 / width) as u8,
                (y * 255 / height) as u8,
                ((x + y) % 256) as u8,
            ]);
        }
    }
    Rgb8 {
        width,
        height,
        data,
    }
}

/// The vector level our kernels run at (`SEGATTN_SIMD` caps it) and whether the `gemm`
/// crate's AVX-512 kernels are compiled in.
fn simd() -> (&'static str, bool) {
    (
        crate::model::simd::level().name(),
        crate::model::simd::GEMM_AVX512,
    )
}

fn simd_note() -> String {
    let (level, gemm512) = simd();
    format!(
        "kernels {level}, gemm {}{}",
        if gemm512 {
            "up to avx512"
        } else {
            "up to avx2"
        },
        if crate::model::ops::amx::available() {
            ", image encoders' and mask decoder's products in split bf16 on AMX (SEGATTN_AMX=0: f32)"
        } else {
            ""
        }
    )
}

/// Runs `segattn bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if matches!(args.target, BenchTarget::Sam | BenchTarget::All) {
        bench_sam(args)?;
    }
    if matches!(args.target, BenchTarget::Text | BenchTarget::All) {
        bench_text(args)?;
    }
    if matches!(args.target, BenchTarget::Everything | BenchTarget::All) {
        bench_everything(args)?;
    }
    Ok(())
}

/// The model to time: `--weights`, or deterministic weights at `--arch`'s shapes.
fn load_sam(args: &BenchArgs) -> Result<SamModel> {
    if let Some(path) = &args.weights {
        return super::load_sam(path, args.device, args.dtype);
    }
    let device = select_device(args.device)?;
    let config = args.arch.config();
    let weights = crate::model::sam::detweights_sam(&config, 1)?;
    SamModel::load_with_config(&weights, config, &device, args.dtype.resolve(&device))
}

/// The generator with the default parameters (the official thresholds: with deterministic
/// weights the IoU filter drops every mask, so this is the decoder's cost) and with every mask
/// kept by the IoU and stability filters (each upscaled, scored, encoded and NMS'd).
fn bench_everything(args: &BenchArgs) -> Result<()> {
    let model = load_sam(args)?;
    let image = match &args.image {
        Some(p) => crate::image_io::load_rgb8(p)?,
        None => synthetic_image(451, 300),
    };
    let emb = model.embed(&image)?;
    let defaults = EverythingParams {
        points_per_side: args.points_per_side,
        ..EverythingParams::defaults_for(model.config().is_sam2())
    };
    let all = EverythingParams {
        pred_iou_thresh: -10.0,
        stability_score_thresh: 0.0,
        ..defaults
    };
    let mut out = serde_json::Map::new();
    for (key, params, runs) in [("everything", defaults, 3), ("everything_all", all, 2)] {
        let mut n = 0;
        let mut run = || -> Result<()> {
            n = generate(&model, &image, &params, Some(&emb), &mut |_| {}, &|| false)?.len();
            Ok(())
        };
        run()?; // warm-up
        let times = (0..runs)
            .map(|_| time_ms(model.device(), &mut run))
            .collect::<Result<Vec<_>>>()?;
        out.insert(format!("{key}_ms"), median(times).into());
        out.insert(format!("{key}_masks"), n.into());
    }
    let name = model.config().name();
    let threads = rayon::current_num_threads();
    if args.json {
        out.insert("model".into(), name.into());
        out.insert("points_per_side".into(), args.points_per_side.into());
        out.insert("threads".into(), threads.into());
        out.insert("device".into(), device_name(model.device()).into());
        println!("{}", serde_json::Value::Object(out));
    } else {
        println!("| model | points | threads | everything, defaults (ms) | every mask kept (ms) |");
        println!("| --- | --- | --- | --- | --- |");
        println!(
            "| {name} | {0}x{0} | {threads} | {1:.0} ({2} masks) | {3:.0} ({4} masks) |",
            args.points_per_side,
            out["everything_ms"].as_f64().unwrap_or(f64::NAN),
            out["everything_masks"],
            out["everything_all_ms"].as_f64().unwrap_or(f64::NAN),
            out["everything_all_masks"],
        );
        println!("(after the image is encoded; medians of 3 and 2 runs after a warm-up)");
    }
    Ok(())
}

fn bench_text(args: &BenchArgs) -> Result<()> {
    let Some(dir) = &args.model else {
        bail!("`bench text` needs --model DIR (e.g. all-MiniLM-L6-v2; see weights/README.md)");
    };
    let device = select_device(args.device)?;
    let model = TextModel::load_dir(dir, &device)?;
    let cfg = model.config().clone();
    let runs = args.runs.max(20);
    let mut medians = Vec::new();
    for &n in &args.tokens {
        let n = n.clamp(1, cfg.max_positions);
        // Deterministic ids away from the special tokens, as the reference timed random ids
        // (from 1000 on, or from a quarter of a small vocabulary).
        let low = (cfg.vocab_size / 4).min(1000);
        let ids: Vec<u32> = (0..n)
            .map(|i| (low + (i * 7919) % (cfg.vocab_size - low)) as u32)
            .collect();
        let mut run_once = || -> Result<()> {
            let out = model.forward_ids(&ids, None)?;
            // Attention capture: the probabilities leave the model as plain data.
            crate::model::text::attention_maps(&out.attentions, vec![String::new(); n], false)?;
            Ok(())
        };
        for _ in 0..3 {
            run_once()?;
        }
        let mut t = Vec::with_capacity(runs);
        for _ in 0..runs {
            t.push(time_ms(&device, &mut run_once)?);
        }
        medians.push(median(t));
    }
    let threads = rayon::current_num_threads();
    let dev = device_name(&device);
    let name = crate::weights::model_folder_label(dir);
    if args.json {
        let mut out = serde_json::json!({
            "threads": threads, "device": dev, "dtype": "f32", "model": name, "runs": runs,
            "simd": simd().0, "gemm_avx512": simd().1,
            "amx_split_bf16": crate::model::ops::amx::available(),
        });
        for (n, ms) in args.tokens.iter().zip(&medians) {
            out[format!("forward_ms_{n}")] = serde_json::json!(ms);
        }
        println!("{out}");
    } else {
        let cols: Vec<String> = args
            .tokens
            .iter()
            .map(|n| format!("{n} tokens (ms)"))
            .collect();
        println!(
            "| model | device | dtype | threads | {} |",
            cols.join(" | ")
        );
        println!("| --- | --- | --- | --- |{}", " --- |".repeat(cols.len()));
        let vals: Vec<String> = medians.iter().map(|m| format!("{m:.2}")).collect();
        println!(
            "| {name} | {dev} | f32 | {threads} | {} |",
            vals.join(" | ")
        );
        println!(
            "(forward with attention capture, medians of {runs} runs after a warm-up; {})",
            simd_note()
        );
    }
    Ok(())
}

fn bench_sam(args: &BenchArgs) -> Result<()> {
    let runs = args.runs.max(5);
    let model = load_sam(args)?;
    let device = model.device().clone();
    let dtype = model.precision().name();
    let image = match &args.image {
        Some(p) => crate::image_io::load_rgb8(p)?,
        None => synthetic_image(451, 300),
    };
    let mut emb = model.embed(&image)?; // warm-up
    let mut enc = Vec::with_capacity(runs);
    for _ in 0..runs {
        enc.push(time_ms(&device, &mut || {
            emb = model.embed(&image)?;
            Ok(())
        })?);
    }
    let prompts = Prompts {
        points: vec![PointPrompt {
            pos_in_image: [image.width as f32 * 0.55, image.height as f32 * 0.43],
            label: PointLabel::Foreground,
        }],
        ..Default::default()
    };
    for _ in 0..3 {
        model.predict(&emb, &prompts, true)?;
    }
    let mut dec = Vec::new();
    for _ in 0..args.clicks.max(20) {
        dec.push(time_ms(&device, &mut || {
            model.predict(&emb, &prompts, true)?;
            Ok(())
        })?);
    }
    let (encode_ms, decode_ms) = (median(enc), median(dec));
    let threads = rayon::current_num_threads();
    let dev = device_name(&device);
    let rss_mb = peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0));
    let name = model.config().name();
    if args.json {
        let out = serde_json::json!({
            "encode_ms": encode_ms, "decode_ms": decode_ms, "threads": threads,
            "device": dev, "dtype": dtype, "model": name, "peak_rss_mb": rss_mb,
            "encode_runs": runs, "decode_runs": args.clicks.max(20),
            "simd": simd().0, "gemm_avx512": simd().1,
            "amx_split_bf16": crate::model::ops::amx::available(),
        });
        println!("{out}");
    } else {
        println!(
            "| model | device | dtype | threads | encode (ms) | click (ms) | peak RSS (MiB) |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        println!(
            "| {name} | {dev} | {dtype} | {threads} | {encode_ms:.1} | {decode_ms:.2} | {} |",
            rss_mb.map_or("?".into(), |m| format!("{m:.0}"))
        );
        println!("(medians of {runs} encodes and {} clicks after a warm-up; click = one foreground point, 3 masks, upscaled to {}x{}; {})", args.clicks.max(20), image.width, image.height, simd_note());
    }
    Ok(())
}
