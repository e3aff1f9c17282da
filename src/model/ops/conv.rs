//! Dense square 2-D convolutions as blocked im2col + GEMM with channels-last output.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::amx::PackedWeights;
use super::gemm::{linear_gemm, linear_gemm_into, Epilogue, SPLIT_MAX_WEIGHTS};
use super::{contiguous_f32, gelu, on_cpu_f32, transpose_2d};

/// Output length of a convolution over `n` inputs (PyTorch's formula, dilation 1).
pub(super) fn conv_out_size(n: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (n + 2 * padding).saturating_sub(kernel) / stride + 1
}

/// Memory order of a 4-D image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLayout {
    /// `[B, C, H, W]` (PyTorch's).
    Nchw,
    /// `[B, H, W, C]` (channels-last).
    Nhwc,
}

/// A dense square 2-D convolution with bias whose output is channels-last `[B, Ho, Wo, Cout]`,
/// from NCHW or NHWC input, optionally followed by GELU.
///
/// PERF: candle 0.11's CPU conv2d spent ~20% of a MobileSAM encode on the patch embedding and
/// the neck's 3×3 convolution. Here each block of output rows is unfolded (im2col) into a
/// small buffer and multiplied with the weights by one GEMM, blocks in parallel; with a large
/// weight matrix the whole image is unfolded and gemm's threads share one packed weight copy.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[k·k·Cin, Cout]`: PyTorch's `[Cout, Cin, k, k]` with each filter in (row, column,
    /// channel) order, transposed: the layout [`linear_gemm`] reads without packing, in the
    /// order [`Conv2d::unfold`] writes patches.
    weight_kn: Vec<f32>,
    /// `[Cout]`
    bias: Vec<f32>,
    /// The PyTorch-layout weight and bias for other devices.
    weight_t: Tensor,
    bias_t: Tensor,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    /// Set by [`Conv2d::split_bf16`] on CPUs with AMX: `weight_kn` packed for the tiles.
    packed: Option<std::sync::Arc<PackedWeights>>,
}

