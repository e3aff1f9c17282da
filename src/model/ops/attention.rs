//! The attention kernels of the CPU path, each one fused pass per block of queries: SAM ViT's
//! attention with decomposed relative positions, TinyViT's window attention with learned
//! biases, and the text models' multi-head attention that also returns the probabilities. The
//! model files hold the layers and their candle fallbacks (GPUs and other dtypes), against
//! which the tests check these kernels.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

use super::contiguous_f32;
use super::gemm::{filled_by, gemm_abt, sgemm, SharedOut};
use crate::model::simd::{axpy, dot, scale_inplace, softmax_inplace, softmax_numerators};

/// Query rows per task of [`VitAttentionOp`]: a 32 × 4096 block of global-attention scores is
/// 512 KB, within the L2 cache.
const VIT_QUERY_BLOCK: usize = 32;

/// Attention with decomposed relative positions on the CPU: `qkv [B, N, 3·C]` (the qkv
/// projection's output, per token q, k, v, each heads × hd) → `[B, N, C]` on an `h × w` grid.
///
/// PERF: replaces candle's version, which materialised every head's `[N, N]` scores (64 MB per
/// head for global attention), added the relative-position terms through two broadcasting
/// passes over them and copied q, k, v into per-head layouts. Here each task takes one head
/// and [`VIT_QUERY_BLOCK`] query rows: `scale·q·kᵀ` by a GEMM that reads q and k in place,
/// the terms `q·R_h[y, ky]` and `q·R_w[x, kx]` added per row while it is in cache, the softmax,
/// and `p·v` written straight into the `[B, N, C]` output. The same sums as the official
/// `(attn + rel_h) + rel_w`.
pub(crate) struct VitAttentionOp<'a> {
    /// `[h, h, hd]`
    pub(crate) rel_h: &'a [f32],
    /// `[w, w, hd]`
    pub(crate) rel_w: &'a [f32],
    /// Attention heads.
    pub(crate) heads: usize,
    /// The token grid `(h, w)`.
    pub(crate) grid: (usize, usize),
}

impl CustomOp1 for VitAttentionOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-vit-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(storage, layout)?;
        let (b, n, three_c) = layout.shape().dims3()?;
        let (gh, gw) = self.grid;
        let c = three_c / 3;
        let nh = self.heads;
        let hd = c / nh.max(1);
        if gh * gw != n
            || three_c != 3 * nh * hd
            || self.rel_h.len() != gh * gh * hd
            || self.rel_w.len() != gw * gw * hd
        {
            candle_core::bail!(
                "vit attention: shape {:?} does not fit the layer",
                layout.dims()
            );
        }
        let scale = (hd as f32).powf(-0.5);
        let blocks = n.div_ceil(VIT_QUERY_BLOCK);
        let mut out = vec![0f32; b * n * c];
        let shared = SharedOut::new(&mut out);
        (0..b * nh * blocks).into_par_iter().for_each(|job| {
            let (bh, blk) = (job / blocks, job % blocks);
            let (bi, head) = (bh / nh, bh % nh);
            let r0 = blk * VIT_QUERY_BLOCK;
            let rows = VIT_QUERY_BLOCK.min(n - r0);
            let base = bi * n * three_c;
            let (q, k, v) = (
                base + head * hd,
                base + c + head * hd,
                base + 2 * c + head * hd,
            );
            let mut scores = vec![0f32; rows * n];
            // SAFETY: q rows r0.. and all k rows of this image and head lie inside `qkv`
            // (b·n rows of 3C, checked above); `scores` holds rows·n values.
            unsafe {
                sgemm(
                    (rows, n, hd),
                    (scores.as_mut_ptr(), 1, n as isize),
                    false,
                    (qkv.as_ptr().add(q + r0 * three_c), 1, three_c as isize),
                    (qkv.as_ptr().add(k), three_c as isize, 1),
                    scale,
                    gemm::Parallelism::None,
                );
            }
            let (mut rh, mut rw) = (vec![0f32; gh], vec![0f32; gw]);
            for (i, row) in scores.chunks_exact_mut(n).enumerate() {
                let t = r0 + i;
                let (y, x) = (t / gw, t % gw);
                let q_row = &qkv[q + t * three_c..][..hd];
                for (ky, r) in rh.iter_mut().enumerate() {
                    *r = dot(q_row, &self.rel_h[(y * gh + ky) * hd..][..hd]);
                }
                for (kx, r) in rw.iter_mut().enumerate() {
                    *r = dot(q_row, &self.rel_w[(x * gw + kx) * hd..][..hd]);
                }
                for (krow, &h_term) in row.chunks_exact_mut(gw).zip(&rh) {
                    for (s, &w_term) in krow.iter_mut().zip(&rw) {
                        *s = (*s + h_term) + w_term;
                    }
                }
                softmax_inplace(row);
            }
            let dst = shared.ptr_within((bi * n + r0) * c + head * hd, (rows - 1) * c + hd);
            // SAFETY: this task alone writes columns head·hd.. of output rows r0..r0+rows of
            // image bi (tasks differ in image, head or rows), all within the span checked
            // above; v's n rows of hd, 3C apart, lie in `qkv` as checked above.
            unsafe {
                weighted_values(
                    &scores,
                    (rows, n, hd),
                    (qkv.as_ptr().add(v), three_c),
                    (dst, c),
                )
            };
        });
        Ok((CpuStorage::F32(out), Shape::from((b, n, c))))
    }
}

