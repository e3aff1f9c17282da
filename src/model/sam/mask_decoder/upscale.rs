//! The mask decoder's upscaling: the two 2 × 2 transposed convolutions (with SAM 2's
//! high-resolution features added), and the product with the hypernetworks' outputs that
//! gives the mask logits; fused on the CPU without pixel shuffles.

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::MaskDecoder;
use crate::model::ops::amx::{self, Lines, PackedWeights};
use crate::model::ops::gemm::{sgemm, SharedOut};
use crate::model::ops::{contiguous_f32, gelu, nchw_to_nhwc, on_cpu_f32, Epilogue, LayerNorm};
use crate::model::simd::{
    add_assign, add_into, add_scalar_into, axpy, gelu_inplace, layer_norm_rows,
};
use crate::weights::Scope;

/// A 2×2, stride-2 transposed convolution on channels-last data, followed by an optional
/// LayerNorm over channels and GELU: one GEMM, then a pixel shuffle (the 2×2 windows do not
/// overlap, so this is exact).
///
/// PERF: on the CPU the bias is the GEMM's, the norm and GELU run in place on its output
/// ([`Upsample2x::forward_blocks`]), and the shuffle is one copy (none at all inside the
/// decoder's own upscaling, [`UpscaleMasks`]), instead of four full-size tensor passes.
pub(super) struct Upsample2x {
    /// `[Cin, Cout·4]`
    weight: Tensor,
    /// The same as host data for the CPU GEMM, columns in (dy, dx, channel) order:
    /// `[Cin, 4·Cout]`.
    weight_host: Vec<f32>,
    /// `[Cout]`
    bias: Tensor,
    /// The bias once per output pixel of a 2×2 block: the GEMM's bias in (dy, dx, channel)
    /// column order, `[4·Cout]`.
    bias4: Vec<f32>,
    /// LayerNorm2d `(weight, bias, eps)` applied after the bias.
    norm: Option<(Vec<f32>, Vec<f32>, f32)>,
    norm_t: Option<LayerNorm>,
    cout: usize,
    /// Set by [`Upsample2x::split_bf16`] on CPUs with AMX: `weight_host` packed for
    /// split-bfloat16 products ([`crate::model::ops::amx`]), which the CPU forms then use
    /// instead of the f32 GEMM.
    packed: Option<PackedWeights>,
}

impl Upsample2x {
    pub(super) fn load(s: &Scope, cin: usize, cout: usize, norm: Option<&Scope>) -> Result<Self> {
        let weight = s
            .get("weight", &[cin, cout, 2, 2])?
            .reshape((cin, cout * 4))?;
        // Columns reordered from (channel, dy, dx) to (dy, dx, channel), so that each output
        // pixel's channels are contiguous in the GEMM result.
        let weight_host = weight
            .reshape((cin, cout, 4))?
            .transpose(1, 2)?
            .contiguous()?
            .flatten_all()?
            .to_vec1()?;
        let bias = s.get("bias", &[cout])?;
        let (norm, norm_t) = match norm {
            Some(n) => (
                Some((
                    n.get_vec("weight", &[cout])?,
                    n.get_vec("bias", &[cout])?,
                    1e-6,
                )),
                Some(LayerNorm::load(n, cout, 1e-6)?),
            ),
            None => (None, None),
        };
        Ok(Self {
            bias4: bias.to_vec1::<f32>()?.repeat(4),
            packed: None,
            weight,
            weight_host,
            bias,
            norm,
            norm_t,
            cout,
        })
    }

    /// Runs the CPU forms' product in split bfloat16 on AMX tiles when this CPU has them
    /// ([`crate::model::ops::amx::available`]); a no-op elsewhere.
    ///
    /// PERF: the decoder's first step, 4096 × 256 × 256 per click, took half of the
    /// upscaling's time in f32 (2 cores of an Intel Xeon, where one AVX-512 core does about
    /// 50 GMAC/s). The second step stays in f32: [`Upsample2x::transposed_tile`] writes its
    /// output transposed for the mask product, which the tiles cannot.
    pub(super) fn split_bf16(mut self) -> Self {
        if amx::available() {
            let (cin, c4) = (self.weight_host.len() / (4 * self.cout), 4 * self.cout);
            self.packed = Some(PackedWeights::new(&self.weight_host, cin, c4, false));
        }
        self
    }

