//! The mask decoder batched over prompts on one image (the automatic mask generator's unit
//! of work): `B` point prompts through the two-way transformer and the IoU head at once, and
//! the masks of those that need them. Heads are laid out so that the products against the
//! image's cached projections, shared by all prompts, are one GEMM per head of height `B·T`.

use candle_core::{Module, Tensor};

use super::{
    DecoderAttention, DecoderImageCache, HighResFeatures, MaskDecoder, ProjectedImage, TwoWayBlock,
};
use crate::model::ops::{
    matmul, matmul_nt, softmax_dim1, softmax_last_dim_scaled, transpose_last2,
};

/// Batched forms: `B` prompts on one image, heads laid out so that the products shared by all
/// prompts (against the image's cached projections) are one GEMM per head of height `B·T`.
impl DecoderAttention {
    /// `[B, N, internal]` → `[heads, B·N, c]`
    fn split_heads_shared(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        x.reshape((b * n, self.num_heads, self.head_dim()))?
            .transpose(0, 1)?
            .contiguous()
    }

    /// `[heads, B·N, c]` → `[B, N, internal]`
    fn merge_heads_shared(&self, x: &Tensor, b: usize) -> candle_core::Result<Tensor> {
        let n = x.dim(1)? / b;
        x.reshape((self.num_heads, b, n, self.head_dim()))?
            .permute((1, 2, 0, 3))?
            .contiguous()?
            .reshape((b, n, self.internal()))
    }

    /// `[heads, B·N, X]` → `[B, heads·N, X]` (each prompt's heads stacked).
    fn per_prompt(&self, x: &Tensor, b: usize) -> candle_core::Result<Tensor> {
        let (nh, bn, d) = x.dims3()?;
        x.reshape((nh, b, bn / b, d))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((b, nh * (bn / b), d))
    }

