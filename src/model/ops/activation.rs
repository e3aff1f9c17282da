//! Elementwise activations on the CPU: exact (erf) GELU and the tanh approximation, parallel and
//! vectorised.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{contiguous_f32, on_cpu_f32};

/// An elementwise activation on the CPU: `kernel` applied in place to chunks, in parallel.
///
/// PERF: candle's `gelu_erf` and `gelu` run per element on one thread through libm's `erf` /
/// `tanh` (18% of a GPT-2 forward); these kernels are parallel and vectorise (see
/// [`erf_f32`] and [`crate::model::simd::exp_f32`]).
struct Elementwise {
    name: &'static str,
    kernel: fn(&mut [f32]),
}

impl CustomOp1 for Elementwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let dst = super::gemm::copied_then(src, 1 << 14, self.kernel);
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// `erf(x)` in f32 as a branch-free rational approximation that vectorises (the form Eigen and
/// XLA use): within 5e-7 of the true value everywhere (worst near |x| = 3.5, where erf ≈ 1), on a
/// par with PyTorch's own vectorised erf (Abramowitz–Stegun 7.1.26, 1.5e-7 absolute).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-ERF_CLAMP, ERF_CLAMP);
    let x2 = x * x;
    let mut p = ERF_P[0];
    for c in &ERF_P[1..] {
        p = x2 * p + c;
    }
    let mut q = ERF_Q[0];
    for c in &ERF_Q[1..] {
        q = x2 * q + c;
    }
    x * p / q
}

/// [`erf_f32`]'s inputs are clamped to ±this (where erf is 1 in f32).
pub(crate) const ERF_CLAMP: f32 = 4.0;
/// [`erf_f32`]'s numerator, a polynomial in `x²` (highest power first) times `x`.
pub(crate) const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.954_600_1e-3,
    -1.609_603_3e-2,
];
/// [`erf_f32`]'s denominator, a polynomial in `x²` (highest power first).
pub(crate) const ERF_Q: [f32; 5] = [
    -1.456_607_2e-5,
    -2.133_740_6e-4,
    -1.682_827e-3,
    -7.373_329_3e-3,
    -1.426_473_9e-2,
];

/// Exact GELU of `x`, `0.5·x·(1 + erf(x/√2))`, as PyTorch's `nn.GELU()`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if on_cpu_f32(x) {
        x.contiguous()?.apply_op1_no_bwd(&Elementwise {
            name: "segattn-gelu-erf",
            kernel: crate::model::simd::gelu_inplace,
        })
    } else {
        x.gelu_erf()
    }
}

/// The tanh approximation of GELU (GPT-2's `gelu_new`),
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if on_cpu_f32(x) {
        x.contiguous()?.apply_op1_no_bwd(&Elementwise {
            name: "segattn-gelu-tanh",
            kernel: crate::model::simd::gelu_tanh_inplace,
        })
    } else {
        x.gelu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testing::{assert_close, f64_of, tensor, vals};

    #[test]
    fn fallbacks_match_the_cpu_kernels() {
        let g = tensor(vals(500, 14).iter().map(|v| v * 6.0).collect(), &[500]);
        assert_close(
            &gelu_tanh(&g).expect("cpu"),
            &gelu_tanh(&f64_of(&g)).expect("fallback"),
            "tanh gelu",
        );
        assert_close(
            &gelu(&g).expect("cpu"),
            &gelu(&f64_of(&g)).expect("fallback"),
            "erf gelu",
        );
    }

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
}
