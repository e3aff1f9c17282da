//! `segattn detweights` (hidden): writes deterministic test weights (`WEIGHTS_SPEC.md`) to a
//! `.safetensors` file, so that a machine without a Rust toolchain (the GPU check,
//! `scripts/gpu-check.sh`) can run the fixtures' models through the other subcommands.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use super::bench::BenchArch;
use crate::model::sam::config::{EncoderConfig, SamConfig, VitConfig};

/// SAM architectures with the official key layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DetArch {
    /// MobileSAM (TinyViT-5M): fixture `mobilesam_vit_t` with seed 1.
    MobileSam,
    /// The fixtures' small ViT SAM (`_build_sam(96, 4, 4, [1, 3])`): `sam_vit_small`, seed 2.
    SamVitSmall,
    /// SAM ViT-B.
    VitB,
    /// SAM 2.1 Hiera-T: fixture `sam2.1_hiera_t` with seed 11.
    Sam2Tiny,
}

impl DetArch {
    fn config(self) -> SamConfig {
        match self {
            Self::MobileSam => BenchArch::MobileSam.config(),
            Self::SamVitSmall => SamConfig::with_encoder(EncoderConfig::Vit(VitConfig::official(
                96,
                4,
                4,
                vec![1, 3],
            ))),
            Self::VitB => BenchArch::VitB.config(),
            Self::Sam2Tiny => BenchArch::Sam2Tiny.config(),
        }
    }
}

/// Arguments of `segattn detweights`.
#[derive(Debug, clap::Args)]
pub struct DetweightsArgs {
    /// A SAM architecture: every tensor of its official state dict.
    #[arg(
        long,
        value_enum,
        required_unless_present = "keys",
        conflicts_with = "keys"
    )]
    pub arch: Option<DetArch>,
    /// A fixture's JSON whose `weight_keys` object maps tensor names to shapes (the text
    /// fixtures).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// The detweights seed.
    #[arg(long)]
    pub seed: u64,
    /// The `.safetensors` file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes the file.
pub fn run(args: &DetweightsArgs) -> Result<()> {
    let shapes: Vec<(String, Vec<usize>)> = match (&args.arch, &args.keys) {
        (Some(arch), _) => arch.config().state_dict_shapes(),
        (None, Some(path)) => keys_of(path)?,
        (None, None) => bail!("give --arch or --keys"),
    };
    let mut tensors = HashMap::with_capacity(shapes.len());
    for (key, shape) in shapes {
        let data = crate::model::detweights::generate(args.seed, &key, &shape);
        tensors.insert(key, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    let n = tensors.len();
    candle_core::safetensors::save(&tensors, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("{n} tensors (seed {}) in {}", args.seed, args.out.display());
    Ok(())
}

/// The names and shapes of a fixture's `weight_keys`.
fn keys_of(path: &std::path::Path) -> Result<Vec<(String, Vec<usize>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let Some(keys) = json["weight_keys"].as_object() else {
        bail!("{} has no `weight_keys` object", path.display());
    };
    keys.iter()
        .map(|(key, shape)| {
            let shape: Vec<usize> = serde_json::from_value(shape.clone())
                .with_context(|| format!("{key}'s shape in {}", path.display()))?;
            Ok((key.clone(), shape))
        })
        .collect()
}