    /// `[H, W, Cin]` → GELU(norm(upsample(x) + skip)) `[2H, 2W, Cout]` (`skip`, SAM 2's
    /// high-resolution features, channels-last `[2H, 2W, Cout]`).
    pub(super) fn forward(&self, x: &Tensor, skip: Option<&Tensor>) -> candle_core::Result<Tensor> {
        if on_cpu_f32(x) && skip.is_none() {
            return x.contiguous()?.apply_op1_no_bwd(self);
        }
        let (h, w, cin) = x.dims3()?;
        let y = x
            .reshape((h * w, cin))?
            .matmul(&self.weight)? // [H·W, Cout·4]
            .reshape((h, w, self.cout, 2, 2))?
            .permute((0, 3, 1, 4, 2))? // [H, 2, W, 2, Cout]
            .reshape((2 * h, 2 * w, self.cout))?
            .broadcast_add(&self.bias)?;
        let y = match skip {
            Some(s) => (y + s)?,
            None => y,
        };
        let y = match &self.norm_t {
            Some(n) => n.forward(&y)?,
            None => y,
        };
        gelu(&y)
    }

    /// The CPU form that keeps each input pixel's 2×2 output block together: `x [N, Cin]`
    /// (pixels in any order) → `[N·4, Cout]` in (pixel, dy, dx) order, with the bias, norm and
    /// GELU applied. The transposed convolution's 2×2 windows do not overlap and the norm and
    /// GELU work per pixel, so these are the forward's values, only in another pixel order.
    ///
    /// `skip` (SAM 2's high-resolution features, in the same block order, `[N·4, Cout]`) is
    /// added after the bias, before the norm and GELU.
    fn forward_blocks(&self, x: &[f32], n: usize, skip: Option<&[f32]>) -> Vec<f32> {
        use rayon::prelude::*;
        let (cin, c4) = (x.len() / n.max(1), 4 * self.cout);
        let mut y = vec![0f32; n * c4];
        y.par_chunks_mut(UPSCALE_TILE * c4)
            .enumerate()
            .for_each(|(i, out)| {
                let p0 = i * UPSCALE_TILE;
                let rows = out.len() / c4;
                let skip = skip.map(|s| &s[p0 * c4..][..rows * c4]);
                self.block_tile(&x[p0 * cin..][..rows * cin], skip, out);
            });
        y
    }

    /// [`Self::forward_blocks`] of a few pixels on the calling thread: `x [N, Cin]` →
    /// `out [N·4, Cout]` (block order), `skip` as there.
    ///
    /// PERF: with `skip`, the output starts as `skip + bias` and the GEMM accumulates onto it
    /// (one pass over the tile instead of a bias fill and an added pass).
    fn block_tile(&self, x: &[f32], skip: Option<&[f32]>, out: &mut [f32]) {
        let c4 = 4 * self.cout;
        let n = out.len() / c4;
        let k = x.len() / n.max(1);
        if let Some(packed) = &self.packed {
            let dims = (n, c4, k);
            amx::linear_bf16x3_into(
                x,
                packed,
                Some(&self.bias4),
                dims,
                Epilogue::None,
                out,
                false,
            );
            if let Some(skip) = skip {
                add_assign(out, skip);
            }
            self.norm_gelu(out);
            return;
        }
        match skip {
            Some(skip) => {
                for (row, s) in out.chunks_exact_mut(c4).zip(skip.chunks_exact(c4)) {
                    add_into(row, s, &self.bias4);
                }
            }
            None => {
                for row in out.chunks_exact_mut(c4) {
                    row.copy_from_slice(&self.bias4);
                }
            }
        }
        assert!(x.len() >= n * k && self.weight_host.len() >= k * c4);
        // SAFETY: dst `[4·Cout features × n pixels]` in `out` at strides (4·Cout, 1); lhs
        // `Wᵀ [Cin, 4·Cout]` read as `[4·Cout × Cin]` with strides (4·Cout, 1); rhs `x [n, Cin]`
        // read as `[Cin × n]` with strides (Cin, 1); the lengths are checked above.
        unsafe {
            sgemm(
                (c4, n, k),
                (out.as_mut_ptr(), c4 as isize, 1),
                true,
                (self.weight_host.as_ptr(), c4 as isize, 1),
                (x.as_ptr(), k as isize, 1),
                1.0,
                gemm::Parallelism::None,
            );
        }
        self.norm_gelu(out);
    }

