//! `segattn encodings`: positional encodings as heatmap PNGs.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::analysis::positional::{cosine_similarity, rope_cos, sinusoidal, Matrix};
use crate::model::text::TextModel;
use crate::viz::{heatmap, Colormap, ValueRange};

/// Which encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncodingKind {
    /// Vaswani et al. sinusoids.
    Sinusoidal,
    /// The loaded model's learned position table (needs `--model`).
    Learned,
    /// RoPE: cos of the rotation angle per position and dimension pair.
    Rope,
}

/// Arguments of `segattn encodings`.
#[derive(Debug, clap::Args)]
pub struct EncodingsArgs {
    /// Which encoding.
    #[arg(long, value_enum)]
    pub kind: EncodingKind,
    /// Model folder (for `learned`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number of positions (rows).
    #[arg(long, default_value_t = 128)]
    pub positions: usize,
    /// Dimensions (sinusoidal: width; rope: head size; learned: the first D of the table).
    #[arg(long, default_value_t = 128)]
    pub dims: usize,
    /// Frequency base (sinusoidal and rope).
    #[arg(long, default_value_t = 10000.0)]
    pub base: f64,
    /// Draw the position × position cosine similarity instead of position × dimension.
    #[arg(long)]
    pub similarity: bool,
    /// Colormap (default: diverging for signed values, viridis for similarities).
    #[arg(long, value_enum)]
    pub colormap: Option<Colormap>,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
}

/// The matrix `args` asks for, `positions × dims` (before any similarity).
pub fn encoding_matrix(args: &EncodingsArgs) -> Result<Matrix> {
    if args.positions == 0 || args.dims == 0 {
        bail!("--positions and --dims must be at least 1");
    }
    if args.positions > 8192 || args.dims > 8192 {
        bail!("--positions and --dims are limited to 8192");
    }
    Ok(match args.kind {
        EncodingKind::Sinusoidal => sinusoidal(args.positions, args.dims, args.base),
        EncodingKind::Rope => rope_cos(args.positions, args.dims, args.base),
        EncodingKind::Learned => {
            let Some(dir) = &args.model else {
                bail!("--kind learned needs --model DIR (a BERT or GPT-2 folder)");
            };
            let model = TextModel::load_dir(dir, &candle_core::Device::Cpu)?;
            let (rows, cols, data) = model.position_table()?;
            Matrix { rows, cols, data }.top_left(args.positions, args.dims)
        }
    })
}

/// Runs `segattn encodings`.
pub fn run(args: &EncodingsArgs) -> Result<()> {
    let m = encoding_matrix(args)?;
    let (m, default_map, range) = if args.similarity {
        (
            cosine_similarity(&m),
            Colormap::Viridis,
            ValueRange::Fixed(-1.0, 1.0),
        )
    } else {
        (m, Colormap::RdBu, ValueRange::Symmetric)
    };
    let raster = heatmap(
        &m.data,
        m.rows,
        m.cols,
        range,
        args.colormap.unwrap_or(default_map),
        |_, _| false,
    );
    let factor = (512 / m.rows.max(m.cols)).max(1);
    raster.scaled(factor).save_png(&args.out)?;
    println!(
        "{}: {} x {} ({}x{} px)",
        args.out.display(),
        m.rows,
        m.cols,
        m.cols * factor,
        m.rows * factor
    );
    Ok(())
}
