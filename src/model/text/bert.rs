//! BERT-family encoder (BERT, MiniLM such as all-MiniLM-L6-v2, RoBERTa, XLM-RoBERTa,
//! CamemBERT), as Hugging Face `transformers`' `BertModel` / `RobertaModel` compute it with eager
//! attention: word + learned position + token-type embeddings, post-LayerNorm blocks, and every
//! layer's attention probabilities. The RoBERTa family differs only in its positions: token `i`
//! reads row `padding_idx + 1 + i` (padding tokens row `padding_idx`), one token type.

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
    /// Loads the encoder: keys with or without the `bert.` / `roberta.` prefix of the task
    /// models (`BertForMaskedLM`, `CamembertForMaskedLM`, …), whose heads are ignored.
    pub fn load(weights: &Weights, cfg: &TextConfig, device: &Device) -> Result<Self> {
        let root = Scope::new(weights, device);
        let root = match ["bert", "roberta", "camembert"]
            .into_iter()
            .find(|p| root.contains(&format!("{p}.embeddings.word_embeddings.weight")))
        {
            Some(prefix) => root.pp(prefix),
            None => root,
        };
        let rows = cfg.max_positions + cfg.position_offset;
        let d = cfg.hidden_size;
        let e = root.pp("embeddings");
        let layers = (0..cfg.num_layers)
            .map(|i| BertLayer::load(&root.pp("encoder.layer").pp(i), cfg))
            .collect::<Result<_>>()?;
        Ok(Self {
            word: e.get("word_embeddings.weight", &[cfg.vocab_size, d])?,
            position: e.get("position_embeddings.weight", &[rows, d])?,
            token_type: e.get("token_type_embeddings.weight", &[cfg.type_vocab_size, d])?,
            emb_norm: LayerNorm::load(&e.pp("LayerNorm"), d, cfg.layer_norm_eps as f32)?,
            layers,
            cfg: cfg.clone(),
        })
    }

    /// The used rows of the learned position table, `[max_positions, hidden]`: row `i` is what
    /// token `i` of an unpadded input gets (RoBERTa's first `padding_idx + 1` rows left out).
    pub fn position_table(&self) -> candle_core::Result<Tensor> {
        self.position
            .narrow(0, self.cfg.position_offset, self.cfg.max_positions)
    }

    /// The position-table row of each token: `0..n` for BERT; for the RoBERTa family
    /// `padding_idx + 1 + (non-padding tokens so far)`, and `padding_idx` for padding tokens, as
    /// `transformers`' `create_position_ids_from_input_ids`.
    fn position_ids(&self, ids: &[u32]) -> Vec<u32> {
        let offset = self.cfg.position_offset as u32;
        if offset == 0 {
            return (0..ids.len() as u32).collect();
        }
        let pad = offset - 1;
        let mut seen = 0u32;
        ids.iter()
            .map(|&id| {
                if Some(id) == self.cfg.pad_token_id {
                    pad
                } else {
                    seen += 1;
                    pad + seen
                }
            })
            .collect()
    }

    /// Layer `layer`'s queries, keys and values for its input `x` `[n, hidden]` (the hidden
    /// state before the layer), each `[n, hidden]` with the heads side by side.
    pub fn qkv(&self, layer: usize, x: &Tensor) -> candle_core::Result<[Tensor; 3]> {
        let l = &self.layers[layer];
        Ok([l.query.forward(x)?, l.key.forward(x)?, l.value.forward(x)?])
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
        let pos_ids = Tensor::from_vec(self.position_ids(ids), n, dev)?;
        let pos = self.position.embedding(&pos_ids)?;
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