    /// The norm (if any) and GELU on a tile's rows of `Cout` in place.
    fn norm_gelu(&self, out: &mut [f32]) {
        if let Some((nw, nb, eps)) = &self.norm {
            layer_norm_rows(out, nw, nb, *eps);
        }
        gelu_inplace(out);
    }

    /// The last upsampling step of a tile with its output transposed: `x [R, Cin]` →
    /// `out [4·Cout, R]`, row `q·Cout + ch` holding sub-pixel `q = 2·dy + dx` of channel `ch`
    /// for each input row, with the bias, `skip_t` (the same layout) added and GELU (no
    /// norm in this step).
    ///
    /// PERF: the mask product that follows (`n` ≤ 4 masks from 32 channels) then runs along
    /// the pixels, 16 at a time, instead of as a GEMM 4 outputs wide (a quarter of each
    /// vector), which took 14% of the upscaling's CPU time.
    fn transposed_tile(&self, x: &[f32], skip_t: Option<&[f32]>, out: &mut [f32]) {
        let (c, c4) = (self.cout, 4 * self.cout);
        let r = out.len() / c4;
        let k = x.len() / r.max(1);
        for (f, row) in out.chunks_exact_mut(r.max(1)).enumerate() {
            let b = self.bias4[f];
            match skip_t {
                Some(s) => add_scalar_into(row, &s[f * r..][..r], b),
                None => row.fill(b),
            }
        }
        debug_assert!(self.norm.is_none() && c4 == self.bias4.len() && c > 0);
        assert!(x.len() >= r * k && self.weight_host.len() >= k * c4 && out.len() >= r * c4);
        // SAFETY: dst `[4·Cout × R]` row-major in `out` (strides 1, R); lhs `Wᵀ [Cin, 4·Cout]`
        // read as `[4·Cout × Cin]` with strides (4·Cout, 1); rhs `x [R, Cin]` read as
        // `[Cin × R]` with strides (Cin, 1); the lengths are checked above.
        unsafe {
            sgemm(
                (c4, r, k),
                (out.as_mut_ptr(), 1, r as isize),
                true,
                (self.weight_host.as_ptr(), c4 as isize, 1),
                (x.as_ptr(), k as isize, 1),
                1.0,
                gemm::Parallelism::None,
            );
        }
        gelu_inplace(out);
    }
}

/// The mask product of a tile in the transposed layout: `bt [(q, ch), R]` (q the four
/// sub-pixels, `uc` channels) and `hyper [n, uc]` → `logits [n, q, R]`, along the rows.
fn mask_product_t(
    bt: &[f32],
    hyper: &[f32],
    (n, uc, rows): (usize, usize, usize),
    logits: &mut [f32],
) {
    debug_assert!(hyper.len() >= n * uc && logits.len() >= n * 4 * rows);
    logits.fill(0.0);
    for (j, planes) in logits.chunks_exact_mut(4 * rows).enumerate() {
        for (q, plane) in planes.chunks_exact_mut(rows).enumerate() {
            for ch in 0..uc {
                axpy(
                    hyper[j * uc + ch],
                    &bt[(q * uc + ch) * rows..][..rows],
                    plane,
                );
            }
        }
    }
}

/// Input pixels per task of the CPU upscaling: their 4 × 4 output blocks through both steps
/// (64 · 16 · 32 values, 128 KiB) stay in the core's cache between the steps, and the first
/// step's product is whole 64-row tiles on AMX.
const UPSCALE_TILE: usize = 64;