/// Fused window attention on the CPU: `qkv [1, H, W, heads·3·kd]` (image order; per head q, k,
/// v) → `[1, H, W, heads·kd]`, windows of `window × window` tokens, padding tokens `pad_qkv`.
///
/// PERF: replaces three strided copies, two batched GEMMs on 49 × 49 tiles, a scale, a bias add
/// and a softmax pass (each a full tensor round trip) with one pass per window, in parallel
/// over windows: each window gathers its tokens' q, k, v rows (or the padding token's), per
/// head `bias + scale·q·kᵀ` and `p·v` are single-threaded GEMMs that read them through
/// strides, the softmax is vectorised on rows padded to whole vectors, and the window's own
/// tokens are written back to their places in the image.
pub(crate) struct WindowAttentionOp<'a> {
    /// `[heads, N, padded_row(N)]`, padding columns `-inf`.
    pub(crate) bias: &'a [f32],
    /// Attention heads.
    pub(crate) heads: usize,
    /// Width of each head's q, k and v.
    pub(crate) key_dim: usize,
    /// Window side.
    pub(crate) window: usize,
    /// The q, k and v of a padding token, `[heads·3·kd]`.
    pub(crate) pad_qkv: &'a [f32],
}

impl CustomOp1 for WindowAttentionOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-window-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let image = contiguous_f32(storage, layout)?;
        let (b, ih, iw, three_c) = layout.shape().dims4()?;
        let (nh, kd, ws) = (self.heads, self.key_dim, self.window);
        let n = ws * ws;
        if b != 1
            || three_c != nh * 3 * kd
            || self.bias.len() != nh * n * padded_row(n)
            || self.pad_qkv.len() != three_c
        {
            candle_core::bail!(
                "window attention: shape {:?} does not fit the layer",
                layout.dims()
            );
        }
        let scale = (kd as f32).powf(-0.5);
        let c = nh * kd;
        let token_stride = three_c as isize;
        let (wy, wx) = (ih.div_ceil(ws), iw.div_ceil(ws));
        let mut out = vec![0f32; ih * iw * c];
        let shared = SharedOut::new(&mut out);
        (0..wy * wx).into_par_iter().for_each(|wi| {
            let (y0, x0) = (wi / wx * ws, wi % wx * ws);
            // The window's q, k, v rows, padding tokens where it overhangs the image.
            let mut win = vec![0f32; n * three_c];
            for (t, row) in win.chunks_exact_mut(three_c).enumerate() {
                let (y, x) = (y0 + t / ws, x0 + t % ws);
                row.copy_from_slice(if y < ih && x < iw {
                    &image[(y * iw + x) * three_c..][..three_c]
                } else {
                    self.pad_qkv
                });
            }
            let mut out_w = vec![0f32; n * c];
            // [N, np]: rows padded with -inf scores (zero probabilities) so that each softmax
            // runs on whole vectors.
            let np = padded_row(n);
            let mut scores = vec![0f32; n * np];
            for h in 0..nh {
                let q = &win[h * 3 * kd..];
                let k = &win[h * 3 * kd + kd..];
                let v = &win[h * 3 * kd + 2 * kd..];
                scores.copy_from_slice(&self.bias[h * n * np..][..n * np]);
                // SAFETY: every index read or written lies inside the slices: q, k and v
                // rows are `token_stride` apart, `n` rows of `kd` values each, all within
                // `win` (checked by the shape test above); `scores` holds n rows of np ≥ n and
                // `out_w` n rows of `c` values, of which this head writes columns
                // h·kd..(h+1)·kd. `out_w` and `scores` are unique borrows.
                unsafe {
                    // scores = bias + scale · q kᵀ   [N, N]
                    sgemm(
                        (n, n, kd),
                        (scores.as_mut_ptr(), 1, np as isize),
                        true,
                        (q.as_ptr(), 1, token_stride),
                        (k.as_ptr(), token_stride, 1),
                        scale,
                        gemm::Parallelism::None,
                    );
                }
                for row in scores.chunks_exact_mut(np) {
                    softmax_inplace(row);
                }
                // SAFETY: as above.
                unsafe {
                    // out[:, h] = p v   [N, kd]
                    sgemm(
                        (n, kd, n),
                        (out_w.as_mut_ptr().add(h * kd), 1, c as isize),
                        false,
                        (scores.as_ptr(), 1, np as isize),
                        (v.as_ptr(), 1, token_stride),
                        1.0,
                        gemm::Parallelism::None,
                    );
                }
            }
            // The window's own tokens back to their places in the image.
            for (t, row) in out_w.chunks_exact(c).enumerate() {
                let (y, x) = (y0 + t / ws, x0 + t % ws);
                if y < ih && x < iw {
                    // SAFETY: windows cover disjoint pixels, so no other task writes this
                    // row, and (y, x) lies inside the ih × iw image `out` holds.
                    unsafe { shared.row((y * iw + x) * c, c) }.copy_from_slice(row);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((1, ih, iw, c))))
    }
}

