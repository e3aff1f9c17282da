//! Text transformers with attention capture: BERT family and GPT-2, loaded from a Hugging Face
//! model folder (`config.json`, `tokenizer.json`, `model.safetensors` or `pytorch_model.bin`).

pub mod bert;
pub mod config;
pub mod gpt2;
pub mod tiny;
pub mod tokenizer;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use crate::analysis::AttentionMaps;
use crate::model::ops::attention::attention_cpu;
use crate::model::ops::on_cpu_f32;
use crate::model::ops::to_vec_f32;
use crate::types::text::{Encoded, HeadSteps, TextModelInfo, TextOutput};
use crate::weights::Weights;
use bert::Bert;
pub use config::{ModelType, TextConfig};
use gpt2::Gpt2;
use tiny::{TinyNet, TinySpec};
pub use tokenizer::TextTokenizer;

/// Raw outputs of a forward pass.
pub struct ForwardOutput {
    /// Embedding output, then each layer's output: `[n, hidden]` each.
    pub hidden_states: Vec<Tensor>,
    /// Per layer: `[heads, n, n]`.
    pub attentions: Vec<Tensor>,
    /// `[n, vocab]` for language models.
    pub logits: Option<Tensor>,
}

/// Multi-head scaled dot-product attention returning the probabilities.
///
/// # Shapes
/// `q, k, v`: `[n, hidden]`; `additive_mask`: broadcastable to `[n, n]` (added to the scores
/// before the softmax). Returns the context `[n, hidden]` and probabilities `[heads, n, n]`.
pub fn multi_head_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    additive_mask: Option<&Tensor>,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (n, d) = q.dims2()?;
    if on_cpu_f32(q) {
        let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
        let mask = match additive_mask {
            Some(m) => {
                let rows = if m.rank() == 2 { m.dim(0)? } else { 1 };
                Some((flat(m)?, rows))
            }
            None => None,
        };
        let (ctx, probs) = attention_cpu(
            &flat(q)?,
            &flat(k)?,
            &flat(v)?,
            (n, d, heads),
            mask.as_ref().map(|(m, r)| (m.as_slice(), *r)),
        );
        return Ok((
            Tensor::from_vec(ctx, (n, d), q.device())?,
            Tensor::from_vec(probs, (heads, n, n), q.device())?,
        ));
    }
    let hd = d / heads;
    let split = |x: &Tensor| -> candle_core::Result<Tensor> {
        x.reshape((x.dim(0)?, heads, hd))?
            .transpose(0, 1)?
            .contiguous()
    };
    let (qh, kh, vh) = (split(q)?, split(k)?, split(v)?); // [heads, n, hd]
    let mut scores = (qh.matmul(&kh.t()?)? * (hd as f64).powf(-0.5))?; // [heads, n, n]
    if let Some(m) = additive_mask {
        scores = scores.broadcast_add(m)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let ctx = probs.matmul(&vh)?.transpose(0, 1)?.reshape((n, d))?;
    Ok((ctx, probs))
}

enum Net {
    Bert(Bert),
    Gpt2(Gpt2),
    Tiny(TinyNet),
}

/// A loaded text model with its tokenizer.
pub struct TextModel {
    config: TextConfig,
    tokenizer: TextTokenizer,
    net: Net,
    dir: PathBuf,
    device: Device,
}

