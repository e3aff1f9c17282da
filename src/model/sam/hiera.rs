//! SAM 2.1's image encoder (`sam2/modeling/backbones/hieradet.py`, `image_encoder.py`): the
//! Hiera trunk (stride-4 patch embedding, a position embedding made of an interpolated
//! background plus a tiled window, multi-scale blocks that pool their queries at each stage
//! change, windowed or global attention per the config) and the FPN neck (1×1 lateral
//! convolutions, a nearest-neighbour top-down path into the 64 × 64 level, the coarsest level
//! dropped: `scalp` 1). Image mode then projects the two finest levels with the mask decoder's
//! `conv_s0` / `conv_s1` and adds `no_mem_embed` to the 64 × 64 embedding, as
//! `SAM2ImagePredictor.set_image` does.

use anyhow::{bail, Result};
use candle_core::{DType, Module, Tensor};

use super::config::{HieraBlockSpec, HieraConfig, HIERA_GRID, PROMPT_EMBED_DIM};
use super::image_encoder::{window_partition, window_unpartition};
use crate::model::ops::attention::{dense_attention, HieraWindowAttentionOp};
use crate::model::ops::{matmul, nhwc_to_nchw, on_cpu_f32, softmax_last_dim, Conv2d, ImageLayout};
use crate::model::ops::{residual_mlp, LayerNorm, Linear};
use crate::weights::Scope;

/// What the Hiera encoder gives an image: the mask decoder's three inputs.
pub struct HieraFeatures {
    /// The image embedding with `no_mem_embed` added, `[1, 256, 64, 64]` f32.
    pub image_embed: Tensor,
    /// `conv_s1` of the FPN's 128 × 128 level, `[1, 64, 128, 128]` f32.
    pub feat_s1: Tensor,
    /// `conv_s0` of the FPN's 256 × 256 level, `[1, 32, 256, 256]` f32.
    pub feat_s0: Tensor,
}

/// Max-pools `[B, H, W, C]` over 2 × 2 cells (`nn.MaxPool2d(2, 2)`, odd edges dropped).
fn max_pool_2x2(x: &Tensor) -> candle_core::Result<Tensor> {
    if on_cpu_f32(x) {
        return x.contiguous()?.apply_op1_no_bwd(&MaxPool2x2);
    }
    let (b, h, w, c) = x.dims4()?;
    let (h2, w2) = (h / 2, w / 2);
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.narrow(1, 0, 2 * h2)?.narrow(2, 0, 2 * w2)?
    } else {
        x.clone()
    };
    x.reshape((b, h2, 2, w2, 2, c))?.max(4)?.max(2)
}

/// [`max_pool_2x2`] on the CPU: one pass, in parallel over output rows.
///
/// PERF: candle's two strided max reductions over the reshaped `[B, H/2, 2, W/2, 2, C]`
/// walk it element by element; each output row here is four contiguous input rows.
struct MaxPool2x2;

impl candle_core::CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "segattn-max-pool-2x2"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let x = crate::model::ops::contiguous_f32(storage, layout)?;
        let (b, h, w, c) = layout.shape().dims4()?;
        let (h2, w2) = (h / 2, w / 2);
        let mut out = vec![0f32; b * h2 * w2 * c];
        out.par_chunks_mut(w2 * c.max(1))
            .enumerate()
            .for_each(|(row, line)| {
                let (bi, oy) = (row / h2.max(1), row % h2.max(1));
                // The input pixel (y, x) of this image.
                let at = |y: usize, px: usize| &x[((bi * h + y) * w + px) * c..][..c];
                for (ox, out_px) in line.chunks_exact_mut(c).enumerate() {
                    let (y, px) = (2 * oy, 2 * ox);
                    out_px.copy_from_slice(at(y, px));
                    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                        for (m, &v) in out_px.iter_mut().zip(at(y + dy, px + dx)) {
                            *m = m.max(v);
                        }
                    }
                }
            });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((b, h2, w2, c)),
        ))
    }
}

/// Hiera's attention (`MultiScaleAttention`): one qkv projection to the output width, the
/// queries max-pooled in a stage's first block, plain scaled dot-product attention, output
/// projection.
struct HieraAttention {
    qkv: Linear,
    /// The qkv projection's bias as f32 host data `[3·C_out]`: the q, k, v of a padding
    /// token (the padding is zeros), for the CPU window kernel.
    pad_qkv: Vec<f32>,
    proj: Linear,
    heads: usize,
    dim_out: usize,
    pool: bool,
    /// Global attention's products in split bfloat16 on AMX tiles where the CPU has them
    /// ([`dense_attention`]); set for every loaded model.
    split_bf16: bool,
}