/// Row length of a window's padded score matrix: `n` rounded up to whole 16-lane vectors.
pub(crate) fn padded_row(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// Multi-head scaled dot-product attention on plain row-major slices, returning the
/// probabilities too: the CPU path of [`crate::model::text::multi_head_attention`].
///
/// PERF: for a 16-token sentence candle's per-op thread hand-offs cost more than the
/// arithmetic; this loop runs heads in parallel only when the work is large enough.
///
/// `q, k, v`: `[n, d]`; `mask`: additive `[rows, n]` with `rows` 1 (same for every query) or `n`.
/// Returns the context `[n, d]` and probabilities `[heads, n, n]`.
pub(crate) fn attention_cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (n, d, heads): (usize, usize, usize),
    mask: Option<(&[f32], usize)>,
) -> (Vec<f32>, Vec<f32>) {
    let hd = d / heads;
    let scale = (hd as f32).powf(-0.5);
    // Columns h·hd .. (h+1)·hd of a [n, d] matrix, as a contiguous [n, hd] one.
    let cols = |x: &[f32], h: usize| -> Vec<f32> {
        (0..n)
            .flat_map(|i| x[i * d + h * hd..][..hd].iter().copied())
            .collect()
    };
    let head = |h: usize| -> (Vec<f32>, Vec<f32>) {
        let (qh, kh) = (cols(q, h), cols(k, h));
        let small = n <= 48; // tiny products: plain dot products beat GEMM packing
        let mut probs = if small {
            let mut p = vec![0f32; n * n];
            for i in 0..n {
                for j in 0..n {
                    p[i * n + j] = dot(&qh[i * hd..(i + 1) * hd], &kh[j * hd..(j + 1) * hd]);
                }
            }
            p
        } else {
            gemm_abt(&qh, &kh, None, n, n, hd) // [n, n]
        };
        for (i, row) in probs.chunks_mut(n).enumerate() {
            for (j, r) in row.iter_mut().enumerate() {
                let m = mask.map_or(0.0, |(m, rows)| m[if rows == 1 { j } else { i * n + j }]);
                *r = *r * scale + m;
            }
            softmax_inplace(row);
        }
        let ctx = if small {
            let mut c = vec![0f32; n * hd];
            for i in 0..n {
                let out = &mut c[i * hd..(i + 1) * hd];
                for j in 0..n {
                    axpy(probs[i * n + j], &v[j * d + h * hd..][..hd], out);
                }
            }
            c
        } else {
            // vᵀ_h [hd, n] so that probs · v_h is an a·bᵀ product.
            let mut vt = vec![0f32; hd * n];
            for i in 0..n {
                for c in 0..hd {
                    vt[c * n + i] = v[i * d + h * hd + c];
                }
            }
            gemm_abt(&probs, &vt, None, n, hd, n) // [n, hd]
        };
        (ctx, probs)
    };
    let per_head: Vec<(Vec<f32>, Vec<f32>)> = if n * n * d >= 1 << 20 {
        (0..heads).into_par_iter().map(head).collect()
    } else {
        (0..heads).map(head).collect()
    };
    let mut ctx = vec![0f32; n * d];
    let mut probs = Vec::with_capacity(heads * n * n);
    for (h, (c, p)) in per_head.into_iter().enumerate() {
        for i in 0..n {
            ctx[i * d + h * hd..][..hd].copy_from_slice(&c[i * hd..(i + 1) * hd]);
        }
        probs.extend(p);
    }
    (ctx, probs)
}

