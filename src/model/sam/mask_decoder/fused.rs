//! The mask decoder's image side on the CPU in tiles of image positions: each block's image →
//! token attention, its residual and `norm4`, and the next token → image attention's scores
//! run in one pass over the image, a tile at a time, on plain f32 slices.
//!
//! PERF: the two-way transformer's image side is a chain of 4096 × 256 passes (keys + PE, the
//! scores, a softmax over the tokens, a transpose, the output product, the residual, the norm,
//! the next keys + PE and scores), each a parallel section of its own that re-read the keys
//! from memory. Here each tile of 64 positions goes through the whole chain while it is in
//! the core's cache, with single-threaded GEMMs, and the threads meet once per pass instead of
//! once per step. The token side (8 tokens) stays in tensors, as in [`MaskDecoder::forward`].
//! On CPUs with AMX the passes' products run in split bfloat16 (`amx_pass`).

use candle_core::{Layout, Module, Storage, StorageRef, Tensor};
use rayon::prelude::*;

use super::{BlockAttention, DecoderAttention, DecoderImageCache, DecoderOutput, MaskDecoder};
use crate::model::ops::amx;
use crate::model::ops::gemm::{filled_by, product_split_k, sgemm, SharedOut};
use crate::model::ops::{contiguous_f32, matmul, to_vec_f32};
use crate::model::simd::{
    add_into, add_into_uninit, div_assign, layer_norm_rows, softmax_columns, softmax_inplace,
};

mod amx_pass;

/// Image positions per task of a pass.
const TILE: usize = 64;

/// A CPU tensor's f32 data, borrowed while the guard lives.
struct Host<'a>(StorageRef<'a>, &'a Layout);

impl<'a> Host<'a> {
    fn new(t: &'a Tensor) -> Self {
        let (s, l) = t.storage_and_layout();
        Self(s, l)
    }

    fn data(&self) -> candle_core::Result<&[f32]> {
        match &*self.0 {
            Storage::Cpu(c) => contiguous_f32(c, self.1),
            _ => candle_core::bail!("fused decoder: expected a CPU tensor"),
        }
    }
}

/// Where an image → token attention's scores come from.
enum ScoresFrom<'a> {
    /// The first block's image queries, projected once per image: `q_t [heads, c, P]`
    /// against the token keys per head `kh [heads, T, c]`.
    Cached { q_t: &'a [f32], kh: Vec<f32> },
    /// `m [heads·T, D]` (`k_h · W_q,h`) against keys + PE, plus `bias [heads·T]`
    /// (`k_h · b_q,h`).
    Projected { m: Vec<f32>, bias: Vec<f32> },
}

/// The token-side operands of one block's image → token attention and `norm4`.
struct ImageToTokens<'a> {
    scores: ScoresFrom<'a>,
    /// `Σ_h v_h · W_out,hᵀ` rows, `[heads·T, D]`.
    n: Vec<f32>,
    /// The output projection's bias, `[D]`.
    out_bias: Vec<f32>,
    heads: usize,
    tokens: usize,
    head_dim: usize,
    /// The attention's `√c`.
    scale: f32,
    /// `norm4`'s weight, bias and epsilon.
    norm: (Vec<f32>, Vec<f32>, f32),
}

impl ImageToTokens<'_> {
    /// The first block's scores of positions `p0 .. p0 + np` from the cache, by token:
    /// `q_t [heads, c, P]` and `kh [heads, T, c]` → `st [heads·T, np]`.
    fn cached_scores(
        &self,
        q_t: &[f32],
        kh: &[f32],
        (p0, np, p_len): (usize, usize, usize),
        st: &mut [f32],
    ) {
        let (t, c) = (self.tokens, self.head_dim);
        assert!(st.len() >= self.heads * t * np && kh.len() >= self.heads * t * c);
        assert!(q_t.len() >= self.heads * c * p_len && p0 + np <= p_len);
        for h in 0..self.heads {
            // SAFETY: dst `[t × np]` rows h·t.. of `st`; lhs `kh[h] [t × c]` row-major; rhs
            // columns p0..p0+np of `q_t[h] [c × P]`; all in bounds (checked above).
            unsafe {
                sgemm(
                    (t, np, c),
                    (st.as_mut_ptr().add(h * t * np), 1, np as isize),
                    false,
                    (kh.as_ptr().add(h * t * c), 1, c as isize),
                    (q_t[h * c * p_len + p0..].as_ptr(), 1, p_len as isize),
                    1.0,
                    gemm::Parallelism::None,
                );
            }
        }
    }
}