    /// [`Self::forward`] for `B` prompts: `q, k, v [B, N, D]` → `[B, Nq, D]`.
    fn forward_batch(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
        let b = q.dim(0)?;
        let split = |x: &Tensor| -> candle_core::Result<Tensor> {
            let (b, n, _) = x.dims3()?;
            x.reshape((b, n, self.num_heads, self.head_dim()))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * self.num_heads, n, self.head_dim()))
        };
        let q = split(&self.q_proj.forward(q)?)?; // [B·heads, N, c]
        let k = split(&self.k_proj.forward(k)?)?;
        let v = split(&self.v_proj.forward(v)?)?;
        let probs = softmax_last_dim_scaled(&matmul(&q, &k.transpose(1, 2)?)?, self.scale())?;
        let out = matmul(&probs, &v)?; // [B·heads, N, c]
        let n = out.dim(1)?;
        let out = out
            .reshape((b, self.num_heads, n, self.head_dim()))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, n, self.internal()))?;
        self.out_proj.forward(&out)
    }

    /// [`Self::tokens_to_image`] against the image's cached projections, shared by all
    /// prompts: `q [B, T, D]` → `[B, T, D]`.
    fn tokens_to_shared_image(
        &self,
        q: &Tensor,
        p: &ProjectedImage,
    ) -> candle_core::Result<Tensor> {
        let b = q.dim(0)?;
        let qh = self.split_heads_shared(&self.q_proj.forward(q)?)?; // [heads, B·T, c]
        let probs = softmax_last_dim_scaled(&matmul(&qh, &p.k_t)?, self.scale())?; // [heads, B·T, P]
        let out = matmul(&probs, &p.v)?; // [heads, B·T, c]
        self.out_proj.forward(&self.merge_heads_shared(&out, b)?)
    }

    /// [`Self::image_to_tokens_add`] with the image's cached queries `q_t [heads, c, P]` and
    /// keys `[P, D]` shared by all prompts: `k, v [B, T, D]` → keys + attention `[B, P, D]`.
    fn shared_image_to_tokens_add(
        &self,
        q_t: &Tensor,
        k: &Tensor,
        v: &Tensor,
        keys: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = k.dims3()?;
        let nh = self.num_heads;
        let p_len = keys.dim(0)?;
        let kh = self.split_heads_shared(&self.k_proj.forward(k)?)?; // [heads, B·T, c]
        let vh = self.split_heads_shared(&self.v_proj.forward(v)?)?;
        let scores_t = matmul(&kh, q_t)?; // [heads, B·T, P]
        let probs_t = softmax_dim1(&scores_t.reshape((nh * b, t, p_len))?, self.scale())?;
        // [heads, B, T, P] → [B, P, heads·T]
        let probs = probs_t
            .reshape((nh, b, t, p_len))?
            .permute((1, 3, 0, 2))?
            .contiguous()?
            .reshape((b, p_len, nh * t))?;
        self.attended_values(&probs, &vh, b)?.broadcast_add(keys)
    }

    /// [`Self::tokens_to_image`] for `B` prompts with their own image keys: `q [B, T, D]`,
    /// `keys_pe` (keys + PE) `[B, P, D]`, `keys [B, P, D]` → `[B, T, D]`.
    fn tokens_to_image_batch(
        &self,
        q: &Tensor,
        keys_pe: &Tensor,
        keys: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, t, d) = q.dims3()?;
        let (nh, c) = (self.num_heads, self.head_dim());
        let qh = self.split_heads_shared(&self.q_proj.forward(q)?)?; // [heads, B·T, c]
        let scores = self.scores_per_prompt(&qh, (&self.wk, &self.bk), keys_pe, b)?;
        let probs = softmax_last_dim_scaled(&scores, self.scale())?;
        // out_h = (A_h·V)·W_v,hᵀ + b_v,h
        let av = matmul(&probs, keys)? // [B, heads·T, D]
            .reshape((b, nh, t, d))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((nh, b * t, d))?;
        let out = matmul(&av, &self.wv_heads_t)?.broadcast_add(&self.bv.reshape((nh, 1, c))?)?;
        self.out_proj.forward(&self.merge_heads_shared(&out, b)?)
    }

    /// [`Self::image_to_tokens_add`] for `B` prompts with their own image: `image_q` (keys +
    /// PE) `[B, P, D]`, `k, v [B, T, D]`, `keys [B, P, D]` → `[B, P, D]`.
    fn image_to_tokens_add_batch(
        &self,
        image_q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        keys: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = k.dims3()?;
        let nh = self.num_heads;
        let p_len = keys.dim(1)?;
        let kh = self.split_heads_shared(&self.k_proj.forward(k)?)?; // [heads, B·T, c]
        let vh = self.split_heads_shared(&self.v_proj.forward(v)?)?;
        let scores_t = self.scores_per_prompt(&kh, (&self.wq, &self.bq), image_q, b)?;
        let probs_t = softmax_dim1(&scores_t.reshape((b * nh, t, p_len))?, self.scale())?;
        let probs = transpose_last2(&probs_t.reshape((b, nh * t, p_len))?)?; // [B, P, heads·T]
        self.attended_values(&probs, &vh, b)? + keys
    }

    /// Scores of the projected tokens `xh [heads, B·T, c]` against each prompt's image side
    /// `image [B, P, D]` through the other projection `(W [internal, D], b [internal])`,
    /// re-associated: `(x_h·W_h)·Iᵀ + x_h·b_h` → `[B, heads·T, P]`.
    fn scores_per_prompt(
        &self,
        xh: &Tensor,
        (w, bias): (&Tensor, &Tensor),
        image: &Tensor,
        b: usize,
    ) -> candle_core::Result<Tensor> {
        let (nh, c) = (self.num_heads, self.head_dim());
        let xw = self.per_prompt(&matmul(xh, &self.per_head(w)?)?, b)?; // [B, heads·T, D]
        let xb = self.per_prompt(
            &xh.broadcast_mul(&bias.reshape((nh, 1, c))?)?
                .sum_keepdim(2)?,
            b,
        )?; // [B, heads·T, 1]
        matmul_nt(&xw, image)?.broadcast_add(&xb)
    }

    /// The image side's attention output for each prompt: `Σ_h A_h·(v_h·W_out,hᵀ) + b_out`
    /// from `probs [B, P, heads·T]` and `vh [heads, B·T, c]` → `[B, P, D]`.
    fn attended_values(
        &self,
        probs: &Tensor,
        vh: &Tensor,
        b: usize,
    ) -> candle_core::Result<Tensor> {
        let n = self.per_prompt(&matmul(vh, &self.wo_heads)?, b)?; // [B, heads·T, D]
        matmul(probs, &n)?.broadcast_add(self.out_bias()?)
    }
}

