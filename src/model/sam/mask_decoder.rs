//! SAM's mask decoder (`segment_anything/modeling/mask_decoder.py`, `transformer.py`): the
//! two-way transformer between prompt tokens and the image embedding, the transposed-conv
//! upscaler (`upscale`), the hypernetwork MLPs and the IoU head; the batched forms of the
//! automatic mask generator in `batch`. Every token-side attention map is kept.

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::config::{SamConfig, DECODER_HEADS, PROMPT_EMBED_DIM};
use crate::model::ops::{
    matmul, matmul_add, matmul_nt, on_cpu_f32, softmax_dim1, softmax_last_dim_scaled, transpose_2d,
    LayerNorm, Linear,
};
use crate::weights::Scope;

mod batch;
mod fused;
mod upscale;
pub use batch::BatchTokens;
pub use upscale::HighResFeatures;
use upscale::Upsample2x;

/// Attention of the decoder (`Attention` in `transformer.py`), optionally with a narrower
/// internal width (`downsample_rate` 2 for the cross attentions).
///
/// PERF: the cross attentions between T ≈ 7 tokens and 4096 image positions are re-associated
/// so that no 4096 × 256 × 128 projection runs per click: the per-head token-side products are
/// formed first (`q_h·W_k,h`, `v_h·W_out,h`), then one GEMM of width `heads·T` against the image.
/// The probabilities are mathematically identical; only f32 summation order changes.
struct DecoderAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
    /// Raw weights `[internal, D]` and biases `[internal]` for the re-associated forms.
    wq: Tensor,
    bq: Tensor,
    wk: Tensor,
    bk: Tensor,
    bv: Tensor,
    /// `W_v` per head, transposed: `[heads, D, c]`.
    wv_heads_t: Tensor,
    /// `W_out` per head: `[heads, c, D]`.
    wo_heads: Tensor,
}

/// Image-side projections of one attention, split into heads.
#[derive(Clone)]
pub struct ProjectedImage {
    /// Keys, transposed per head: `[heads, c, 4096]`.
    k_t: Tensor,
    /// Values: `[heads, 4096, c]`.
    v: Tensor,
}

impl DecoderAttention {
    fn load(s: &Scope, dim: usize, internal: usize) -> Result<Self> {
        let get = |name: &str, shape: &[usize]| s.get(name, shape);
        Ok(Self {
            q_proj: Linear::load(&s.pp("q_proj"), dim, internal, true)?,
            k_proj: Linear::load(&s.pp("k_proj"), dim, internal, true)?,
            v_proj: Linear::load(&s.pp("v_proj"), dim, internal, true)?,
            out_proj: Linear::load(&s.pp("out_proj"), internal, dim, true)?,
            num_heads: DECODER_HEADS,
            wq: get("q_proj.weight", &[internal, dim])?,
            bq: get("q_proj.bias", &[internal])?,
            wk: get("k_proj.weight", &[internal, dim])?,
            bk: get("k_proj.bias", &[internal])?,
            bv: get("v_proj.bias", &[internal])?,
            wv_heads_t: get("v_proj.weight", &[internal, dim])?
                .reshape((DECODER_HEADS, internal / DECODER_HEADS, dim))?
                .transpose(1, 2)?
                .contiguous()?,
            wo_heads: get("out_proj.weight", &[dim, internal])?
                .reshape((dim, DECODER_HEADS, internal / DECODER_HEADS))?
                .permute((1, 2, 0))?
                .contiguous()?,
        })
    }

    fn internal(&self) -> usize {
        self.wq.dims()[0]
    }

    fn head_dim(&self) -> usize {
        self.internal() / self.num_heads
    }