impl Conv2d {
    /// From a PyTorch-layout weight `[Cout, Cin, k, k]` and bias `[Cout]` (`None`: zeros).
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let (cout, cin, k, k2) = weight.dims4()?;
        if k != k2 {
            candle_core::bail!("conv weight must be square, got {:?}", weight.dims());
        }
        let bias_t = match bias {
            Some(b) => b.clone(),
            None => Tensor::zeros(cout, weight.dtype(), weight.device())?,
        };
        Ok(Self {
            weight_kn: transpose_2d(
                &weight
                    .permute((0, 2, 3, 1))?
                    .to_dtype(DType::F32)?
                    .contiguous()?
                    .reshape((cout, k * k * cin))?,
            )?
            .flatten_all()?
            .to_vec1()?,
            bias: bias_t.to_dtype(DType::F32)?.to_vec1()?,
            weight_t: weight.clone(),
            bias_t,
            cin,
            cout,
            kernel: k,
            stride,
            padding,
            packed: None,
        })
    }

    /// Runs the convolution's product in split bfloat16 on CPUs with AMX tiles, as
    /// [`super::Linear::split_bf16`] does for a linear layer; elsewhere unchanged.
    pub fn split_bf16(mut self) -> Self {
        if super::amx::available() {
            let (k, n) = (self.cin * self.kernel * self.kernel, self.cout);
            self.packed = Some(std::sync::Arc::new(PackedWeights::new(
                &self.weight_kn,
                k,
                n,
                true,
            )));
        }
        self
    }

    /// `x` in `layout` → `[B, Ho, Wo, Cout]`, then GELU when `gelu_after` is set.
    pub fn forward(&self, x: &Tensor, layout: ImageLayout, gelu_after: bool) -> Result<Tensor> {
        if on_cpu_f32(x) {
            return x.contiguous()?.apply_op1_no_bwd(&Conv2dOp {
                conv: self,
                layout,
                gelu: gelu_after,
            });
        }
        self.forward_tensors(x, layout, gelu_after)
    }

    /// `x` in `layout` → `[B, Ho, Wo, Cout]` plus `add` (`[1, Ho, Wo, Cout]`, broadcast over
    /// the batch), which the CPU adds as the product's epilogue (a position embedding added
    /// after a patch embedding).
    pub fn forward_add(&self, x: &Tensor, layout: ImageLayout, add: &Tensor) -> Result<Tensor> {
        if on_cpu_f32(x) && on_cpu_f32(add) {
            let op = Conv2dAddOp(Conv2dOp {
                conv: self,
                layout,
                gelu: false,
            });
            return x.contiguous()?.apply_op2_no_bwd(&add.contiguous()?, &op);
        }
        self.forward_tensors(x, layout, false)?.broadcast_add(add)
    }

    /// The forward on other devices (and dtypes), with candle's operations.
    fn forward_tensors(&self, x: &Tensor, layout: ImageLayout, gelu_after: bool) -> Result<Tensor> {
        let x = match layout {
            ImageLayout::Nchw => x.clone(),
            ImageLayout::Nhwc => x.permute((0, 3, 1, 2))?,
        };
        let y = x
            .conv2d(&self.weight_t, self.padding, self.stride, 1, 1)?
            .broadcast_add(&self.bias_t.reshape((1, self.cout, 1, 1))?)?
            .permute((0, 2, 3, 1))?
            .contiguous()?;
        if gelu_after {
            gelu(&y)
        } else {
            Ok(y)
        }
    }

    fn out_size(&self, n: usize) -> usize {
        conv_out_size(n, self.kernel, self.stride, self.padding)
    }

    /// Writes the unfolded patches of output rows `oy0..oy0 + rows.len() / (wo·K)` into `rows`
    /// (`[pixels, k·k·Cin]`, each patch in (row, column, channel) order, zeros outside the
    /// image) from one image with element strides `(c, y, x)`.
    ///
    /// PERF: with channels-last input a patch row inside the image is one contiguous run of
    /// `k·Cin` values, copied at once.
    fn unfold(
        &self,
        img: &[f32],
        strides: (usize, usize, usize),
        hw: (usize, usize),
        oy0: usize,
        rows: &mut [f32],
    ) {
        let (sc, sy, sx) = strides;
        let (h, w) = hw;
        let (k, s, p, cin) = (self.kernel, self.stride, self.padding, self.cin);
        let kk = cin * k * k;
        let wo = self.out_size(w);
        let runs = sc == 1 && sx == cin; // channels-last
        for (i, patch) in rows.chunks_exact_mut(kk).enumerate() {
            let (oy, ox) = (oy0 + i / wo, i % wo);
            let ix0 = (ox * s) as isize - p as isize;
            for (ky, prow) in patch.chunks_exact_mut(k * cin).enumerate() {
                let iy = (oy * s + ky) as isize - p as isize;
                if iy < 0 || iy as usize >= h {
                    prow.fill(0.0);
                    continue;
                }
                let row0 = iy as usize * sy;
                if runs && ix0 >= 0 && ix0 as usize + k <= w {
                    let start = row0 + ix0 as usize * sx;
                    prow.copy_from_slice(&img[start..start + k * cin]);
                    continue;
                }
                for (kx, px) in prow.chunks_exact_mut(cin).enumerate() {
                    let ix = ix0 + kx as isize;
                    if ix < 0 || ix as usize >= w {
                        px.fill(0.0);
                    } else {
                        let at = row0 + ix as usize * sx;
                        for (ci, v) in px.iter_mut().enumerate() {
                            *v = img[at + ci * sc];
                        }
                    }
                }
            }
        }
    }
}

struct Conv2dOp<'a> {
    conv: &'a Conv2d,
    layout: ImageLayout,
    gelu: bool,
}

/// [`Conv2dOp`] with a tensor `[1, Ho, Wo, Cout]` added to each image's output.
struct Conv2dAddOp<'a>(Conv2dOp<'a>);

impl CustomOp1 for Conv2dOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(contiguous_f32(storage, layout)?, layout, None)
    }
}

impl candle_core::CustomOp2 for Conv2dAddOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-conv2d-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0
            .run(contiguous_f32(s1, l1)?, l1, Some(contiguous_f32(s2, l2)?))
    }
}

