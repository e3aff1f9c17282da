//! Softmaxes over the last dimension and over dimension 1 (scores with the positions
//! contiguous), vectorised and parallel on the CPU.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, in_f32, on_cpu_f32};

/// Softmax over the last dimension.
///
/// PERF: candle's CPU softmax calls libm's scalar `expf` per element; this one runs the
/// vectorised [`crate::model::simd::softmax_inplace`] on rows in parallel.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if on_cpu_f32(x) {
        x.contiguous()?.apply_op1_no_bwd(&SoftmaxOp(None))
    } else {
        in_f32(x, candle_nn::ops::softmax_last_dim)
    }
}

/// Softmax over the last dimension of `x / divisor` (attention scores and their `√c`).
///
/// PERF: on the CPU the division runs in the softmax's pass over each row, instead of as a
/// tensor operation of its own (a parallel pass over the scores, and their copy).
pub fn softmax_last_dim_scaled(x: &Tensor, divisor: f64) -> Result<Tensor> {
    if on_cpu_f32(x) {
        x.contiguous()?
            .apply_op1_no_bwd(&SoftmaxOp(Some(divisor as f32)))
    } else {
        in_f32(x, |x| candle_nn::ops::softmax_last_dim(&(x / divisor)?))
    }
}

/// Softmax over dimension 1 of `x [A, T, P]` of `x / divisor` (attention scores laid out with
/// the positions `P` contiguous and the softmax running over the tokens `T`).
///
/// PERF: the alternative, transposing to `[P, A, T]` and taking row softmaxes, runs one
/// vector kernel per handful of values; here all lanes work across positions.
pub fn softmax_dim1(x: &Tensor, divisor: f64) -> Result<Tensor> {
    if on_cpu_f32(x) && x.rank() == 3 {
        x.contiguous()?
            .apply_op1_no_bwd(&SoftmaxDim1Op(divisor as f32))
    } else {
        in_f32(x, |x| candle_nn::ops::softmax(&(x / divisor)?, 1))
    }
}

struct SoftmaxDim1Op(f32);

impl CustomOp1 for SoftmaxDim1Op {
    fn name(&self) -> &'static str {
        "segattn-softmax-dim1"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, t, p) = layout.shape().dims3()?;
        let mut dst = contiguous_f32(storage, layout)?.to_vec();
        // One [T, P] slab per task.
        dst.par_chunks_mut((t * p).max(1))
            .for_each(|slab| crate::model::simd::softmax_columns(slab, p, self.0));
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// The last dimension's softmax, of the values divided by the divisor when there is one.
struct SoftmaxOp(Option<f32>);

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "segattn-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut dst = contiguous_f32(storage, layout)?.to_vec();
        let n = layout.dims().last().copied().unwrap_or(1).max(1);
        let rows = (16_384 / n).max(1) * n;
        let divisor = self.0;
        let run = |chunk: &mut [f32]| {
            for row in chunk.chunks_mut(n) {
                if let Some(d) = divisor {
                    crate::model::simd::div_assign(row, d);
                }
                crate::model::simd::softmax_inplace(row);
            }
        };
        if dst.len() >= 1 << 16 {
            dst.par_chunks_mut(rows).for_each(run);
        } else {
            run(&mut dst);
        }
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testing::{assert_close, f64_of, tensor, vals};

    #[test]
    fn fallbacks_match_the_cpu_kernels() {
        let s3 = tensor(vals(3 * 7 * 40, 13), &[3, 7, 40]);
        assert_close(
            &softmax_dim1(&s3, 4.0).expect("cpu"),
            &softmax_dim1(&f64_of(&s3), 4.0).expect("fallback"),
            "softmax over dim 1",
        );
        assert_close(
            &softmax_last_dim(&s3).expect("cpu"),
            &softmax_last_dim(&f64_of(&s3)).expect("fallback"),
            "softmax over the last dim",
        );
        assert_close(
            &softmax_last_dim_scaled(&s3, 3.0).expect("cpu"),
            &softmax_last_dim_scaled(&f64_of(&s3), 3.0).expect("fallback"),
            "softmax over the last dim, scaled",
        );
    }
}