impl TwoWayBlock {
    /// [`Self::forward`] for `B` prompts on one image, without the attention maps.
    ///
    /// # Shapes
    /// `queries`, `query_pe`: `[B, T, D]`; `key_pe`: `[P, D]`. With `cache` (the first block)
    /// the image side is shared and `keys` is not read; without it `keys` is `[B, P, D]`.
    /// Returns `(queries [B, T, D], keys [B, P, D])`.
    fn forward_batch(
        &self,
        queries: &Tensor,
        keys: Option<&Tensor>,
        query_pe: &Tensor,
        key_pe: &Tensor,
        cache: Option<&DecoderImageCache>,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward_batch(queries, queries, queries)?
        } else {
            let q = (queries + query_pe)?;
            (queries + self.self_attn.forward_batch(&q, &q, queries)?)?
        };
        let queries = self.norm1.forward(&queries)?;
        let q = (&queries + query_pe)?;
        let (queries, keys) = match (cache, keys) {
            (Some(c), _) => {
                let out = self
                    .cross_token_to_image
                    .tokens_to_shared_image(&q, &c.t2i)?;
                let queries = self.mlp_step(&queries, &out)?;
                let q = (&queries + query_pe)?;
                let keys = self
                    .cross_image_to_token
                    .shared_image_to_tokens_add(&c.i2t_q_t, &q, &queries, &c.keys)?;
                (queries, keys)
            }
            (None, Some(keys)) => {
                let keys_pe = keys.broadcast_add(key_pe)?; // [B, P, D]
                let out = self
                    .cross_token_to_image
                    .tokens_to_image_batch(&q, &keys_pe, keys)?;
                let queries = self.mlp_step(&queries, &out)?;
                let q = (&queries + query_pe)?;
                let keys = self
                    .cross_image_to_token
                    .image_to_tokens_add_batch(&keys_pe, &q, &queries, keys)?;
                (queries, keys)
            }
            (None, None) => candle_core::bail!("two-way block: no image keys and no cache"),
        };
        Ok((queries, self.norm4.forward(&keys)?))
    }

    /// The residual of the token → image attention, then the MLP: `norm3(x + mlp(x))` with
    /// `x = norm2(queries + attended)`.
    fn mlp_step(&self, queries: &Tensor, attended: &Tensor) -> candle_core::Result<Tensor> {
        let queries = self.norm2.forward(&(queries + attended)?)?;
        let mlp = self.lin2.forward(&self.lin1.forward(&queries)?.relu()?)?;
        self.norm3.forward(&(queries + mlp)?)
    }
}

/// The token side of a batch of prompts decoded together: what their masks need.
pub struct BatchTokens {
    /// Final token states `[B, T, D]`.
    hs: Tensor,
    /// Final image keys `[B, P, D]`.
    keys: Tensor,
    /// Predicted IoU of every mask token, `[B, num_mask_tokens]` row-major.
    pub iou: Vec<f32>,
}

