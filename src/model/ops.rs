//! Building blocks shared by the models: linear layers, layer norms, exact GELU, a direct
//! depthwise convolution and a PyTorch-equivalent bilinear resize.
//!
//! The CPU kernels here are `CustomOp`s that replace candle ops which are slow on this workload
//! (see `PERF` notes on each); on other devices the same function falls back to candle's op.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::weights::{Scope, WeightsError};

/// A fully connected layer `y = x Wᵀ + b` over the last dimension.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`
    weight: Tensor,
    /// `[out]`
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]` (when `bias` is true) from `scope`.
    pub fn load(
        scope: &Scope,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> std::result::Result<Self, WeightsError> {
        let weight = scope.get("weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(scope.get("bias", &[out_dim])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// Builds a layer from tensors (`weight` `[out, in]`, `bias` `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    /// `[..., in]` → `[..., out]`; leading dimensions are flattened into one GEMM.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let x2 = x.reshape((rows, in_dim))?;
        let y = if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
            let op = LinearOp {
                bias: self.bias.as_ref().map(|b| b.to_vec1()).transpose()?,
            };
            x2.contiguous()?.apply_op2_no_bwd(&self.weight, &op)?
        } else {
            let y = x2.matmul(&self.weight.t()?)?;
            match &self.bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            }
        };
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.out_dim();
        y.reshape(out_dims)
    }
}

/// Products below this many multiply-adds run on one thread: waking the pool costs more.
const PARALLEL_GEMM_MIN_MACS: usize = 1 << 21;

/// `dst[m×n] = bias + a[m×k] · bᵀ` with `b` row-major `[n×k]` (a weight matrix), row-major
/// output.
pub fn gemm_abt(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    assert!(
        a.len() >= m * k && b.len() >= n * k,
        "gemm_abt: operands too short"
    );
    let mut dst = match bias {
        Some(bias) => {
            assert_eq!(bias.len(), n, "gemm_abt: bias length");
            let mut d = Vec::with_capacity(m * n);
            for _ in 0..m {
                d.extend_from_slice(bias);
            }
            d
        }
        None => vec![0f32; m * n],
    };
    if m == 0 || n == 0 {
        return dst;
    }
    let parallelism = if m * n * k < PARALLEL_GEMM_MIN_MACS {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    };
    // SAFETY: `dst` holds m·n elements written with strides (1, n); `a` holds m·k read with
    // strides (1, k); `b` holds n·k read as the transposed k×n matrix with strides (k, 1). The
    // asserts above check the lengths and `dst` does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            bias.is_some(),
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    dst
}

/// Row counts up to which [`small_m_abt`] beats the packed GEMM.
const SMALL_M: usize = 24;

/// `bias + a[m×k] · bᵀ` for few rows `m`: one dot product per output, weights streamed once.
///
/// PERF: the packed GEMM re-packs the whole weight matrix on every call, which for a handful
/// of rows (a 16-token sentence, the decoder's prompt tokens) costs more than the arithmetic.
pub fn small_m_abt(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    use crate::model::simd::dot;
    let mut out_t = vec![0f32; n * m]; // [n, m]: each task owns whole weight rows
    let work = |(j, col): (usize, &mut [f32])| {
        let w = &b[j * k..(j + 1) * k];
        let b0 = bias.map_or(0.0, |bb| bb[j]);
        for (i, o) in col.iter_mut().enumerate() {
            *o = b0 + dot(&a[i * k..(i + 1) * k], w);
        }
    };
    if m * n * k >= PARALLEL_GEMM_MIN_MACS {
        out_t.par_chunks_mut(m.max(1)).enumerate().for_each(work);
    } else {
        out_t.chunks_mut(m.max(1)).enumerate().for_each(work);
    }
    let mut out = vec![0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            out[i * n + j] = out_t[j * m + i];
        }
    }
    out
}

/// `x · Wᵀ + b` on the CPU with the bias fused into the GEMM.
///
/// PERF: candle's matmul always wakes the thread pool and adds the bias in a second pass; for
/// the small products of a 16-token text model or a mask-decoder click the pool wake-up cost
/// more than the arithmetic.
struct LinearOp {
    bias: Option<Vec<f32>>,
}

impl candle_core::CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "segattn-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1)?;
        let w = contiguous_f32(s2, l2)?;
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("linear: input has {k} features, weight expects {k2}");
        }
        let dst = if m <= SMALL_M {
            small_m_abt(x, w, self.bias.as_deref(), m, n, k)
        } else {
            gemm_abt(x, w, self.bias.as_deref(), m, n, k)
        };
        Ok((CpuStorage::F32(dst), Shape::from((m, n))))
    }
}

