//! Matrix products and transposes of tensors on the CPU GEMM: `a·b` (single and batched),
//! `a·b + bias + residual`, and a cache-friendly 2-D transpose.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{linear_gemm_into, Epilogue, PARALLEL_GEMM_MIN_MACS};
use super::linear::{LinearOp, LinearResidualOp};
use super::{contiguous_f32, on_cpu_f32};

/// `a · b` for `a [m, k]` and `b [k, n]`, or batched `a [B, m, k]` and `b [B, k, n]`.
///
/// PERF: candle's matmul wakes the whole thread pool for each product and packs a transposed
/// right-hand side on every call; on the CPU this runs [`linear_gemm`](super::linear_gemm) (one product, tiled
/// over the threads) or one single-threaded GEMM per batch entry in parallel. Callers pass `b`
/// in the `[k, n]` layout that [`linear_gemm`](super::linear_gemm) reads in place.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !(on_cpu_f32(a) && on_cpu_f32(b)) {
        return a.matmul(b);
    }
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    match (a.rank(), b.rank()) {
        (2, 2) => a.apply_op2_no_bwd(
            &b,
            &LinearOp {
                bias: None,
                gelu: false,
                split_bf16: None,
            },
        ),
        (3, 3) => a.apply_op2_no_bwd(&b, &BatchedMatmul),
        _ => a.matmul(&b),
    }
}

/// `a · bᵀ` for `a [m, k]` and `b [n, k]`, or batched `a [B, m, k]` and `b [B, n, k]`: the
/// right-hand side read in the layout it has (a weight matrix's, or keys `[P, D]`), with no
/// transposed copy made first.
pub fn matmul_nt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let cpu = on_cpu_f32(a) && on_cpu_f32(b);
    match (a.rank(), b.rank()) {
        (2, 2) | (3, 3) if cpu => a
            .contiguous()?
            .apply_op2_no_bwd(&b.contiguous()?, &MatmulNtOp),
        (3, 3) => a.matmul(&b.transpose(1, 2)?),
        _ => a.matmul(&b.t()?),
    }
}

struct MatmulNtOp;

impl CustomOp2 for MatmulNtOp {
    fn name(&self) -> &'static str {
        "segattn-matmul-nt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let (batch, m, k, n, k2, b2) = match (l1.dims(), l2.dims()) {
            (&[m, k], &[n, k2]) => (None, m, k, n, k2, None),
            (&[ba, m, k], &[bb, n, k2]) => (Some(ba), m, k, n, k2, Some(bb)),
            (d1, d2) => candle_core::bail!("matmul_nt: {d1:?} · {d2:?}ᵀ"),
        };
        if k != k2 || batch != b2 {
            candle_core::bail!("matmul_nt: {:?} · {:?}ᵀ", l1.dims(), l2.dims());
        }
        // One product after the other, each spread over the threads by `gemm_abt`.
        let mut y = Vec::with_capacity(batch.unwrap_or(1) * m * n);
        for i in 0..batch.unwrap_or(1) {
            let (a, b) = (&a[i * m * k..][..m * k], &b[i * n * k..][..n * k]);
            y.extend(super::gemm::gemm_abt(a, b, None, m, n, k));
        }
        let shape = match batch {
            None => Shape::from((m, n)),
            Some(batch) => Shape::from((batch, m, n)),
        };
        Ok((CpuStorage::F32(y), shape))
    }
}

/// `a · b + bias + residual` for `a [m, k]`, `b [k, n]`, `bias [n]` and `residual [m, n]`, with
/// the bias and the residual added as the GEMM's epilogue on the CPU (see [`matmul`]).
pub fn matmul_add(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    residual: &Tensor,
) -> Result<Tensor> {
    if on_cpu_f32(a) && on_cpu_f32(b) && on_cpu_f32(residual) && a.rank() == 2 && b.rank() == 2 {
        let bias_host = bias.map(|t| t.to_vec1::<f32>()).transpose()?;
        let op = LinearResidualOp(LinearOp {
            bias: bias_host.as_deref(),
            gelu: false,
            split_bf16: None,
        });
        return a
            .contiguous()?
            .apply_op3_no_bwd(&b.contiguous()?, &residual.contiguous()?, &op);
    }
    let y = a.matmul(b)?;
    let y = match bias {
        Some(bias) => y.broadcast_add(bias)?,
        None => y,
    };
    y + residual
}

/// `[B, m, k] · [B, k, n]` on the CPU: see [`matmul`].
struct BatchedMatmul;

impl candle_core::CustomOp2 for BatchedMatmul {
    fn name(&self) -> &'static str {
        "segattn-batched-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (batch, m, k) = l1.shape().dims3()?;
        let (b2, k2, n) = l2.shape().dims3()?;
        if (batch, k) != (b2, k2) {
            candle_core::bail!("matmul: {:?} · {:?}", l1.dims(), l2.dims());
        }
        let (a, b) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let mut dst = vec![0f32; batch * m * n];
        if m * n > 0 {
            let one = |(i, out): (usize, &mut [f32])| {
                let (a, b) = (&a[i * m * k..][..m * k], &b[i * k * n..][..k * n]);
                linear_gemm_into(a, b, None, (m, n, k), Epilogue::None, out, false);
            };
            if batch * m * n * k >= PARALLEL_GEMM_MIN_MACS {
                dst.par_chunks_mut(m * n).enumerate().for_each(one);
            } else {
                dst.chunks_mut(m * n).enumerate().for_each(one);
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from((batch, m, n))))
    }
}

