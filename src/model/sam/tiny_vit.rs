//! TinyViT, the image encoder of MobileSAM (`mobile_sam/modeling/tiny_vit_sam.py`).
//!
//! Runs channels-last (`[1, H, W, C]`) throughout: the 1×1 convolutions become GEMMs and the
//! depthwise convolutions use [`DepthwiseConv`], so no layout copies are needed between blocks.
//! Every `Conv2d_BN` has its eval-mode BatchNorm folded into the convolution at load (exact in
//! eval mode; onnxruntime does the same).

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::config::TinyVitConfig;
use super::image_encoder::{window_partition, window_unpartition, Neck};
use crate::model::ops::attention::{padded_row, WindowAttentionOp};
use crate::model::ops::on_cpu_f32;
use crate::model::ops::{residual_mlp, Conv2d, DepthwiseConv, ImageLayout, LayerNorm, Linear};
use crate::weights::Scope;

/// BatchNorm eps of `Conv2d_BN` (PyTorch default).
const BN_EPS: f64 = 1e-5;

/// Loads `prefix.c.weight` `[cout, cin, k, k]` and folds `prefix.bn.*` into it.
/// Returns the folded weight and bias `[cout]`.
fn load_conv_bn(s: &Scope, cin: usize, cout: usize, k: usize) -> Result<(Tensor, Tensor)> {
    let w = s.get_vec("c.weight", &[cout, cin, k, k])?;
    let bn = s.pp("bn");
    let gamma = bn.get_vec("weight", &[cout])?;
    let beta = bn.get_vec("bias", &[cout])?;
    let mean = bn.get_vec("running_mean", &[cout])?;
    let var = bn.get_vec("running_var", &[cout])?;
    let per = cin * k * k;
    let mut wf = vec![0f32; w.len()];
    let mut bf = vec![0f32; cout];
    for o in 0..cout {
        let scale = f64::from(gamma[o]) / (f64::from(var[o]) + BN_EPS).sqrt();
        for i in 0..per {
            wf[o * per + i] = (f64::from(w[o * per + i]) * scale) as f32;
        }
        bf[o] = (f64::from(beta[o]) - f64::from(mean[o]) * scale) as f32;
    }
    let dev = s.device();
    Ok((
        Tensor::from_vec(wf, (cout, cin, k, k), dev)?.to_dtype(s.dtype())?,
        Tensor::from_vec(bf, cout, dev)?.to_dtype(s.dtype())?,
    ))
}

/// A 1×1 `Conv2d_BN` as a channels-last linear layer.
fn load_pointwise(s: &Scope, cin: usize, cout: usize) -> Result<Linear> {
    let (w, b) = load_conv_bn(s, cin, cout, 1)?;
    Ok(Linear::from_tensors(w.reshape((cout, cin))?, Some(b))?.split_bf16())
}

/// A depthwise `Conv2d_BN`.
fn load_depthwise(s: &Scope, c: usize, k: usize, stride: usize) -> Result<DepthwiseConv> {
    let (w, b) = load_conv_bn(s, 1, c, k)?;
    Ok(DepthwiseConv::new(&w, &b, stride, k / 2)?)
}

/// A dense `Conv2d_BN` (the patch embedding), channels-last output.
fn load_dense(s: &Scope, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv2d> {
    let (weight, bias) = load_conv_bn(s, cin, cout, k)?;
    Ok(Conv2d::new(&weight, Some(&bias), stride, k / 2)?)
}

/// Inverted-residual block of stage 0.
struct MbConv {
    conv1: Linear,
    conv2: DepthwiseConv,
    conv3: Linear,
}

impl MbConv {
    fn load(s: &Scope, c: usize, expand: usize) -> Result<Self> {
        let h = c * expand;
        Ok(Self {
            conv1: load_pointwise(&s.pp("conv1"), c, h)?,
            conv2: load_depthwise(&s.pp("conv2"), h, 3, 1)?,
            conv3: load_pointwise(&s.pp("conv3"), h, c)?,
        })
    }

    /// `[1, H, W, C]` → `[1, H, W, C]`
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.conv1.forward_gelu(x)?;
        let y = self.conv2.forward_nhwc_gelu(&y)?;
        self.conv3.forward_add(&y, x, true)
    }
}