/// `dst = probs · V` on the calling thread: `probs` `[rows, n]` row-major, `V` `n` rows of
/// `hd` values `v_stride` apart, `dst` `rows` rows of `hd` values `dst_stride` apart (the
/// attention output of one head for a block of queries).
///
/// # Safety
/// `probs` holds `rows·n` values; `v` points to `n` rows of `hd` readable values
/// `v_stride` apart; `dst` to `rows` rows of `hd` writable values `dst_stride` apart that
/// nothing else accesses meanwhile.
unsafe fn weighted_values(
    probs: &[f32],
    (rows, n, hd): (usize, usize, usize),
    (v, v_stride): (*const f32, usize),
    (dst, dst_stride): (*mut f32, usize),
) {
    debug_assert!(probs.len() >= rows * n);
    // SAFETY: forwarded from the caller.
    unsafe {
        sgemm(
            (rows, hd, n),
            (dst, 1, dst_stride as isize),
            false,
            (probs.as_ptr(), 1, n as isize),
            (v, 1, v_stride as isize),
            1.0,
            gemm::Parallelism::None,
        );
    }
}

/// Query rows per task of [`dense_attention`]: a 256 × 4096 block of scores is 4 MB, each
/// row's three softmax passes in the L1 cache. Measured per Hiera-T global block on 2 cores
/// of a Xeon: 64 rows 235-240 ms, 128 rows 217-234 ms, 256 rows 198-217 ms.
const DENSE_QUERY_BLOCK: usize = 256;

/// Plain multi-head attention over all `n` tokens of `qkv` `[n, 3·C]` (per token q, k, v,
/// each heads × hd) → `[n, C]`, for one image.
///
/// PERF: Hiera's global blocks have no relative positions. Each head's keys are packed once
/// as `[hd, n]` and its values as `[n, hd]`; then each task, in parallel over heads and
/// blocks of [`DENSE_QUERY_BLOCK`] queries, runs a single-threaded `scale·q·Kᵀ` reading q in
/// place, a vectorised softmax while the scores are in cache, and `P·V` written straight into
/// the output. Per Hiera-T global block on 2 cores: the ViT kernel's 32-row blocks with
/// relative-position terms 348 ms; two multi-threaded GEMMs per head and 256 rows 222 ms (300
/// ms in a later run on a Xeon); these tasks 198-217 ms in that run.
pub(crate) fn dense_attention(
    qkv: &[f32],
    n: usize,
    heads: usize,
    hd: usize,
    split_bf16: bool,
) -> Vec<f32> {
    if split_bf16 && super::amx::available() {
        return dense_attention_split(qkv, n, heads, hd);
    }
    let c = heads * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let block = DENSE_QUERY_BLOCK;
    // Per head: keys `[hd, n]` and values `[n, hd]`.
    let packed: Vec<(Vec<f32>, Vec<f32>)> = (0..heads)
        .into_par_iter()
        .map(|h| head_keys_values(qkv, n, (h, heads), hd))
        .collect();
    let mut out = vec![0f32; n * c];
    let shared = SharedOut::new(&mut out);
    let blocks = n.div_ceil(block);
    (0..heads * blocks).into_par_iter().for_each_init(
        || vec![0f32; block * n],
        |scores, job| {
            let (h, r0) = (job / blocks, job % blocks * block);
            let rows = block.min(n - r0);
            let (kt, v) = &packed[h];
            let scores = &mut scores[..rows * n];
            // SAFETY: q rows r0..r0 + rows of head h lie in `qkv` (n rows of 3·c); kt holds
            // hd rows of n, v n rows of hd; scores rows·n values.
            unsafe {
                sgemm(
                    (rows, n, hd),
                    (scores.as_mut_ptr(), 1, n as isize),
                    false,
                    (qkv.as_ptr().add(r0 * 3 * c + h * hd), 1, (3 * c) as isize),
                    (kt.as_ptr(), 1, n as isize),
                    scale,
                    gemm::Parallelism::None,
                );
            }
            let mut sums = [0f32; DENSE_QUERY_BLOCK];
            for (row, sum) in scores.chunks_exact_mut(n).zip(&mut sums) {
                *sum = softmax_numerators(row);
            }
            let dst = shared.ptr_within(r0 * c + h * hd, (rows - 1) * c + hd);
            // SAFETY: this task alone writes columns h·hd.. of output rows r0..r0 + rows
            // (tasks differ in head or rows), within the span checked above; v holds n rows
            // of hd.
            unsafe { weighted_values(scores, (rows, n, hd), (v.as_ptr(), hd), (dst, c)) };
            for (r, sum) in sums[..rows].iter().enumerate() {
                // SAFETY: as above: this task's hd values of row r0 + r, written just now.
                scale_inplace(unsafe { shared.row((r0 + r) * c + h * hd, hd) }, 1.0 / sum);
            }
        },
    );
    out
}

