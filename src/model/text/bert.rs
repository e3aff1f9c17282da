//! BERT-family encoder (BERT, MiniLM such as all-MiniLM-L6-v2), as Hugging Face
//! `transformers`' `BertModel` computes it with eager attention: word + learned position +
//! token-type embeddings, post-LayerNorm blocks, and every layer's attention probabilities.

use anyhow::Result;
use candle_core::{Device, Module, Tensor};

use super::config::{Activation, TextConfig};
use super::{multi_head_attention, ForwardOutput};
use crate::model::ops::{gelu_tanh, LayerNorm, Linear};
use crate::weights::{Scope, Weights};

struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

impl BertLayer {
    fn load(s: &Scope, cfg: &TextConfig) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let a = s.pp("attention");
        Ok(Self {
            query: Linear::load(&a.pp("self.query"), d, d, true)?,
            key: Linear::load(&a.pp("self.key"), d, d, true)?,
            value: Linear::load(&a.pp("self.value"), d, d, true)?,
            attn_out: Linear::load(&a.pp("output.dense"), d, d, true)?,
            attn_norm: LayerNorm::load(&a.pp("output.LayerNorm"), d, cfg.layer_norm_eps as f32)?,
            intermediate: Linear::load(&s.pp("intermediate.dense"), d, i, true)?,
            output: Linear::load(&s.pp("output.dense"), i, d, true)?,
            out_norm: LayerNorm::load(&s.pp("output.LayerNorm"), d, cfg.layer_norm_eps as f32)?,
        })
    }
}

/// A BERT encoder.
pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<BertLayer>,
    cfg: TextConfig,
}

impl Bert {
    /// Loads the encoder (keys with or without a `bert.` prefix).
    pub fn load(weights: &Weights, cfg: &TextConfig, device: &Device) -> Result<Self> {
        let root = Scope::new(weights, device);
        let root = if root.contains("bert.embeddings.word_embeddings.weight") {
            root.pp("bert")
        } else {
            root
        };
        let d = cfg.hidden_size;
        let e = root.pp("embeddings");
        let layers = (0..cfg.num_layers)
            .map(|i| BertLayer::load(&root.pp("encoder.layer").pp(i), cfg))
            .collect::<Result<_>>()?;
        Ok(Self {
            word: e.get("word_embeddings.weight", &[cfg.vocab_size, d])?,
            position: e.get("position_embeddings.weight", &[cfg.max_positions, d])?,
            token_type: e.get("token_type_embeddings.weight", &[cfg.type_vocab_size, d])?,
            emb_norm: LayerNorm::load(&e.pp("LayerNorm"), d, cfg.layer_norm_eps as f32)?,
            layers,
            cfg: cfg.clone(),
        })
    }

    /// The learned position table `[max_positions, hidden]`.
    pub fn position_table(&self) -> &Tensor {
        &self.position
    }

    /// Runs the encoder on `ids` (all token type 0). `attention_mask` (1 = real, 0 = padding)
    /// masks keys as `transformers` does, with the most negative f32 added to their scores.
    pub fn forward(
        &self,
        ids: &[u32],
        attention_mask: Option<&[u32]>,
    ) -> candle_core::Result<ForwardOutput> {
        let n = ids.len();
        let dev = self.word.device();
        let ids_t = Tensor::from_slice(ids, n, dev)?;
        let words = self.word.embedding(&ids_t)?;
        let types = self.token_type.get(0)?.unsqueeze(0)?;
        let pos = self.position.narrow(0, 0, n)?;
        // (word + token type) + position, in the reference's order.
        let x = words.broadcast_add(&types)?.add(&pos)?;
        let mut x = self.emb_norm.forward(&x)?;
        let mask = match attention_mask {
            Some(m) => {
                let add: Vec<f32> = m
                    .iter()
                    .map(|&v| if v == 0 { f32::MIN } else { 0.0 })
                    .collect();
                Some(Tensor::from_vec(add, (1, n), dev)?)
            }
            None => None,
        };
        let mut hidden = vec![x.clone()];
        let mut attentions = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let q = l.query.forward(&x)?;
            let k = l.key.forward(&x)?;
            let v = l.value.forward(&x)?;
            let (ctx, probs) = multi_head_attention(&q, &k, &v, self.cfg.num_heads, mask.as_ref())?;
            let a = l
                .attn_norm
                .forward(&l.attn_out.forward_add(&ctx, &x, false)?)?;
            let h = match self.cfg.activation {
                Activation::GeluErf => l.intermediate.forward_gelu(&a)?,
                Activation::GeluTanh => gelu_tanh(&l.intermediate.forward(&a)?)?,
                Activation::Relu => l.intermediate.forward(&a)?.relu()?,
            };
            x = l.out_norm.forward(&l.output.forward_add(&h, &a, false)?)?;
            hidden.push(x.clone());
            attentions.push(probs);
        }
        Ok(ForwardOutput {
            hidden_states: hidden,
            attentions,
            logits: None,
        })
    }
}