impl MaskDecoder {
    /// Runs the two-way transformer and the IoU head for `B` prompts on one image (no mask
    /// input), sharing the image's cached projections: the masks follow from
    /// [`Self::batch_masks`] for the prompts that need them.
    ///
    /// # Shapes
    /// `key_pe`: `[4096, 256]`; `sparse`: `[B, S, 256]` (every prompt with `S` tokens).
    pub fn forward_batch(
        &self,
        cache: &DecoderImageCache,
        key_pe: &Tensor,
        sparse: &Tensor,
    ) -> candle_core::Result<BatchTokens> {
        let (b, _, d) = sparse.dims3()?;
        let out_tokens = self.output_tokens.unsqueeze(0)?;
        let n_out = out_tokens.dim(1)?;
        let tokens = Tensor::cat(
            &[out_tokens.broadcast_as((b, n_out, d))?, sparse.clone()],
            1,
        )?
        .contiguous()?; // [B, T, D]
        let mut queries = tokens.clone();
        let mut keys: Option<Tensor> = None;
        for (i, block) in self.blocks.iter().enumerate() {
            let shared = (i == 0).then_some(cache);
            let (q, k) = block.forward_batch(&queries, keys.as_ref(), &tokens, key_pe, shared)?;
            queries = q;
            keys = Some(k);
        }
        let p_len = cache.keys.dim(0)?;
        let keys = match keys {
            Some(k) => k,
            None => cache
                .keys
                .unsqueeze(0)?
                .broadcast_as((b, p_len, d))?
                .contiguous()?,
        };
        let q = (&queries + &tokens)?;
        let keys_pe = keys.broadcast_add(key_pe)?; // [B, P, D]
        let out = self.final_attn.tokens_to_image_batch(&q, &keys_pe, &keys)?;
        let hs = self.norm_final.forward(&(queries + out)?)?; // [B, T, D]
        let iou = self
            .iou_head
            .forward(&hs.narrow(1, self.lead - 1, 1)?.squeeze(1)?)?; // [B, num_mask_tokens]
        let iou = if self.iou_sigmoid {
            candle_nn::ops::sigmoid(&iou)?
        } else {
            iou
        };
        let iou = iou.flatten_all()?.to_vec1()?;
        Ok(BatchTokens { hs, keys, iou })
    }

    /// The low-res mask logits of mask tokens `tokens` for the batch entries `prompts`:
    /// `[prompts, tokens, 256, 256]`. `high_res` (SAM 2 only, required there) goes into each
    /// prompt's upscaling, as in [`Self::forward`].
    pub fn batch_masks(
        &self,
        batch: &BatchTokens,
        prompts: &[usize],
        tokens: std::ops::Range<usize>,
        high_res: Option<&HighResFeatures>,
    ) -> candle_core::Result<Tensor> {
        if self.obj_score_head.is_some() != high_res.is_some() {
            candle_core::bail!("mask decoder: SAM 2 needs its high-resolution features, SAM none");
        }
        let device = batch.hs.device();
        let k = prompts.len();
        let idx = Tensor::from_vec(
            prompts.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            k,
            device,
        )?;
        let keys = batch.keys.index_select(&idx, 0)?; // [k, P, D]
        let hs = batch.hs.index_select(&idx, 0)?; // [k, T, D]
        let (_, p_len, d) = keys.dims3()?;
        let g = (p_len as f64).sqrt() as usize;
        let hyper = tokens
            .clone()
            .map(|i| self.hypernetworks[i].forward(&hs.narrow(1, self.lead + i, 1)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let m = hyper.len();
        let hyper = Tensor::cat(&hyper, 1)?; // [k, m, 32]
        if let Some(hr) = high_res {
            // SAM 2: the same high-resolution features join every prompt's upscaling, one
            // prompt at a time through the single-prompt path (fused on the CPU).
            let masks = (0..k)
                .map(|j| self.upscale_masks(&keys.get(j)?, &hyper.get(j)?, (g, g), Some(hr)))
                .collect::<candle_core::Result<Vec<_>>>()?; // k × [m, 4g, 4g]
            return Tensor::stack(&masks, 0);
        }
        // Prompts stacked along the rows: the 2 × 2 transposed convolutions do not mix pixels
        // of different rows' windows, so each prompt's upscale is exactly its own.
        let up = self.up1.forward(&keys.reshape((k * g, g, d))?, None)?;
        let up = self.up2.forward(&up, None)?; // [k·4g, 4g, 32]
        let (_, uw, uc) = up.dims3()?;
        let up = up.reshape((k, uw * uw, uc))?;
        let hyper_t = transpose_last2(&hyper)?; // [k, 32, m]
        let masks = transpose_last2(&matmul(&up, &hyper_t)?)?; // [k, m, 4g·4g]
        masks.reshape((k, m, uw, uw))
    }
}