/// Head `h`'s keys `[hd, n]` (transposed) and values `[n, hd]` out of `qkv` `[n, 3·C]`.
fn head_keys_values(
    qkv: &[f32],
    n: usize,
    (h, heads): (usize, usize),
    hd: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (mut kt, mut v) = (Vec::new(), Vec::new());
    head_keys_values_into(qkv, n, (h, heads), hd, (&mut kt, &mut v));
    (kt, v)
}

/// [`head_keys_values`] into buffers kept between calls (resized to `[hd, n]` and `[n, hd]`).
fn head_keys_values_into(
    qkv: &[f32],
    n: usize,
    (h, heads): (usize, usize),
    hd: usize,
    (kt, v): (&mut Vec<f32>, &mut Vec<f32>),
) {
    let c = heads * hd;
    kt.resize(hd * n, 0.0);
    v.clear();
    for (t, tok) in qkv.chunks_exact(3 * c).take(n).enumerate() {
        for (d, &x) in tok[c + h * hd..][..hd].iter().enumerate() {
            kt[d * n + t] = x;
        }
        v.extend_from_slice(&tok[2 * c + h * hd..][..hd]);
    }
}

/// The scores `q·Kᵀ` of up to 64 scaled queries `q [rows, hd]` against packed keys `[hd, n]`
/// (into `scores`), turned into the softmax's numerators packed for `P·V` (`probs`), with
/// each row's sum in `sums`: the first half of a block of [`dense_attention_split`] and of
/// [`window_head_split`].
fn exp_scores(
    q: &[f32],
    keys: &super::amx::PackedWeights,
    (rows, n, hd): (usize, usize, usize),
    scores: &mut super::amx::Lines,
    probs: &mut super::amx::PackedRows,
    sums: &mut [f32],
) {
    let scores = scores.f32s(rows * n);
    // SAFETY: `scores` is the caller's own buffer of rows × n.
    unsafe {
        super::amx::product_into(
            q,
            keys,
            (None, super::Epilogue::None),
            (rows, n, hd),
            SharedOut::new(scores),
            (0, n),
        )
    };
    probs.clear();
    for (i, row) in scores.chunks_exact(n).enumerate() {
        sums[i] = probs.set_row_exp(i, row);
    }
}

/// Query rows per task of [`dense_attention_split`]: one block of the AMX kernel, so each row's
/// softmax packs it for `P·V` while it is in cache.
const SPLIT_QUERY_BLOCK: usize = 64;

