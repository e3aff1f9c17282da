//! SAM's plain ViT image encoder (`segment_anything/modeling/image_encoder.py`): patch
//! embedding, absolute positions, windowed and global attention blocks with decomposed relative
//! positions, and the convolutional neck shared with TinyViT.

use anyhow::{bail, Result};
use candle_core::{Module, Tensor};

use super::config::{VitConfig, EMBED_GRID, PROMPT_EMBED_DIM};
use crate::model::ops::{Conv2d, ImageLayout, LayerNorm, Linear};
use crate::weights::Scope;

/// Splits `[B, H, W, C]` into zero-padded `[B·nH·nW, ws, ws, C]` windows; also returns the padded
/// size `(Hp, Wp)` (`window_partition` in the official code).
pub fn window_partition(x: &Tensor, ws: usize) -> candle_core::Result<(Tensor, (usize, usize))> {
    let (b, h, w, c) = x.dims4()?;
    let (pad_h, pad_w) = ((ws - h % ws) % ws, (ws - w % ws) % ws);
    let x = if pad_h > 0 || pad_w > 0 {
        x.pad_with_zeros(1, 0, pad_h)?.pad_with_zeros(2, 0, pad_w)?
    } else {
        x.clone()
    };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let x = x
        .reshape((b, hp / ws, ws, wp / ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape(((), ws, ws, c))?;
    Ok((x, (hp, wp)))
}

/// Reverses [`window_partition`]: `[B·nH·nW, ws, ws, C]` → `[B, H, W, C]`, dropping the padding.
pub fn window_unpartition(
    windows: &Tensor,
    ws: usize,
    (hp, wp): (usize, usize),
    (h, w): (usize, usize),
) -> candle_core::Result<Tensor> {
    let c = windows.dim(candle_core::D::Minus1)?;
    let b = windows.elem_count() / (hp * wp * c);
    let x = windows
        .reshape((b, hp / ws, wp / ws, ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b, hp, wp, c))?;
    if hp > h || wp > w {
        x.narrow(1, 0, h)?.narrow(2, 0, w)?.contiguous()
    } else {
        Ok(x)
    }
}

/// The encoders' neck: 1×1 conv → LayerNorm2d → 3×3 conv → LayerNorm2d, to 256 channels.
pub struct Neck {
    /// The 1×1 conv as a channels-last linear map `[256, C]`.
    conv0: Linear,
    /// The first LayerNorm2d, applied channels-last (same arithmetic).
    norm1: LayerNorm,
    conv2: Conv2d,
    /// The second LayerNorm2d, applied channels-last (same arithmetic).
    norm3: LayerNorm,
}

impl Neck {
    /// Loads `neck.{0,1,2,3}` for an encoder of width `dim`.
    pub fn load(s: &Scope, dim: usize) -> Result<Self> {
        let d = PROMPT_EMBED_DIM;
        let w0 = s.get("0.weight", &[d, dim, 1, 1])?.reshape((d, dim))?;
        Ok(Self {
            conv0: Linear::from_tensors(w0, None)?,
            norm1: LayerNorm::load(&s.pp(1), d, 1e-6)?,
            conv2: Conv2d::new(&s.get("2.weight", &[d, d, 3, 3])?, None, 1, 1)?,
            norm3: LayerNorm::load(&s.pp(3), d, 1e-6)?,
        })
    }

    /// `[1, 64, 64, C]` → `[1, 256, 64, 64]`
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.norm1.forward(&self.conv0.forward(x)?)?;
        let x = self.conv2.forward(&x, ImageLayout::Nhwc, false)?;
        self.norm3.forward(&x)?.permute((0, 3, 1, 2))?.contiguous()
    }
}

/// Gathers `rel_pos[i - j + size - 1]` into `[size, size, head_dim]` (`get_rel_pos` for equal
/// query and key sizes, where no interpolation is needed).
fn gather_rel_pos(s: &Scope, name: &str, size: usize, head_dim: usize) -> Result<Tensor> {
    let shape = s.require_shape(name)?;
    if shape != [2 * size - 1, head_dim] {
        bail!(s.shape_error(name, vec![2 * size - 1, head_dim], shape));
    }
    let table = s.get_vec(name, &shape)?;
    let mut out = Vec::with_capacity(size * size * head_dim);
    for i in 0..size {
        for j in 0..size {
            let r = i + size - 1 - j;
            out.extend_from_slice(&table[r * head_dim..(r + 1) * head_dim]);
        }
    }
    Ok(Tensor::from_vec(out, (size, size, head_dim), s.device())?.to_dtype(s.dtype())?)
}

/// Multi-head attention with decomposed relative positions (`Attention` in the official code).
struct VitAttention {
    qkv: Linear,
    proj: Linear,
    /// `[size, size, head_dim]`
    rel_h: Tensor,
    /// `[size, size, head_dim]`
    rel_w: Tensor,
    /// The two tables as plain data for the CPU kernel.
    rel_h_v: Vec<f32>,
    rel_w_v: Vec<f32>,
    num_heads: usize,
}

impl VitAttention {
    fn load(s: &Scope, dim: usize, num_heads: usize, size: usize) -> Result<Self> {
        let hd = dim / num_heads;
        let (rel_h, rel_w) = (
            gather_rel_pos(s, "rel_pos_h", size, hd)?,
            gather_rel_pos(s, "rel_pos_w", size, hd)?,
        );
        let host = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()?)
        };
        Ok(Self {
            qkv: Linear::load(&s.pp("qkv"), dim, 3 * dim, true)?,
            proj: Linear::load(&s.pp("proj"), dim, dim, true)?,
            rel_h_v: host(&rel_h)?,
            rel_w_v: host(&rel_w)?,
            rel_h,
            rel_w,
            num_heads,
        })
    }

    /// `[B, H, W, C]` → `[B, H, W, C]`
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let (nh, n) = (self.num_heads, h * w);
        let hd = c / nh;
        if matches!(x.device(), candle_core::Device::Cpu) && x.dtype() == candle_core::DType::F32 {
            let op = VitAttentionOp {
                rel_h: &self.rel_h_v,
                rel_w: &self.rel_w_v,
                heads: nh,
                grid: (h, w),
            };
            let qkv = self.qkv.forward(x)?.reshape((b, n, 3 * c))?;
            let out = qkv.apply_op1_no_bwd(&op)?.reshape((b, h, w, c))?;
            return self.proj.forward(&out);
        }
        // [3, B·heads, N, hd]
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, n, 3, nh, hd))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?
            .reshape((3, b * nh, n, hd))?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        // Global attention materialises [N, N] scores per head (64 MB at N = 4096): take the
        // heads one at a time there, so the peak is one head's scores, not all of them.
        let bh = b * nh;
        let out = if n >= 1024 {
            let parts = (0..bh)
                .map(|i| {
                    self.attend(
                        &q.narrow(0, i, 1)?,
                        &k.narrow(0, i, 1)?,
                        &v.narrow(0, i, 1)?,
                        (h, w),
                    )
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, 0)?
        } else {
            self.attend(&q, &k, &v, (h, w))?
        };
        let out = out // [Bh, N, hd]
            .reshape((b, nh, h, w, hd))?
            .permute((0, 2, 3, 1, 4))?
            .reshape((b, h, w, c))?;
        self.proj.forward(&out)
    }

    /// Softmax attention with decomposed relative positions for `q, k, v` `[Bh, N, hd]` on an
    /// `h × w` grid; returns `[Bh, N, hd]`.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        (h, w): (usize, usize),
    ) -> candle_core::Result<Tensor> {
        let (bh, n, hd) = q.dims3()?;
        let scale = (hd as f64).powf(-0.5);
        // [Bh, N, N]
        let attn = (q.clone() * scale)?.matmul(&k.t()?)?;
        // rel_h[b, y, x, ky] = Σc q[b, y, x, c] · Rh[y, ky, c]
        let r_q = q.reshape((bh, h, w, hd))?;
        let rel_h = r_q
            .permute((1, 0, 2, 3))?
            .reshape((h, bh * w, hd))?
            .matmul(&self.rel_h.transpose(1, 2)?)? // [H, Bh·W, kh]
            .reshape((h, bh, w, h))?
            .permute((1, 0, 2, 3))?; // [Bh, H, W, kh]
                                     // rel_w[b, y, x, kx] = Σc q[b, y, x, c] · Rw[x, kx, c]
        let rel_w = r_q
            .permute((2, 0, 1, 3))?
            .reshape((w, bh * h, hd))?
            .matmul(&self.rel_w.transpose(1, 2)?)? // [W, Bh·H, kw]
            .reshape((w, bh, h, w))?
            .permute((1, 2, 0, 3))?; // [Bh, H, W, kw]
        let attn = attn
            .reshape((bh, h, w, h, w))?
            .broadcast_add(&rel_h.unsqueeze(4)?)?
            .broadcast_add(&rel_w.unsqueeze(3)?)?
            .reshape((bh, n, n))?;
        crate::model::ops::softmax_last_dim(&attn)?.matmul(v)
    }
}