    /// `[N, internal]` → `[heads, N, c]`
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        x.reshape((n, self.num_heads, self.head_dim()))?
            .transpose(0, 1)?
            .contiguous()
    }

    /// `[heads, N, c]` → `[N, internal]`
    fn merge_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(1)?;
        x.transpose(0, 1)?.reshape((n, self.internal()))
    }

    /// `W[h·c .. (h+1)·c, :]` per head: `[internal, D]` → `[heads, c, D]`
    fn per_head(&self, w: &Tensor) -> candle_core::Result<Tensor> {
        let d = w.dim(1)?;
        w.reshape((self.num_heads, self.head_dim(), d))
    }

    fn scale(&self) -> f64 {
        (self.head_dim() as f64).sqrt()
    }

    /// Plain attention among few tokens: `q, k, v [N, D]` → (`[Nq, D]`, probs `[heads, Nq, Nk]`).
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let q = self.split_heads(&self.q_proj.forward(q)?)?;
        let k = self.split_heads(&self.k_proj.forward(k)?)?;
        let v = self.split_heads(&self.v_proj.forward(v)?)?;
        let probs = softmax_last_dim_scaled(&matmul(&q, &k.t()?)?, self.scale())?;
        let out = self.merge_heads(&matmul(&probs, &v)?)?;
        Ok((self.out_proj.forward(&out)?, probs))
    }

    /// `proj(x)` split into heads and transposed: `x [P, D]` → `[heads, c, P]` (the rows of
    /// `proj(x)ᵀ` are in head-major order already).
    fn project_t(&self, proj: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
        let p = x.dim(0)?;
        transpose_2d(&proj.forward(x)?)?.reshape((self.num_heads, self.head_dim(), p))
    }

    /// Tokens attend to the image.
    ///
    /// # Shapes
    /// `q [T, D]`, `image_k` (keys + PE) `[P, D]` and `image_v` (keys) `[P, D]` → (`[T, D]`,
    /// probs `[heads, T, P]`). `image_k` is only read without `cached`.
    fn tokens_to_image(
        &self,
        q: &Tensor,
        image_k: Option<&Tensor>,
        image_v: &Tensor,
        cached: Option<&ProjectedImage>,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (t, nh) = (q.dim(0)?, self.num_heads);
        let qh = self.split_heads(&self.q_proj.forward(q)?)?; // [heads, T, c]
        if let Some(p) = cached {
            if let Some((out, probs)) = self.cached_attention_cpu(&qh, p)? {
                let out = self.merge_heads(&out)?; // [T, internal]
                return Ok((self.out_proj.forward(&out)?, probs));
            }
            let probs = softmax_last_dim_scaled(&matmul(&qh, &p.k_t)?, self.scale())?;
            let out = self.merge_heads(&matmul(&probs, &p.v)?)?; // [T, internal]
            return Ok((self.out_proj.forward(&out)?, probs));
        }
        let image_k = image_k.ok_or_else(|| {
            candle_core::Error::Msg("token → image attention without keys".into())
        })?;
        // scores_h = (q_h·W_k,h)·Kᵀ + q_h·b_k,h
        let qk = self.head_products(&qh, &self.wk)?; // [heads·T, D]
        let bias = self.head_biases(&qh, &self.bk)?; // [heads·T, 1]
        let scores = matmul_nt(&qk, image_k)?.broadcast_add(&bias)?; // [heads·T, P]
        let p_len = scores.dim(1)?;
        let probs = softmax_last_dim_scaled(&scores.reshape((nh, t, p_len))?, self.scale())?;
        let av = matmul(&probs.reshape((nh * t, p_len))?, image_v)?; // [heads·T, D]
        Ok((self.tokens_from_image_product(&av)?, probs))
    }

    /// `x_h · W_h` for each head of a projection's weight `w [internal, D]`: `xh [heads, T, c]`
    /// → `[heads·T, D]`, the token-side factor of a re-associated cross attention.
    fn head_products(&self, xh: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        let (nh, t, _) = xh.dims3()?;
        matmul(xh, &self.per_head(w)?)?.reshape((nh * t, w.dim(1)?))
    }

    /// `x_h · b_h` for each head of a projection's bias `b [internal]`: `xh [heads, T, c]` →
    /// `[heads·T, 1]`.
    fn head_biases(&self, xh: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        let (nh, t, c) = xh.dims3()?;
        xh.broadcast_mul(&b.reshape((nh, 1, c))?)?
            .sum(2)?
            .reshape((nh * t, 1))
    }

    /// Finishes a token → image attention from its probabilities' product with the image
    /// keys, `av [heads·T, D]` → `[T, D]`: `out_h = (A_h·V)·W_v,hᵀ + b_v,h` (the rows of `A`
    /// sum to 1), then the output projection.
    fn tokens_from_image_product(&self, av: &Tensor) -> candle_core::Result<Tensor> {
        let d = av.dim(1)?;
        let (nh, c) = (self.num_heads, self.head_dim());
        let t = av.dim(0)? / nh;
        let out = matmul(&av.reshape((nh, t, d))?, &self.wv_heads_t)? // [heads, T, c]
            .broadcast_add(&self.bv.reshape((nh, 1, c))?)?;
        self.out_proj.forward(&self.merge_heads(&out)?)
    }

    /// The image attends to the tokens, and the result is added to the image keys.
    ///
    /// # Shapes
    /// `image_q` (keys + PE) `[P, D]`, `k`, `v` `[T, D]`, `keys [P, D]` →
    /// `keys + attention` `[P, D]`. `cached_q_t` is `image_q` already projected and transposed,
    /// `[heads, c, P]`; `image_q` is only read without it.
    fn image_to_tokens_add(
        &self,
        image_q: Option<&Tensor>,
        k: &Tensor,
        v: &Tensor,
        cached_q_t: Option<&Tensor>,
        keys: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (t, d) = k.dims2()?;
        let nh = self.num_heads;
        let p_len = keys.dim(0)?;
        let kh = self.split_heads(&self.k_proj.forward(k)?)?; // [heads, T, c]
        let vh = self.split_heads(&self.v_proj.forward(v)?)?; // [heads, T, c]
                                                              // Scores transposed, [heads·T, P], so the image is the GEMMs' long output dimension.
        let scores_t = match (cached_q_t, image_q) {
            (Some(qh_t), _) => matmul(&kh, qh_t)?.reshape((nh * t, p_len))?,
            (None, Some(image_q)) => {
                // scores_h = (k_h·W_q,h)·Qᵀ + k_h·b_q,h, all heads in one GEMM.
                let m = self.head_products(&kh, &self.wq)?; // [heads·T, D]
                let bias = self.head_biases(&kh, &self.bq)?; // [heads·T, 1]
                matmul_nt(&m, image_q)?.broadcast_add(&bias)?
            }
            (None, None) => {
                candle_core::bail!("image → token attention without queries")
            }
        };
        let probs_t = softmax_dim1(&scores_t.reshape((nh, t, p_len))?, self.scale())?;
        let probs = transpose_2d(&probs_t.reshape((nh * t, p_len))?)?; // [P, heads·T]

        // out = Σ_h A_h·(v_h·W_out,hᵀ) + b_out, all heads in one GEMM, added to the keys.
        let n = matmul(&vh, &self.wo_heads)?.reshape((nh * t, d))?; // [heads·T, D]
        matmul_add(&probs, &n, Some(self.out_bias()?), keys)
    }

    /// The output projection's bias `[D]`.
    fn out_bias(&self) -> candle_core::Result<&Tensor> {
        self.out_proj
            .bias()
            .ok_or_else(|| candle_core::Error::Msg("out_proj has no bias".into()))
    }
}

