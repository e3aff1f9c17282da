//! Building blocks shared by the models, one kernel family per file:
//!
//! | file | what |
//! | --- | --- |
//! | [`amx`] | linear-layer GEMMs in split bfloat16 on Intel AMX tiles (image encoders) |
//! | [`gemm`] | `a·bᵀ` products and linear-layer GEMMs tiled over threads, fused epilogues |
//! | [`linear`] | [`Linear`] layers with bias, residual and GELU fused |
//! | [`matmul`](mod@matmul) | tensor products (single and batched), `a·b + bias + residual`, transposes |
//! | [`softmax`] | softmaxes over the last dimension and over dimension 1 |
//! | [`norm`] | [`LayerNorm`] (two-pass) and SAM's [`LayerNorm2d`] |
//! | [`conv`] | dense convolutions as im2col + GEMM, channels-last output |
//! | [`depthwise`] | depthwise convolutions on channels-last data |
//! | [`activation`] | exact and tanh GELU |
//! | [`resize`] | PyTorch-equivalent bilinear resizes |
//! | `attention` | the fused attention kernels of SAM's ViT, TinyViT and the text models |
//!
//! The CPU kernels are `CustomOp`s that replace candle ops which are slow on this workload
//! (see the `PERF` notes on each); on other devices and dtypes the same function falls back to
//! candle's op (half-precision normalisations and softmaxes computed in f32, see [`in_f32`]).

pub mod activation;
pub mod amx;
pub(crate) mod attention;
pub mod conv;
pub mod depthwise;
pub mod gemm;
pub mod linear;
pub mod matmul;
pub mod norm;
pub mod resize;
pub mod softmax;

use candle_core::{CpuStorage, DType, Device, Layout, Result, Tensor};

pub use activation::{erf_f32, gelu, gelu_tanh};
pub use conv::{Conv2d, ImageLayout};
pub use depthwise::DepthwiseConv;
pub use gemm::{gemm_abt, linear_gemm, Epilogue};
pub use linear::{residual_mlp, Linear};
pub use matmul::{
    matmul, matmul_add, matmul_nt, nchw_to_nhwc, nhwc_to_nchw, transpose_2d, transpose_last2,
};
pub(crate) use norm::lane_sum;
pub use norm::{layer_norm, LayerNorm, LayerNorm2d};
pub use resize::{resize_bilinear_window, resize_bilinear_window_map};
pub use softmax::{softmax_dim1, softmax_last_dim, softmax_last_dim_scaled};

/// `f(x)` computed in f32 when `x` is f16 or bf16 (cast back after), as PyTorch's autocast
/// runs normalisations and softmaxes: their sums lose too many digits, or overflow, in half
/// precision. Other dtypes are passed through.
pub fn in_f32(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match x.dtype() {
        DType::F16 | DType::BF16 => f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype()),
        _ => f(x),
    }
}

/// True when `x` takes the CPU kernels (f32 on the CPU); everything else takes candle's ops.
pub(crate) fn on_cpu_f32(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32
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

/// The data of a tensor as a flat f32 vector, copied to the CPU (for small results only).
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()
}

/// Helpers for the kernels' tests: deterministic values, tensors, and the check that a CPU
/// kernel agrees with candle's fallback (taken on GPUs, exercised here with f64 tensors).
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{DType, Device, Tensor};

    /// `n` deterministic values in about `[-0.7, 0.7]`, different for each `seed`.
    pub fn vals(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 37 + seed * 11) % 97) as f32 / 48.0 - 1.0) * 0.7)
            .collect()
    }

    /// An f32 tensor on the CPU.
    pub fn tensor(v: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    /// `x` as f64: operations on it take candle's fallback path.
    pub fn f64_of(x: &Tensor) -> Tensor {
        x.to_dtype(DType::F64).expect("f64")
    }

    /// Asserts `a` (a CPU kernel's result) and `b` (the fallback's) agree within `tol`.
    pub fn assert_close_tol(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
        let a: Vec<f32> = a
            .to_dtype(DType::F32)
            .and_then(|x| x.flatten_all())
            .and_then(|x| x.to_vec1())
            .expect(what);
        let b: Vec<f32> = b
            .to_dtype(DType::F32)
            .and_then(|x| x.flatten_all())
            .and_then(|x| x.to_vec1())
            .expect(what);
        assert_eq!(a.len(), b.len(), "{what}");
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < tol, "{what}: max diff {worst}");
    }

    /// Deterministic weights (seed 3) of the given names and shapes.
    pub fn weights(shapes: Vec<(String, Vec<usize>)>) -> crate::weights::Weights {
        crate::weights::Weights::generated(
            shapes,
            Box::new(|key, shape| crate::model::detweights::generate(3, key, shape)),
            "<test weights>",
        )
    }

    /// [`assert_close_tol`] at 1e-5.
    pub fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
        assert_close_tol(a, b, 1e-5, what);
    }
}