impl TextModel {
    /// Loads a model folder.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_dir_cancellable(dir, device, std::sync::Arc::new(|| false))
    }

    /// [`Self::load_dir`] that stops with [`crate::weights::WeightsError::Cancelled`] at the
    /// next tensor once `cancel` answers true.
    pub fn load_dir_cancellable(
        dir: &Path,
        device: &Device,
        cancel: crate::weights::CancelCheck,
    ) -> Result<Self> {
        if !dir.is_dir() {
            bail!(tokenizer::TextModelError::NotAFolder(
                dir.display().to_string()
            ));
        }
        let config = TextConfig::from_file(&tokenizer::require_file(dir, "config.json")?)?;
        let tokenizer = TextTokenizer::from_file(&tokenizer::require_file(dir, "tokenizer.json")?)?;
        let weights_path = ["model.safetensors", "pytorch_model.bin"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "the model folder lacks model.safetensors or pytorch_model.bin: {}",
                    dir.display()
                )
            })?;
        let weights = Weights::open(&weights_path)?.with_cancel(cancel);
        Self::from_parts(config, tokenizer, &weights, device, dir)
    }

    /// Builds a model from its parts (used by tests with generated weights).
    pub fn from_parts(
        config: TextConfig,
        tokenizer: TextTokenizer,
        weights: &Weights,
        device: &Device,
        dir: &Path,
    ) -> Result<Self> {
        let net = match config.model_type {
            ModelType::Gpt2 => Net::Gpt2(Gpt2::load(weights, &config, device)?),
            ModelType::Tiny => {
                let spec = TinySpec {
                    vocab: config.vocab_size,
                    dim: config.hidden_size,
                    layers: config.num_layers,
                    heads: config.num_heads,
                    max_len: config.max_positions,
                    positions: config.positions,
                    causal: config.causal,
                };
                if config.intermediate_size != spec.hidden() {
                    bail!(
                        "`intermediate_size` {} is not 4 × `hidden_size` {}",
                        config.intermediate_size,
                        config.hidden_size
                    );
                }
                Net::Tiny(TinyNet::load(
                    spec,
                    &crate::weights::Scope::new(weights, device),
                )?)
            }
            ModelType::Bert | ModelType::Roberta | ModelType::XlmRoberta | ModelType::Camembert => {
                Net::Bert(Bert::load(weights, &config, device)?)
            }
        };
        Ok(Self {
            config,
            tokenizer,
            net,
            dir: dir.to_path_buf(),
            device: device.clone(),
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Where its tensors live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The folder it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the app shows of this model, named `name`.
    pub fn info(&self, name: String) -> TextModelInfo {
        TextModelInfo {
            name,
            model_type: self.config.model_type.as_str(),
            layers: self.config.num_layers,
            heads: self.config.num_heads,
            max_positions: self.config.max_positions,
            causal: self.config.causal,
            skipped_position_rows: self.config.position_offset,
            positions: self.config.positions,
        }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokenizes `text`, truncating to the model's positions.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        self.tokenizer.encode(text, self.config.max_positions)
    }

    /// Raw forward pass on token ids (no truncation: at most `max_positions` ids).
    pub fn forward_ids(
        &self,
        ids: &[u32],
        attention_mask: Option<&[u32]>,
    ) -> Result<ForwardOutput> {
        if ids.is_empty() {
            bail!("no tokens");
        }
        if ids.len() > self.config.max_positions {
            bail!(
                "{} tokens exceed the model's {} positions",
                ids.len(),
                self.config.max_positions
            );
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.config.vocab_size) {
            bail!(
                "token id {bad} is outside the vocabulary ({})",
                self.config.vocab_size
            );
        }
        Ok(match &self.net {
            Net::Bert(m) => m.forward(ids, attention_mask)?,
            Net::Gpt2(m) => {
                if attention_mask.is_some() {
                    bail!("padding masks are supported for the BERT family only");
                }
                m.forward(ids)?
            }
            Net::Tiny(m) => {
                if attention_mask.is_some() {
                    bail!("padding masks are supported for the BERT family only");
                }
                m.forward(ids)?
            }
        })
    }

    /// Tokenizes and runs `text`, returning plain data.
    pub fn run(&self, text: &str) -> Result<TextOutput> {
        let encoded = self.encode(text)?;
        let ids = encoded.ids();
        let out = self.forward_ids(&ids, None)?;
        let attentions = attention_maps(
            &out.attentions,
            encoded.tokens.iter().map(|t| t.text.clone()).collect(),
            self.config.causal,
        )?;
        let hidden_states = out
            .hidden_states
            .iter()
            .map(to_vec_f32)
            .collect::<candle_core::Result<_>>()?;
        let logits = out.logits.as_ref().map(to_vec_f32).transpose()?;
        Ok(TextOutput {
            text: text.to_string(),
            encoded,
            attentions,
            hidden_states,
            logits,
        })
    }

    /// One head's computation for one token, step by step ([`crate::analysis::head_steps`]):
    /// `layer_input` `[n × hidden]` is the hidden state before the layer (entry `layer` of a
    /// [`Self::run`] result's `hidden_states` on the same text), `tokens` label the `n` rows.
    pub fn head_steps(
        &self,
        tokens: Vec<String>,
        layer_input: &[f32],
        (layer, head, token): (usize, usize, usize),
    ) -> Result<HeadSteps> {
        let cfg = &self.config;
        let n = tokens.len();
        if layer >= cfg.num_layers || head >= cfg.num_heads || token >= n {
            bail!(
                "no layer {layer}, head {head}, token {token} in a model of {} layers × {} heads \
                 on {n} tokens",
                cfg.num_layers,
                cfg.num_heads
            );
        }
        if layer_input.len() != n * cfg.hidden_size {
            bail!(
                "the layer input has {} numbers, not {n} tokens × {}",
                layer_input.len(),
                cfg.hidden_size
            );
        }
        let x = Tensor::from_slice(layer_input, (n, cfg.hidden_size), self.device())?;
        let [q, k, v] = match &self.net {
            Net::Bert(m) => m.qkv(layer, &x)?,
            Net::Gpt2(m) => m.qkv(layer, &x)?,
            Net::Tiny(m) => m.qkv(layer, &x)?,
        };
        let (q, k, v) = (to_vec_f32(&q)?, to_vec_f32(&k)?, to_vec_f32(&v)?);
        let projections = crate::analysis::LayerProjections {
            q: &q,
            k: &k,
            v: &v,
            n,
            heads: cfg.num_heads,
        };
        Ok(crate::analysis::head_steps(
            &projections,
            (layer, head, token),
            cfg.causal,
            tokens,
        ))
    }

    /// The used rows of the position table `[positions, hidden]` as plain data: row `i` is
    /// token `i`'s (RoBERTa's unused first rows, [`TextConfig::position_offset`], left out).
    /// A tiny model's table is learned or sinusoidal; one with rotary positions has none.
    pub fn position_table(&self) -> Result<(usize, usize, Vec<f32>)> {
        let t = match &self.net {
            Net::Bert(m) => m.position_table()?,
            Net::Gpt2(m) => m.position_table().clone(),
            Net::Tiny(m) => m
                .position_table()
                .context("rotary positions rotate queries and keys: the model has no table")?
                .clone(),
        };
        let (p, d) = t.dims2()?;
        Ok((p, d, to_vec_f32(&t)?))
    }
}

/// Packs per-layer `[heads, n, n]` tensors into [`AttentionMaps`].
pub fn attention_maps(
    per_layer: &[Tensor],
    tokens: Vec<String>,
    causal: bool,
) -> Result<AttentionMaps> {
    let (heads, n, _) = per_layer.first().context("no layers")?.dims3()?;
    let mut probs = Vec::with_capacity(per_layer.len() * heads * n * n);
    for t in per_layer {
        probs.extend(to_vec_f32(t)?);
    }
    Ok(AttentionMaps {
        tokens,
        layers: per_layer.len(),
        heads,
        n,
        probs,
        causal,
    })
}

/// Sentence embedding as sentence-transformers computes it for all-MiniLM-L6-v2: the mean of
/// the last hidden states over the tokens, L2-normalised. `last_hidden` is `[n × hidden]`.
pub fn mean_pooled_normalized(last_hidden: &[f32], hidden: usize) -> Vec<f32> {
    let n = last_hidden.len() / hidden.max(1);
    let mut out = vec![0f32; hidden];
    for row in last_hidden.chunks(hidden) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out.iter_mut().for_each(|v| *v /= n.max(1) as f32);
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    out.iter_mut().for_each(|v| *v /= norm);
    out
}