/// Token-side attention probabilities of one two-way block.
pub struct BlockAttention {
    /// Token self-attention `[heads, T, T]`.
    pub self_attn: Tensor,
    /// Token → image cross attention `[heads, T, 4096]`.
    pub token_to_image: Tensor,
}

/// Per-image work of the decoder that does not depend on the prompt (valid when the dense
/// prompt is the no-mask embedding): the first block's image-side projections.
#[derive(Clone)]
pub struct DecoderImageCache {
    /// `image_embeddings + no_mask_embed`, `[4096, D]`
    keys: Tensor,
    /// Block 0 token → image, projected from keys + PE and keys.
    t2i: ProjectedImage,
    /// Block 0 image → token queries, projected from keys + PE and transposed per head:
    /// `[heads, c, 4096]`.
    i2t_q_t: Tensor,
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
    fn load(
        s: &Scope,
        mlp_dim: usize,
        (mlp1, mlp2): (&str, &str),
        skip_first_layer_pe: bool,
    ) -> Result<Self> {
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
            lin1: Linear::load(&s.pp(mlp1), d, mlp_dim, true)?,
            lin2: Linear::load(&s.pp(mlp2), mlp_dim, d, true)?,
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

    /// Returns the new `(queries [T, D], keys [P, D])` and the token-side attention.
    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
        cache: Option<&DecoderImageCache>,
    ) -> candle_core::Result<(Tensor, Tensor, BlockAttention)> {
        let (queries, self_attn) = self.tokens_self_attention(queries, query_pe)?;
        let q = (&queries + query_pe)?;
        // Keys + PE `[P, D]`: the image side of both cross attentions, read as the right-hand
        // side of `matmul_nt` (the cache holds their projections instead).
        let keys_pe = match cache {
            Some(_) => None,
            None => Some((keys + key_pe)?),
        };
        let (out, token_to_image) = self.cross_token_to_image.tokens_to_image(
            &q,
            keys_pe.as_ref(),
            keys,
            cache.map(|c| &c.t2i),
        )?;
        let queries = self.tokens_after_cross(&queries, &out)?;
        let q = (&queries + query_pe)?;
        let keys = self.cross_image_to_token.image_to_tokens_add(
            keys_pe.as_ref(),
            &q,
            &queries,
            cache.map(|c| &c.i2t_q_t),
            keys,
        )?;
        let keys = self.norm4.forward(&keys)?;
        Ok((
            queries,
            keys,
            BlockAttention {
                self_attn,
                token_to_image,
            },
        ))
    }