/// One pass over the image: the inputs, and the next attention's token queries.
struct Pass<'a> {
    keys: &'a [f32],
    pe: &'a [f32],
    i2t: &'a ImageToTokens<'a>,
    /// The next token → image attention's `q_h · W_k,h` rows, `[R, D]`.
    next_qk: &'a [f32],
    dim: usize,
}

impl Pass<'_> {
    /// `(D, P, heads·T, R)`: the width, the positions, the rows of the image → token scores
    /// and of the next attention's.
    fn sizes(&self) -> (usize, usize, usize, usize) {
        let d = self.dim;
        let r1 = self.i2t.heads * self.i2t.tokens;
        (d, self.keys.len() / d, r1, self.next_qk.len() / d)
    }

    /// Returns the new keys `[P, D]` and the next attention's raw scores `[R, P]` (without
    /// the per-row `q_h · b_k,h`, which a softmax over the positions cancels).
    fn run(&self) -> (Vec<f32>, Vec<f32>) {
        let (d, p_len, r1, r2) = self.sizes();
        let i2t = self.i2t;
        let tiles = p_len.div_ceil(TILE);
        let pass = |out_keys: SharedOut, out_scores: SharedOut| {
            (0..tiles).into_par_iter().for_each_init(
                || (vec![0f32; TILE * d], vec![0f32; r1 * TILE]),
                |(kpe, st), tile| {
                    let p0 = tile * TILE;
                    let np = TILE.min(p_len - p0);
                    let keys = &self.keys[p0 * d..][..np * d];
                    let pe = &self.pe[p0 * d..][..np * d];
                    let kpe = &mut kpe[..np * d];
                    let st = &mut st[..r1 * np];
                    // Scores transposed, `[heads·T, np]`.
                    match &i2t.scores {
                        ScoresFrom::Projected { m, bias } => {
                            add_into(kpe, keys, pe);
                            for (row, b) in st.chunks_exact_mut(np).zip(bias) {
                                row.fill(*b);
                            }
                            // SAFETY: dst `[r1 × np]` row-major in `st`; lhs `m [r1 × d]`
                            // row-major; rhs `kpeᵀ`, `[d × np]` read with strides (d, 1).
                            unsafe {
                                sgemm(
                                    (r1, np, d),
                                    (st.as_mut_ptr(), 1, np as isize),
                                    true,
                                    (m.as_ptr(), 1, d as isize),
                                    (kpe.as_ptr(), d as isize, 1),
                                    1.0,
                                    gemm::Parallelism::None,
                                );
                            }
                        }
                        ScoresFrom::Cached { q_t, kh } => {
                            i2t.cached_scores(q_t, kh, (p0, np, p_len), st);
                        }
                    }
                    for slab in st.chunks_exact_mut(i2t.tokens * np) {
                        softmax_columns(slab, np, i2t.scale);
                    }
                    // SAFETY: rows p0..p0+np of the keys are this task's alone; they are all
                    // written (initialised) before the slice of them is made.
                    let out = unsafe {
                        let rows = out_keys.uninit_row(p0 * d, np * d);
                        for (row, k) in rows.chunks_exact_mut(d).zip(keys.chunks_exact(d)) {
                            add_into_uninit(row, k, &i2t.out_bias);
                        }
                        out_keys.row(p0 * d, np * d)
                    };
                    // SAFETY: dst `[np × d]` row-major in `out`; lhs `stᵀ`, `[np × r1]` read
                    // with strides (np, 1); rhs `n [r1 × d]` row-major.
                    unsafe {
                        sgemm(
                            (np, d, r1),
                            (out.as_mut_ptr(), 1, d as isize),
                            true,
                            (st.as_ptr(), np as isize, 1),
                            (i2t.n.as_ptr(), 1, d as isize),
                            1.0,
                            gemm::Parallelism::None,
                        );
                    }
                    let (w, b, eps) = &i2t.norm;
                    layer_norm_rows(out, w, b, *eps);
                    add_into(kpe, out, pe);
                    let span = (r2 - 1) * p_len + np;
                    // SAFETY: dst: columns p0..p0+np of the `[r2 × P]` scores, this task's
                    // alone, within `span` of element p0 (checked); lhs `next_qk [r2 × d]`
                    // row-major; rhs `kpeᵀ` as above.
                    unsafe {
                        sgemm(
                            (r2, np, d),
                            (out_scores.ptr_within(p0, span), 1, p_len as isize),
                            false,
                            (self.next_qk.as_ptr(), 1, d as isize),
                            (kpe.as_ptr(), d as isize, 1),
                            1.0,
                            gemm::Parallelism::None,
                        );
                    }
                },
            );
        };
        // SAFETY: every tile writes its rows of the keys (the residual and bias) and its
        // columns of the scores (a GEMM that does not read its destination) before anything
        // reads them; the tiles cover all positions.
        unsafe { filled_by(p_len * d, |k| filled_by(r2 * p_len, |s| pass(k, s)).0) }
    }
}