impl HieraAttention {
    /// The CPU path of a whole block's attention on the normed image `x` `[1, H, W, C]` f32:
    /// windows of `window` tokens (0: global attention) → `[1, H', W', C_out]` (`H' = H / 2`
    /// when the queries are pooled), plus `residual` (of the output's shape) in the output
    /// projection's GEMM.
    fn forward_cpu(
        &self,
        x: &Tensor,
        window: usize,
        residual: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (_, h, w, _) = x.dims4()?;
        let (nh, c) = (self.heads, self.dim_out);
        let qkv = self.qkv.forward(x)?; // [1, H, W, 3·C_out], image order
        let out = if window == 0 && !self.pool {
            let data = qkv.flatten_all()?.to_vec1::<f32>()?;
            let out = dense_attention(&data, h * w, nh, c / nh, self.split_bf16);
            Tensor::from_vec(out, (1, h, w, c), qkv.device())?
        } else {
            // A global block that pools (no official config has one) is one window.
            let window = if window == 0 { h.max(w) } else { window };
            qkv.apply_op1_no_bwd(&HieraWindowAttentionOp {
                heads: nh,
                window,
                pool: self.pool,
                pad_qkv: &self.pad_qkv,
                split_bf16: self.split_bf16,
            })?
        };
        self.proj.forward_add(&out, residual, false)
    }

    /// The official order on any device: the normed image `x` `[B, H, W, C]` padded and
    /// partitioned into windows of `window` tokens (0: global attention), attended, and put
    /// back → `[B, H', W', C_out]` (GPUs, f16, bf16; the reference of [`Self::forward_cpu`]).
    fn forward_image(&self, x: &Tensor, window: usize) -> candle_core::Result<Tensor> {
        if window == 0 {
            return self.forward(x);
        }
        let (_, h, w, _) = x.dims4()?;
        let (win, _) = window_partition(x, window)?;
        let out = self.forward(&win)?;
        // Pooled windows are half as wide; the grid they tile is the shortcut's.
        let (ows, oh, ow) = if self.pool {
            (window / 2, h / 2, w / 2)
        } else {
            (window, h, w)
        };
        let padded = (oh.div_ceil(ows) * ows, ow.div_ceil(ows) * ows);
        window_unpartition(&out, ows, padded, (oh, ow))
    }

    /// `[B, h, w, C]` (windows or the whole grid) → `[B, h', w', C_out]` (`h' = h / 2` when the
    /// queries are pooled): the candle path.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, h, w, _) = x.dims4()?;
        let (nh, c) = (self.heads, self.dim_out);
        let hd = c / nh;
        let qkv = self.qkv.forward(x)?; // [B, h, w, 3·C_out]
        let split = |t: &Tensor, hh: usize, ww: usize| -> candle_core::Result<Tensor> {
            // [B, hh, ww, C] → [B·heads, hh·ww, hd]
            t.reshape((b, hh * ww, nh, hd))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * nh, hh * ww, hd))
        };
        let q = qkv.narrow(3, 0, c)?;
        let (q, qh, qw) = if self.pool {
            (max_pool_2x2(&q)?, h / 2, w / 2)
        } else {
            (q, h, w)
        };
        let q = split(&q, qh, qw)?;
        let k = split(&qkv.narrow(3, c, c)?, h, w)?;
        let v = split(&qkv.narrow(3, 2 * c, c)?, h, w)?;
        let scores = (matmul(&q, &k.t()?)? / (hd as f64).sqrt())?; // [B·heads, q, k]
        let out = matmul(&softmax_last_dim(&scores)?, &v)? // [B·heads, q, hd]
            .reshape((b, nh, qh * qw, hd))?
            .transpose(1, 2)?
            .reshape((b, qh, qw, c))?;
        self.proj.forward(&out)
    }
}

/// One Hiera block (`MultiScaleBlock`).
struct HieraBlock {
    norm1: LayerNorm,
    attn: HieraAttention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    /// The shortcut's projection to the doubled width (a stage's first block).
    proj: Option<Linear>,
    spec: HieraBlockSpec,
}