/// [`dense_attention`] with both products in split bfloat16 on AMX tiles (see
/// [`super::amx`]): per head the keys and values are packed once, then each task of
/// [`SPLIT_QUERY_BLOCK`] queries gathers its scaled queries, runs `q·Kᵀ` into an aligned
/// buffer, turns each row into the softmax's numerators packed for `P·V` in one pass
/// ([`PackedRows::set_row_exp`]), runs `P·V` straight into the output, and divides each
/// output row by its numerators' sum.
///
/// PERF: a Hiera-T global block (4096 tokens, 4 heads of 96) on 2 threads of a Xeon: f32
/// 112-123 ms, this 73-76 ms with a separate softmax (about a quarter of it) and packing;
/// with the numerators packed in one pass, measured alone, 68-70 → 54-59 ms. Leaving parts
/// out in turn: `q·Kᵀ` with the key and value packing about 20 ms, `P·V` 21, the numerators
/// about 14 (by difference; 19 with the earlier Cephes `expf`).
fn dense_attention_split(qkv: &[f32], n: usize, heads: usize, hd: usize) -> Vec<f32> {
    use super::amx::{packed_product_into, Lines, PackedRows, PackedWeights};
    let c = heads * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    // Per head: keys as the `[hd, n]` right-hand side of `q·Kᵀ`, values as the `[n, hd]` one
    // of `P·V`.
    let packed: Vec<(PackedWeights, PackedWeights)> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let (kt, v) = head_keys_values(qkv, n, (h, heads), hd);
            (
                PackedWeights::new(&kt, hd, n, false),
                PackedWeights::new(&v, n, hd, false),
            )
        })
        .collect();
    let mut out = vec![0f32; n * c];
    let shared = SharedOut::new(&mut out);
    let blocks = n.div_ceil(SPLIT_QUERY_BLOCK);
    (0..heads * blocks).into_par_iter().for_each_init(
        || {
            (
                vec![0f32; SPLIT_QUERY_BLOCK * hd],
                Lines::default(),
                PackedRows::new(n),
                [0f32; SPLIT_QUERY_BLOCK],
            )
        },
        |(q, scores, probs, sums), job| {
            let (h, r0) = (job / blocks, job % blocks * SPLIT_QUERY_BLOCK);
            let rows = SPLIT_QUERY_BLOCK.min(n - r0);
            let (keys, values) = &packed[h];
            let q = &mut q[..rows * hd];
            for (i, q) in q.chunks_exact_mut(hd).enumerate() {
                let src = &qkv[(r0 + i) * 3 * c + h * hd..][..hd];
                for (q, &x) in q.iter_mut().zip(src) {
                    *q = x * scale;
                }
            }
            exp_scores(q, keys, (rows, n, hd), scores, probs, sums);
            // SAFETY: this task alone writes columns h·hd.. of output rows r0..r0 + rows
            // (tasks differ in head or rows); the bounds are checked.
            unsafe { packed_product_into(probs, values, shared, (r0 * c + h * hd, c)) };
            // The softmax's division, on the `hd` outputs of a row instead of its `n` weights.
            for (i, &sum) in sums[..rows].iter().enumerate() {
                let inv = 1.0 / sum;
                // SAFETY: as above: this task's part of output row r0 + i.
                for v in unsafe { shared.row((r0 + i) * c + h * hd, hd) } {
                    *v *= inv;
                }
            }
        },
    );
    out
}

/// Hiera's windowed attention on the CPU (`MultiScaleAttention` on `window_partition`ed
/// tokens): `qkv [1, H, W, 3·C]` in image order (per token all heads' q, then k, then v) →
/// `[1, H', W', C]` in image order, windows of `window × window` tokens, the queries
/// max-pooled 2 × 2 inside each window when `pool` (`H' = H / 2`), padding tokens `pad_qkv`.
///
/// PERF: the official order — pad the normed tokens, partition into windows, project, pool the
/// queries, split heads, attend, merge, unpartition, crop — is five full-tensor copies around
/// thousands of tiny batched products (`[16, 96] × [96, 64]` per head and window in Hiera-T's
/// first pooled block). Here the projection runs on the image's own tokens (a padding token's
/// q, k, v are the projection's bias: the padding is zeros), and each window, in parallel,
/// gathers its rows once, pools its queries while it copies them, runs per head a
/// single-threaded `scale·q·kᵀ`, softmax and `p·v` in cache, and writes its own output tokens
/// straight to their places, dropping those of the padding.
pub(crate) struct HieraWindowAttentionOp<'a> {
    /// Attention heads.
    pub(crate) heads: usize,
    /// Window side (before pooling).
    pub(crate) window: usize,
    /// Max-pool the queries 2 × 2 (a stage's first block).
    pub(crate) pool: bool,
    /// The q, k and v of a padding token, `[3·C]`.
    pub(crate) pad_qkv: &'a [f32],
    /// Windows of at least [`SPLIT_MIN_WINDOW`] tokens run their products in split bfloat16
    /// on AMX tiles when this CPU has them ([`window_head_split`]).
    pub(crate) split_bf16: bool,
}

/// Tokens from which a window's products run on AMX tiles: the third stage's windows (196
/// tokens in Hiera-T/S/B+, 256 in Hiera-L). Measured per Hiera-T block on 2 cores of a Xeon
/// (session 35): its 196-token windows 8.7-9.6 ms in f32, 7.8-8.3 ms on AMX; its 64-token
/// windows (the first stage's, and the second stage's pooled first block; on average)
/// 17.0-18.4 ms in f32, 18.5-20.5 ms on AMX, where gathering and packing outweigh the
/// products.
const SPLIT_MIN_WINDOW: usize = 100;

