//! SAM's mask decoder (`segment_anything/modeling/mask_decoder.py`, `transformer.py`): the
//! two-way transformer between prompt tokens and the image embedding, the transposed-conv
//! upscaler, the hypernetwork MLPs and the IoU head. Every token-side attention map is kept.

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::config::{SamConfig, DECODER_HEADS, PROMPT_EMBED_DIM};
use crate::model::ops::{gelu, LayerNorm, LayerNorm2d, Linear};
use crate::weights::Scope;

/// Attention of the decoder (`Attention` in `transformer.py`), optionally with a narrower
/// internal width (`downsample_rate` 2 for the cross attentions).
struct DecoderAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
}

impl DecoderAttention {
    fn load(s: &Scope, dim: usize, internal: usize) -> Result<Self> {
        Ok(Self {
            q_proj: Linear::load(&s.pp("q_proj"), dim, internal, true)?,
            k_proj: Linear::load(&s.pp("k_proj"), dim, internal, true)?,
            v_proj: Linear::load(&s.pp("v_proj"), dim, internal, true)?,
            out_proj: Linear::load(&s.pp("out_proj"), internal, dim, true)?,
            num_heads: DECODER_HEADS,
        })
    }

    /// `q [1, Nq, D]`, `k, v [1, Nk, D]` → (`[1, Nq, D]`, probabilities `[1, heads, Nq, Nk]`).
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let split = |x: Tensor| -> candle_core::Result<Tensor> {
            let (b, n, c) = x.dims3()?;
            x.reshape((b, n, self.num_heads, c / self.num_heads))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q_proj.forward(q)?)?;
        let k = split(self.k_proj.forward(k)?)?;
        let v = split(self.v_proj.forward(v)?)?;
        let c_per_head = q.dim(3)?;
        let attn = (q.matmul(&k.t()?)? / (c_per_head as f64).sqrt())?;
        let probs = candle_nn::ops::softmax_last_dim(&attn)?; // [1, heads, Nq, Nk]
        let out = probs.matmul(&v)?; // [1, heads, Nq, c]
        let (b, h, n, c) = out.dims4()?;
        let out = out.transpose(1, 2)?.reshape((b, n, h * c))?;
        Ok((self.out_proj.forward(&out)?, probs))
    }
}

/// Token-side attention probabilities of one two-way block.
pub struct BlockAttention {
    /// Token self-attention `[1, heads, T, T]`.
    pub self_attn: Tensor,
    /// Token → image cross attention `[1, heads, T, 4096]`.
    pub token_to_image: Tensor,
}

struct TwoWayBlock {
    self_attn: DecoderAttention,
    norm1: LayerNorm,
    cross_token_to_image: DecoderAttention,
    norm2: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_image_to_token: DecoderAttention,
    skip_first_layer_pe: bool,
}

impl TwoWayBlock {
    fn load(s: &Scope, mlp_dim: usize, skip_first_layer_pe: bool) -> Result<Self> {
        let d = PROMPT_EMBED_DIM;
        Ok(Self {
            self_attn: DecoderAttention::load(&s.pp("self_attn"), d, d)?,
            norm1: LayerNorm::load(&s.pp("norm1"), d, 1e-5)?,
            cross_token_to_image: DecoderAttention::load(
                &s.pp("cross_attn_token_to_image"),
                d,
                d / 2,
            )?,
            norm2: LayerNorm::load(&s.pp("norm2"), d, 1e-5)?,
            lin1: Linear::load(&s.pp("mlp.lin1"), d, mlp_dim, true)?,
            lin2: Linear::load(&s.pp("mlp.lin2"), mlp_dim, d, true)?,
            norm3: LayerNorm::load(&s.pp("norm3"), d, 1e-5)?,
            norm4: LayerNorm::load(&s.pp("norm4"), d, 1e-5)?,
            cross_image_to_token: DecoderAttention::load(
                &s.pp("cross_attn_image_to_token"),
                d,
                d / 2,
            )?,
            skip_first_layer_pe,
        })
    }

    /// Returns the new `(queries [1, T, D], keys [1, 4096, D])` and the token-side attention.
    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, BlockAttention)> {
        let (queries, self_attn) = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)?
        } else {
            let q = (queries + query_pe)?;
            let (out, p) = self.self_attn.forward(&q, &q, queries)?;
            ((queries + out)?, p)
        };
        let queries = self.norm1.forward(&queries)?;
        let q = (&queries + query_pe)?;
        let k = (keys + key_pe)?;
        let (out, token_to_image) = self.cross_token_to_image.forward(&q, &k, keys)?;
        let queries = self.norm2.forward(&(queries + out)?)?;
        let mlp = self.lin2.forward(&self.lin1.forward(&queries)?.relu()?)?;
        let queries = self.norm3.forward(&(queries + mlp)?)?;
        let q = (&queries + query_pe)?;
        let (out, _) = self.cross_image_to_token.forward(&k, &q, &queries)?;
        let keys = self.norm4.forward(&(keys + out)?)?;
        Ok((
            queries,
            keys,
            BlockAttention {
                self_attn,
                token_to_image,
            },
        ))
    }
}

/// A stack of linear layers with ReLU between them (`MLP` in `mask_decoder.py`).
struct Mlp(Vec<Linear>);

