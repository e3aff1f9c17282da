//! The command line: `segattn segment`, `everything`, `export`, `attend`, `encodings`, `bench` and `train`, as specified in
//! DESIGN.md, and the desktop app's options. Only `main.rs` reaches this module; it is the one
//! place that knows clap.

mod attend;
mod bench;
mod detweights;
mod encodings;
mod everything;
mod export;
mod segment;
pub mod train;
mod values;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::app::AppOptions;
use crate::runtime::{DTypeChoice, DeviceChoice};

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
    /// Image to open, or a folder of images to annotate (its objects are saved to
    /// _annotations.coco.json in it).
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
    /// The UI's language (else the last one chosen, else the system's: LC_ALL, LC_MESSAGES,
    /// LANG).
    #[arg(long, value_enum)]
    pub lang: Option<crate::ui::i18n::Lang>,
    /// Open the Train view and start training with its last settings (a classroom demo).
    #[arg(long)]
    pub train: bool,
}

/// What the command line asks for.
pub enum Invocation {
    /// The desktop app (no subcommand).
    App(Box<AppOptions>),
    /// A subcommand.
    Command(Box<Command>),
}

/// Parses the process's arguments (printing help or a usage error and exiting, as clap does).
pub fn parse() -> Invocation {
    let cli = Cli::parse();
    match cli.command {
        Some(command) => Invocation::Command(Box::new(command)),
        None => Invocation::App(Box::new(cli.gui.into())),
    }
}

impl From<GuiArgs> for AppOptions {
    fn from(args: GuiArgs) -> Self {
        Self {
            sam_weights: args.sam_weights,
            text_model: args.text_model,
            image: args.image,
            exit_after_frames: args.exit_after_frames,
            view: args.view,
            discover: true,
            device: args.device,
            dtype: args.dtype,
            lang: args.lang,
            start_training: args.train,
            ..Default::default()
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Segment an image with SAM, MobileSAM or SAM 2.1 from point and box prompts.
    Segment(segment::SegmentArgs),
    /// Segment a whole image at once: SAM's (or SAM 2.1's) automatic mask generator, as COCO RLE
    /// records.
    Everything(everything::EverythingArgs),
    /// Turn a binary mask PNG into COCO, YOLO or LabelMe annotations.
    Export(export::ExportArgs),
    /// Every layer's and head's attention of a text model for a sentence.
    Attend(attend::AttendArgs),
    /// Positional encodings (sinusoidal, learned, rotary) as a heatmap PNG.
    Encodings(encodings::EncodingsArgs),
    /// Time the models (median of repeated runs after a warm-up).
    Bench(bench::BenchArgs),
    /// Train a tiny transformer on a task with a known attention pattern.
    Train(train::TrainArgs),
    /// Write deterministic test weights (the fixtures' models) for checks on machines without
    /// a Rust toolchain.
    #[command(hide = true)]
    Detweights(detweights::DetweightsArgs),
}

/// Runs a subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Segment(args) => segment::run(&args),
        Command::Everything(args) => everything::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Attend(args) => attend::run(&args),
        Command::Encodings(args) => encodings::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Detweights(args) => detweights::run(&args),
    }
}

/// Opens a SAM, MobileSAM or SAM 2.1 checkpoint on the chosen device with the image encoder in
/// the chosen format (`segment` and `everything`); the file is closed once loaded.
fn load_sam(
    weights: &std::path::Path,
    device: crate::runtime::DeviceChoice,
    dtype: crate::runtime::DTypeChoice,
) -> Result<crate::model::sam::SamModel> {
    let device = crate::runtime::select_device(device)?;
    let weights = crate::weights::Weights::open(weights)?;
    crate::model::sam::SamModel::load_as(&weights, &device, dtype.resolve(&device))
}

/// What `segment` and `everything` start from: the image, the model and its embedding.
struct Encoded {
    image: crate::types::Rgb8,
    model: crate::model::sam::SamModel,
    emb: crate::model::sam::ImageEmbedding,
    /// The encoder's time (the model load and the image decode not included).
    encode_ms: f64,
}

/// Reads `image`, opens the SAM checkpoint [`load_sam`] opens and encodes the image.
fn load_and_encode(
    image: &std::path::Path,
    weights: &std::path::Path,
    device: crate::runtime::DeviceChoice,
    dtype: crate::runtime::DTypeChoice,
) -> Result<Encoded> {
    let image = crate::image_io::load_rgb8(image)?;
    let model = load_sam(weights, device, dtype)?;
    let t = std::time::Instant::now();
    let emb = model.embed(&image)?;
    Ok(Encoded {
        encode_ms: t.elapsed().as_secs_f64() * 1e3,
        image,
        model,
        emb,
    })
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