/// The decoder's upscaling and mask product on the CPU, with no pixel shuffle: the keys
/// `[h·w, D]` and the hypernetworks' outputs `[n, 32]` → mask logits `[n, 4h, 4w]`.
///
/// PERF: both upsampling steps keep each pixel's output block together
/// ([`Upsample2x::block_tile`]), so nothing is shuffled between them; each task takes
/// `UPSCALE_TILE` input pixels through both steps, the norm, the GELUs and the mask product
/// while they are in cache, and writes its 4 × 4 blocks of the `n` mask planes in image
/// order. Before, each step was a parallel pass over a 4 or 8 MiB activation (Hiera-T's click
/// 9.8 → 7.4-7.9 ms for this part, 2 cores of an Intel Xeon). The second step writes its
/// output transposed and the mask product runs along the pixels ([`mask_product_t`]): 1.4 →
/// 0.7 ms of CPU time per click for the product. SAM 2's first step runs in split bfloat16 on
/// AMX ([`Upsample2x::split_bf16`]): 4.9 → 3.1 ms of CPU time for that step (session 33, same
/// machine).
struct UpscaleMasks<'a> {
    up1: &'a Upsample2x,
    up2: &'a Upsample2x,
    hw: (usize, usize),
    /// SAM 2's high-resolution features in the two steps' tile orders.
    skips: Option<(&'a [f32], &'a [f32])>,
}

impl candle_core::CustomOp2 for UpscaleMasks<'_> {
    fn name(&self) -> &'static str {
        "segattn-upscale-masks"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (keys, hyper) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let (h, w) = self.hw;
        let (n, uc) = l2.shape().dims2()?;
        if l1.shape().dims2()?.0 != h * w || uc != self.up2.cout {
            candle_core::bail!(
                "upscale masks: keys {:?}, hypernetworks {:?}",
                l1.dims(),
                l2.dims()
            );
        }
        let (s1, s0) = match self.skips {
            Some((s1, s0)) => (Some(s1), Some(s0)),
            None => (None, None),
        };
        let (c1, d) = (self.up1.cout, keys.len() / (h * w).max(1));
        let (oh, ow) = (4 * h, 4 * w);
        let mut out = vec![0f32; n * oh * ow];
        let shared = SharedOut::new(&mut out);
        let tiles = (h * w).div_ceil(UPSCALE_TILE);
        (0..tiles).into_par_iter().for_each_init(
            || (Lines::default(), Vec::new(), Vec::new()),
            |(a, b, logits), t| {
                let p0 = t * UPSCALE_TILE;
                let np = UPSCALE_TILE.min(h * w - p0);
                // Rows of the second step: r = (input pixel, dy1, dx1).
                let rows = 4 * np;
                // Aligned: whole tiles of the first step's product go straight into it.
                let a = a.f32s(rows * c1);
                b.resize(4 * uc * rows, 0.0);
                logits.resize(n * 4 * rows, 0.0);
                let s1 = s1.map(|s| &s[p0 * 4 * c1..][..rows * c1]);
                let s0 = s0.map(|s| &s[p0 * 16 * uc..][..4 * uc * rows]);
                self.up1.block_tile(&keys[p0 * d..][..np * d], s1, a); // [rows, C/4]
                self.up2.transposed_tile(a, s0, b); // [(q, ch), rows]
                mask_product_t(b, hyper, (n, uc, rows), logits); // [n, q, rows]
                for (j, planes) in logits.chunks_exact(4 * rows).enumerate() {
                    for i in 0..np {
                        let (iy, ix) = ((p0 + i) / w, (p0 + i) % w);
                        for y in 0..4 {
                            let (dy1, dy2) = (y >> 1, y & 1);
                            // SAFETY: each output pixel of each mask belongs to exactly one
                            // input pixel's 4 × 4 block, and each input pixel to one task.
                            let row = unsafe { shared.row((j * oh + 4 * iy + y) * ow + 4 * ix, 4) };
                            for (x, v) in row.iter_mut().enumerate() {
                                let (dx1, dx2) = (x >> 1, x & 1);
                                let (q, r) = (dy2 * 2 + dx2, 4 * i + dy1 * 2 + dx1);
                                *v = planes[q * rows + r];
                            }
                        }
                    }
                }
            },
        );
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((n, oh, ow)),
        ))
    }
}