impl HieraBlock {
    fn load(s: &Scope, spec: HieraBlockSpec) -> Result<Self> {
        let (d, o) = (spec.dim, spec.dim_out);
        if o % spec.heads != 0 {
            bail!("Hiera block of width {o} cannot have {} heads", spec.heads);
        }
        Ok(Self {
            norm1: LayerNorm::load(&s.pp("norm1"), d, 1e-6)?,
            attn: HieraAttention {
                qkv: Linear::load(&s.pp("attn.qkv"), d, 3 * o, true)?.split_bf16(),
                pad_qkv: s
                    .get("attn.qkv.bias", &[3 * o])?
                    .to_dtype(DType::F32)?
                    .to_vec1()?,
                proj: Linear::load(&s.pp("attn.proj"), o, o, true)?.split_bf16(),
                heads: spec.heads,
                dim_out: o,
                pool: spec.pool,
                split_bf16: true,
            },
            norm2: LayerNorm::load(&s.pp("norm2"), o, 1e-6)?,
            fc1: Linear::load(&s.pp("mlp.layers.0"), o, 4 * o, true)?.split_bf16(),
            fc2: Linear::load(&s.pp("mlp.layers.1"), 4 * o, o, true)?.split_bf16(),
            proj: if d != o {
                Some(Linear::load(&s.pp("proj"), d, o, true)?.split_bf16())
            } else {
                None
            },
            spec,
        })
    }

    /// `[1, H, W, C]` → `[1, H', W', C_out]`
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.norm1.forward(x)?;
        let shortcut = match &self.proj {
            Some(p) if self.spec.pool => max_pool_2x2(&p.forward(&y)?)?,
            Some(p) => p.forward(&y)?,
            None => x.clone(),
        };
        let ws = self.spec.window;
        let x = if on_cpu_f32(&y) && y.dim(0)? == 1 {
            self.attn.forward_cpu(&y, ws, &shortcut)?
        } else {
            (shortcut + self.attn.forward_image(&y, ws)?)?
        };
        residual_mlp(&x, Some(&self.norm2), &self.fc1, &self.fc2)
    }
}

/// PyTorch's cubic convolution weights for a fractional offset `t` (`A = −0.75`), the taps at
/// −1, 0, 1, 2.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Source taps and weights of a bicubic resize from `n_in` to `n_out` samples
/// (`align_corners=False`, edges clamped), as `F.interpolate(mode="bicubic")`.
fn cubic_taps(n_in: usize, n_out: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|o| {
            let real = scale * (o as f32 + 0.5) - 0.5;
            let base = real.floor();
            let w = cubic_weights(real - base);
            let idx = [-1, 0, 1, 2].map(|d| (base as i64 + d).clamp(0, n_in as i64 - 1) as usize);
            (idx, w)
        })
        .collect()
}

/// Bicubic resize of channels-first `[C, ih, iw]` to `[C, oh, ow]` (rows along x first, then
/// the four rows combined, as PyTorch's CPU kernel).
fn resize_bicubic(
    src: &[f32],
    c: usize,
    (ih, iw): (usize, usize),
    (oh, ow): (usize, usize),
) -> Vec<f32> {
    let (ty, tx) = (cubic_taps(ih, oh), cubic_taps(iw, ow));
    let mut out = vec![0f32; c * oh * ow];
    for ch in 0..c {
        let plane = &src[ch * ih * iw..(ch + 1) * ih * iw];
        for (oy, (iy, wy)) in ty.iter().enumerate() {
            for (ox, (ix, wx)) in tx.iter().enumerate() {
                let row = |y: usize| -> f32 {
                    let r = &plane[y * iw..(y + 1) * iw];
                    wx[0] * r[ix[0]] + wx[1] * r[ix[1]] + wx[2] * r[ix[2]] + wx[3] * r[ix[3]]
                };
                out[(ch * oh + oy) * ow + ox] = wy[0] * row(iy[0])
                    + wy[1] * row(iy[1])
                    + wy[2] * row(iy[2])
                    + wy[3] * row(iy[3]);
            }
        }
    }
    out
}