/// Softmax of each row of `scores [R, P]` divided by `scale`, in place, then `probs · keys`
/// (`keys [P, D]`) → `[R, D]`.
fn attend_rows(scores: &mut [f32], keys: &[f32], scale: f32, d: usize) -> Vec<f32> {
    let p_len = keys.len() / d;
    let r = scores.len() / p_len;
    scores.par_chunks_mut(p_len).for_each(|row| {
        div_assign(row, scale);
        softmax_inplace(row);
    });
    // [r, d]: the keys read as the product's `[P, d]` right-hand side, in place.
    product_split_k(scores, keys, (r, d, p_len))
}

impl DecoderAttention {
    /// Tokens attend to the image through the per-image cache's projections, on the CPU in
    /// f32: `qh [heads, T, c]` and the cache's `k_t [heads, c, P]`, `v [heads, P, c]` →
    /// (`[heads, T, c]`, probs `[heads, T, P]`); `None` when an operand is not on the CPU in
    /// f32 (the caller takes the tensor path).
    ///
    /// PERF: the heads run in parallel, each through its scores, softmax and `P·V` while its
    /// `[T, P]` scores are in cache, with no tensor operation between: 0.7 → 0.37-0.45 ms of the
    /// click's serial part, where three tensor operations made and copied 1 MB each.
    pub(super) fn cached_attention_cpu(
        &self,
        qh: &Tensor,
        cache: &super::ProjectedImage,
    ) -> candle_core::Result<Option<(Tensor, Tensor)>> {
        use crate::model::ops::on_cpu_f32;
        if !(on_cpu_f32(qh) && on_cpu_f32(&cache.k_t) && on_cpu_f32(&cache.v)) {
            return Ok(None);
        }
        let (nh, t, c) = qh.dims3()?;
        let p_len = cache.k_t.dim(2)?;
        if cache.k_t.dims() != [nh, c, p_len] || cache.v.dims() != [nh, p_len, c] {
            candle_core::bail!(
                "decoder cache {:?} for queries {:?}",
                cache.k_t.dims(),
                qh.dims()
            );
        }
        let (qh_host, k_host, v_host) = (Host::new(qh), Host::new(&cache.k_t), Host::new(&cache.v));
        let (q, k_t, v) = (qh_host.data()?, k_host.data()?, v_host.data()?);
        let scale = self.scale() as f32;
        let head = |h: usize, probs: SharedOut, out: SharedOut| {
            let (at, o_at) = (h * t * p_len, h * t * c);
            // SAFETY: dst `[t × P]`, this head's block of the probabilities, written whole
            // (no read: not accumulating) before it is read; lhs `q_h [t × c]`, rhs
            // `k_t[h] [c × P]`, both row-major in bounds (the dims were checked).
            let pr = unsafe {
                sgemm(
                    (t, p_len, c),
                    (probs.ptr_within(at, t * p_len), 1, p_len as isize),
                    false,
                    (q[h * t * c..].as_ptr(), 1, c as isize),
                    (k_t[h * c * p_len..].as_ptr(), 1, p_len as isize),
                    1.0,
                    gemm::Parallelism::None,
                );
                probs.row(at, t * p_len)
            };
            for row in pr.chunks_exact_mut(p_len) {
                div_assign(row, scale);
                softmax_inplace(row);
            }
            // SAFETY: dst `[t × c]`, this head's block of the output, written whole; lhs the
            // probabilities above, rhs `v[h] [P × c]` row-major in bounds.
            unsafe {
                sgemm(
                    (t, c, p_len),
                    (out.ptr_within(o_at, t * c), 1, c as isize),
                    false,
                    (pr.as_ptr(), 1, p_len as isize),
                    (v[h * p_len * c..].as_ptr(), 1, c as isize),
                    1.0,
                    gemm::Parallelism::None,
                );
            }
        };
        // SAFETY: each head writes its own blocks of both outputs whole (above), and the
        // heads cover them.
        let (probs, out) = unsafe {
            filled_by(nh * t * p_len, |probs| {
                filled_by(nh * t * c, |out| {
                    (0..nh).into_par_iter().for_each(|h| head(h, probs, out))
                })
                .0
            })
        };
        let cpu = candle_core::Device::Cpu;
        Ok(Some((
            Tensor::from_vec(out, (nh, t, c), &cpu)?,
            Tensor::from_vec(probs, (nh, t, p_len), &cpu)?,
        )))
    }

