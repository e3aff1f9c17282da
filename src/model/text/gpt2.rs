//! GPT-2, as Hugging Face `transformers`' `GPT2LMHeadModel` computes it with eager attention:
//! learned positions, pre-LayerNorm blocks, a causal mask, `Conv1D` weights stored `[in, out]`,
//! logits tied to the token embedding.

use anyhow::Result;
use candle_core::{Device, Module, Tensor};

use super::config::{Activation, TextConfig};
use super::{multi_head_attention, ForwardOutput};
use crate::model::ops::{gelu_tanh, matmul, transpose_2d, LayerNorm, Linear};
use crate::weights::{Scope, Weights};

/// `Conv1D`: `y = x·W + b` with `W` stored `[in, out]`, which is the layout [`Linear`] keeps.
fn conv1d(s: &Scope, i: usize, o: usize) -> Result<Linear> {
    let w = s.get("weight", &[i, o])?;
    Ok(Linear::from_transposed(w, Some(s.get("bias", &[o])?)))
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    c_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// A GPT-2 language model.
pub struct Gpt2 {
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    cfg: TextConfig,
}

impl Gpt2 {
    /// Loads the model (keys with or without a `transformer.` prefix).
    pub fn load(weights: &Weights, cfg: &TextConfig, device: &Device) -> Result<Self> {
        let root = Scope::new(weights, device);
        let root = if root.contains("transformer.wte.weight") {
            root.pp("transformer")
        } else {
            root
        };
        let (d, inner) = (cfg.hidden_size, cfg.intermediate_size);
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let b = root.pp("h").pp(i);
                Ok(Block {
                    ln_1: LayerNorm::load(&b.pp("ln_1"), d, cfg.layer_norm_eps as f32)?,
                    c_attn: conv1d(&b.pp("attn.c_attn"), d, 3 * d)?,
                    c_proj: conv1d(&b.pp("attn.c_proj"), d, d)?,
                    ln_2: LayerNorm::load(&b.pp("ln_2"), d, cfg.layer_norm_eps as f32)?,
                    c_fc: conv1d(&b.pp("mlp.c_fc"), d, inner)?,
                    mlp_proj: conv1d(&b.pp("mlp.c_proj"), inner, d)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            wte: root.get("wte.weight", &[cfg.vocab_size, d])?,
            wpe: root.get("wpe.weight", &[cfg.max_positions, d])?,
            blocks,
            ln_f: LayerNorm::load(&root.pp("ln_f"), d, cfg.layer_norm_eps as f32)?,
            cfg: cfg.clone(),
        })
    }

    /// The learned position table `[n_positions, hidden]`.
    pub fn position_table(&self) -> &Tensor {
        &self.wpe
    }

    /// Block `layer`'s queries, keys and values for its input `x` `[n, hidden]` (the residual
    /// stream before the block, LayerNorm applied here), each `[n, hidden]`, heads side by side.
    pub fn qkv(&self, layer: usize, x: &Tensor) -> candle_core::Result<[Tensor; 3]> {
        let b = &self.blocks[layer];
        let qkv = b.c_attn.forward(&b.ln_1.forward(x)?)?; // [n, 3 · hidden]
        let d = self.cfg.hidden_size;
        Ok([
            qkv.narrow(1, 0, d)?,
            qkv.narrow(1, d, d)?,
            qkv.narrow(1, 2 * d, d)?,
        ])
    }

    /// Runs the model on `ids`; returns hidden states (the last after `ln_f`), attentions with
    /// exact zeros above the diagonal, and logits `[n, vocab]`.
    pub fn forward(&self, ids: &[u32]) -> candle_core::Result<ForwardOutput> {
        let n = ids.len();
        let dev = self.wte.device();
        let ids_t = Tensor::from_slice(ids, n, dev)?;
        let mut x = self
            .wte
            .embedding(&ids_t)?
            .add(&self.wpe.narrow(0, 0, n)?)?;
        let causal: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if j > i { f32::MIN } else { 0.0 }))
            .collect();
        let causal = Tensor::from_vec(causal, (n, n), dev)?;
        let d = self.cfg.hidden_size;
        let mut hidden = vec![x.clone()];
        let mut attentions = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let qkv = b.c_attn.forward(&b.ln_1.forward(&x)?)?;
            let (q, k, v) = (
                qkv.narrow(1, 0, d)?,
                qkv.narrow(1, d, d)?,
                qkv.narrow(1, 2 * d, d)?,
            );
            let (ctx, probs) = multi_head_attention(&q, &k, &v, self.cfg.num_heads, Some(&causal))?;
            x = b.c_proj.forward_add(&ctx, &x, false)?;
            let n2 = b.ln_2.forward(&x)?;
            let h = match self.cfg.activation {
                Activation::GeluTanh => gelu_tanh(&b.c_fc.forward(&n2)?)?,
                Activation::GeluErf => b.c_fc.forward_gelu(&n2)?,
                Activation::Relu => b.c_fc.forward(&n2)?.relu()?,
            };
            x = b.mlp_proj.forward_add(&h, &x, false)?;
            attentions.push(probs);
            if i + 1 < self.blocks.len() {
                hidden.push(x.clone());
            }
        }
        let x = self.ln_f.forward(&x)?;
        hidden.push(x.clone());
        // For a short text, logitsᵀ = wte · xᵀ: the 50257 vocabulary rows are the GEMM's long
        // side, read in place (x · wteᵀ re-packs the whole 154 MB table, which only pays off
        // with many tokens: measured 43 → 38 ms at 16 tokens, 155 → 171 ms at 128).
        let logits = if n <= 32 {
            transpose_2d(&matmul(&self.wte, &x.t()?)?)? // [n, vocab]
        } else {
            x.matmul(&self.wte.t()?)?
        };
        Ok(ForwardOutput {
            hidden_states: hidden,
            attentions,
            logits: Some(logits),
        })
    }
}
