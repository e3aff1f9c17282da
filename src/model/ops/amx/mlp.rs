//! A transformer block's second half in one pass over blocks of 64 tokens: the layer norm,
//! the MLP's two products with the GELU between them, and the residual, in split bfloat16.

use rayon::prelude::*;

use super::{block_product, PackedWeights, Placement, Scratch, ROWS};
use crate::model::ops::gemm::{filled_by, Epilogue, SharedOut};

/// A layer norm's weight, bias and epsilon over rows of `weight.len()`.
pub(crate) type NormParams<'a> = (&'a [f32], &'a [f32], f32);

/// A packed linear layer and its bias.
pub(crate) type Layer<'a> = (&'a PackedWeights, Option<&'a [f32]>);

/// `x + fc2(gelu(fc1(norm(x))))` for `x` `[m, c]` (`norm` skipped when `None`), threads over
/// blocks of 64 rows: each block is normed and packed, its hidden rows `[64, hidden]` stay in
/// the thread's cache between the two products, and its output rows are written once.
///
/// PERF: as three layers, the normed input and the hidden activations went through memory:
/// Hiera-T's first stage writes and reads back 25 MB and 100 MB per block.
///
/// # Panics
/// When AMX is not [`available`](super::available), or the shapes disagree.
pub(crate) fn residual_mlp(
    x: &[f32],
    norm: Option<NormParams<'_>>,
    fc1: Layer<'_>,
    fc2: Layer<'_>,
    c: usize,
) -> Vec<f32> {
    let hidden = fc1.0.n;
    assert!(
        c > 0 && x.len().is_multiple_of(c) && fc1.0.k == c && fc2.0.k == hidden && fc2.0.n == c,
        "MLP of {c} → {hidden} → {c} features: weights [{}, {}] and [{}, {}]",
        fc1.0.k,
        fc1.0.n,
        fc2.0.k,
        fc2.0.n
    );
    if let Some((w, b, _)) = norm {
        assert!(w.len() == c && b.len() == c, "layer norm of another width");
    }
    let m = x.len() / c;
    // SAFETY: the jobs write every row of the output (each its own 64).
    let (out, ()) = unsafe {
        filled_by(m * c, |out| {
            let out = Placement::new(out, (0, c));
            (0..m.div_ceil(ROWS)).into_par_iter().for_each(|j| {
                let r0 = j * ROWS;
                let rows = ROWS.min(m - r0);
                let mut scratch = Scratch::take();
                let Scratch {
                    rows: a,
                    padded,
                    mlp: (normed, h, second),
                } = &mut scratch;
                let src = &x[r0 * c..(r0 + rows) * c];
                match norm {
                    Some((w, b, eps)) => {
                        normed.clear();
                        normed.extend_from_slice(src);
                        crate::model::simd::layer_norm_rows(normed, w, b, eps);
                        a.pack(normed, c);
                    }
                    None => a.pack(src, c),
                }
                let hid = h.f32s(ROWS * hidden);
                let to_hidden = Placement::new(SharedOut::new(hid), (0, hidden));
                block_product(a, fc1.0, fc1.1, Epilogue::Gelu, to_hidden, 0, padded);
                second.pack(&hid[..rows * hidden], hidden);
                block_product(second, fc2.0, fc2.1, Epilogue::Add(x), out, r0, padded);
                scratch.give_back();
            });
        })
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::gemm::mlp_test_data;

    /// The fused block equals the three steps done one after the other (norm, then each
    /// product through [`super::super::linear_bf16x3`]), with and without the norm, at a row
    /// count that leaves a partial block: the same products in the same order, so within
    /// 1e-6 of the largest value.
    #[test]
    fn fused_mlp_equals_the_steps() {
        if !super::super::available() {
            eprintln!("no AMX on this CPU: the fused MLP is not used here");
            return;
        }
        let (m, c, hidden) = (150, 40, 96);
        let [x, w1, b1, w2, b2, g, beta] = mlp_test_data::operands(m, c, hidden);
        let p1 = PackedWeights::new(&w1, c, hidden, false);
        let p2 = PackedWeights::new(&w2, hidden, c, false);
        for norm in [None, Some((g.as_slice(), beta.as_slice(), 1e-6))] {
            let got = residual_mlp(&x, norm, (&p1, Some(&b1)), (&p2, Some(&b2)), c);
            let mut normed = x.clone();
            if let Some((w, b, eps)) = norm {
                crate::model::simd::layer_norm_rows(&mut normed, w, b, eps);
            }
            let h = super::super::linear_bf16x3(
                &normed,
                &p1,
                Some(&b1),
                (m, hidden, c),
                Epilogue::Gelu,
                false,
            );
            let want = super::super::linear_bf16x3(
                &h,
                &p2,
                Some(&b2),
                (m, c, hidden),
                Epilogue::Add(&x),
                false,
            );
            let (worst, scale) = mlp_test_data::worst_and_scale(&got, &want);
            assert!(
                worst <= 1e-6 * scale,
                "norm {}: {worst:e} of {scale}",
                norm.is_some()
            );
        }
    }
}