    /// The token side of an image → token attention whose keys and values are the tokens
    /// `k`, `v` `[T, D]`, for a [`Pass`]; `cached_q_t` is the image queries already projected.
    fn image_to_tokens_operands<'a>(
        &self,
        k: &Tensor,
        v: &Tensor,
        cached_q_t: Option<&'a [f32]>,
        norm: (Vec<f32>, Vec<f32>, f32),
    ) -> candle_core::Result<ImageToTokens<'a>> {
        let (t, d) = k.dims2()?;
        let (nh, c) = (self.num_heads, self.head_dim());
        let kh = self.split_heads(&self.k_proj.forward(k)?)?; // [heads, T, c]
        let vh = self.split_heads(&self.v_proj.forward(v)?)?; // [heads, T, c]
        let scores = match cached_q_t {
            Some(q_t) => ScoresFrom::Cached {
                q_t,
                kh: to_vec_f32(&kh)?,
            },
            None => ScoresFrom::Projected {
                m: to_vec_f32(&self.head_products(&kh, &self.wq)?)?,
                bias: to_vec_f32(&self.head_biases(&kh, &self.bq)?)?,
            },
        };
        let n = to_vec_f32(&matmul(&vh, &self.wo_heads)?.reshape((nh * t, d))?)?;
        Ok(ImageToTokens {
            scores,
            n,
            out_bias: to_vec_f32(self.out_bias()?)?,
            heads: nh,
            tokens: t,
            head_dim: c,
            scale: self.scale() as f32,
            norm,
        })
    }

    /// `q_h · W_k,h` for every head and token: `q [T, D]` → `[heads·T, D]`.
    fn token_query_keys(&self, q: &Tensor) -> candle_core::Result<Vec<f32>> {
        let qh = self.split_heads(&self.q_proj.forward(q)?)?; // [heads, T, c]
        to_vec_f32(&self.head_products(&qh, &self.wk)?)
    }
}

