//! Layer normalisations: over the last dimension (two-pass, as PyTorch) and over the channels of
//! an NCHW tensor (SAM's `LayerNorm2d`).

use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor, D};

use super::{contiguous_f32, in_f32, on_cpu_f32};
use crate::weights::{Scope, WeightsError};

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

impl LayerNorm {
    /// The weight, bias and epsilon as host data.
    pub fn to_host(&self) -> Result<(Vec<f32>, Vec<f32>, f32)> {
        Ok((
            super::to_vec_f32(&self.weight)?,
            super::to_vec_f32(&self.bias)?,
            self.eps,
        ))
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
        let (w, b, eps) = (&self.weight, &self.bias, self.eps);
        let dst = super::gemm::copied_then(src, dim.max(1) * 16, |d| {
            crate::model::simd::layer_norm_rows(d, w, b, eps)
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Σ f(x) over a slice with 8 independent partial sums, so the loop vectorises (a single
/// running f32 sum is one long dependency chain).
#[inline(always)]
pub(crate) fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
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
    if on_cpu_f32(x) {
        let op = LayerNormOp {
            weight: weight.to_vec1()?,
            bias: bias.to_vec1()?,
            eps,
        };
        x.contiguous()?.apply_op1_no_bwd(&op)
    } else {
        in_f32(x, |x| {
            let mean = x.mean_keepdim(D::Minus1)?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            xc.broadcast_div(&(var + f64::from(eps))?.sqrt()?)?
                .broadcast_mul(&weight.to_dtype(x.dtype())?)?
                .broadcast_add(&bias.to_dtype(x.dtype())?)
        })
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
        in_f32(x, |x| {
            let u = x.mean_keepdim(1)?;
            let xc = x.broadcast_sub(&u)?;
            let s = xc.sqr()?.mean_keepdim(1)?;
            let y = xc.broadcast_div(&(s + self.eps)?.sqrt()?)?;
            y.broadcast_mul(&self.weight.to_dtype(x.dtype())?)?
                .broadcast_add(&self.bias.to_dtype(x.dtype())?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_matches_two_pass_f64() {
        use candle_core::Device;
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
