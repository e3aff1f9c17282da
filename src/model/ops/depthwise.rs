//! Depthwise (one filter per channel) convolutions on channels-last data.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv::conv_out_size;
use super::{contiguous_f32, gelu, on_cpu_f32};

/// A depthwise (one filter per channel) square convolution on channels-last data, with the
/// bias (and any folded BatchNorm) applied.
///
/// PERF: candle 0.11 runs grouped convolutions group by group with a tiny GEMM per tile
/// (~94,000 GEMM calls for one MobileSAM forward, 44% of its time); this direct kernel works on
/// `[B, H, W, C]` rows in parallel with the channel axis innermost, so it vectorises.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    /// `[k*k, C]`, tap-major.
    weight_hwc: Vec<f32>,
    /// `[C]`
    bias: Vec<f32>,
    /// The same filter as an NCHW candle kernel `[C, 1, k, k]` for non-CPU devices.
    weight_nchw: Tensor,
    bias_tensor: Tensor,
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl DepthwiseConv {
    /// From a PyTorch-layout weight `[C, 1, k, k]` and bias `[C]`.
    pub fn new(weight: &Tensor, bias: &Tensor, stride: usize, padding: usize) -> Result<Self> {
        let (c, one, k, k2) = weight.dims4()?;
        if one != 1 || k != k2 {
            candle_core::bail!(
                "depthwise weight must be [C, 1, k, k], got {:?}",
                weight.dims()
            );
        }
        let w: Vec<f32> = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut weight_hwc = vec![0f32; c * k * k];
        for ch in 0..c {
            for t in 0..k * k {
                weight_hwc[t * c + ch] = w[ch * k * k + t];
            }
        }
        Ok(Self {
            weight_hwc,
            bias: bias.to_dtype(DType::F32)?.to_vec1()?,
            weight_nchw: weight.clone(),
            bias_tensor: bias.clone(),
            channels: c,
            kernel: k,
            stride,
            padding,
        })
    }

    /// `[B, H, W, C]` → `[B, Ho, Wo, C]`.
    pub fn forward_nhwc(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, false)
    }

    /// `gelu(conv(x))`, `[B, H, W, C]` → `[B, Ho, Wo, C]`; on the CPU the GELU runs on each
    /// output row while it is in cache.
    pub fn forward_nhwc_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, true)
    }

    fn forward_impl(&self, x: &Tensor, gelu_after: bool) -> Result<Tensor> {
        if on_cpu_f32(x) {
            x.contiguous()?.apply_op1_no_bwd(&DepthwiseOp {
                conv: self,
                gelu: gelu_after,
            })
        } else if gelu_after {
            gelu(&self.forward_impl(x, false)?)
        } else {
            let y = x.permute((0, 3, 1, 2))?.conv2d(
                &self.weight_nchw,
                self.padding,
                self.stride,
                1,
                self.channels,
            )?;
            let y = y.broadcast_add(&self.bias_tensor.reshape((1, self.channels, 1, 1))?)?;
            y.permute((0, 2, 3, 1))?.contiguous()
        }
    }

    fn out_size(&self, n: usize) -> usize {
        conv_out_size(n, self.kernel, self.stride, self.padding)
    }
}

/// [`DepthwiseConv`] on the CPU, optionally followed by GELU.
struct DepthwiseOp<'a> {
    conv: &'a DepthwiseConv,
    gelu: bool,
}

impl CustomOp1 for DepthwiseOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-depthwise-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let conv = self.conv;
        let src = contiguous_f32(storage, layout)?;
        let (b, h, w, c) = layout.shape().dims4()?;
        if c != conv.channels {
            candle_core::bail!("depthwise conv: {c} channels, filter has {}", conv.channels);
        }
        let (ho, wo) = (conv.out_size(h), conv.out_size(w));
        let mut dst = vec![0f32; b * ho * wo * c];
        dst.par_chunks_mut(wo * c)
            .enumerate()
            .for_each(|(row, out)| {
                let (bi, oy) = (row / ho, row % ho);
                let image = &src[bi * h * w * c..][..h * w * c];
                depthwise_row(conv, image, (h, w), oy, out);
                if self.gelu {
                    crate::model::simd::gelu_inplace(out);
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((b, ho, wo, c))))
    }
}

crate::model::simd::multiversion! {
    /// One output row `oy` (`[Wo, C]`) of a depthwise convolution of `image` `[H, W, C]`.
    fn depthwise_row(conv: &DepthwiseConv, image: &[f32], hw: (usize, usize), oy: usize, out: &mut [f32]) {
        let (h, w) = hw;
        let c = conv.channels;
        let (k, s, p) = (conv.kernel, conv.stride, conv.padding);
        for px in out.chunks_exact_mut(c) {
            px.copy_from_slice(&conv.bias);
        }
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - p as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let in_row = &image[iy as usize * w * c..][..w * c];
            for kx in 0..k {
                let wt = &conv.weight_hwc[(ky * k + kx) * c..][..c];
                for (ox, px) in out.chunks_exact_mut(c).enumerate() {
                    let ix = (ox * s + kx) as isize - p as isize;
                    if ix < 0 || ix >= w as isize {
                        continue;
                    }
                    let inp = &in_row[ix as usize * c..][..c];
                    for ((o, i), wv) in px.iter_mut().zip(inp).zip(wt) {
                        *o += i * wv;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testing::{assert_close, f64_of, tensor, vals};

    #[test]
    fn fallback_matches_the_cpu_kernel() {
        let dw_w = tensor(vals(6 * 9, 8), &[6, 1, 3, 3]);
        let dw_b = tensor(vals(6, 9), &[6]);
        let dw = DepthwiseConv::new(&dw_w, &dw_b, 2, 1).expect("dw");
        let dw64 = DepthwiseConv::new(&f64_of(&dw_w), &f64_of(&dw_b), 2, 1).expect("dw");
        let x = tensor(vals(7 * 5 * 6, 10), &[1, 7, 5, 6]);
        assert_close(
            &dw.forward_nhwc_gelu(&x).expect("cpu"),
            &dw64.forward_nhwc_gelu(&f64_of(&x)).expect("fallback"),
            "depthwise + gelu",
        );
        assert_close(
            &dw.forward_nhwc(&x).expect("cpu"),
            &dw64.forward_nhwc(&f64_of(&x)).expect("fallback"),
            "depthwise",
        );
    }
}