/// Layer normalisation over the last dimension (PyTorch `nn.LayerNorm`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (or the older `gamma` and `beta`) of size `dim`.
    pub fn load(scope: &Scope, dim: usize, eps: f32) -> std::result::Result<Self, WeightsError> {
        let (w, b) = if scope.contains("gamma") {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Self {
            weight: scope.get(w, &[dim])?,
            bias: scope.get(b, &[dim])?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Two-pass layer norm over the last dimension: mean first, then the variance of the centred
/// values, as PyTorch computes it (candle's fused op uses `E[x²] − E[x]²`, which loses digits
/// on rows with a large mean).
struct LayerNormOp {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl CustomOp1 for LayerNormOp {
    fn name(&self) -> &'static str {
        "segattn-layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let dim = self.weight.len();
        let mut dst = vec![0f32; src.len()];
        let (w, b, eps) = (&self.weight, &self.bias, self.eps);
        dst.par_chunks_mut(dim.max(1) * 16)
            .zip(src.par_chunks(dim.max(1) * 16))
            .for_each(|(d, s)| {
                for (d, s) in d.chunks_mut(dim).zip(s.chunks(dim)) {
                    let n = dim as f32;
                    let mean = lane_sum(s, |v| v) / n;
                    let var = lane_sum(s, |v| (v - mean) * (v - mean)) / n;
                    let inv = 1.0 / (var + eps).sqrt();
                    for (((d, &s), &w), &b) in d.iter_mut().zip(s).zip(w).zip(b) {
                        *d = (s - mean) * inv * w + b;
                    }
                }
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Σ f(x) over a slice with 8 independent partial sums, so the loop vectorises (a single
/// running f32 sum is one long dependency chain).
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let mut total = tail.iter().map(|&v| f(v)).sum::<f32>();
    for a in acc {
        total += a;
    }
    total
}

/// Layer norm over the last dimension of `x` with `weight` / `bias` `[dim]`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        let op = LayerNormOp {
            weight: weight.to_vec1()?,
            bias: bias.to_vec1()?,
            eps,
        };
        x.contiguous()?.apply_op1_no_bwd(&op)
    } else {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + f64::from(eps))?.sqrt()?)?
            .broadcast_mul(weight)?
            .broadcast_add(bias)
    }
}

/// Layer norm over the channel axis of an NCHW tensor (SAM's `LayerNorm2d`, eps 1e-6).
#[derive(Debug, Clone)]
pub struct LayerNorm2d {
    /// `[1, C, 1, 1]`
    weight: Tensor,
    /// `[1, C, 1, 1]`
    bias: Tensor,
    eps: f64,
}

impl LayerNorm2d {
    /// Loads `weight` and `bias` of size `channels`.
    pub fn load(scope: &Scope, channels: usize, eps: f64) -> anyhow::Result<Self> {
        Ok(Self {
            weight: scope
                .get("weight", &[channels])?
                .reshape((1, channels, 1, 1))?,
            bias: scope
                .get("bias", &[channels])?
                .reshape((1, channels, 1, 1))?,
            eps,
        })
    }
}

impl Module for LayerNorm2d {
    /// `[B, C, H, W]` → `[B, C, H, W]`
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let u = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&u)?;
        let s = xc.sqr()?.mean_keepdim(1)?;
        let x = xc.broadcast_div(&(s + self.eps)?.sqrt()?)?;
        x.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Borrow the contiguous f32 data of a CPU storage.
pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("expected f32 storage")
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("expected a contiguous tensor"),
    }
}