impl candle_core::CustomOp1 for Upsample2x {
    fn name(&self) -> &'static str {
        "segattn-upsample2x"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let data = contiguous_f32(storage, layout)?;
        let (h, w, _) = layout.shape().dims3()?;
        let c = self.cout;
        let y = self.forward_blocks(data, h * w, None); // [H·W·4, Cout], (pixel, dy, dx) order
        let mut out = vec![0f32; 4 * h * w * c];
        out.par_chunks_mut(2 * w * c)
            .enumerate()
            .for_each(|(oy, row)| {
                let (iy, dy) = (oy / 2, oy % 2);
                for (ox, px) in row.chunks_mut(c).enumerate() {
                    let (ix, dx) = (ox / 2, ox % 2);
                    px.copy_from_slice(&y[((iy * w + ix) * 4 + dy * 2 + dx) * c..][..c]);
                }
            });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((2 * h, 2 * w, c)),
        ))
    }
}

/// SAM 2's high-resolution features (`conv_s0` / `conv_s1` of the FPN's two finest levels),
/// added inside the decoder's upscaling; computed once per image.
#[derive(Clone)]
pub struct HighResFeatures {
    /// `feat_s1` `[1, 64, 2h, 2w]` and `feat_s0` `[1, 32, 4h, 4w]`, channels-first as given.
    given: (Tensor, Tensor),
    /// Off the CPU, both channels-last (`[2h, 2w, 64]`, `[4h, 4w, 32]`) for the tensor path.
    spatial: Option<(Tensor, Tensor)>,
    /// On the CPU, both in the orders of [`UpscaleMasks`]'s tiles: `s1` in block order
    /// `(iy, ix, dy1, dx1, channel)`; `s0` per tile of `UPSCALE_TILE` input pixels,
    /// transposed: `(dy2, dx2, channel, (pixel, dy1, dx1))`.
    blocks: Option<(Vec<f32>, Vec<f32>)>,
}

impl HighResFeatures {
    /// From `feat_s1` `[1, 64, 2h, 2w]` and `feat_s0` `[1, 32, 4h, 4w]` (channels-first, as
    /// the official `high_res_feats`).
    ///
    /// PERF: on the CPU the tile orders are gathered straight from the channels-first data, in
    /// parallel (a permute to channels-last and serial loops took 15 ms per image).
    pub fn new(feat_s1: &Tensor, feat_s0: &Tensor) -> candle_core::Result<Self> {
        use rayon::prelude::*;
        let (_, c1, h2, w2) = feat_s1.dims4()?;
        let (_, c0, h4, w4) = feat_s0.dims4()?;
        if h4 != 2 * h2 || w4 != 2 * w2 || h2 % 2 != 0 || w2 % 2 != 0 {
            candle_core::bail!(
                "high-resolution features {:?} and {:?} do not nest",
                feat_s1.dims(),
                feat_s0.dims()
            );
        }
        let given = (feat_s1.clone(), feat_s0.clone());
        if !(on_cpu_f32(feat_s1) && on_cpu_f32(feat_s0)) {
            let spatial = Self::channels_last(&given)?;
            return Ok(Self {
                given,
                spatial: Some(spatial),
                blocks: None,
            });
        }
        let w = w2 / 2;
        let v1: Vec<f32> = feat_s1.flatten_all()?.to_vec1()?; // [c1, 2h, 2w]
        let v0: Vec<f32> = feat_s0.flatten_all()?.to_vec1()?; // [c0, 4h, 4w]

        // Per input row iy: `(ix, dy1, dx1, channel)`.
        let mut b1 = vec![0f32; v1.len()];
        b1.par_chunks_mut(4 * w * c1)
            .enumerate()
            .for_each(|(iy, row)| {
                for ch in 0..c1 {
                    for dy1 in 0..2 {
                        let src = &v1[(ch * h2 + 2 * iy + dy1) * w2..][..w2];
                        for (x1, &v) in src.iter().enumerate() {
                            let (ix, dx1) = (x1 / 2, x1 % 2);
                            row[(ix * 4 + dy1 * 2 + dx1) * c1 + ch] = v;
                        }
                    }
                }
            });
        // Per tile of `UPSCALE_TILE` input pixels from p0, at offset p0·16·c0, with
        // r = (pixel, dy1, dx1) and q = (dy2, dx2): `[q, ch, r]`.
        let mut b0 = vec![0f32; v0.len()];
        let plane = h4 * w4;
        b0.par_chunks_mut(16 * c0 * UPSCALE_TILE)
            .enumerate()
            .for_each(|(t, tile)| {
                let p0 = t * UPSCALE_TILE;
                let rows = tile.len() / (4 * c0); // 4 per pixel
                let mut at = vec![0usize; rows]; // where each r reads in a channel's plane
                for q in 0..4 {
                    for (r, at) in at.iter_mut().enumerate() {
                        let (p, dy1, dx1) = (p0 + r / 4, (r % 4) >> 1, r & 1);
                        let (y1, x1) = (2 * (p / w) + dy1, 2 * (p % w) + dx1);
                        *at = (2 * y1 + (q >> 1)) * w4 + 2 * x1 + (q & 1);
                    }
                    for ch in 0..c0 {
                        let src = &v0[ch * plane..][..plane];
                        let dst = &mut tile[(q * c0 + ch) * rows..][..rows];
                        for (d, &i) in dst.iter_mut().zip(&at) {
                            *d = src[i];
                        }
                    }
                }
            });
        Ok(Self {
            given,
            spatial: None,
            blocks: Some((b1, b0)),
        })
    }

