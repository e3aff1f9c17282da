//! [`Pass`] with its three image-wide products in split bfloat16 on AMX tiles
//! ([`crate::model::ops::amx`]): the scores of the image → token attention (keys + PE against
//! the token side's `m`), its output (the probabilities against `n`) and the next token →
//! image attention's scores. The first block's scores from the cache (`K` = 16 per head) stay
//! in f32.
//!
//! The tiles write rows (one per image position); the softmax over the tokens and the scores
//! the next attention reads are laid out by token, so each tile transposes its 64 × 64
//! blocks (in cache) on the way.
//!
//! PERF: a pass took 2.1-2.6 ms in f32 and takes 2.0-2.2 ms here (Hiera-T, 2 cores of an
//! Intel Xeon, session 33): the products were already near the f32 peak, and what is left
//! is the memory traffic (keys, PE and new keys, 12 MB a pass), the norm and the softmax.
//! Low-res logits against the official SAM 2 fixtures: unchanged at 4.6-6.4e-6 of max |ref|.

use rayon::prelude::*;

use super::{filled_by, Pass, ScoresFrom, SharedOut, TILE};
use crate::model::ops::amx::{linear_bf16x3_into, product_into, Lines, PackedWeights};
use crate::model::ops::matmul::transpose_into;
use crate::model::ops::Epilogue;
use crate::model::simd::{add_into, layer_norm_rows, softmax_columns};

/// The token-side operands of a [`Pass`] packed for the tiles, once per click.
pub(in crate::model::sam::mask_decoder) struct PackedPass {
    /// `mᵀ` `[D, heads·T]`, for the scores (without a cache).
    m_t: Option<PackedWeights>,
    /// `n` `[heads·T, D]`, for the output.
    n: PackedWeights,
    /// The next attention's `q_h · W_k,h` transposed, `[D, R]`.
    next_qk_t: PackedWeights,
}

/// `[rows, cols]` row-major → `[cols, rows]`.
fn transposed(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; x.len()];
    transpose_into(x, (rows, cols), &mut t);
    t
}

impl PackedPass {
    /// Packs the operands of `pass`.
    pub(in crate::model::sam::mask_decoder) fn new(pass: &Pass<'_>) -> Self {
        let (d, _, r1, r2) = pass.sizes();
        let i2t = pass.i2t;
        Self {
            m_t: match &i2t.scores {
                ScoresFrom::Projected { m, .. } => {
                    Some(PackedWeights::new(&transposed(m, r1, d), d, r1, false))
                }
                ScoresFrom::Cached { .. } => None,
            },
            n: PackedWeights::new(&i2t.n, r1, d, false),
            next_qk_t: PackedWeights::new(&transposed(pass.next_qk, r2, d), d, r2, false),
        }
    }
}

impl Pass<'_> {
    /// [`Pass::run`] with the products on AMX tiles (`packed` from this pass).
    pub(super) fn run_amx(&self, packed: &PackedPass) -> (Vec<f32>, Vec<f32>) {
        let (d, p_len, r1, r2) = self.sizes();
        let i2t = self.i2t;
        let tiles = p_len.div_ceil(TILE);
        let pass = |out_keys: SharedOut, out_scores: SharedOut| {
            (0..tiles).into_par_iter().for_each_init(
                // `rows` aligned: whole tiles of the products go straight into it.
                || {
                    (
                        vec![0f32; TILE * d],
                        vec![0f32; TILE * r1],
                        Lines::default(),
                    )
                },
                |(kpe, st, rows), tile| {
                    let p0 = tile * TILE;
                    let np = TILE.min(p_len - p0);
                    let keys = &self.keys[p0 * d..][..np * d];
                    let pe = &self.pe[p0 * d..][..np * d];
                    let kpe = &mut kpe[..np * d];
                    let (st, rows) = (&mut st[..r1 * np], rows.f32s(np * r1.max(r2)));
                    // Scores by token, `[heads·T, np]`.
                    match (&i2t.scores, &packed.m_t) {
                        (ScoresFrom::Projected { bias, .. }, Some(m_t)) => {
                            add_into(kpe, keys, pe);
                            let by_row = &mut rows[..np * r1]; // [np, heads·T]
                            let dims = (np, r1, d);
                            linear_bf16x3_into(
                                kpe,
                                m_t,
                                Some(bias),
                                dims,
                                Epilogue::None,
                                by_row,
                                false,
                            );
                            transpose_into(by_row, (np, r1), st);
                        }
                        (ScoresFrom::Cached { q_t, kh }, _) => {
                            i2t.cached_scores(q_t, kh, (p0, np, p_len), st);
                        }
                        (ScoresFrom::Projected { .. }, None) => {
                            unreachable!("packed operands of another pass")
                        }
                    }
                    for slab in st.chunks_exact_mut(i2t.tokens * np) {
                        softmax_columns(slab, np, i2t.scale);
                    }
                    // The probabilities by position, `[np, heads·T]`, times `n`, plus the bias
                    // and the keys (the residual), into this tile's rows of the new keys.
                    let probs = &mut rows[..np * r1];
                    transpose_into(st, (r1, np), probs);
                    // SAFETY: rows p0..p0+np of the keys are this task's alone, written whole
                    // by the product before the slice of them is made.
                    let out = unsafe {
                        product_into(
                            probs,
                            &packed.n,
                            (Some(&i2t.out_bias), Epilogue::Add(keys)),
                            (np, d, r1),
                            out_keys,
                            (p0 * d, d),
                        );
                        out_keys.row(p0 * d, np * d)
                    };
                    let (w, b, eps) = &i2t.norm;
                    layer_norm_rows(out, w, b, *eps);
                    add_into(kpe, out, pe);
                    // The next scores by position, `[np, R]`, then into columns p0.. of the
                    // `[R, P]` scores.
                    let next = &mut rows[..np * r2];
                    let dims = (np, r2, d);
                    linear_bf16x3_into(
                        kpe,
                        &packed.next_qk_t,
                        None,
                        dims,
                        Epilogue::None,
                        next,
                        false,
                    );
                    for r in 0..r2 {
                        let dst = out_scores.ptr_within(r * p_len + p0, np);
                        for (i, row) in next.chunks_exact(r2).enumerate() {
                            // SAFETY: columns p0..p0+np of row r are this task's alone and
                            // lie within the scores (checked by `ptr_within`).
                            unsafe { dst.add(i).write(row[r]) };
                        }
                    }
                },
            );
        };
        // SAFETY: every tile writes its rows of the keys (the output product) and its columns
        // of the scores before anything reads them; the tiles cover all positions.
        unsafe { filled_by(p_len * d, |k| filled_by(r2 * p_len, |s| pass(k, s)).0) }
    }
}