/// Query rows per task of [`VitAttentionOp`]: a 32 × 4096 block of global-attention scores is
/// 512 KB, within the L2 cache.
const VIT_QUERY_BLOCK: usize = 32;

/// Attention with decomposed relative positions on the CPU: `qkv [B, N, 3·C]` (the qkv
/// projection's output, per token q, k, v, each heads × hd) → `[B, N, C]` on an `h × w` grid.
///
/// PERF: replaces candle's version, which materialised every head's `[N, N]` scores (64 MB per
/// head for global attention), added the relative-position terms through two broadcasting
/// passes over them and copied q, k, v into per-head layouts. Here each task takes one head
/// and [`VIT_QUERY_BLOCK`] query rows: `scale·q·kᵀ` by a GEMM that reads q and k in place,
/// the terms `q·R_h[y, ky]` and `q·R_w[x, kx]` added per row while it is in cache, the softmax,
/// and `p·v` written straight into the `[B, N, C]` output. The same sums as the official
/// `(attn + rel_h) + rel_w`.
struct VitAttentionOp<'a> {
    /// `[h, h, hd]`
    rel_h: &'a [f32],
    /// `[w, w, hd]`
    rel_w: &'a [f32],
    heads: usize,
    grid: (usize, usize),
}

impl candle_core::CustomOp1 for VitAttentionOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-vit-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use crate::model::simd::{dot, softmax_inplace};
        use rayon::prelude::*;
        let qkv = crate::model::ops::contiguous_f32(storage, layout)?;
        let (b, n, three_c) = layout.shape().dims3()?;
        let (gh, gw) = self.grid;
        let c = three_c / 3;
        let nh = self.heads;
        let hd = c / nh.max(1);
        if gh * gw != n
            || three_c != 3 * nh * hd
            || self.rel_h.len() != gh * gh * hd
            || self.rel_w.len() != gw * gw * hd
        {
            candle_core::bail!(
                "vit attention: shape {:?} does not fit the layer",
                layout.dims()
            );
        }
        let scale = (hd as f32).powf(-0.5);
        let blocks = n.div_ceil(VIT_QUERY_BLOCK);
        let mut out = vec![0f32; b * n * c];
        let shared = crate::model::ops::SharedOut::new(&mut out);
        (0..b * nh * blocks).into_par_iter().for_each(|job| {
            let (bh, blk) = (job / blocks, job % blocks);
            let (bi, head) = (bh / nh, bh % nh);
            let r0 = blk * VIT_QUERY_BLOCK;
            let rows = VIT_QUERY_BLOCK.min(n - r0);
            let base = bi * n * three_c;
            let (q, k, v) = (
                base + head * hd,
                base + c + head * hd,
                base + 2 * c + head * hd,
            );
            let mut scores = vec![0f32; rows * n];
            // SAFETY: q rows r0.. and all k rows of this image and head lie inside `qkv`
            // (b·n rows of 3C, checked above); `scores` holds rows·n values.
            unsafe {
                crate::model::ops::sgemm(
                    (rows, n, hd),
                    (scores.as_mut_ptr(), 1, n as isize),
                    false,
                    (qkv.as_ptr().add(q + r0 * three_c), 1, three_c as isize),
                    (qkv.as_ptr().add(k), three_c as isize, 1),
                    scale,
                    gemm::Parallelism::None,
                );
            }
            let (mut rh, mut rw) = (vec![0f32; gh], vec![0f32; gw]);
            for (i, row) in scores.chunks_exact_mut(n).enumerate() {
                let t = r0 + i;
                let (y, x) = (t / gw, t % gw);
                let q_row = &qkv[q + t * three_c..][..hd];
                for (ky, r) in rh.iter_mut().enumerate() {
                    *r = dot(q_row, &self.rel_h[(y * gh + ky) * hd..][..hd]);
                }
                for (kx, r) in rw.iter_mut().enumerate() {
                    *r = dot(q_row, &self.rel_w[(x * gw + kx) * hd..][..hd]);
                }
                for (krow, &h_term) in row.chunks_exact_mut(gw).zip(&rh) {
                    for (s, &w_term) in krow.iter_mut().zip(&rw) {
                        *s = (*s + h_term) + w_term;
                    }
                }
                softmax_inplace(row);
            }
            let dst = shared.ptr_within((bi * n + r0) * c + head * hd, (rows - 1) * c + hd);
            // SAFETY: this task alone writes columns head·hd.. of output rows r0..r0+rows of
            // image bi (tasks differ in image, head or rows), all within the span checked
            // above; `scores` and v are read as above.
            unsafe {
                crate::model::ops::sgemm(
                    (rows, hd, n),
                    (dst, 1, c as isize),
                    false,
                    (scores.as_ptr(), 1, n as isize),
                    (qkv.as_ptr().add(v), 1, three_c as isize),
                    1.0,
                    gemm::Parallelism::None,
                );
            }
        });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((b, n, c)),
        ))
    }
}