    /// `(s1, s0)` channels-last, `[2h, 2w, 64]` and `[4h, 4w, 32]`: kept off the CPU, made
    /// when asked on it (the tensor path is the CPU's reference only).
    fn spatial(&self) -> candle_core::Result<(Tensor, Tensor)> {
        match &self.spatial {
            Some(s) => Ok(s.clone()),
            None => Self::channels_last(&self.given),
        }
    }

    /// `[1, C, H, W]` → `[H, W, C]`, both.
    fn channels_last((s1, s0): &(Tensor, Tensor)) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((nchw_to_nhwc(s1)?.squeeze(0)?, nchw_to_nhwc(s0)?.squeeze(0)?))
    }
}

impl MaskDecoder {
    /// The upscaling and the mask product of one prompt: final image keys `[h·w, D]` and
    /// hypernetwork outputs `[n, 32]` → mask logits `[n, 4h, 4w]`, with SAM 2's
    /// high-resolution features added in the two steps.
    pub(super) fn upscale_masks(
        &self,
        keys: &Tensor,
        hyper: &Tensor,
        (h, w): (usize, usize),
        high_res: Option<&HighResFeatures>,
    ) -> candle_core::Result<Tensor> {
        let n = hyper.dim(0)?;
        let c = keys.dim(1)?;
        let cpu_skips = match high_res {
            Some(hr) => hr
                .blocks
                .as_ref()
                .map(|(a, b)| Some((a.as_slice(), b.as_slice()))),
            None => Some(None),
        };
        if let (true, Some(skips)) = (on_cpu_f32(keys) && on_cpu_f32(hyper), cpu_skips) {
            let op = UpscaleMasks {
                up1: &self.up1,
                up2: &self.up2,
                hw: (h, w),
                skips,
            };
            return keys
                .contiguous()?
                .apply_op2_no_bwd(&hyper.contiguous()?, &op); // [n, 4h, 4w]
        }
        let spatial = high_res.map(HighResFeatures::spatial).transpose()?;
        let up = self
            .up1
            .forward(&keys.reshape((h, w, c))?, spatial.as_ref().map(|s| &s.0))?;
        let up = self.up2.forward(&up, spatial.as_ref().map(|s| &s.1))?; // [4h, 4w, 32]
        let (uh, uw, uc) = up.dims3()?;
        hyper
            .matmul(&up.reshape((uh * uw, uc))?.t()?)?
            .reshape((n, uh, uw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testing::{assert_close, assert_close_tol, tensor, vals, weights};
    use candle_core::Device;

    /// The decoder's two upsampling steps for width `d`, with test weights.
    fn upsamplers(d: usize) -> (Upsample2x, Upsample2x) {
        let wts = weights(vec![
            ("up.0.weight".into(), vec![d, d / 4, 2, 2]),
            ("up.0.bias".into(), vec![d / 4]),
            ("up.1.weight".into(), vec![d / 4]),
            ("up.1.bias".into(), vec![d / 4]),
            ("up.3.weight".into(), vec![d / 4, d / 8, 2, 2]),
            ("up.3.bias".into(), vec![d / 8]),
        ]);
        let up = Scope::new(&wts, &Device::Cpu).pp("up");
        let up1 = Upsample2x::load(&up.pp(0), d, d / 4, Some(&up.pp(1))).expect("up1");
        let up2 = Upsample2x::load(&up.pp(3), d / 4, d / 8, None).expect("up2");
        (up1, up2)
    }

    /// The shuffle-free CPU upscaling gives the masks of the spatial-order forward (both
    /// upsampling steps in image order, then the hypernetworks' product), on a 5 × 3 grid.
    #[test]
    fn upscaling_without_shuffles_equals_the_spatial_forward() {
        let (d, h, w, n) = (32, 5, 3, 4);
        let (up1, up2) = upsamplers(d);
        let keys = tensor(vals(h * w * d, 1), &[h * w, d]);
        let hyper = tensor(vals(n * d / 8, 2), &[n, d / 8]);
        let spatial = keys
            .reshape((h, w, d))
            .and_then(|k| up1.forward(&k, None))
            .and_then(|u| up2.forward(&u, None))
            .expect("spatial"); // [4h, 4w, d/8]
        let want = spatial
            .reshape((16 * h * w, d / 8))
            .and_then(|u| hyper.matmul(&u.t()?))
            .and_then(|m| m.reshape((n, 4 * h, 4 * w)))
            .expect("masks");
        let op = UpscaleMasks {
            up1: &up1,
            up2: &up2,
            hw: (h, w),
            skips: None,
        };
        let got = keys.apply_op2_no_bwd(&hyper, &op).expect("fused");
        assert_eq!(got.dims(), [n, 4 * h, 4 * w]);
        assert_close(&got, &want, "mask logits");
    }

    /// SAM 2's upscaling, the high-resolution features added before the norm and GELU: the
    /// fused CPU form with the features in its tile orders equals the spatial forward, with
    /// the first step in f32 and (on CPUs with AMX) in split bfloat16, within 2e-5 of the
    /// largest logit there (measured 2.6e-6; f32: 1.8e-7).
    #[test]
    fn upscaling_with_high_res_features_equals_the_spatial_forward() {
        let (d, h, w, n) = (32, 4, 6, 3);
        let keys = tensor(vals(h * w * d, 3), &[h * w, d]);
        let hyper = tensor(vals(n * d / 8, 4), &[n, d / 8]);
        let s1 = tensor(vals(d / 4 * 4 * h * w, 5), &[1, d / 4, 2 * h, 2 * w]);
        let s0 = tensor(vals(d / 8 * 16 * h * w, 6), &[1, d / 8, 4 * h, 4 * w]);
        let hr = HighResFeatures::new(&s1, &s0).expect("features");
        for split in [false, true] {
            let (up1, up2) = upsamplers(d);
            let up1 = if split { up1.split_bf16() } else { up1 };
            let (s1, s0) = hr.spatial().expect("channels-last features");
            let spatial = keys
                .reshape((h, w, d))
                .and_then(|k| up1.forward(&k, Some(&s1)))
                .and_then(|u| up2.forward(&u, Some(&s0)))
                .expect("spatial");
            let want = spatial
                .reshape((16 * h * w, d / 8))
                .and_then(|u| hyper.matmul(&u.t()?))
                .and_then(|m| m.reshape((n, 4 * h, 4 * w)))
                .expect("masks");
            let (b1, b0) = hr.blocks.as_ref().expect("CPU tile orders");
            let op = UpscaleMasks {
                up1: &up1,
                up2: &up2,
                hw: (h, w),
                skips: Some((b1, b0)),
            };
            let got = keys.apply_op2_no_bwd(&hyper, &op).expect("fused");
            let scale = want
                .abs()
                .and_then(|a| a.flatten_all()?.max(0)?.to_scalar::<f32>())
                .expect("max");
            let tol = if split { 2e-5 * scale } else { 1e-5 };
            assert_close_tol(&got, &want, tol, "mask logits with high-res features");
        }
    }
}