/// Per-thread buffers of [`window_head_split`].
#[derive(Default)]
struct SplitWindow {
    /// One head's scaled queries `[nq, hd]`.
    q: Vec<f32>,
    /// Its keys transposed `[hd, n]` and values `[n, hd]`.
    kt: Vec<f32>,
    v: Vec<f32>,
    /// A block of scores, 64 rows of `n`.
    scores: super::amx::Lines,
    /// Their numerators, packed for `P·V`.
    probs: Option<super::amx::PackedRows>,
    /// The keys and values packed, kept between heads and windows (same shapes).
    packed: Option<(super::amx::PackedWeights, super::amx::PackedWeights)>,
}

/// One head of one window, both products in split bfloat16 on AMX tiles (as
/// [`dense_attention_split`]): `q` the window's (pooled) queries `[nq, c]`, `win` its tokens'
/// q, k, v `[n, 3·c]` → `o [nq, hd]`.
///
/// PERF: a Hiera-T stage-3 window (196 tokens, heads of 96) took about 150 µs per head in f32
/// GEMMs and a separate softmax on 2 cores of a Xeon.
fn window_head_split(
    (q, win): (&[f32], &[f32]),
    (head, hd, c): (usize, usize, usize),
    scale: f32,
    buf: &mut SplitWindow,
    o: &mut [f32],
) {
    use super::amx::{packed_product_into, PackedRows, PackedWeights};
    let (nq, n) = (q.len() / c, win.len() / (3 * c));
    buf.q.clear();
    for row in q.chunks_exact(c) {
        buf.q
            .extend(row[head * hd..][..hd].iter().map(|&x| x * scale));
    }
    head_keys_values_into(win, n, (head, c / hd), hd, (&mut buf.kt, &mut buf.v));
    let (keys, values) = match &mut buf.packed {
        Some((k, v)) => {
            k.repack(&buf.kt, hd, n);
            v.repack(&buf.v, n, hd);
            (&*k, &*v)
        }
        None => {
            let kv = (
                PackedWeights::new(&buf.kt, hd, n, false),
                PackedWeights::new(&buf.v, n, hd, false),
            );
            let (k, v) = buf.packed.insert(kv);
            (&*k, &*v)
        }
    };
    let probs = buf.probs.get_or_insert_with(|| PackedRows::new(n));
    let mut sums = [0f32; SPLIT_QUERY_BLOCK];
    for r0 in (0..nq).step_by(SPLIT_QUERY_BLOCK) {
        let rows = SPLIT_QUERY_BLOCK.min(nq - r0);
        let q = &buf.q[r0 * hd..(r0 + rows) * hd];
        exp_scores(q, keys, (rows, n, hd), &mut buf.scores, probs, &mut sums);
        let out = &mut o[r0 * hd..(r0 + rows) * hd];
        // SAFETY: `out` is this thread's own block of rows × hd.
        unsafe { packed_product_into(probs, values, SharedOut::new(out), (0, hd)) };
        for (row, &sum) in out.chunks_exact_mut(hd).zip(&sums) {
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

impl CustomOp1 for HieraWindowAttentionOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-hiera-window-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(storage, layout)?;
        let (b, h, w, three_c) = layout.shape().dims4()?;
        let (nh, ws) = (self.heads, self.window);
        let c = three_c / 3;
        if b != 1
            || three_c != 3 * c
            || nh == 0
            || c % nh != 0
            || ws == 0
            || self.pad_qkv.len() != three_c
            || (self.pool && (ws % 2 != 0 || h % 2 != 0 || w % 2 != 0))
        {
            candle_core::bail!(
                "hiera window attention: shape {:?} does not fit the layer (window {ws}, pool {})",
                layout.dims(),
                self.pool
            );
        }
        let hd = c / nh;
        let (wy, wx) = (h.div_ceil(ws), w.div_ceil(ws));
        let (ows, oh, ow) = if self.pool {
            (ws / 2, h / 2, w / 2)
        } else {
            (ws, h, w)
        };
        let (n, nq) = (ws * ws, ows * ows);
        let scale = (hd as f32).powf(-0.5);
        let split = self.split_bf16 && n >= SPLIT_MIN_WINDOW && super::amx::available();
        let fill = |shared: SharedOut| {
            (0..wy * wx).into_par_iter().for_each_init(
                || {
                    (
                        vec![0f32; n * three_c],                    // the window's q, k, v rows
                        vec![0f32; nq * c],                         // its (pooled) queries
                        vec![0f32; if split { 0 } else { nq * n }], // one head's scores
                        vec![0f32; if split { 0 } else { nq }],     // and their row sums
                        vec![0f32; nq * hd],                        // one head's output
                        SplitWindow::default(),
                    )
                },
                |(win, q, scores, sums, o, buf), wi| {
                    let (y0, x0) = (wi / wx * ws, wi % wx * ws);
                    let (oy0, ox0) = (wi / wx * ows, wi % wx * ows);
                    for (t, row) in win.chunks_exact_mut(three_c).enumerate() {
                        let (y, x) = (y0 + t / ws, x0 + t % ws);
                        row.copy_from_slice(if y < h && x < w {
                            &qkv[(y * w + x) * three_c..][..three_c]
                        } else {
                            self.pad_qkv
                        });
                    }
                    for (t, qrow) in q.chunks_exact_mut(c).enumerate() {
                        let (i, j) = (t / ows, t % ows);
                        if !self.pool {
                            qrow.copy_from_slice(&win[t * three_c..][..c]);
                            continue;
                        }
                        let at = |dy: usize, dx: usize| {
                            &win[((2 * i + dy) * ws + 2 * j + dx) * three_c..][..c]
                        };
                        qrow.copy_from_slice(at(0, 0));
                        for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                            for (m, &v) in qrow.iter_mut().zip(at(dy, dx)) {
                                *m = m.max(v);
                            }
                        }
                    }
                    for head in 0..nh {
                        if split {
                            window_head_split((q, win), (head, hd, c), scale, buf, o);
                        } else {
                            // SAFETY: sized above for this window (not split): q nq × c, win n ×
                            // 3·c, scores nq × n, sums nq, o nq × hd; head < heads, so
                            // (head + 1)·hd ≤ c.
                            unsafe {
                                window_head_f32(
                                    (q, win),
                                    (head, hd, c, n),
                                    scale,
                                    (scores, sums),
                                    o,
                                )
                            };
                        }
                        for (t, src) in o.chunks_exact(hd).enumerate() {
                            let (oy, ox) = (oy0 + t / ows, ox0 + t % ows);
                            if oy < oh && ox < ow {
                                let to = shared.ptr_within((oy * ow + ox) * c + head * hd, hd);
                                // SAFETY: each output token belongs to one window (windows tile
                                // the grid without overlap) and each head to one iteration, so
                                // no other thread touches these hd values (in bounds, checked).
                                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), to, hd) };
                            }
                        }
                    }
                },
            );
        };
        // SAFETY: the windows tile the output grid and each writes all c channels of its
        // tokens (every head's hd values), so `fill` writes every element, through pointers.
        let (out, ()) = unsafe { filled_by(oh * ow * c, fill) };
        Ok((CpuStorage::F32(out), Shape::from((1, oh, ow, c))))
    }
}