impl Conv2dOp<'_> {
    /// The convolution of `src` (of `layout`'s shape), `add` (each image's output shape, GELU
    /// then not applied) added in the epilogue.
    fn run(
        &self,
        src: &[f32],
        layout: &Layout,
        add: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let conv = self.conv;
        let (b, d1, d2, d3) = layout.shape().dims4()?;
        let (c, h, w) = match self.layout {
            ImageLayout::Nchw => (d1, d2, d3),
            ImageLayout::Nhwc => (d3, d1, d2),
        };
        if c != conv.cin {
            candle_core::bail!(
                "conv2d: input has {c} channels, weight expects {}",
                conv.cin
            );
        }
        let strides = match self.layout {
            ImageLayout::Nchw => (h * w, w, 1),
            ImageLayout::Nhwc => (1, w * c, c),
        };
        let (ho, wo) = (conv.out_size(h), conv.out_size(w));
        let (kk, n) = (conv.cin * conv.kernel * conv.kernel, conv.cout);
        if add.is_some_and(|a| a.len() != ho * wo * n) {
            candle_core::bail!("conv2d: the added tensor does not have the output's shape");
        }
        // The epilogue of output rows from pixel `p0`.
        let epilogue = |p0: usize| match (add, self.gelu) {
            (Some(a), _) => Epilogue::Add(&a[p0 * n..]),
            (None, true) => Epilogue::Gelu,
            (None, false) => Epilogue::None,
        };
        let mut dst = Vec::new();
        for bi in 0..b {
            let img = &src[bi * c * h * w..][..c * h * w];
            let image_out = if n * kk > SPLIT_MAX_WEIGHTS {
                let mut cols = vec![0f32; ho * wo * kk];
                cols.par_chunks_mut(wo * kk)
                    .enumerate()
                    .for_each(|(oy, r)| conv.unfold(img, strides, (h, w), oy, r));
                let (w, bias) = (&conv.weight_kn, Some(conv.bias.as_slice()));
                let dims = (ho * wo, n, kk);
                match &conv.packed {
                    Some(p) => super::amx::linear_bf16x3(&cols, p, bias, dims, epilogue(0), true),
                    None => linear_gemm(&cols, w, bias, dims, epilogue(0)),
                }
            } else {
                // Output rows per block: about 256 KB of unfolded patches.
                let block = (65_536 / (wo * kk).max(1)).clamp(1, ho);
                let mut out = vec![0f32; ho * wo * n];
                out.par_chunks_mut(block * wo * n)
                    .enumerate()
                    .for_each(|(i, out)| {
                        let pixels = out.len() / n;
                        let mut cols = vec![0f32; pixels * kk];
                        conv.unfold(img, strides, (h, w), i * block, &mut cols);
                        let (w, bias) = (&conv.weight_kn, Some(conv.bias.as_slice()));
                        let dims = (pixels, n, kk);
                        let epilogue = epilogue(i * block * wo);
                        match &conv.packed {
                            Some(p) => super::amx::linear_bf16x3_into(
                                &cols, p, bias, dims, epilogue, out, false,
                            ),
                            None => linear_gemm_into(&cols, w, bias, dims, epilogue, out, false),
                        }
                    });
                out
            };
            if b == 1 {
                dst = image_out;
            } else {
                dst.extend_from_slice(&image_out);
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from((b, ho, wo, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testing::{assert_close, assert_close_tol, f64_of, tensor, vals};

    /// NCHW and NHWC input, with and without GELU, equal candle's conv2d.
    #[test]
    fn fallback_matches_the_cpu_kernel() {
        let w = tensor(vals(8 * 3 * 9, 5), &[8, 3, 3, 3]);
        let b = tensor(vals(8, 6), &[8]);
        let conv = Conv2d::new(&w, Some(&b), 2, 1).expect("conv");
        let conv64 = Conv2d::new(&f64_of(&w), Some(&f64_of(&b)), 2, 1).expect("conv");
        let img = tensor(vals(3 * 11 * 9, 7), &[1, 3, 11, 9]);
        assert_close(
            &conv.forward(&img, ImageLayout::Nchw, true).expect("cpu"),
            &conv64
                .forward(&f64_of(&img), ImageLayout::Nchw, true)
                .expect("fallback"),
            "conv nchw",
        );
        let nhwc = img
            .permute((0, 2, 3, 1))
            .and_then(|x| x.contiguous())
            .expect("nhwc");
        assert_close(
            &conv.forward(&nhwc, ImageLayout::Nhwc, false).expect("cpu"),
            &conv64
                .forward(&f64_of(&nhwc), ImageLayout::Nhwc, false)
                .expect("fallback"),
            "conv nhwc",
        );
        // With a tensor added as the epilogue, in f32 (1e-5) and (where the CPU has AMX
        // tiles) in split bfloat16 (5e-5; measured 1.1e-5), against the
        // f64 fallback plus the tensor.
        let add = tensor(vals(6 * 5 * 8, 8), &[1, 6, 5, 8]);
        let want = conv64
            .forward(&f64_of(&img), ImageLayout::Nchw, false)
            .and_then(|y| y.broadcast_add(&f64_of(&add)))
            .expect("fallback");
        for (conv, tol) in [(conv.clone(), 1e-5), (conv.clone().split_bf16(), 5e-5)] {
            let got = conv
                .forward_add(&img, ImageLayout::Nchw, &add)
                .expect("cpu");
            assert_close_tol(&got, &want, tol, "conv with an added tensor");
        }
    }
}