/// Exact GELU, `0.5·x·(1 + erf(x/√2))`, as PyTorch's `nn.GELU()` (not the tanh approximation).
///
/// PERF: candle's `gelu_erf` runs per element on one thread through libm; this one is parallel
/// and vectorises (see [`erf_f32`]).
struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "segattn-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let mut dst = vec![0f32; src.len()];
        dst.par_chunks_mut(1 << 14)
            .zip(src.par_chunks(1 << 14))
            .for_each(|(d, s)| {
                for (d, &x) in d.iter_mut().zip(s) {
                    *d = x * 0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// `erf(x)` in f32 as a branch-free rational approximation that vectorises (the form Eigen and
/// XLA use): within 5e-7 of the true value everywhere (worst near |x| = 3.5, where erf ≈ 1), on a
/// par with PyTorch's own vectorised erf (Abramowitz–Stegun 7.1.26, 1.5e-7 absolute).
#[inline]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    let p = x * p;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_3e-3;
    q = x2 * q + -1.426_473_9e-2;
    p / q
}

/// Exact (erf) GELU of `x`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&GeluErf)
    } else {
        x.gelu_erf()
    }
}

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
        let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
        let mut weight_hwc = vec![0f32; c * k * k];
        for ch in 0..c {
            for t in 0..k * k {
                weight_hwc[t * c + ch] = w[ch * k * k + t];
            }
        }
        Ok(Self {
            weight_hwc,
            bias: bias.to_vec1()?,
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
        if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
            x.contiguous()?.apply_op1_no_bwd(self)
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
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

impl CustomOp1 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "segattn-depthwise-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let (b, h, w, c) = layout.shape().dims4()?;
        if c != self.channels {
            candle_core::bail!("depthwise conv: {c} channels, filter has {}", self.channels);
        }
        let (ho, wo) = (self.out_size(h), self.out_size(w));
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let mut dst = vec![0f32; b * ho * wo * c];
        dst.par_chunks_mut(wo * c)
            .enumerate()
            .for_each(|(row, out)| {
                let (bi, oy) = (row / ho, row % ho);
                for px in out.chunks_mut(c) {
                    px.copy_from_slice(&self.bias);
                }
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let in_row = &src[(bi * h + iy as usize) * w * c..][..w * c];
                    for kx in 0..k {
                        let wt = &self.weight_hwc[(ky * k + kx) * c..][..c];
                        for (ox, px) in out.chunks_mut(c).enumerate() {
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
            });
        Ok((CpuStorage::F32(dst), Shape::from((b, ho, wo, c))))
    }
}

/// Bilinear resize of one `src_h × src_w` plane with PyTorch's `F.interpolate(mode="bilinear",
/// align_corners=False)` semantics, computing only the top-left `out_h × out_w` window of a
/// `full_h × full_w` result (the window SAM crops after its first upscale).
pub fn resize_bilinear_window(
    src: &[f32],
    (src_h, src_w): (usize, usize),
    (full_h, full_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    let xs = linear_taps(src_w, full_w, out_w);
    let ys = linear_taps(src_h, full_h, out_h);
    let mut dst = vec![0f32; out_h * out_w];
    dst.par_chunks_mut(out_w.max(1))
        .zip(ys.par_iter())
        .for_each(|(row, &(y0, y1, ly0, ly1))| {
            let r0 = &src[y0 * src_w..][..src_w];
            let r1 = &src[y1 * src_w..][..src_w];
            for (d, &(x0, x1, lx0, lx1)) in row.iter_mut().zip(&xs) {
                *d = ly0 * (lx0 * r0[x0] + lx1 * r0[x1]) + ly1 * (lx0 * r1[x0] + lx1 * r1[x1]);
            }
        });
    dst
}

/// For each of the first `count` outputs of an `in_size → out_size` linear resize: the two source
/// indices and their weights, as PyTorch computes them in f32.
fn linear_taps(in_size: usize, out_size: usize, count: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = in_size as f32 / out_size as f32;
    (0..count)
        .map(|i| {
            let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(in_size - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// `[B, H, W, C]` contiguous f32 data of a tensor, copied to the CPU (for small results only).
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_f32_is_accurate() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let err = (f64::from(erf_f32(x)) - libm::erf(f64::from(x))).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "max |erf error| {worst:e}");
    }

    #[test]
    fn layer_norm_matches_two_pass_f64() {
        let x: Vec<f32> = (0..3 * 37)
            .map(|i| ((i * 7919) % 101) as f32 * 0.37 + 1000.0)
            .collect();
        let w: Vec<f32> = (0..37).map(|i| 1.0 + i as f32 * 0.01).collect();
        let b: Vec<f32> = (0..37).map(|i| i as f32 * -0.02).collect();
        let dev = Device::Cpu;
        let t = Tensor::from_slice(&x, (3, 37), &dev).expect("tensor");
        let wt = Tensor::from_slice(&w, 37, &dev).expect("tensor");
        let bt = Tensor::from_slice(&b, 37, &dev).expect("tensor");
        let ours: Vec<f32> = layer_norm(&t, &wt, &bt, 1e-5)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("layer norm");
        for (r, row) in x.chunks(37).enumerate() {
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / 37.0;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / 37.0;
            for i in 0..37 {
                let e = (f64::from(row[i]) - mean) / (var + 1e-5).sqrt() * f64::from(w[i])
                    + f64::from(b[i]);
                assert!(
                    (f64::from(ours[r * 37 + i]) - e).abs() < 1e-4,
                    "row {r} col {i}"
                );
            }
        }
    }
}