/// Downsampling between stages.
struct PatchMerging {
    conv1: Linear,
    conv2: DepthwiseConv,
    conv3: Linear,
}

impl PatchMerging {
    fn load(s: &Scope, c: usize, out: usize, stride: usize) -> Result<Self> {
        Ok(Self {
            conv1: load_pointwise(&s.pp("conv1"), c, out)?,
            conv2: load_depthwise(&s.pp("conv2"), out, 3, stride)?,
            conv3: load_pointwise(&s.pp("conv3"), out, out)?,
        })
    }

    /// `[1, H, W, C]` → `[1, H/s, W/s, out]`
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.conv1.forward_gelu(x)?;
        let y = self.conv2.forward_nhwc_gelu(&y)?;
        self.conv3.forward(&y)
    }
}

/// Window self-attention with learned per-offset biases (TinyViT `Attention`).
struct WindowAttention {
    norm: LayerNorm,
    qkv: Linear,
    proj: Linear,
    /// `attention_biases[:, attention_bias_idxs]`, gathered once at load: `[heads, N, N]`.
    bias: Tensor,
    /// The same as plain data for the CPU kernel, each row padded with `-inf` to a whole
    /// number of 16-lane vectors: `[heads, N, padded_row(N)]`.
    bias_v: Vec<f32>,
    num_heads: usize,
    key_dim: usize,
}

impl WindowAttention {
    fn load(s: &Scope, dim: usize, num_heads: usize, ws: usize) -> Result<Self> {
        let key_dim = dim / num_heads;
        let n = ws * ws;
        // Offsets (|dy|, |dx|) numbered in order of first appearance, as the official code does.
        let points: Vec<(usize, usize)> =
            (0..ws).flat_map(|y| (0..ws).map(move |x| (y, x))).collect();
        let mut offsets = std::collections::HashMap::new();
        let mut idxs = Vec::with_capacity(n * n);
        for p1 in &points {
            for p2 in &points {
                let off = (p1.0.abs_diff(p2.0), p1.1.abs_diff(p2.1));
                let next = offsets.len();
                idxs.push(*offsets.entry(off).or_insert(next));
            }
        }
        let table = s.get_vec("attention_biases", &[num_heads, offsets.len()])?;
        let mut gathered = Vec::with_capacity(num_heads * n * n);
        for h in 0..num_heads {
            gathered.extend(idxs.iter().map(|&i| table[h * offsets.len() + i]));
        }
        Ok(Self {
            norm: LayerNorm::load(&s.pp("norm"), dim, 1e-5)?,
            qkv: Linear::load(&s.pp("qkv"), dim, 3 * dim, true)?.split_bf16(),
            proj: Linear::load(&s.pp("proj"), dim, dim, true)?.split_bf16(),
            bias_v: gathered
                .chunks_exact(n)
                .flat_map(|row| {
                    let pad = padded_row(n) - n;
                    row.iter()
                        .copied()
                        .chain(std::iter::repeat_n(f32::NEG_INFINITY, pad))
                })
                .collect(),
            bias: Tensor::from_vec(gathered, (num_heads, n, n), s.device())?.to_dtype(s.dtype())?,
            num_heads,
            key_dim,
        })
    }