/// `outer ∘ inner` of two 1×1 convolutions given as (`[out, in]` weight, `[out]` bias) f32
/// host data: the weight `W_o·W_i` and bias `W_o·b_i + b_o`, summed in f64.
fn compose(
    (w_o, b_o): (Vec<f32>, Vec<f32>),
    (w_i, b_i): (Vec<f32>, Vec<f32>),
) -> (Vec<f32>, Vec<f32>) {
    let (out, mid) = (b_o.len(), b_i.len());
    let inp = w_i.len() / mid.max(1);
    let mut w = vec![0f32; out * inp];
    let mut b = vec![0f32; out];
    for o in 0..out {
        let row = &w_o[o * mid..][..mid];
        for (j, wj) in w[o * inp..][..inp].iter_mut().enumerate() {
            let sum: f64 = (0..mid)
                .map(|m| f64::from(row[m]) * f64::from(w_i[m * inp + j]))
                .sum();
            *wj = sum as f32;
        }
        let sum: f64 = (0..mid)
            .map(|m| f64::from(row[m]) * f64::from(b_i[m]))
            .sum();
        b[o] = (sum + f64::from(b_o[o])) as f32;
    }
    (w, b)
}

/// The trunk's position embedding on a `grid × grid` token grid, channels-last
/// `[grid, grid, C]`: the background `pos_embed` `[1, C, bh, bw]` resized bicubically, plus
/// `pos_embed_window` `[1, C, ws, ws]` tiled (`Hiera._get_pos_embed`).
fn position_embedding(
    bkg: &[f32],
    (bh, bw): (usize, usize),
    window: &[f32],
    ws: usize,
    c: usize,
    grid: usize,
) -> Vec<f32> {
    let up = resize_bicubic(bkg, c, (bh, bw), (grid, grid));
    let mut out = vec![0f32; grid * grid * c];
    for y in 0..grid {
        for x in 0..grid {
            let px = &mut out[(y * grid + x) * c..][..c];
            for (ch, v) in px.iter_mut().enumerate() {
                *v = up[(ch * grid + y) * grid + x] + window[(ch * ws + y % ws) * ws + x % ws];
            }
        }
    }
    out
}

/// SAM 2.1's image encoder in image mode.
pub struct HieraEncoder {
    /// `[1, 3, 1024, 1024]` → `[1, 256, 256, E]`
    patch_embed: Conv2d,
    /// `[1, 256, 256, E]`
    pos_embed: Tensor,
    blocks: Vec<HieraBlock>,
    stage_ends: Vec<usize>,
    /// The FPN's lateral 1×1 convolutions of the two coarsest levels (64 × 64 and 32 × 32) as
    /// channels-last linear maps, f32.
    top: [Linear; 2],
    /// `sam_mask_decoder.conv_s0` after the finest level's lateral convolution and `conv_s1`
    /// after the next one's, each composed into one map (E → 32 and 2E → 64 channels), f32.
    ///
    /// PERF: the lateral convolutions of these levels feed nothing else in image mode, and
    /// the finest one's 256-channel output was a 67 MB tensor; composed, the maps take 10.7
    /// (s0) and 5.3 (s1) times fewer products: Hiera-T's neck went from 50-58 to 13 ms.
    high_res: [Linear; 2],
    /// `no_mem_embed`, `[1, 1, 1, 256]` f32.
    no_mem_embed: Tensor,
}

