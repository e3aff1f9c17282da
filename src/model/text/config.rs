//! `config.json` of a Hugging Face text model, reduced to what the BERT family (BERT, RoBERTa,
//! XLM-RoBERTa, CamemBERT) and GPT-2 need.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::types::train::Positions;

/// The model families we run.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "gpt2",
    "segattn-tiny",
];

/// Which architecture a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    /// BERT (BERT, MiniLM, multilingual MiniLM): bidirectional, post-LayerNorm, learned
    /// absolute positions from row 0.
    Bert,
    /// RoBERTa: BERT's blocks, positions from row `padding_idx + 1`, one token type.
    Roberta,
    /// XLM-RoBERTa: RoBERTa with a SentencePiece vocabulary of 100 languages.
    XlmRoberta,
    /// CamemBERT (and DistilCamemBERT): RoBERTa trained on French.
    Camembert,
    /// GPT-2: causal, pre-LayerNorm, learned absolute positions.
    Gpt2,
    /// segattn's own tiny transformer, trained in the app ([`super::tiny`]): pre-LayerNorm,
    /// causal or not, learned, sinusoidal or rotary positions.
    Tiny,
}

impl ModelType {
    /// The `model_type` string of `config.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bert => "bert",
            Self::Roberta => "roberta",
            Self::XlmRoberta => "xlm-roberta",
            Self::Camembert => "camembert",
            Self::Gpt2 => "gpt2",
            Self::Tiny => "segattn-tiny",
        }
    }

    /// Parses a `model_type` string of `config.json`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "bert" => Self::Bert,
            "roberta" => Self::Roberta,
            "xlm-roberta" | "xlm_roberta" => Self::XlmRoberta,
            "camembert" => Self::Camembert,
            "gpt2" => Self::Gpt2,
            "segattn-tiny" => Self::Tiny,
            _ => return None,
        })
    }

    /// True for the RoBERTa family, whose learned positions start at `padding_idx + 1`.
    pub fn positions_after_padding(self) -> bool {
        matches!(self, Self::Roberta | Self::XlmRoberta | Self::Camembert)
    }
}

/// Hidden activation of the MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Activation {
    /// Exact GELU (`"gelu"`).
    GeluErf,
    /// Tanh-approximated GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    /// ReLU.
    Relu,
}

/// The configuration of a supported text model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextConfig {
    /// Architecture.
    pub model_type: ModelType,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Attention heads per block.
    pub num_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Learned positions available to an input (the longest input): the table's rows less the
    /// [`Self::position_offset`] unused ones.
    pub max_positions: usize,
    /// Rows of the learned position table the model never uses: `padding_idx + 1` for the
    /// RoBERTa family (token `i` of an unpadded input reads row `padding_idx + 1 + i`), else 0.
    pub position_offset: usize,
    /// The padding token's id (`pad_token_id`), when the config names one.
    pub pad_token_id: Option<u32>,
    /// Token types (BERT segment embeddings), 0 for GPT-2.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// MLP activation.
    pub activation: Activation,
    /// True for the causal (left-to-right) models: GPT-2, the tiny decoders.
    pub causal: bool,
    /// How positions are encoded (learned for every Hugging Face family we run).
    pub positions: Positions,
}

fn get_usize(v: &serde_json::Value, keys: &[&str]) -> Option<usize> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(serde_json::Value::as_u64))
        .map(|x| x as usize)
}