    /// `x + attention(x)` for an image `x [1, H, W, C]` cut into `ws × ws` windows (zero
    /// padded at the bottom and right), as `TinyViTBlock` computes it.
    ///
    /// PERF: on the CPU the norm and the qkv projection run on the image's own tokens (not on
    /// the padded windows: 20% fewer rows at 64 × 64), the attention gathers each window's
    /// rows itself and writes its output back in image order, and the output projection adds
    /// the residual as its epilogue: no partition, unpartition or residual pass over the image.
    /// A padding token is a zero row before the norm, so its q, k and v are the projection of
    /// the norm's bias, computed once per call.
    fn forward_image(&self, x: &Tensor, ws: usize) -> candle_core::Result<Tensor> {
        let (_, h, w, c) = x.dims4()?;
        if !on_cpu_f32(x) {
            let (windows, padded) = window_partition(x, ws)?; // [nW, ws, ws, C]
            let n_win = windows.dim(0)?;
            let y = self.forward_windows(&windows.reshape((n_win, ws * ws, c))?)?;
            let y = window_unpartition(&y.reshape((n_win, ws, ws, c))?, ws, padded, (h, w))?;
            return x + y;
        }
        let qkv = self.qkv.forward(&self.norm.forward(x)?)?; // [1, H, W, 3C]
        let zero = Tensor::zeros((1, c), x.dtype(), x.device())?;
        let pad_qkv = self
            .qkv
            .forward(&self.norm.forward(&zero)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let op = WindowAttentionOp {
            bias: &self.bias_v,
            heads: self.num_heads,
            key_dim: self.key_dim,
            window: ws,
            pad_qkv: &pad_qkv,
        };
        let y = qkv.contiguous()?.apply_op1_no_bwd(&op)?; // [1, H, W, C]
        self.proj.forward_add(&y, x, false)
    }

    /// `[windows, N, C]` → `[windows, N, C]` with candle ops (GPUs and other dtypes).
    fn forward_windows(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let (nh, kd) = (self.num_heads, self.key_dim);
        let qkv = self
            .qkv
            .forward(&self.norm.forward(x)?)?
            .reshape((b, n, nh, 3 * kd))?;
        // [windows, heads, N, kd]
        let q = qkv.narrow(3, 0, kd)?.transpose(1, 2)?.contiguous()?;
        let k = qkv.narrow(3, kd, kd)?.transpose(1, 2)?.contiguous()?;
        let v = qkv.narrow(3, 2 * kd, kd)?.transpose(1, 2)?.contiguous()?;
        let scale = (kd as f64).powf(-0.5);
        // [windows, heads, N, N]
        let attn = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&self.bias)?;
        let attn = crate::model::ops::softmax_last_dim(&attn)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, c))?;
        self.proj.forward(&out)
    }
}

/// TinyViT transformer block: window attention, depthwise "local" conv, MLP.
struct TinyVitBlock {
    attn: WindowAttention,
    local_conv: DepthwiseConv,
    mlp_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    window: usize,
}

impl TinyVitBlock {
    fn load(s: &Scope, dim: usize, heads: usize, ws: usize, cfg: &TinyVitConfig) -> Result<Self> {
        let hidden = dim * cfg.mlp_ratio;
        let mlp = s.pp("mlp");
        Ok(Self {
            attn: WindowAttention::load(&s.pp("attn"), dim, heads, ws)?,
            local_conv: load_depthwise(&s.pp("local_conv"), dim, cfg.local_conv_size, 1)?,
            mlp_norm: LayerNorm::load(&mlp.pp("norm"), dim, 1e-5)?,
            fc1: Linear::load(&mlp.pp("fc1"), dim, hidden, true)?.split_bf16(),
            fc2: Linear::load(&mlp.pp("fc2"), hidden, dim, true)?.split_bf16(),
            window: ws,
        })
    }

    /// `[1, H, W, C]` → `[1, H, W, C]`
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.attn.forward_image(x, self.window)?;
        let x = self.local_conv.forward_nhwc(&x)?;
        residual_mlp(&x, Some(&self.mlp_norm), &self.fc1, &self.fc2)
    }
}

enum Stage {
    Conv(Vec<MbConv>),
    Attn(Vec<TinyVitBlock>),
}

/// MobileSAM's image encoder.
pub struct TinyVit {
    patch_embed: (Conv2d, Conv2d),
    stages: Vec<(Stage, Option<PatchMerging>)>,
    neck: Neck,
}

