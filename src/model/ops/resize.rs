//! Bilinear resizes with PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`
//! semantics, separable and parallel.

use rayon::prelude::*;

/// Bilinear resize of one `src_h × src_w` plane with PyTorch's `F.interpolate(mode="bilinear",
/// align_corners=False)` semantics, computing only the top-left `out_h × out_w` window of a
/// `full_h × full_w` result (the window SAM crops after its first upscale).
pub fn resize_bilinear_window(
    src: &[f32],
    src_hw: (usize, usize),
    full_hw: (usize, usize),
    out_hw: (usize, usize),
) -> Vec<f32> {
    resize_bilinear_window_map(src, src_hw, full_hw, out_hw, |v| v)
}

/// [`resize_bilinear_window`] with `f` applied to each output value as it is computed (e.g. a
/// threshold, so a full-size mask is made without its full-size f32 logits).
pub fn resize_bilinear_window_map<T: Copy + Default + Send>(
    src: &[f32],
    (src_h, src_w): (usize, usize),
    (full_h, full_w): (usize, usize),
    (out_h, out_w): (usize, usize),
    f: impl Fn(f32) -> T + Sync,
) -> Vec<T> {
    let xs = linear_taps(src_w, full_w, out_w);
    let ys = linear_taps(src_h, full_h, out_h);
    // PERF: separable: each source row the output reads is resampled along x once
    // (`lx0·r[x0] + lx1·r[x1]`), then output rows are `ly0·h[y0] + ly1·h[y1]`, contiguous and
    // vectorised. The same products and sums in the same order as the 4-tap formula, so the
    // result is bit-identical, with a quarter of the gathers when upscaling.
    let mut used = vec![false; src_h];
    for &(y0, y1, _, _) in &ys {
        used[y0] = true;
        used[y1] = true;
    }
    let mut rows_x = vec![0f32; src_h * out_w];
    rows_x
        .par_chunks_mut(out_w.max(1))
        .enumerate()
        .filter(|(y, _)| used[*y])
        .for_each(|(y, h)| {
            let r = &src[y * src_w..][..src_w];
            for (d, &(x0, x1, lx0, lx1)) in h.iter_mut().zip(&xs) {
                *d = lx0 * r[x0] + lx1 * r[x1];
            }
        });
    let mut dst = vec![T::default(); out_h * out_w];
    dst.par_chunks_mut(out_w.max(1))
        .zip(ys.par_iter())
        .for_each(|(row, &(y0, y1, ly0, ly1))| {
            let h0 = &rows_x[y0 * out_w..][..out_w];
            let h1 = &rows_x[y1 * out_w..][..out_w];
            for ((d, a), b) in row.iter_mut().zip(h0).zip(h1) {
                *d = f(ly0 * a + ly1 * b);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The separable resize gives exactly the 4-tap bilinear formula, upscaling (a window of
    /// the output, as SAM's padded upscale) and downscaling.
    #[test]
    fn separable_resize_is_the_four_tap_formula() {
        let src: Vec<f32> = (0..37 * 23)
            .map(|i| ((i * 7919) % 211) as f32 * 0.01 - 1.0)
            .collect();
        for (full, out) in [((120, 80), (100, 80)), ((9, 31), (9, 31)), ((5, 4), (5, 4))] {
            let got = resize_bilinear_window(&src, (37, 23), full, out);
            let (xs, ys) = (
                linear_taps(23, full.1, out.1),
                linear_taps(37, full.0, out.0),
            );
            for (i, &(y0, y1, ly0, ly1)) in ys.iter().enumerate() {
                for (j, &(x0, x1, lx0, lx1)) in xs.iter().enumerate() {
                    let (r0, r1) = (&src[y0 * 23..], &src[y1 * 23..]);
                    let want =
                        ly0 * (lx0 * r0[x0] + lx1 * r0[x1]) + ly1 * (lx0 * r1[x0] + lx1 * r1[x1]);
                    assert_eq!(
                        got[i * out.1 + j].to_bits(),
                        want.to_bits(),
                        "{full:?} [{i},{j}]"
                    );
                }
            }
        }
    }
}