impl MaskDecoder {
    /// [`Self::forward`] on the CPU in f32 with the image side in tiled passes (see the
    /// module's notes): `keys0` is the first block's image input `[P, D]` (the cache's keys,
    /// or the embeddings plus the dense prompt), `tokens` the output and prompt tokens
    /// `[T, D]`, `grid` the embedding's `(h, w)`; the rest as there.
    pub(super) fn forward_fused(
        &self,
        keys0: &Tensor,
        key_pe: &Tensor,
        tokens: &Tensor,
        cache: Option<&DecoderImageCache>,
        grid: (usize, usize),
        high_res: Option<&super::HighResFeatures>,
    ) -> candle_core::Result<DecoderOutput> {
        let (p_len, d) = keys0.dims2()?;
        let cpu = candle_core::Device::Cpu;

        // Block 0's token side, its token → image attention included (read from the cache's
        // projections, or over the whole image without a cache).
        let first = &self.blocks[0];
        let (queries, self_attn) = first.tokens_self_attention(tokens, tokens)?;
        let q = (&queries + tokens)?;
        let (out, token_to_image) = match cache {
            Some(c) => {
                first
                    .cross_token_to_image
                    .tokens_to_image(&q, None, &c.keys, Some(&c.t2i))?
            }
            None => {
                let keys_pe = (keys0 + key_pe)?;
                first
                    .cross_token_to_image
                    .tokens_to_image(&q, Some(&keys_pe), keys0, None)?
            }
        };
        let mut queries = first.tokens_after_cross(&queries, &out)?;
        let mut attn = vec![BlockAttention {
            self_attn,
            token_to_image,
        }];
        // The image side's inputs as host data, borrowed from here on (no tensor operation
        // reads these tensors while they are).
        let pe_host = Host::new(key_pe);
        let pe = pe_host.data()?;
        let q_host = cache.map(|c| Host::new(&c.i2t_q_t));
        let cached_q_t = q_host.as_ref().map(Host::data).transpose()?;
        let keys0_host = Host::new(keys0);

        let mut keys: Option<Vec<f32>> = None;
        let mut final_probs = None;
        let mut hs = None;
        for (i, block) in self.blocks.iter().enumerate() {
            // This block's image → token operands.
            let q = (&queries + tokens)?;
            let i2t = block.cross_image_to_token.image_to_tokens_operands(
                &q,
                &queries,
                if i == 0 { cached_q_t } else { None },
                block.norm4.to_host()?,
            )?;
            // The next token → image attention: the next block's, after its self-attention,
            // or the final one.
            let next = self.blocks.get(i + 1);
            let (next_queries, next_self) = match next {
                Some(b) => {
                    let (q, s) = b.tokens_self_attention(&queries, tokens)?;
                    (q, Some(s))
                }
                None => (queries.clone(), None),
            };
            let next_attn = match next {
                Some(b) => &b.cross_token_to_image,
                None => &self.final_attn,
            };
            let next_qk = next_attn.token_query_keys(&(&next_queries + tokens)?)?;
            let (new_keys, mut scores) = {
                let input = match &keys {
                    Some(k) => k.as_slice(),
                    None => keys0_host.data()?,
                };
                let pass = Pass {
                    keys: input,
                    pe,
                    i2t: &i2t,
                    next_qk: &next_qk,
                    dim: d,
                };
                if amx::available() {
                    pass.run_amx(&amx_pass::PackedPass::new(&pass))
                } else {
                    pass.run()
                }
            };
            let av = attend_rows(&mut scores, &new_keys, next_attn.scale() as f32, d);
            let rows = next_qk.len() / d;
            let av = Tensor::from_vec(av, (rows, d), &cpu)?;
            let probs = Tensor::from_vec(
                scores,
                (next_attn.num_heads, rows / next_attn.num_heads, p_len),
                &cpu,
            )?;
            let out = next_attn.tokens_from_image_product(&av)?;
            keys = Some(new_keys);
            match (next, next_self) {
                (Some(b), Some(self_attn)) => {
                    queries = b.tokens_after_cross(&next_queries, &out)?;
                    attn.push(BlockAttention {
                        self_attn,
                        token_to_image: probs,
                    });
                }
                _ => {
                    hs = Some(self.norm_final.forward(&(next_queries + out)?)?);
                    final_probs = Some(probs);
                }
            }
        }
        let (Some(keys), Some(hs), Some(final_token_to_image)) = (keys, hs, final_probs) else {
            candle_core::bail!("mask decoder without blocks");
        };
        let keys = Tensor::from_vec(keys, (p_len, d), &cpu)?;
        self.finish(&hs, &keys, grid, high_res, attn, final_token_to_image)
    }
}

