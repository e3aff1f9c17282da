//! SAM's plain ViT image encoder (`segment_anything/modeling/image_encoder.py`): patch
//! embedding, absolute positions, windowed and global attention blocks with decomposed relative
//! positions, and the convolutional neck shared with TinyViT.

use anyhow::{bail, Result};
use candle_core::{Module, Tensor};

use super::config::{VitConfig, EMBED_GRID, PROMPT_EMBED_DIM};
use crate::model::ops::attention::VitAttentionOp;
use crate::model::ops::on_cpu_f32;
use crate::model::ops::{nhwc_to_nchw, residual_mlp, Conv2d, ImageLayout, LayerNorm, Linear};
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
            conv0: Linear::from_tensors(w0, None)?.split_bf16(),
            norm1: LayerNorm::load(&s.pp(1), d, 1e-6)?,
            conv2: Conv2d::new(&s.get("2.weight", &[d, d, 3, 3])?, None, 1, 1)?,
            norm3: LayerNorm::load(&s.pp(3), d, 1e-6)?,
        })
    }

    /// `[1, 64, 64, C]` → `[1, 256, 64, 64]`
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.norm1.forward(&self.conv0.forward(x)?)?;
        let x = self.conv2.forward(&x, ImageLayout::Nhwc, false)?;
        nhwc_to_nchw(&self.norm3.forward(&x)?)
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
            qkv: Linear::load(&s.pp("qkv"), dim, 3 * dim, true)?.split_bf16(),
            proj: Linear::load(&s.pp("proj"), dim, dim, true)?.split_bf16(),
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
        if on_cpu_f32(x) {
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
        residual_mlp(&x, Some(&self.norm2), &self.lin1, &self.lin2)
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
                    lin1: Linear::load(&b.pp("mlp.lin1"), d, cfg.mlp_dim, true)?.split_bf16(),
                    lin2: Linear::load(&b.pp("mlp.lin2"), cfg.mlp_dim, d, true)?.split_bf16(),
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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::model::ops::testing::{assert_close_tol, tensor, vals, weights};
    use crate::weights::{Scope, Weights};

    /// One attention layer of width `dim` whose relative-position tables cover `size`.
    fn attention_weights(dim: usize, size: usize, heads: usize) -> Weights {
        let hd = dim / heads;
        weights(vec![
            ("qkv.weight".into(), vec![3 * dim, dim]),
            ("qkv.bias".into(), vec![3 * dim]),
            ("proj.weight".into(), vec![dim, dim]),
            ("proj.bias".into(), vec![dim]),
            ("rel_pos_h".into(), vec![2 * size - 1, hd]),
            ("rel_pos_w".into(), vec![2 * size - 1, hd]),
        ])
    }

    /// The fused CPU attention (f32) against the plain candle path (taken here with f64), at
    /// ViT-B/L/H's head size 64: windowed on a grid that needs padding (20 × 20 in 14 × 14
    /// windows), and global.
    #[test]
    fn fused_attention_matches_candle_at_head_size_64() {
        let (dim, heads) = (128, 2);
        for (grid, window) in [(20, 14), (16, 0)] {
            let size = if window == 0 { grid } else { window };
            let w = attention_weights(dim, size, heads);
            let dev = Device::Cpu;
            let cpu = VitAttention::load(&Scope::new(&w, &dev), dim, heads, size).expect("f32");
            let f64_scope = Scope::new(&w, &dev).with_dtype(DType::F64);
            let reference = VitAttention::load(&f64_scope, dim, heads, size).expect("f64");
            let x = tensor(vals(grid * grid * dim, 5), &[1, grid, grid, dim]);
            let run = |attn: &VitAttention, x: &Tensor| -> Tensor {
                if window == 0 {
                    return attn.forward(x).expect("forward");
                }
                let (win, padded) = window_partition(x, window).expect("partition");
                let y = attn.forward(&win).expect("forward");
                window_unpartition(&y, window, padded, (grid, grid)).expect("unpartition")
            };
            let got = run(&cpu, &x);
            let want = run(&reference, &x.to_dtype(DType::F64).expect("f64"));
            assert_eq!(got.dims(), [1, grid, grid, dim]);
            assert_close_tol(&got, &want, 2e-5, &format!("grid {grid}, window {window}"));
        }
    }
}