/// One ViT block: windowed or global attention, then an MLP, both residual.
struct VitBlock {
    norm1: LayerNorm,
    attn: VitAttention,
    norm2: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    window: usize,
}

impl VitBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, h, w, _) = x.dims4()?;
        let y = self.norm1.forward(x)?;
        let y = if self.window > 0 {
            let (win, padded) = window_partition(&y, self.window)?;
            let win = self.attn.forward(&win)?;
            window_unpartition(&win, self.window, padded, (h, w))?
        } else {
            self.attn.forward(&y)?
        };
        let x = (x + y)?;
        let hidden = self.lin1.forward_gelu(&self.norm2.forward(&x)?)?;
        self.lin2.forward_add(&hidden, &x, false)
    }
}

/// SAM's ViT image encoder.
pub struct ImageEncoderVit {
    /// `[1, 3, 1024, 1024]` → `[1, 64, 64, C]`
    patch_embed: Conv2d,
    /// `[1, 64, 64, C]`
    pos_embed: Tensor,
    blocks: Vec<VitBlock>,
    neck: Neck,
}

impl ImageEncoderVit {
    /// Loads the encoder from `scope` (`image_encoder.*`).
    pub fn load(s: &Scope, cfg: &VitConfig) -> Result<Self> {
        let (d, p, g) = (cfg.embed_dim, cfg.patch_size, EMBED_GRID);
        let blocks = (0..cfg.depth)
            .map(|i| {
                let b = s.pp("blocks").pp(i);
                let window = cfg.block_window(i);
                let size = if window == 0 { g } else { window };
                Ok(VitBlock {
                    norm1: LayerNorm::load(&b.pp("norm1"), d, 1e-6)?,
                    attn: VitAttention::load(&b.pp("attn"), d, cfg.num_heads, size)?,
                    norm2: LayerNorm::load(&b.pp("norm2"), d, 1e-6)?,
                    lin1: Linear::load(&b.pp("mlp.lin1"), d, cfg.mlp_dim, true)?,
                    lin2: Linear::load(&b.pp("mlp.lin2"), cfg.mlp_dim, d, true)?,
                    window,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            patch_embed: Conv2d::new(
                &s.get("patch_embed.proj.weight", &[d, 3, p, p])?,
                Some(&s.get("patch_embed.proj.bias", &[d])?),
                p,
                0,
            )?,
            pos_embed: s.get("pos_embed", &[1, g, g, d])?,
            blocks,
            neck: Neck::load(&s.pp("neck"), d)?,
        })
    }

    /// `[1, 3, 1024, 1024]` normalised image → `[1, 256, 64, 64]` embedding. `cancelled` is
    /// asked between blocks; when it answers true the forward stops with an error.
    pub fn forward(&self, x: &Tensor, cancelled: &dyn Fn() -> bool) -> candle_core::Result<Tensor> {
        let x = self.patch_embed.forward(x, ImageLayout::Nchw, false)?;
        let mut x = x.broadcast_add(&self.pos_embed)?;
        for blk in &self.blocks {
            if cancelled() {
                candle_core::bail!("cancelled");
            }
            x = blk.forward(&x)?;
        }
        self.neck.forward(&x)
    }
}