/// `xᵀ` of a 2-D tensor, contiguous.
///
/// PERF: candle's strided copy walks the source one element at a time through an index
/// iterator; on the CPU this copies in parallel blocks of 16 columns.
pub fn transpose_2d(x: &Tensor) -> Result<Tensor> {
    if on_cpu_f32(x) && x.rank() == 2 {
        x.contiguous()?.apply_op1_no_bwd(&TransposeOp)
    } else {
        x.t()?.contiguous()
    }
}

/// Each matrix of `x [B, r, c]` transposed: `[B, c, r]`, contiguous (see [`transpose_2d`]).
pub fn transpose_last2(x: &Tensor) -> Result<Tensor> {
    if on_cpu_f32(x) && x.rank() == 3 {
        x.contiguous()?.apply_op1_no_bwd(&TransposeOp)
    } else {
        x.transpose(1, 2)?.contiguous()
    }
}

/// `[B, H, W, C]` → `[B, C, H, W]`, contiguous (see [`transpose_last2`]).
pub fn nhwc_to_nchw(x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    transpose_last2(&x.reshape((b, h * w, c))?)?.reshape((b, c, h, w))
}

/// `[B, C, H, W]` → `[B, H, W, C]`, contiguous (see [`transpose_last2`]).
pub fn nchw_to_nhwc(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    transpose_last2(&x.reshape((b, c, h * w))?)?.reshape((b, h, w, c))
}

struct TransposeOp;

impl CustomOp1 for TransposeOp {
    fn name(&self) -> &'static str {
        "segattn-transpose"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let (batch, r, c) = match layout.shape().dims() {
            &[r, c] => (None, r, c),
            &[b, r, c] => (Some(b), r, c),
            d => candle_core::bail!("transpose: {d:?} is neither 2-D nor 3-D"),
        };
        let mut dst = vec![0f32; src.len()];
        if r * c > 0 {
            dst.par_chunks_mut(r * c)
                .zip(src.par_chunks(r * c))
                .for_each(|(d, s)| transpose_into(s, (r, c), d));
        }
        let shape = match batch {
            None => Shape::from((c, r)),
            Some(b) => Shape::from((b, c, r)),
        };
        Ok((CpuStorage::F32(dst), shape))
    }
}

/// `dst = srcᵀ` for a row-major `r × c` source (`dst` `[c, r]`).
pub(crate) fn transpose_into(src: &[f32], (r, c): (usize, usize), dst: &mut [f32]) {
    const B: usize = 16;
    // `out` holds destination rows j0.. (source columns), `r` values each, written one
    // 16 × 16 tile at a time: whole cache lines, so destination rows a power-of-two apart
    // do not evict each other.
    let work = |(jb, out): (usize, &mut [f32])| {
        let j0 = jb * B;
        let width = out.len() / r.max(1);
        let mut tile = [[0f32; B]; B];
        for i0 in (0..r).step_by(B) {
            let rows = B.min(r - i0);
            for (ii, row) in src[i0 * c..].chunks_exact(c).take(rows).enumerate() {
                for (jj, &v) in row[j0..j0 + width].iter().enumerate() {
                    tile[jj][ii] = v;
                }
            }
            for (jj, t) in tile.iter().enumerate().take(width) {
                out[jj * r + i0..][..rows].copy_from_slice(&t[..rows]);
            }
        }
    };
    if r * c >= 1 << 16 {
        dst.par_chunks_mut(B * r).enumerate().for_each(work);
    } else {
        dst.chunks_mut(B * r).enumerate().for_each(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testing::{assert_close, f64_of, tensor, vals};

    /// Matmuls (one and batched), with bias and residual, and the transpose equal candle's
    /// fallbacks.
    #[test]
    fn fallbacks_match_the_cpu_kernels() {
        let (a, b) = (
            tensor(vals(70 * 9, 8), &[70, 9]),
            tensor(vals(9 * 50, 9), &[9, 50]),
        );
        let (bias, res) = (
            tensor(vals(50, 10), &[50]),
            tensor(vals(70 * 50, 11), &[70, 50]),
        );
        let mm = |a: &Tensor, b: &Tensor| matmul(a, b).expect("matmul");
        assert_close(&mm(&a, &b), &mm(&f64_of(&a), &f64_of(&b)), "matmul");
        let (a3, b3) = (
            a.reshape((7, 10, 9)).expect("a3"),
            tensor(vals(7 * 9 * 5, 12), &[7, 9, 5]),
        );
        assert_close(
            &mm(&a3, &b3),
            &mm(&f64_of(&a3), &f64_of(&b3)),
            "batched matmul",
        );
        assert_close(
            &matmul_add(&a, &b, Some(&bias), &res).expect("cpu"),
            &matmul_add(
                &f64_of(&a),
                &f64_of(&b),
                Some(&f64_of(&bias)),
                &f64_of(&res),
            )
            .expect("fallback"),
            "matmul + bias + residual",
        );
        assert_close(
            &transpose_2d(&a).expect("cpu"),
            &transpose_2d(&f64_of(&a)).expect("fallback"),
            "transpose",
        );
        assert_close(
            &transpose_last2(&a3).expect("cpu"),
            &transpose_last2(&f64_of(&a3)).expect("fallback"),
            "batched transpose",
        );
        assert_close(
            &matmul_nt(&a, &a).expect("cpu"),
            &matmul_nt(&f64_of(&a), &f64_of(&a)).expect("fallback"),
            "a · aᵀ",
        );
        assert_close(
            &matmul_nt(&a3, &a3).expect("cpu"),
            &matmul_nt(&f64_of(&a3), &f64_of(&a3)).expect("fallback"),
            "batched a · aᵀ",
        );
    }
}