    /// The tokens' self-attention and `norm1`: `queries [T, D]` → (`[T, D]`, probs
    /// `[heads, T, T]`).
    fn tokens_self_attention(
        &self,
        queries: &Tensor,
        query_pe: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (queries, self_attn) = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)?
        } else {
            let q = (queries + query_pe)?;
            let (out, p) = self.self_attn.forward(&q, &q, queries)?;
            ((queries + out)?, p)
        };
        Ok((self.norm1.forward(&queries)?, self_attn))
    }

    /// After the token → image attention's output `out`: its residual and `norm2`, the MLP,
    /// its residual and `norm3` (`[T, D]` each).
    fn tokens_after_cross(&self, queries: &Tensor, out: &Tensor) -> candle_core::Result<Tensor> {
        let queries = self.norm2.forward(&(queries + out)?)?;
        let mlp = self.lin2.forward(&self.lin1.forward(&queries)?.relu()?)?;
        self.norm3.forward(&(queries + mlp)?)
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

/// Raw decoder outputs for all mask tokens.
pub struct DecoderOutput {
    /// `[1, num_mask_tokens, 256, 256]` mask logits.
    pub masks: Tensor,
    /// `[1, num_mask_tokens]`
    pub iou: Tensor,
    /// Per two-way block.
    pub blocks: Vec<BlockAttention>,
    /// Final token → image attention `[heads, T, 4096]`.
    pub final_token_to_image: Tensor,
    /// SAM 2's object-score logit `[1, 1]` (positive: an object is there).
    pub object_score: Option<Tensor>,
}

/// The mask decoder of SAM and of SAM 2.
pub struct MaskDecoder {
    /// `[lead + num_mask_tokens, 256]`: (SAM 2's object-score token,) the IoU token, then the
    /// mask tokens.
    output_tokens: Tensor,
    /// Tokens ahead of the mask tokens.
    lead: usize,
    /// SAM 2: the IoU head ends in a sigmoid.
    iou_sigmoid: bool,
    /// SAM 2's object-score head, on the first token.
    obj_score_head: Option<Mlp>,
    blocks: Vec<TwoWayBlock>,
    final_attn: DecoderAttention,
    norm_final: LayerNorm,
    /// `output_upscaling.0..=2`: transposed conv, LayerNorm2d (channels-last), GELU.
    up1: Upsample2x,
    /// `output_upscaling.3..=4`: transposed conv, GELU.
    up2: Upsample2x,
    hypernetworks: Vec<Mlp>,
    iou_head: Mlp,
}

impl MaskDecoder {
    /// Loads `mask_decoder.*` (SAM 2: `sam_mask_decoder.*`).
    pub fn load(s: &Scope, cfg: &SamConfig) -> Result<Self> {
        let d = PROMPT_EMBED_DIM;
        let n = cfg.num_mask_tokens;
        let sam2 = cfg.is_sam2();
        let mut lead = vec![s.get("iou_token.weight", &[1, d])?];
        if sam2 {
            lead.insert(0, s.get("obj_score_token.weight", &[1, d])?);
        }
        let mask = s.get("mask_tokens.weight", &[n, d])?;
        let t = s.pp("transformer");
        let mlp_names = cfg.decoder_mlp_names();
        let blocks = (0..cfg.decoder_depth)
            .map(|i| {
                TwoWayBlock::load(
                    &t.pp("layers").pp(i),
                    cfg.decoder_mlp_dim,
                    mlp_names,
                    i == 0,
                )
            })
            .collect::<Result<_>>()?;
        let up = s.pp("output_upscaling");
        let lead_count = lead.len();
        lead.push(mask);
        Ok(Self {
            output_tokens: Tensor::cat(&lead, 0)?,
            lead: lead_count,
            iou_sigmoid: sam2,
            obj_score_head: if sam2 {
                Some(Mlp::load(&s.pp("pred_obj_score_head"), &[d, d, d, 1])?)
            } else {
                None
            },
            blocks,
            final_attn: DecoderAttention::load(&t.pp("final_attn_token_to_image"), d, d / 2)?,
            norm_final: LayerNorm::load(&t.pp("norm_final_attn"), d, 1e-5)?,
            // In split bfloat16 on AMX: SAM 2's low-res logits from the official embeddings
            // move from 1e-6 to at most 7e-6 of max |ref|; SAM 1's end to end from 2.5e-5 to
            // 2.9e-5 (session 33).
            up1: Upsample2x::load(&up.pp(0), d, d / 4, Some(&up.pp(1)))?.split_bf16(),
            up2: Upsample2x::load(&up.pp(3), d / 4, d / 8, None)?,
            hypernetworks: (0..n)
                .map(|i| Mlp::load(&s.pp("output_hypernetworks_mlps").pp(i), &[d, d, d, d / 8]))
                .collect::<Result<_>>()?,
            iou_head: Mlp::load(&s.pp("iou_prediction_head"), &[d, 256, 256, n])?,
        })
    }

    /// Precomputes the prompt-independent part of the decoder for an image (used when the
    /// dense prompt is the no-mask embedding).
    ///
    /// PERF: every transpose here (the channels-first grid to rows, the projected keys and
    /// queries to `[heads, c, 4096]`) is the blocked parallel [`transpose_2d`] instead of
    /// candle's strided copy, and the no-mask embedding is broadcast in the add instead of
    /// materialised: 24-32 ms → 10-14 ms on 2 cores, paid on every image read from the
    /// embedding cache.
    ///
    /// # Shapes
    /// `image_embeddings`: `[1, 256, 64, 64]`; `no_mask`: `[1, 256, 1, 1]` (the no-mask dense
    /// embedding before its broadcast); `key_pe`: `[4096, 256]` ([`image_pe_rows`]).
    pub fn image_cache(
        &self,
        image_embeddings: &Tensor,
        key_pe: &Tensor,
        no_mask: &Tensor,
    ) -> candle_core::Result<DecoderImageCache> {
        let keys = flatten_grid(&image_embeddings.broadcast_add(no_mask)?)?; // [P, D]
        let keys_pe = (&keys + key_pe)?;
        let first = &self.blocks[0];
        let t2i = &first.cross_token_to_image;
        let i2t = &first.cross_image_to_token;
        Ok(DecoderImageCache {
            t2i: ProjectedImage {
                k_t: t2i.project_t(&t2i.k_proj, &keys_pe)?,
                v: t2i.split_heads(&t2i.v_proj.forward(&keys)?)?,
            },
            i2t_q_t: i2t.project_t(&i2t.q_proj, &keys_pe)?,
            keys,
        })
    }

    /// Tokens ahead of the mask tokens (1: the IoU token; SAM 2: 2, the object-score token
    /// first).
    pub fn lead_tokens(&self) -> usize {
        self.lead
    }

    /// Runs the decoder for one prompt.
    ///
    /// # Shapes
    /// `image_embeddings`, `dense`: `[1, 256, 64, 64]`; `key_pe`: `[4096, 256]`;
    /// `sparse`: `[1, S, 256]`. `cache` must come from [`Self::image_cache`] with the same
    /// embeddings and the no-mask dense prompt; with it `dense` is not needed (pass `None`),
    /// without it `dense` is required. `high_res` (SAM 2 only, required there) goes into the
    /// upscaling.
    pub fn forward(
        &self,
        image_embeddings: &Tensor,
        key_pe: &Tensor,
        sparse: &Tensor,
        dense: Option<&Tensor>,
        cache: Option<&DecoderImageCache>,
        high_res: Option<&HighResFeatures>,
    ) -> candle_core::Result<DecoderOutput> {
        if self.obj_score_head.is_some() != high_res.is_some() {
            candle_core::bail!("mask decoder: SAM 2 needs its high-resolution features, SAM none");
        }
        let tokens = Tensor::cat(&[self.output_tokens.clone(), sparse.squeeze(0)?], 0)?; // [T, D]
        let (_, _, h, w) = image_embeddings.dims4()?;
        let keys = match (cache, dense) {
            (Some(cache), _) => cache.keys.clone(),
            (None, Some(dense)) => flatten_grid(&(image_embeddings + dense)?)?,
            (None, None) => candle_core::bail!("mask decoder: no dense prompt and no image cache"),
        };
        if on_cpu_f32(&keys) && on_cpu_f32(key_pe) && on_cpu_f32(&tokens) {
            self.forward_fused(&keys, key_pe, &tokens, cache, (h, w), high_res)
        } else {
            self.forward_tensors(keys, key_pe, &tokens, cache, (h, w), high_res)
        }
    }

    /// [`Self::forward`] in tensor operations, one block after the other (the path of GPUs
    /// and half precision); `keys` `[h·w, D]` is the first block's image input.
    fn forward_tensors(
        &self,
        mut keys: Tensor,
        key_pe: &Tensor,
        tokens: &Tensor,
        cache: Option<&DecoderImageCache>,
        (h, w): (usize, usize),
        high_res: Option<&HighResFeatures>,
    ) -> candle_core::Result<DecoderOutput> {
        let mut queries = tokens.clone();
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let block_cache = if i == 0 { cache } else { None };
            let (q, k, a) = b.forward(&queries, &keys, tokens, key_pe, block_cache)?;
            queries = q;
            keys = k;
            blocks.push(a);
        }
        let q = (&queries + tokens)?;
        let keys_pe = (&keys + key_pe)?;
        let (out, final_token_to_image) =
            self.final_attn
                .tokens_to_image(&q, Some(&keys_pe), &keys, None)?;
        let hs = self.norm_final.forward(&(queries + out)?)?; // [T, D]
        self.finish(&hs, &keys, (h, w), high_res, blocks, final_token_to_image)
    }

    /// The heads on the final tokens `hs [T, D]` and the masks from the final image keys
    /// `keys [h·w, D]`.
    fn finish(
        &self,
        hs: &Tensor,
        keys: &Tensor,
        (h, w): (usize, usize),
        high_res: Option<&HighResFeatures>,
        blocks: Vec<BlockAttention>,
        final_token_to_image: Tensor,
    ) -> candle_core::Result<DecoderOutput> {
        let iou_out = hs.narrow(0, self.lead - 1, 1)?; // [1, D]
        let hyper = self
            .hypernetworks
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(&hs.narrow(0, self.lead + i, 1)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let hyper = Tensor::cat(&hyper, 0)?; // [n, 32]
        let masks = self
            .upscale_masks(keys, &hyper, (h, w), high_res)?
            .unsqueeze(0)?;
        let iou = self.iou_head.forward(&iou_out)?;
        let iou = if self.iou_sigmoid {
            candle_nn::ops::sigmoid(&iou)?
        } else {
            iou
        };
        let object_score = match &self.obj_score_head {
            Some(head) => Some(head.forward(&hs.narrow(0, 0, 1)?)?),
            None => None,
        };
        Ok(DecoderOutput {
            masks,
            iou,
            blocks,
            final_token_to_image,
            object_score,
        })
    }
}

/// The dense positional encoding `[1, C, H, W]` as rows `[H·W, C]`, computed once per model.
pub fn image_pe_rows(image_pe: &Tensor) -> candle_core::Result<Tensor> {
    flatten_grid(image_pe)
}

/// `[1, C, H, W]` → `[H·W, C]`
fn flatten_grid(x: &Tensor) -> candle_core::Result<Tensor> {
    transpose_2d(&x.squeeze(0)?.flatten_from(1)?)
}