impl Mlp {
    fn load(s: &Scope, dims: &[usize]) -> Result<Self> {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::load(&s.pp("layers").pp(i), w[0], w[1], true))
            .collect::<Result<_, _>>()?;
        Ok(Self(layers))
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for (i, l) in self.0.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < self.0.len() {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

/// A 2×2, stride-2 transposed convolution written as one GEMM plus a pixel shuffle (the windows
/// do not overlap, so this is exact).
struct Upsample2x {
    /// `[Cin, Cout·4]`
    weight: Tensor,
    /// `[1, Cout, 1, 1]`
    bias: Tensor,
    cout: usize,
}

impl Upsample2x {
    fn load(s: &Scope, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            weight: s
                .get("weight", &[cin, cout, 2, 2])?
                .reshape((cin, cout * 4))?,
            bias: s.get("bias", &[cout])?.reshape((1, cout, 1, 1))?,
            cout,
        })
    }

    /// `[1, Cin, H, W]` → `[1, Cout, 2H, 2W]`
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, cin, h, w) = x.dims4()?;
        let y = x
            .reshape((cin, h * w))?
            .t()?
            .matmul(&self.weight)? // [H·W, Cout·4]
            .reshape((h, w, self.cout, 2, 2))?
            .permute((2, 0, 3, 1, 4))? // [Cout, H, 2, W, 2]
            .reshape((1, self.cout, 2 * h, 2 * w))?;
        y.broadcast_add(&self.bias)
    }
}

/// Raw decoder outputs for all mask tokens.
pub struct DecoderOutput {
    /// `[1, num_mask_tokens, 256, 256]` mask logits.
    pub masks: Tensor,
    /// `[1, num_mask_tokens]`
    pub iou: Tensor,
    /// Per two-way block.
    pub blocks: Vec<BlockAttention>,
    /// Final token → image attention `[1, heads, T, 4096]`.
    pub final_token_to_image: Tensor,
}

/// The mask decoder.
pub struct MaskDecoder {
    /// `[1 + num_mask_tokens, 256]`: the IoU token, then the mask tokens.
    output_tokens: Tensor,
    blocks: Vec<TwoWayBlock>,
    final_attn: DecoderAttention,
    norm_final: LayerNorm,
    up1: Upsample2x,
    up_norm: LayerNorm2d,
    up2: Upsample2x,
    hypernetworks: Vec<Mlp>,
    iou_head: Mlp,
}

impl MaskDecoder {
    /// Loads `mask_decoder.*`.
    pub fn load(s: &Scope, cfg: &SamConfig) -> Result<Self> {
        let d = PROMPT_EMBED_DIM;
        let n = cfg.num_mask_tokens;
        let iou = s.get("iou_token.weight", &[1, d])?;
        let mask = s.get("mask_tokens.weight", &[n, d])?;
        let t = s.pp("transformer");
        let blocks = (0..cfg.decoder_depth)
            .map(|i| TwoWayBlock::load(&t.pp("layers").pp(i), cfg.decoder_mlp_dim, i == 0))
            .collect::<Result<_>>()?;
        let up = s.pp("output_upscaling");
        Ok(Self {
            output_tokens: Tensor::cat(&[iou, mask], 0)?,
            blocks,
            final_attn: DecoderAttention::load(&t.pp("final_attn_token_to_image"), d, d / 2)?,
            norm_final: LayerNorm::load(&t.pp("norm_final_attn"), d, 1e-5)?,
            up1: Upsample2x::load(&up.pp(0), d, d / 4)?,
            up_norm: LayerNorm2d::load(&up.pp(1), d / 4, 1e-6)?,
            up2: Upsample2x::load(&up.pp(3), d / 4, d / 8)?,
            hypernetworks: (0..n)
                .map(|i| Mlp::load(&s.pp("output_hypernetworks_mlps").pp(i), &[d, d, d, d / 8]))
                .collect::<Result<_>>()?,
            iou_head: Mlp::load(&s.pp("iou_prediction_head"), &[d, 256, 256, n])?,
        })
    }

    /// Runs the decoder for one prompt.
    ///
    /// # Shapes
    /// `image_embeddings`, `image_pe`, `dense`: `[1, 256, 64, 64]`; `sparse`: `[1, S, 256]`.
    pub fn forward(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse: &Tensor,
        dense: &Tensor,
    ) -> candle_core::Result<DecoderOutput> {
        let tokens = Tensor::cat(&[self.output_tokens.unsqueeze(0)?, sparse.clone()], 1)?; // [1, T, D]
        let src = (image_embeddings + dense)?;
        let (_, c, h, w) = src.dims4()?;
        // [1, HW, C]
        let keys0 = src.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        let key_pe = image_pe.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        let (mut queries, mut keys) = (tokens.clone(), keys0);
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let (q, k, a) = b.forward(&queries, &keys, &tokens, &key_pe)?;
            queries = q;
            keys = k;
            blocks.push(a);
        }
        let q = (&queries + &tokens)?;
        let k = (&keys + &key_pe)?;
        let (out, final_token_to_image) = self.final_attn.forward(&q, &k, &keys)?;
        let hs = self.norm_final.forward(&(queries + out)?)?;

        let n = self.hypernetworks.len();
        let iou_out = hs.narrow(1, 0, 1)?.squeeze(1)?; // [1, D]
        let src = keys.transpose(1, 2)?.reshape((1, c, h, w))?;
        let up = gelu(&self.up_norm.forward(&self.up1.forward(&src)?)?)?;
        let up = gelu(&self.up2.forward(&up)?)?; // [1, 32, 256, 256]
        let hyper = self
            .hypernetworks
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(&hs.narrow(1, 1 + i, 1)?.squeeze(1)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let hyper = Tensor::stack(&hyper, 1)?; // [1, n, 32]
        let (_, uc, uh, uw) = up.dims4()?;
        let masks = hyper
            .matmul(&up.reshape((1, uc, uh * uw))?)?
            .reshape((1, n, uh, uw))?;
        let iou = self.iou_head.forward(&iou_out)?;
        Ok(DecoderOutput {
            masks,
            iou,
            blocks,
            final_token_to_image,
        })
    }
}