impl TextConfig {
    /// Parses `config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses the text of a `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
        let supported = SUPPORTED_MODEL_TYPES.join(", ");
        let model_type = match v.get("model_type").and_then(|m| m.as_str()) {
            Some(name) => ModelType::parse(name).ok_or_else(|| {
                super::tokenizer::TextModelError::UnsupportedModelType {
                    name: name.to_owned(),
                    supported: supported.clone(),
                }
            })?,
            None => bail!(super::tokenizer::TextModelError::NoModelType(supported)),
        };
        let need = |keys: &[&str]| {
            get_usize(&v, keys).with_context(|| format!("`{}` is missing", keys[0]))
        };
        let pad_token_id = get_usize(&v, &["pad_token_id"]).map(|p| p as u32);
        let cfg = match model_type {
            ModelType::Gpt2 => {
                let hidden = need(&["n_embd", "hidden_size"])?;
                let act = v
                    .get("activation_function")
                    .and_then(|a| a.as_str())
                    .unwrap_or("gelu_new");
                Self {
                    model_type,
                    vocab_size: need(&["vocab_size"])?,
                    hidden_size: hidden,
                    num_layers: need(&["n_layer", "num_hidden_layers"])?,
                    num_heads: need(&["n_head", "num_attention_heads"])?,
                    intermediate_size: get_usize(&v, &["n_inner"]).unwrap_or(4 * hidden),
                    max_positions: need(&["n_positions", "max_position_embeddings"])?,
                    position_offset: 0,
                    pad_token_id,
                    type_vocab_size: 0,
                    layer_norm_eps: v
                        .get("layer_norm_epsilon")
                        .and_then(|e| e.as_f64())
                        .unwrap_or(1e-5),
                    activation: parse_activation(act)?,
                    causal: true,
                    positions: Positions::Learned,
                }
            }
            ModelType::Tiny => {
                let (positions, causal) = tiny_options(&v)?;
                Self {
                    model_type,
                    vocab_size: need(&["vocab_size"])?,
                    hidden_size: need(&["hidden_size"])?,
                    num_layers: need(&["num_hidden_layers"])?,
                    num_heads: need(&["num_attention_heads"])?,
                    intermediate_size: need(&["intermediate_size"])?,
                    max_positions: need(&["max_position_embeddings"])?,
                    position_offset: 0,
                    pad_token_id,
                    type_vocab_size: 0,
                    layer_norm_eps: super::tiny::LAYER_NORM_EPS,
                    activation: Activation::GeluTanh,
                    causal,
                    positions,
                }
            }
            _ => {
                let act = v
                    .get("hidden_act")
                    .and_then(|a| a.as_str())
                    .unwrap_or("gelu");
                let table_rows = need(&["max_position_embeddings"])?;
                let position_offset = if model_type.positions_after_padding() {
                    let pad = pad_token_id.context(
                        "`pad_token_id` is missing (RoBERTa-style positions start after it)",
                    )? as usize;
                    pad + 1
                } else {
                    0
                };
                if table_rows <= position_offset {
                    bail!(
                        "`max_position_embeddings` ({table_rows}) leaves no position after \
                         the padding index ({})",
                        position_offset - 1
                    );
                }
                Self {
                    model_type,
                    vocab_size: need(&["vocab_size"])?,
                    hidden_size: need(&["hidden_size"])?,
                    num_layers: need(&["num_hidden_layers"])?,
                    num_heads: need(&["num_attention_heads"])?,
                    intermediate_size: need(&["intermediate_size"])?,
                    max_positions: table_rows - position_offset,
                    position_offset,
                    pad_token_id,
                    type_vocab_size: get_usize(&v, &["type_vocab_size"]).unwrap_or(2),
                    layer_norm_eps: v
                        .get("layer_norm_eps")
                        .and_then(|e| e.as_f64())
                        .unwrap_or(1e-12),
                    activation: parse_activation(act)?,
                    causal: false,
                    positions: Positions::Learned,
                }
            }
        };
        if cfg.num_heads == 0 || cfg.hidden_size % cfg.num_heads != 0 {
            bail!(
                "hidden size {} is not divisible by {} heads",
                cfg.hidden_size,
                cfg.num_heads
            );
        }
        Ok(cfg)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

/// Reads the tiny model's fields of a `config.json`: its positions and whether it is causal.
fn tiny_options(v: &serde_json::Value) -> Result<(Positions, bool)> {
    let positions = match v.get("positions").and_then(|p| p.as_str()) {
        Some(p) => Positions::parse(p)
            .with_context(|| format!("unknown `positions` `{p}`: learned, sinusoidal or rope"))?,
        None => Positions::Learned,
    };
    let causal = v.get("causal").and_then(|c| c.as_bool()).unwrap_or(false);
    Ok((positions, causal))
}

fn parse_activation(name: &str) -> Result<Activation> {
    Ok(match name {
        "gelu" => Activation::GeluErf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => bail!("unsupported activation `{other}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_model_type_names_it_and_the_supported_ones() {
        let err = TextConfig::from_json(r#"{"model_type": "llama"}"#).expect_err("refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("llama")
                && msg.contains("bert, roberta, xlm-roberta, camembert, gpt2, segattn-tiny"),
            "{msg}"
        );
    }

    #[test]
    fn gpt2_defaults_inner_size() {
        let cfg = TextConfig::from_json(
            r#"{"model_type":"gpt2","vocab_size":1000,"n_embd":64,"n_layer":2,"n_head":4,"n_positions":128,"n_inner":null}"#,
        )
        .expect("parses");
        assert_eq!(cfg.intermediate_size, 256);
        assert_eq!(cfg.activation, Activation::GeluTanh);
    }

    #[test]
    fn roberta_positions_start_after_the_padding_index() {
        let json = |ty: &str| {
            format!(
                r#"{{"model_type":"{ty}","vocab_size":100,"hidden_size":64,"num_hidden_layers":2,
                "num_attention_heads":4,"intermediate_size":128,"max_position_embeddings":514,
                "type_vocab_size":1,"pad_token_id":1}}"#
            )
        };
        for ty in ["roberta", "xlm-roberta", "camembert"] {
            let cfg = TextConfig::from_json(&json(ty)).expect("parses");
            assert_eq!(cfg.model_type.as_str(), ty);
            assert_eq!((cfg.position_offset, cfg.max_positions), (2, 512), "{ty}");
        }
        let bert = TextConfig::from_json(&json("bert")).expect("parses");
        assert_eq!((bert.position_offset, bert.max_positions), (0, 514));
        let err = TextConfig::from_json(&json("roberta").replace(r#","pad_token_id":1"#, ""))
            .expect_err("no padding index");
        assert!(format!("{err:#}").contains("pad_token_id"), "{err:#}");
    }
}
