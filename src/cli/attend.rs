//! `segattn attend`: every layer's and head's attention for a sentence.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::model::text::TextModel;
use crate::runtime::{select_device, DeviceChoice};

/// Arguments of `segattn attend`.
#[derive(Debug, clap::Args)]
pub struct AttendArgs {
    /// Hugging Face model folder (config.json, tokenizer.json, model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// The text to analyse.
    #[arg(long)]
    pub text: String,
    /// Print one JSON object with the tokens and all attentions on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write `attentions` `[layers, heads, n, n]` and `input_ids` `[n]` (safetensors; the tokens
    /// in the metadata).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceChoice,
}

/// Runs `segattn attend`.
pub fn run(args: &AttendArgs) -> Result<()> {
    let device = select_device(args.device)?;
    let model = TextModel::load_dir(&args.model, &device)?;
    let out = model.run(&args.text)?;
    if let Some(notice) = out.encoded.notice() {
        eprintln!("note: {notice}");
    }
    let maps = &out.attentions;
    let tokens: Vec<&str> = out.encoded.tokens.iter().map(|t| t.text.as_str()).collect();
    if let Some(path) = &args.out {
        write_safetensors(path, maps, &out.encoded.ids(), &tokens)?;
    }
    if args.json {
        let mut layers = Vec::with_capacity(maps.layers);
        for l in 0..maps.layers {
            let heads: Vec<Vec<&[f32]>> = (0..maps.heads)
                .map(|h| maps.head(l, h).chunks(maps.n).collect())
                .collect();
            layers.push(heads);
        }
        let json = serde_json::json!({
            "model_type": model.config().model_type.as_str(),
            "tokens": tokens,
            "layers": maps.layers,
            "heads": maps.heads,
            "attentions": layers,
            "notice": out.encoded.notice(),
        });
        println!("{json}");
    } else {
        println!("{} tokens: {}", tokens.len(), tokens.join(" "));
        let entropy = maps.entropy();
        println!("mean attention entropy per head (nats; low = focused):");
        for l in 0..maps.layers {
            let row: Vec<String> = entropy[l * maps.heads..(l + 1) * maps.heads]
                .iter()
                .map(|e| format!("{e:.2}"))
                .collect();
            println!("  layer {l}: {}", row.join(" "));
        }
    }
    Ok(())
}

fn write_safetensors(
    path: &std::path::Path,
    maps: &crate::analysis::AttentionMaps,
    ids: &[u32],
    tokens: &[&str],
) -> Result<()> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let att_bytes: Vec<u8> = maps.probs.iter().flat_map(|v| v.to_le_bytes()).collect();
    let id_bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        (
            "attentions",
            TensorView::new(
                Dtype::F32,
                vec![maps.layers, maps.heads, maps.n, maps.n],
                &att_bytes,
            )?,
        ),
        (
            "input_ids",
            TensorView::new(Dtype::U32, vec![ids.len()], &id_bytes)?,
        ),
    ];
    let metadata: HashMap<String, String> =
        [("tokens".to_string(), serde_json::to_string(tokens)?)].into();
    safetensors::serialize_to_file(views, Some(metadata), path)
        .with_context(|| format!("cannot write {}", path.display()))
}