/// One head of one window in f32: `q` the window's (pooled) queries `[nq, c]`, `win` its
/// tokens' q, k, v `[n, 3·c]`, `scores` `[nq, n]` and their row sums `[nq]` → `o [nq, hd]`.
/// The division by each row's sum is applied to its hd outputs rather than its n
/// numerators.
///
/// # Safety
/// The slices hold what their shapes say, with `(head + 1)·hd ≤ c`.
unsafe fn window_head_f32(
    (q, win): (&[f32], &[f32]),
    (head, hd, c, n): (usize, usize, usize, usize),
    scale: f32,
    (scores, sums): (&mut [f32], &mut [f32]),
    o: &mut [f32],
) {
    let (nq, three_c) = (q.len() / c, 3 * c);
    debug_assert!(win.len() >= n * three_c && scores.len() >= nq * n && o.len() >= nq * hd);
    assert!(sums.len() >= nq, "window attention: row sums too short");
    // SAFETY: q holds nq rows of c ≥ (head + 1)·hd values; win holds n rows of 3·c, whose k
    // and v parts start at c and 2·c; scores holds nq·n values and o nq·hd (the caller's
    // contract).
    unsafe {
        sgemm(
            (nq, n, hd),
            (scores.as_mut_ptr(), 1, n as isize),
            false,
            (q.as_ptr().add(head * hd), 1, c as isize),
            (win.as_ptr().add(c + head * hd), three_c as isize, 1),
            scale,
            gemm::Parallelism::None,
        );
    }
    for (row, sum) in scores[..nq * n].chunks_exact_mut(n).zip(sums.iter_mut()) {
        *sum = softmax_numerators(row);
    }
    // SAFETY: as above.
    unsafe {
        weighted_values(
            scores,
            (nq, n, hd),
            (win.as_ptr().add(2 * c + head * hd), three_c),
            (o.as_mut_ptr(), hd),
        )
    };
    for (row, sum) in o[..nq * hd].chunks_exact_mut(hd).zip(sums.iter()) {
        scale_inplace(row, 1.0 / sum);
    }
}