impl HieraEncoder {
    /// Loads the trunk and neck from `enc` (`image_encoder.*`, in the encoder's dtype), the
    /// high-resolution projections from `decoder` (`sam_mask_decoder.*`) and `no_mem_embed`
    /// from `root`, both in f32.
    pub fn load(enc: &Scope, decoder: &Scope, root: &Scope, cfg: &HieraConfig) -> Result<Self> {
        let t = enc.pp("trunk");
        let e = cfg.embed_dim;
        let specs = cfg.blocks();
        let blocks = specs
            .iter()
            .enumerate()
            .map(|(i, &spec)| HieraBlock::load(&t.pp("blocks").pp(i), spec))
            .collect::<Result<_>>()?;
        let (bh, bw) = cfg.pos_embed_bkg;
        let ws = cfg.window_spec[0];
        let bkg = t
            .get("pos_embed", &[1, e, bh, bw])?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let win = t
            .get("pos_embed_window", &[1, e, ws, ws])?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let g = HIERA_GRID;
        let pos = position_embedding(&bkg, (bh, bw), &win, ws, e, g);
        let pos_embed = Tensor::from_vec(pos, (1, g, g, e), t.device())?.to_dtype(t.dtype())?;
        let d = PROMPT_EMBED_DIM;
        let dims = cfg.stage_dims();
        let n = dims.len();
        let neck = enc.pp("neck.convs").with_dtype(DType::F32);
        if n != 4 {
            bail!("Hiera with {n} stages: SAM 2.1's neck takes 4");
        }
        // convs.j reads the trunk's level n − 1 − j: `[out, in]` weight and bias, f32 host data.
        let lateral = |level: usize| -> Result<(Vec<f32>, Vec<f32>)> {
            let s = neck.pp(n - 1 - level).pp("conv");
            let c = dims[level];
            Ok((
                s.get("weight", &[d, c, 1, 1])?.flatten_all()?.to_vec1()?,
                s.get("bias", &[d])?.to_vec1()?,
            ))
        };
        let dec = decoder.with_dtype(DType::F32);
        let conv1x1 = |name: &str, out: usize| -> Result<(Vec<f32>, Vec<f32>)> {
            let s = dec.pp(name);
            Ok((
                s.get("weight", &[out, d, 1, 1])?.flatten_all()?.to_vec1()?,
                s.get("bias", &[out])?.to_vec1()?,
            ))
        };
        let device = enc.device();
        let layer = |(w, b): (Vec<f32>, Vec<f32>)| -> Result<Linear> {
            let (out, inp) = (b.len(), w.len() / b.len().max(1));
            Ok(Linear::from_tensors(
                Tensor::from_vec(w, (out, inp), device)?,
                Some(Tensor::from_vec(b, out, device)?),
            )?
            .split_bf16())
        };
        let top = [layer(lateral(2)?)?, layer(lateral(3)?)?];
        let high_res = [
            layer(compose(conv1x1("conv_s0", d / 8)?, lateral(0)?))?,
            layer(compose(conv1x1("conv_s1", d / 4)?, lateral(1)?))?,
        ];
        Ok(Self {
            patch_embed: Conv2d::new(
                &t.get("patch_embed.proj.weight", &[e, 3, 7, 7])?,
                Some(&t.get("patch_embed.proj.bias", &[e])?),
                4,
                3,
            )?
            .split_bf16(),
            pos_embed,
            blocks,
            stage_ends: cfg.stage_ends(),
            top,
            high_res,
            no_mem_embed: root
                .with_dtype(DType::F32)
                .get("no_mem_embed", &[1, 1, d])?
                .reshape((1, 1, 1, d))?,
        })
    }

    /// The trunk: `[1, 3, 1024, 1024]` normalised image → each stage's last output,
    /// channels-last `[1, 256 / 2^i, 256 / 2^i, E·2^i]`, in f32. `cancelled` is asked between
    /// blocks.
    pub fn trunk(
        &self,
        x: &Tensor,
        cancelled: &dyn Fn() -> bool,
    ) -> candle_core::Result<Vec<Tensor>> {
        let mut x = self
            .patch_embed
            .forward_add(x, ImageLayout::Nchw, &self.pos_embed)?;
        let mut levels = Vec::with_capacity(self.stage_ends.len());
        for (i, blk) in self.blocks.iter().enumerate() {
            if cancelled() {
                candle_core::bail!("cancelled");
            }
            x = blk.forward(&x)?;
            if self.stage_ends.contains(&i) {
                levels.push(x.to_dtype(DType::F32)?);
            }
        }
        Ok(levels)
    }