impl TinyVit {
    /// Loads the encoder from `scope` (`image_encoder.*`).
    pub fn load(s: &Scope, cfg: &TinyVitConfig) -> Result<Self> {
        let d0 = cfg.embed_dims[0];
        let pe = s.pp("patch_embed.seq");
        let patch_embed = (
            load_dense(&pe.pp(0), 3, d0 / 2, 3, 2)?,
            load_dense(&pe.pp(2), d0 / 2, d0, 3, 2)?,
        );
        let mut stages = Vec::new();
        for (i, &dim) in cfg.embed_dims.iter().enumerate() {
            let l = s.pp("layers").pp(i);
            let stage = if i == 0 {
                Stage::Conv(
                    (0..cfg.depths[i])
                        .map(|j| MbConv::load(&l.pp("blocks").pp(j), dim, cfg.mbconv_expand_ratio))
                        .collect::<Result<_>>()?,
                )
            } else {
                Stage::Attn(
                    (0..cfg.depths[i])
                        .map(|j| {
                            let b = l.pp("blocks").pp(j);
                            TinyVitBlock::load(&b, dim, cfg.num_heads[i], cfg.window_sizes[i], cfg)
                        })
                        .collect::<Result<_>>()?,
                )
            };
            let down = match cfg.embed_dims.get(i + 1) {
                Some(&out) => Some(PatchMerging::load(
                    &l.pp("downsample"),
                    dim,
                    out,
                    cfg.merge_stride(i),
                )?),
                None => None,
            };
            stages.push((stage, down));
        }
        let last = cfg.embed_dims[cfg.embed_dims.len() - 1];
        Ok(Self {
            patch_embed,
            stages,
            neck: Neck::load(&s.pp("neck"), last)?,
        })
    }

    /// `[1, 3, 1024, 1024]` normalised image → `[1, 256, 64, 64]` embedding. `cancelled` is
    /// asked between blocks; when it answers true the forward stops with an error.
    pub fn forward(&self, x: &Tensor, cancelled: &dyn Fn() -> bool) -> candle_core::Result<Tensor> {
        let x = self.patch_embed.0.forward(x, ImageLayout::Nchw, true)?;
        let mut x = self.patch_embed.1.forward(&x, ImageLayout::Nhwc, false)?; // [1, H, W, C]
        for (stage, down) in &self.stages {
            match stage {
                Stage::Conv(blocks) => {
                    for b in blocks {
                        if cancelled() {
                            candle_core::bail!("cancelled");
                        }
                        x = b.forward(&x)?;
                    }
                }
                Stage::Attn(blocks) => {
                    for b in blocks {
                        if cancelled() {
                            candle_core::bail!("cancelled");
                        }
                        x = b.forward(&x)?;
                    }
                }
            }
            if let Some(d) = down {
                x = d.forward(&x)?;
            }
        }
        self.neck.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::model::ops::testing::{assert_close_tol, tensor, vals, weights};
    use crate::weights::Scope;

    /// The fused CPU window attention (f32: padding tokens made from the norm's bias, windows
    /// gathered and scattered in place) against the plain candle path (zero-padded windows,
    /// taken here with f64), at head size 64 on an image that needs padding.
    #[test]
    fn fused_window_attention_matches_candle_at_head_size_64() {
        let (dim, heads, ws) = (128, 2, 7);
        let w = weights(vec![
            ("attention_biases".into(), vec![heads, ws * ws]),
            ("norm.weight".into(), vec![dim]),
            ("norm.bias".into(), vec![dim]),
            ("qkv.weight".into(), vec![3 * dim, dim]),
            ("qkv.bias".into(), vec![3 * dim]),
            ("proj.weight".into(), vec![dim, dim]),
            ("proj.bias".into(), vec![dim]),
        ]);
        let dev = Device::Cpu;
        let cpu = WindowAttention::load(&Scope::new(&w, &dev), dim, heads, ws).expect("f32");
        let f64_scope = Scope::new(&w, &dev).with_dtype(DType::F64);
        let reference = WindowAttention::load(&f64_scope, dim, heads, ws).expect("f64");
        let (h, wd) = (10, 12);
        let x = tensor(vals(h * wd * dim, 9), &[1, h, wd, dim]);
        let got = cpu.forward_image(&x, ws).expect("fused");
        let want = reference
            .forward_image(&x.to_dtype(DType::F64).expect("f64"), ws)
            .expect("candle");
        assert_eq!(got.dims(), [1, h, wd, dim]);
        assert_close_tol(&got, &want, 2e-5, "window attention");
    }
}