#[cfg(test)]
mod tests {
    use super::super::HighResFeatures;
    use super::*;
    use crate::model::ops::testing::{tensor, vals, weights};
    use crate::model::sam::config::{EncoderConfig, HieraConfig, SamConfig, TinyVitConfig};
    use crate::weights::Scope;
    use candle_core::Device;

    /// Largest difference allowed, relative to the largest value: the two paths differ in
    /// f32 summation order (measured ≤ 1.2e-6) and, on CPUs with AMX, in the passes'
    /// products in split bfloat16 (measured ≤ 4.8e-6); a 1% error in one softmax's scale
    /// gives more than this.
    const TOL: f32 = 1e-5;

    /// `max |a − b|` over `max |b|`.
    fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) = (to_vec_f32(a).expect("a"), to_vec_f32(b).expect("b"));
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        worst / scale
    }

    /// The CPU attention through the per-image cache equals the tensor operations it
    /// replaces (scores, scaled softmax, `P·V`), probabilities and output, for T = 7 tokens.
    #[test]
    fn cached_attention_equals_the_tensor_ops() {
        use crate::model::ops::softmax_last_dim_scaled;
        let dev = Device::Cpu;
        let cfg = SamConfig::with_encoder(EncoderConfig::TinyVit(TinyVitConfig::mobile_sam()));
        let shapes = cfg
            .state_dict_shapes()
            .into_iter()
            .filter(|(k, _)| k.starts_with("mask_decoder."))
            .collect();
        let w = weights(shapes);
        let dec = MaskDecoder::load(&Scope::new(&w, &dev).pp("mask_decoder"), &cfg).expect("load");
        let (g, d) = (64, 256);
        let emb = tensor(vals(d * g * g, 8), &[1, d, g, g]);
        let pe = tensor(vals(g * g * d, 9), &[g * g, d]);
        let no_mask = tensor(vals(d, 10), &[1, d, 1, 1]);
        let cache = dec.image_cache(&emb, &pe, &no_mask).expect("cache");
        let attn = &dec.blocks[0].cross_token_to_image;
        let q = tensor(vals(7 * d, 11), &[7, d]);
        let qh = attn
            .split_heads(&attn.q_proj.forward(&q).expect("q"))
            .expect("heads");
        let (out, probs) = attn
            .cached_attention_cpu(&qh, &cache.t2i)
            .expect("runs")
            .expect("on the CPU");
        let want_probs =
            softmax_last_dim_scaled(&matmul(&qh, &cache.t2i.k_t).expect("qk"), attn.scale())
                .expect("softmax");
        let want_out = matmul(&want_probs, &cache.t2i.v).expect("pv");
        assert_eq!(probs.dims(), want_probs.dims());
        assert_eq!(out.dims(), want_out.dims());
        assert!(rel_diff(&probs, &want_probs) < TOL, "probabilities");
        assert!(rel_diff(&out, &want_out) < TOL, "output");
    }

    /// The tiled CPU decoder equals the tensor path (block after block, the CPU kernels of
    /// each op) on SAM's and SAM 2's decoders with the official shapes and deterministic
    /// weights: with the per-image cache and with a dense mask prompt, every attention map,
    /// the mask logits, IoU and object score.
    #[test]
    fn fused_decoder_equals_the_tensor_path() {
        let dev = Device::Cpu;
        let configs = [
            (
                SamConfig::with_encoder(EncoderConfig::TinyVit(TinyVitConfig::mobile_sam())),
                "mask_decoder",
            ),
            (
                SamConfig::with_encoder(EncoderConfig::Hiera(HieraConfig::tiny())),
                "sam_mask_decoder",
            ),
        ];
        for (cfg, prefix) in configs {
            let shapes = cfg
                .state_dict_shapes()
                .into_iter()
                .filter(|(k, _)| k.starts_with(&format!("{prefix}.")))
                .collect();
            let w = weights(shapes);
            let dec = MaskDecoder::load(&Scope::new(&w, &dev).pp(prefix), &cfg).expect("load");
            let (g, d) = (64, 256);
            let emb = tensor(vals(d * g * g, 1), &[1, d, g, g]);
            let pe = tensor(vals(g * g * d, 2), &[g * g, d]);
            let no_mask = tensor(vals(d, 3), &[1, d, 1, 1]);
            let dense = tensor(vals(d * g * g, 4), &[1, d, g, g]);
            let sparse = tensor(vals(3 * d, 5), &[1, 3, d]);
            let high_res = cfg.is_sam2().then(|| {
                let s1 = tensor(vals(64 * 128 * 128, 6), &[1, 64, 128, 128]);
                let s0 = tensor(vals(32 * 256 * 256, 7), &[1, 32, 256, 256]);
                HighResFeatures::new(&s1, &s0).expect("high-res")
            });
            let cache = dec.image_cache(&emb, &pe, &no_mask).expect("cache");
            let tokens = Tensor::cat(
                &[dec.output_tokens.clone(), sparse.squeeze(0).expect("s")],
                0,
            )
            .expect("tokens");
            let with_dense = super::super::flatten_grid(&(&emb + &dense).expect("sum")).expect("k");
            for (what, keys, cache) in [
                ("cached", cache.keys.clone(), Some(&cache)),
                ("dense prompt", with_dense, None),
            ] {
                let hr = high_res.as_ref();
                let fused = dec
                    .forward_fused(&keys, &pe, &tokens, cache, (g, g), hr)
                    .expect("fused");
                let plain = dec
                    .forward_tensors(keys, &pe, &tokens, cache, (g, g), hr)
                    .expect("tensors");
                let ctx = format!("{prefix} {what}");
                assert!(rel_diff(&fused.masks, &plain.masks) < TOL, "{ctx}: masks");
                assert!(rel_diff(&fused.iou, &plain.iou) < TOL, "{ctx}: IoU");
                if let (Some(a), Some(b)) = (&fused.object_score, &plain.object_score) {
                    assert!(rel_diff(a, b) < TOL, "{ctx}: object score");
                }
                assert_eq!(fused.blocks.len(), plain.blocks.len());
                for (i, (a, b)) in fused.blocks.iter().zip(&plain.blocks).enumerate() {
                    assert_eq!(a.token_to_image.dims(), b.token_to_image.dims());
                    assert!(rel_diff(&a.self_attn, &b.self_attn) < TOL, "{ctx} {i}");
                    let t2i = rel_diff(&a.token_to_image, &b.token_to_image);
                    assert!(t2i < TOL, "{ctx}: block {i} token → image {t2i}");
                }
                let fin = rel_diff(&fused.final_token_to_image, &plain.final_token_to_image);
                assert!(fin < TOL, "{ctx}: final attention {fin}");
            }
        }
    }
}
