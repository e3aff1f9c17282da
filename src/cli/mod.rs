//! The command line: `segattn segment`, `attend`, `encodings` and `bench`, as specified in
//! DESIGN.md.

mod attend;
mod bench;
mod encodings;
mod segment;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

pub use bench::BenchTarget;

/// Top-level arguments.
#[derive(Debug, Parser)]
#[command(
    name = "segattn",
    version,
    about = "See inside Segment Anything and text transformers"
)]
pub struct Cli {
    /// A subcommand; none opens the desktop app.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the desktop app.
    #[command(flatten)]
    pub gui: GuiArgs,
}

/// Options of the desktop app (no subcommand).
#[derive(Debug, clap::Args)]
pub struct GuiArgs {
    /// SAM checkpoint to load (else the last one, else one found in weights/).
    #[arg(long)]
    pub sam_weights: Option<PathBuf>,
    /// Text model folder to load (else the last one, else one found in weights/).
    #[arg(long)]
    pub text_model: Option<PathBuf>,
    /// Image to open.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Close the window after this many frames (smoke tests).
    #[arg(long)]
    pub exit_after_frames: Option<u64>,
    /// The view to open.
    #[arg(long, value_enum)]
    pub view: Option<crate::ui::View>,
    /// Where models run.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
    /// Format of SAM's image encoder.
    #[arg(long, value_enum, default_value_t)]
    pub dtype: DTypeChoice,
}

/// Opens the desktop app.
pub fn run_gui(args: GuiArgs) -> Result<()> {
    crate::app::run(crate::app::AppOptions {
        sam_weights: args.sam_weights,
        text_model: args.text_model,
        image: args.image,
        exit_after_frames: args.exit_after_frames,
        view: args.view,
        discover: true,
        device: args.device,
        dtype: args.dtype,
        ..Default::default()
    })
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Segment an image with SAM / MobileSAM from point and box prompts.
    Segment(segment::SegmentArgs),
    /// Every layer's and head's attention of a text model for a sentence.
    Attend(attend::AttendArgs),
    /// Positional encodings (sinusoidal, learned, rotary) as a heatmap PNG.
    Encodings(encodings::EncodingsArgs),
    /// Time the models (median of repeated runs after a warm-up).
    Bench(bench::BenchArgs),
}

/// Where models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DeviceChoice {
    /// CUDA or Metal when compiled in and present, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU (needs the `cuda` feature).
    Cuda,
    /// An Apple GPU (needs the `metal` feature).
    Metal,
}

/// The format of SAM's image encoder (prompt encoder, mask decoder and text models run in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DTypeChoice {
    /// f16 on a GPU, f32 on the CPU.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// Half precision (masks checked equal to f32's).
    F16,
    /// bfloat16 (GPU only; not checked against f32 here).
    Bf16,
}

impl DTypeChoice {
    /// The precision this choice means on `device`.
    pub fn resolve(self, device: &candle_core::Device) -> crate::model::Precision {
        use crate::model::Precision;
        match self {
            Self::Auto => Precision::auto_for(device),
            Self::F32 => Precision::F32,
            Self::F16 => Precision::F16,
            Self::Bf16 => Precision::Bf16,
        }
    }
}

/// Opens the device the user asked for.
pub fn select_device(choice: DeviceChoice) -> Result<candle_core::Device> {
    use candle_core::Device;
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                bail!("CUDA is not available: build with `--features cuda` on a machine with an NVIDIA GPU");
            }
            Device::new_cuda(0).context("cannot open CUDA device 0")
        }
        DeviceChoice::Metal => {
            if !candle_core::utils::metal_is_available() {
                bail!("Metal is not available: build with `--features metal` on macOS");
            }
            Device::new_metal(0).context("cannot open Metal device 0")
        }
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            if candle_core::utils::metal_is_available() {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// A short name of a device ("cpu", "cuda:0", "metal:0").
pub fn device_name(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => "cpu".into(),
        candle_core::Device::Cuda(_) => "cuda:0".into(),
        candle_core::Device::Metal(_) => "metal:0".into(),
    }
}

/// Runs a subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Segment(args) => segment::run(&args),
        Command::Attend(args) => attend::run(&args),
        Command::Encodings(args) => encodings::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

/// Inserts `-{i}` before the extension: `mask.png` → `mask-0.png`.
pub fn indexed_path(path: &std::path::Path, i: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{i}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{i}"),
    };
    path.with_file_name(name)
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