    /// The whole encoder: `[1, 3, 1024, 1024]` normalised image → the decoder's inputs.
    pub fn forward(
        &self,
        x: &Tensor,
        cancelled: &dyn Fn() -> bool,
    ) -> candle_core::Result<HieraFeatures> {
        let levels = self.trunk(x, cancelled)?;
        if levels.len() != 4 {
            candle_core::bail!("Hiera: expected 4 stages, got {}", levels.len());
        }
        // FPN, `fpn_top_down_levels` [2, 3]: only the 64 × 64 level receives the coarser one.
        let top = self.top[1].forward(&levels[3])?; // [1, 32, 32, 256]
        let (_, th, tw, d) = top.dims4()?;
        let up = top
            .reshape((1, th, 1, tw, 1, d))?
            .broadcast_as((1, th, 2, tw, 2, d))?
            .reshape((1, 2 * th, 2 * tw, d))?;
        let mid = (self.top[0].forward(&levels[2])? + up)?; // [1, 64, 64, 256]
        let image_embed = nhwc_to_nchw(&mid.broadcast_add(&self.no_mem_embed)?)?;
        let feat_s1 = nhwc_to_nchw(&self.high_res[1].forward(&levels[1])?)?;
        let feat_s0 = nhwc_to_nchw(&self.high_res[0].forward(&levels[0])?)?;
        Ok(HieraFeatures {
            image_embed,
            feat_s1,
            feat_s0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two 1×1 convolutions composed into one give what applying them in turn gives.
    #[test]
    fn composed_convolutions_equal_the_two_in_turn() {
        let (inp, mid, out) = (5, 7, 3);
        let v = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 37 + seed * 11) % 23) as f32 / 11.0 - 1.0)
                .collect()
        };
        let (w_i, b_i, w_o, b_o, x) = (
            v(mid * inp, 1),
            v(mid, 2),
            v(out * mid, 3),
            v(out, 4),
            v(inp, 5),
        );
        let (w, b) = compose((w_o.clone(), b_o.clone()), (w_i.clone(), b_i.clone()));
        let y: Vec<f64> = (0..mid)
            .map(|m| {
                f64::from(b_i[m])
                    + (0..inp)
                        .map(|j| f64::from(w_i[m * inp + j]) * f64::from(x[j]))
                        .sum::<f64>()
            })
            .collect();
        for o in 0..out {
            let want = f64::from(b_o[o])
                + (0..mid)
                    .map(|m| f64::from(w_o[o * mid + m]) * y[m])
                    .sum::<f64>();
            let got = f64::from(b[o])
                + (0..inp)
                    .map(|j| f64::from(w[o * inp + j]) * f64::from(x[j]))
                    .sum::<f64>();
            assert!((got - want).abs() < 1e-5, "{o}: {got} against {want}");
        }
    }

    /// The bicubic weights sum to one, reproduce a constant, and at an integer position pick
    /// the sample itself.
    #[test]
    fn bicubic_weights_are_a_partition_of_unity() {
        for t in [0.0f32, 0.25, 0.5, 0.9] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{t}: {w:?}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
        let flat = resize_bicubic(&[2.5; 12], 1, (3, 4), (7, 9));
        // Four f32 products summed twice: a few ulps of 2.5.
        assert!(flat.iter().all(|v| (v - 2.5).abs() < 4e-6), "{flat:?}");
    }

    /// The dense CPU attention equals plain softmax attention computed with candle in f64, on
    /// a grid that is not a multiple of the query block, within 1e-5: in f32, and in split
    /// bfloat16 where the CPU has AMX tiles (measured 1.6e-6 there; plain bfloat16 is off by
    /// about 4e-3).
    #[test]
    fn dense_attention_matches_plain_attention() {
        let (n, heads, hd) = (300, 2, 24);
        let c = heads * hd;
        let qkv: Vec<f32> = (0..n * 3 * c)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let f32s = dense_attention(&qkv, n, heads, hd, false);
        let split = dense_attention(&qkv, n, heads, hd, true);
        let t = Tensor::from_vec(qkv, (n, 3, heads, hd), &candle_core::Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F64))
            .expect("qkv");
        let part = |i: usize| {
            t.narrow(1, i, 1)
                .and_then(|x| x.squeeze(1))
                .and_then(|x| x.transpose(0, 1))
                .and_then(|x| x.contiguous())
                .expect("part")
        }; // [heads, n, hd]
        let (q, k, v) = (part(0), part(1), part(2));
        let want = q
            .matmul(&k.t().expect("kt"))
            .and_then(|s| s / (hd as f64).sqrt())
            .and_then(|s| candle_nn::ops::softmax_last_dim(&s))
            .and_then(|p| p.matmul(&v))
            .and_then(|o| o.transpose(0, 1))
            .and_then(|o| o.flatten_all())
            .and_then(|o| o.to_dtype(DType::F32))
            .and_then(|o| o.to_vec1::<f32>())
            .expect("reference");
        let err = |got: &[f32]| {
            got.iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        };
        assert!(err(&f32s) < 1e-5, "f32: max |diff| {}", err(&f32s));
        assert!(err(&split) < 1e-5, "split bf16: max |diff| {}", err(&split));
    }

    /// The CPU kernels of a block's attention (windows pooled or not, with padding, and
    /// global; the residual in the projection) equal the official order run with candle's
    /// ops: within 1e-5 in f32, within 1e-4 with the attention's products in split bfloat16
    /// (measured 1.8e-5 global, 2.1-4.1e-5 in windows, where the CPU has AMX tiles; the same
    /// as f32 elsewhere).
    #[test]
    fn cpu_attention_matches_the_windowed_candle_path() {
        let dev = candle_core::Device::Cpu;
        let det = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + seed) * 7919) % 1009) as f32 / 504.5 - 1.0)
                .collect()
        };
        let (d, o, heads) = (8, 16, 2);
        let cases = [
            (10, 12, 4, true, false),
            (10, 9, 4, false, false),
            (8, 8, 0, false, false),
            (8, 8, 0, false, true),
            // Windows in split bfloat16: padded, pooled, and of 196 and 256 tokens (several
            // blocks of query rows).
            (20, 22, 10, false, true),
            (24, 24, 12, true, true),
            (28, 30, 14, false, true),
            (16, 16, 16, false, true),
        ];
        for (h, w, window, pool, split_bf16) in cases {
            let o = if pool { o } else { d };
            let weight = Tensor::from_vec(det(3 * o * d, 1), (3 * o, d), &dev).expect("w");
            let bias = det(3 * o, 2);
            let attn = HieraAttention {
                qkv: Linear::from_tensors(
                    weight,
                    Some(Tensor::from_vec(bias.clone(), 3 * o, &dev).expect("b")),
                )
                .expect("qkv"),
                pad_qkv: bias,
                proj: Linear::from_tensors(
                    Tensor::from_vec(det(o * o, 3), (o, o), &dev).expect("w"),
                    Some(Tensor::from_vec(det(o, 4), o, &dev).expect("b")),
                )
                .expect("proj"),
                heads,
                dim_out: o,
                pool,
                split_bf16,
            };
            let x = Tensor::from_vec(det(h * w * d, 5), (1, h, w, d), &dev).expect("x");
            let flat = |t: Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("v");
            let want = attn.forward_image(&x, window).expect("candle");
            let dims = want.dims().to_vec();
            let residual = Tensor::from_vec(det(want.elem_count(), 6), dims, &dev).expect("r");
            let got = attn.forward_cpu(&x, window, &residual).expect("cpu");
            let want = (want + residual).expect("sum");
            assert_eq!(
                got.dims(),
                want.dims(),
                "{h}x{w} window {window} pool {pool}"
            );
            let err = flat(got)
                .iter()
                .zip(flat(want))
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let tol = if split_bf16 { 1e-4 } else { 1e-5 };
            assert!(err < tol, "{h}x{w} window {window} pool {pool}: {err}");
        }
    }

    /// The CPU max pool equals candle's reductions, odd edges dropped.
    #[test]
    fn max_pool_matches_candle() {
        let dev = candle_core::Device::Cpu;
        let (b, h, w, c) = (2, 7, 6, 3);
        let v: Vec<f32> = (0..b * h * w * c)
            .map(|i| ((i * 7919) % 101) as f32 - 50.0)
            .collect();
        let x = Tensor::from_vec(v, (b, h, w, c), &dev).expect("x");
        let got = max_pool_2x2(&x).expect("cpu");
        // candle's reductions on f64, the fallback path
        let want = max_pool_2x2(&x.to_dtype(DType::F64).expect("f64")).expect("candle");
        assert_eq!(got.dims(), &[b, 3, 3, c]);
        let flat = |t: &Tensor| {
            t.to_dtype(DType::F64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .expect("vec")
        };
        assert_eq!(flat(&got), flat(&want));
    }

    /// The official builder's loop: tiny's first block of stage 2 keeps stage 1's window 8,
    /// pools, and doubles width and heads; global blocks have no window.
    #[test]
    fn hiera_tiny_blocks_follow_the_official_builder() {
        let b = HieraConfig::tiny().blocks();
        assert_eq!(b.len(), 12);
        assert_eq!(
            (b[0].dim, b[0].dim_out, b[0].heads, b[0].window, b[0].pool),
            (96, 96, 1, 8, false)
        );
        assert_eq!(
            (b[1].dim, b[1].dim_out, b[1].heads, b[1].window, b[1].pool),
            (96, 192, 2, 8, true)
        );
        assert_eq!(
            (b[3].dim_out, b[3].heads, b[3].window, b[3].pool),
            (384, 4, 4, true)
        );
        assert_eq!(b[5].window, 0);
        assert_eq!(
            (b[10].dim_out, b[10].heads, b[10].window, b[10].pool),
            (768, 8, 14, true)
        );
        assert_eq!(b[11].window, 7);
        assert_eq!(HieraConfig::tiny().stage_ends(), vec![0, 2, 9, 11]);
    }
}
