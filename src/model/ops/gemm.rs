//! GEMM on the `gemm` crate with the calls this crate makes: `a·bᵀ` products, linear layers'
//! `x·Wᵀ + b` tiled over threads with fused epilogues, and the shared output buffer their tiles
//! (and the attention kernels' windows) write to.

use rayon::prelude::*;

/// What runs on each block of output rows of a GEMM right after it is written, while the block
/// is still in cache.
///
/// PERF: a separate GELU or residual pass re-reads a whole activation from memory (up to 67 MB
/// in MobileSAM's first stage); fused here it costs no extra memory traffic.
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<'a> {
    /// Nothing.
    None,
    /// Exact GELU.
    Gelu,
    /// `y + residual` with `residual` `[m, n]`.
    Add(&'a [f32]),
    /// `gelu(y + residual)` with `residual` `[m, n]`.
    AddGelu(&'a [f32]),
}

impl Epilogue<'_> {
    /// Applies the epilogue to `block`, which holds consecutive outputs starting at flat index
    /// `offset` of the `[m, n]` result.
    pub(super) fn apply(self, offset: usize, block: &mut [f32]) {
        let residual = |r: &[f32], block: &mut [f32]| {
            crate::model::simd::add_assign(block, &r[offset..]);
        };
        match self {
            Self::None => {}
            Self::Gelu => crate::model::simd::gelu_inplace(block),
            Self::Add(r) => residual(r, block),
            Self::AddGelu(r) => {
                residual(r, block);
                crate::model::simd::gelu_inplace(block);
            }
        }
    }
}

/// Products below this many multiply-adds run on one thread: waking the pool costs more.
pub(super) const PARALLEL_GEMM_MIN_MACS: usize = 1 << 21;

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
    check_operands(a, b, bias, Epilogue::None, (m, n, k));
    let mut dst = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return dst;
    }
    let threads = rayon::current_num_threads();
    let one_thread = gemm::Parallelism::None;
    if m * n * k < PARALLEL_GEMM_MIN_MACS || threads < 2 {
        gemm_block(a, b, bias, &mut dst, n, k, one_thread);
    } else if n * k > SPLIT_MAX_WEIGHTS {
        // A large `b`: gemm packs it once and shares it between the threads.
        gemm_block(
            a,
            b,
            bias,
            &mut dst,
            n,
            k,
            gemm::Parallelism::Rayon(threads),
        );
    } else {
        // A small `b` (cheap to pack per block): blocks of about 64 KB of output, at least 4
        // per thread so the threads stay balanced; rows in multiples of 8.
        let rows = (16_384 / n)
            .clamp(8, m.div_ceil(4 * threads).max(8))
            .next_multiple_of(8);
        dst.par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(i, out)| {
                let a = &a[i * rows * k..];
                gemm_block(a, b, bias, out, n, k, one_thread);
            });
    }
    dst
}

/// Panics unless `a` holds `[m, k]`, `b` `[n, k]` (either layout), `bias` `[n]` and the
/// epilogue's residual `[m, n]`.
fn check_operands(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue<'_>,
    (m, n, k): (usize, usize, usize),
) {
    assert!(
        a.len() >= m * k && b.len() >= n * k,
        "gemm: operands too short"
    );
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "gemm: bias length");
    }
    if let Epilogue::Add(r) | Epilogue::AddGelu(r) = epilogue {
        assert!(r.len() >= m * n, "gemm: residual too short");
    }
}

/// Weight matrices up to this many values (256 K values, 1 MB: about the L2 cache) are
/// re-packed per block of rows by [`gemm_abt`] and form one feature range of [`linear_gemm`].
pub(super) const SPLIT_MAX_WEIGHTS: usize = 1 << 18;

/// One block of output rows: `out[rows×n] = bias + a[rows×k] · bᵀ` (rows = `out.len() / n`).
fn gemm_block(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    n: usize,
    k: usize,
    parallelism: gemm::Parallelism,
) {
    let m = out.len() / n.max(1);
    assert!(a.len() >= m * k && b.len() >= n * k);
    if let Some(bias) = bias {
        for row in out.chunks_exact_mut(n) {
            row.copy_from_slice(bias);
        }
    }
    // SAFETY: `out` holds m·n elements written with strides (1, n); `a` holds m·k read with
    // strides (1, k); `b` holds n·k read as the transposed k×n matrix with strides (k, 1). The
    // assert above checks the lengths and `out` is a unique borrow, so it aliases nothing.
    unsafe {
        sgemm(
            (m, n, k),
            (out.as_mut_ptr(), 1, n as isize),
            bias.is_some(),
            (a.as_ptr(), 1, k as isize),
            (b.as_ptr(), k as isize, 1),
            1.0,
            parallelism,
        );
    }
}

/// `dst = dst + scale · lhs · rhs` (or `scale · lhs · rhs` unless `accumulate`) with
/// `dst [m×n]`, `lhs [m×k]` and `rhs [k×n]`, each given as (pointer, column stride, row stride)
/// in elements: gemm's own call with the arguments this crate always passes left out.
///
/// # Safety
/// Every element the strides reach must lie in its allocation; `dst` must alias nothing.
pub(crate) unsafe fn sgemm(
    (m, n, k): (usize, usize, usize),
    (dst, dst_cs, dst_rs): (*mut f32, isize, isize),
    accumulate: bool,
    (lhs, lhs_cs, lhs_rs): (*const f32, isize, isize),
    (rhs, rhs_cs, rhs_rs): (*const f32, isize, isize),
    scale: f32,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Tokens per GEMM call of [`linear_gemm`]: gemm reads the weights in place (no packing) as
/// long as a single-threaded call has at most 8 × its 6-column microkernel width of them.
const TOKEN_BLOCK: usize = 48;

/// `dst[m×n] = bias + x[m×k] · w_t[k×n]`, then `epilogue`, with `w_t` a weight matrix stored
/// transposed (`Wᵀ`, row-major `[in, out]`) and `dst` row-major.
///
/// PERF: gemm computes this as `dstᵀ = W · xᵀ` and, with `W` in this layout, its microkernel
/// reads the weights where they are; with `W` stored `[out, in]` it re-packed the whole matrix
/// on every call, which took a third of a text model's forward. The work is cut into tiles of
/// at most `TOKEN_BLOCK` (48) tokens by a range of output features, one single-threaded GEMM
/// per tile, each tile's epilogue run while it is in cache. Feature ranges hold at most
/// `SPLIT_MAX_WEIGHTS` (256 K) weights, about the L2 cache, and are split further when there
/// are too few token blocks to keep every thread busy.
pub fn linear_gemm(
    x: &[f32],
    w_t: &[f32],
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue<'_>,
) -> Vec<f32> {
    let threads = rayon::current_num_threads();
    let parallel = m * n * k >= PARALLEL_GEMM_MIN_MACS && threads >= 2;
    // SAFETY: both forms (which check the operands) write every element (the bias rows, or the product with
    // `accumulate` false) before they read any or make a row of it.
    let (dst, ()) = unsafe {
        filled_by(m * n, |out| {
            if parallel && k >= DEEP_K && m >= DEEP_K {
                deep_gemm(x, w_t, bias, (m, n, k), epilogue, out, threads);
            } else {
                linear_gemm_shared(x, w_t, bias, (m, n, k), epilogue, out, parallel);
            }
        })
    };
    dst
}

/// [`linear_gemm`]'s long and deep form (a ViT MLP's second layer): gemm's own blocking, which
/// packs both operands once and shares them between the threads, beats the in-place tiles.
/// Writes all of `out` `[m, n]` before it makes a row of it.
fn deep_gemm(
    x: &[f32],
    w_t: &[f32],
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue<'_>,
    out: SharedOut,
    threads: usize,
) {
    const ROWS: usize = 64;
    check_operands(x, w_t, bias, epilogue, (m, n, k));
    if let Some(bias) = bias {
        (0..m.div_ceil(ROWS)).into_par_iter().for_each(|b| {
            for t in b * ROWS..(b * ROWS + ROWS).min(m) {
                let to = out.ptr_within(t * n, n);
                // SAFETY: row t of the output, this task's alone, n elements (checked).
                unsafe { std::ptr::copy_nonoverlapping(bias.as_ptr(), to, n) };
            }
        });
    }
    // SAFETY: dst `[n × m]` viewed transposed (strides 1, n) spans m·n elements (checked by
    // ptr_within); `Wᵀ` read as `[n × k]` with strides (1, n) and x as `[k × m]` with strides
    // (1, k) stay within the lengths `check_operands` checked.
    unsafe {
        sgemm(
            (n, m, k),
            (out.ptr_within(0, m * n), n as isize, 1),
            bias.is_some(),
            (w_t.as_ptr(), n as isize, 1),
            (x.as_ptr(), k as isize, 1),
            1.0,
            gemm::Parallelism::Rayon(threads),
        );
    }
    if !matches!(epilogue, Epilogue::None) {
        let rows = (16_384 / n).max(1);
        (0..m.div_ceil(rows)).into_par_iter().for_each(|i| {
            let len = rows.min(m - i * rows) * n;
            // SAFETY: written above; these rows are this task's alone.
            epilogue.apply(i * rows * n, unsafe { out.row(i * rows * n, len) });
        });
    }
}

/// Inner dimension (and row count) from which [`linear_gemm`] hands a product to gemm's own
/// packed, shared-operand blocking: measured 53 vs 58 ms at 4096 × 768 × 3072 (session 4,
/// AMD Zen 4, when this was 2048). Session 12, on 2 cores of an Intel Xeon (AVX-512), at 256
/// instead of 2048: SAM ViT-B encoder 7.15 → 5.12 s, SAM 2.1 Hiera-L 8.80 → 7.36 s, Hiera-T
/// 1.56-1.69 → 1.38-1.53 s, MobileSAM 527 → 504-520 ms, clicks unchanged (64 measured as 256).
const DEEP_K: usize = 256;

/// [`linear_gemm`] into `dst` `[m, n]`, on the calling thread unless `parallel`.
pub(crate) fn linear_gemm_into(
    x: &[f32],
    w_t: &[f32],
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue<'_>,
    dst: &mut [f32],
    parallel: bool,
) {
    assert!(dst.len() >= m * n, "gemm: output too short");
    linear_gemm_shared(
        x,
        w_t,
        bias,
        (m, n, k),
        epilogue,
        SharedOut::new(dst),
        parallel,
    );
}

/// [`linear_gemm_into`]'s tiles, writing `out` (which need not be initialised: each tile
/// writes its elements before it makes rows of them), after checking the operands.
fn linear_gemm_shared(
    x: &[f32],
    w_t: &[f32],
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue<'_>,
    out: SharedOut,
    parallel: bool,
) {
    check_operands(x, w_t, bias, epilogue, (m, n, k));
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let token_blocks = m.div_ceil(TOKEN_BLOCK);
    let ranges = if !parallel {
        (n * k).div_ceil(SPLIT_MAX_WEIGHTS)
    } else {
        (n * k)
            .div_ceil(SPLIT_MAX_WEIGHTS)
            .max((4 * threads).div_ceil(token_blocks))
    };
    // Whole 16-lane vectors per range where the width allows.
    let width = n
        .div_ceil(ranges.clamp(1, n.div_ceil(16)))
        .next_multiple_of(16)
        .min(n);
    let ranges = n.div_ceil(width);
    let tile = |job: usize| {
        let (r, b) = (job / token_blocks, job % token_blocks);
        let (f0, t0) = (r * width, b * TOKEN_BLOCK);
        let (nf, nt) = (width.min(n - f0), TOKEN_BLOCK.min(m - t0));
        if let Some(bias) = bias {
            for t in t0..t0 + nt {
                let to = out.ptr_within(t * n + f0, nf);
                // SAFETY: this tile's segment of row t (checked in bounds), nf elements.
                unsafe { std::ptr::copy_nonoverlapping(bias[f0..f0 + nf].as_ptr(), to, nf) };
            }
        }
        // SAFETY: dst `[nf features × nt tokens]` at strides (1, n) inside this tile (its
        // last element checked by ptr_within); lhs `Wᵀ[.., f0..f0+nf]` read as `[nf × k]`
        // with strides (1, n); rhs `x[t0..t0+nt, ..]` read as `[k × nt]` with strides (1, k);
        // `check_operands` checked the lengths.
        unsafe {
            sgemm(
                (nf, nt, k),
                (
                    out.ptr_within(t0 * n + f0, (nt - 1) * n + nf),
                    n as isize,
                    1,
                ),
                bias.is_some(),
                (w_t.as_ptr().add(f0), n as isize, 1),
                (x.as_ptr().add(t0 * k), k as isize, 1),
                1.0,
                gemm::Parallelism::None,
            );
        }
        if !matches!(epilogue, Epilogue::None) {
            for t in t0..t0 + nt {
                // SAFETY: this tile's segment of row t, written by the product above.
                epilogue.apply(t * n + f0, unsafe { out.row(t * n + f0, nf) });
            }
        }
    };
    let jobs = ranges * token_blocks;
    if parallel {
        (0..jobs).into_par_iter().for_each(tile);
    } else {
        (0..jobs).for_each(tile);
    }
}

/// `x[m×k] · w_t[k×n]` → `[m, n]` for few rows and a long inner dimension (an attention's
/// `P·V` for a handful of queries over thousands of keys): each thread takes a range of `k`
/// through one product into its own `[m, n]`, and the partial products are added.
///
/// PERF: the mask decoder's token → image `P·V` (64 × 4096 · 4096 × 256) took 1.1 ms as
/// [`linear_gemm`]'s tiles by output features (each re-reading the scores, a second token
/// block of 16 rows) and 1.2 ms through gemm's own threading; split along `k` in 4 it takes
/// 0.63-0.66 ms (2 cores of an Intel Xeon, twice per click).
pub(crate) fn product_split_k(
    x: &[f32],
    w_t: &[f32],
    (m, n, k): (usize, usize, usize),
) -> Vec<f32> {
    check_operands(x, w_t, None, Epilogue::None, (m, n, k));
    let threads = rayon::current_num_threads();
    let chunks = (2 * threads).min(k / 256).max(1);
    if chunks == 1 || m * n * k < PARALLEL_GEMM_MIN_MACS {
        return linear_gemm(x, w_t, None, (m, n, k), Epilogue::None);
    }
    let kc = k.div_ceil(chunks);
    let partial = |c: usize| {
        let (k0, kn) = (c * kc, kc.min(k - c * kc));
        let mut dst = vec![0f32; m * n];
        // SAFETY: dst `[n × m]` viewed transposed (strides n, 1) holds m·n values; `Wᵀ` rows
        // k0..k0+kn read as `[n × kn]` (strides n, 1) and x's columns k0..k0+kn as `[kn × m]`
        // (strides k, 1) lie within the lengths `check_operands` checked.
        unsafe {
            sgemm(
                (n, m, kn),
                (dst.as_mut_ptr(), n as isize, 1),
                false,
                (w_t.as_ptr().add(k0 * n), n as isize, 1),
                (x.as_ptr().add(k0), k as isize, 1),
                1.0,
                gemm::Parallelism::None,
            );
        }
        dst
    };
    (0..k.div_ceil(kc))
        .into_par_iter()
        .map(partial)
        .reduce_with(|mut a, b| {
            crate::model::simd::add_assign(&mut a, &b);
            a
        })
        .unwrap_or_else(|| vec![0.0; m * n])
}

/// Tokens per task of [`residual_mlp_f32`]: two of [`linear_gemm`]'s token blocks, whose
/// hidden rows (96 × 768 in Hiera-T's second stage, 288 KB) stay in the core's L2 cache.
const MLP_ROWS: usize = 2 * TOKEN_BLOCK;

/// `x + fc2(gelu(fc1(norm(x))))` for `x` `[m, c]` (`norm`, a layer norm's weight, bias and
/// epsilon, skipped when `None`) in f32, `fc1` `(Wᵀ [c, hidden], bias)` and `fc2`
/// `(Wᵀ [hidden, c], bias)`: threads over blocks of [`MLP_ROWS`] tokens, each normed, through
/// both products with the GELU between them, and its output rows written once, while the
/// block is in the core's cache. The products are [`linear_gemm`]'s single-threaded tiles.
///
/// PERF: as three layers the normed input and the hidden activations went through memory
/// (Hiera-T's first stage: 25 MB and 100 MB per block, written and read back); fused, the
/// first two stages' MLPs took 63 + 87 → 43 + 74 ms per encode (2 cores of an Intel Xeon).
/// Every block reads all the weights, so `ops::residual_mlp` uses this only while `fc1` has
/// at most [`SPLIT_MAX_WEIGHTS`]: Hiera's last stage (768 × 3072) was twice as slow fused.
///
/// # Panics
/// When the operands' lengths disagree with `c` and the weights' shapes.
pub(crate) fn residual_mlp_f32(
    x: &[f32],
    norm: Option<(&[f32], &[f32], f32)>,
    (w1, b1): (&[f32], Option<&[f32]>),
    (w2, b2): (&[f32], Option<&[f32]>),
    c: usize,
) -> Vec<f32> {
    assert!(
        c > 0 && x.len().is_multiple_of(c),
        "MLP input of {} values, {c} features",
        x.len()
    );
    let hidden = w1.len() / c;
    assert!(
        w1.len() == c * hidden && w2.len() == hidden * c,
        "MLP of {c} features: weights of {} and {} values",
        w1.len(),
        w2.len()
    );
    if let Some((w, b, _)) = norm {
        assert!(w.len() == c && b.len() == c, "layer norm of another width");
    }
    let m = x.len() / c;
    let fill = |out: SharedOut| {
        (0..m.div_ceil(MLP_ROWS)).into_par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |(normed, hid): &mut (Vec<f32>, Vec<f32>), j| {
                let r0 = j * MLP_ROWS;
                let rows = MLP_ROWS.min(m - r0);
                let src = &x[r0 * c..(r0 + rows) * c];
                let a = match norm {
                    Some((w, b, eps)) => {
                        normed.clear();
                        normed.extend_from_slice(src);
                        crate::model::simd::layer_norm_rows(normed, w, b, eps);
                        &normed[..]
                    }
                    None => src,
                };
                hid.resize(rows * hidden, 0.0);
                linear_gemm_into(a, w1, b1, (rows, hidden, c), Epilogue::Gelu, hid, false);
                let block = out.sub(r0 * c, rows * c);
                let dims = (rows, c, hidden);
                linear_gemm_shared(hid, w2, b2, dims, Epilogue::Add(src), block, false);
            },
        );
    };
    // SAFETY: the tasks write every row of the output (each its own block's), through
    // `linear_gemm_shared`, which writes before it makes rows.
    let (out, ()) = unsafe { filled_by(m * c, fill) };
    out
}

/// A new `Vec<f32>` of `len` elements, all of which `fill` writes through the shared output
/// (raw pointers from [`SharedOut::ptr_within`], or memory copies) before it reads or makes a
/// [`SharedOut::row`] of any; with what `fill` returns.
///
/// PERF: `vec![0.0; len]` zeroes the buffer on the calling thread first; a click's profile
/// had 0.85 ms of memset on that thread, mostly the decoder's passes over the image (5 MB a
/// pass, twice per click).
///
/// # Safety
/// `fill` must initialise every element.
pub(crate) unsafe fn filled_by<R>(len: usize, fill: impl FnOnce(SharedOut) -> R) -> (Vec<f32>, R) {
    let mut v: Vec<std::mem::MaybeUninit<f32>> = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` needs no initialisation.
    unsafe { v.set_len(len) };
    let r = fill(SharedOut::uninit(&mut v));
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `fill` initialised all `len` elements (the caller's contract): they are f32s
    // in the same allocation, length and capacity.
    let v = unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), len, v.capacity()) };
    (v, r)
}

/// A copy of `src` with `f` applied to each run of `chunk` values (the last may be shorter),
/// the runs in parallel: each is copied and transformed while it is in cache, into a buffer
/// that is not zeroed first.
///
/// PERF: `vec![0.0; n]` and a copy had zeroed every LayerNorm and GELU output on one thread
/// first (1.2% of Hiera-T's encoder in memset alone).
pub(crate) fn copied_then(src: &[f32], chunk: usize, f: impl Fn(&mut [f32]) + Sync) -> Vec<f32> {
    let (n, chunk) = (src.len(), chunk.max(1));
    // SAFETY: every run is copied in whole (initialised) before the slice of it is made, and
    // the runs cover the output.
    let (dst, ()) = unsafe {
        filled_by(n, |out| {
            (0..n.div_ceil(chunk)).into_par_iter().for_each(|i| {
                let (start, len) = (i * chunk, chunk.min(n - i * chunk));
                let run = {
                    let to = out.ptr_within(start, len);
                    std::ptr::copy_nonoverlapping(src[start..].as_ptr(), to, len);
                    out.row(start, len)
                };
                f(run);
            })
        })
    };
    dst
}

/// An output buffer that several threads write at disjoint places (the tiles of
/// [`linear_gemm_into`], the windows of an attention).
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32, usize);

// SAFETY: users write disjoint elements only (each a documented `unsafe` call), and the buffer
// outlives the parallel section that shares it.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Shares `buf`.
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        Self(buf.as_mut_ptr(), buf.len())
    }

    /// Shares `buf`, not yet initialised: users write elements through
    /// [`ptr_within`](Self::ptr_within) before they make [`row`](Self::row)s of them.
    pub(crate) fn uninit(buf: &mut [std::mem::MaybeUninit<f32>]) -> Self {
        Self(buf.as_mut_ptr().cast(), buf.len())
    }

    /// Elements `start .. start + len` as an output of their own (bounds checked).
    pub(crate) fn sub(self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.1, "shared output: out of bounds");
        Self(self.0.wrapping_add(start), len)
    }

    /// A pointer to element `start`, for writes through strides that stay within
    /// `start .. start + span` (checked); the elements written must be this thread's alone.
    pub(crate) fn ptr_within(&self, start: usize, span: usize) -> *mut f32 {
        assert!(start + span <= self.1, "shared output: out of bounds");
        self.0.wrapping_add(start)
    }

    /// Elements `start .. start + len` as a slice of values that may not be initialised yet.
    ///
    /// # Safety
    /// No other thread may access these elements while the slice lives.
    #[allow(clippy::mut_from_ref)] // disjointness is the caller's contract, as documented
    pub(crate) unsafe fn uninit_row(
        &self,
        start: usize,
        len: usize,
    ) -> &mut [std::mem::MaybeUninit<f32>] {
        assert!(start + len <= self.1, "shared output: out of bounds");
        // SAFETY: in bounds (checked above); exclusive by the caller's contract; any memory is
        // a valid `MaybeUninit`.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start).cast(), len) }
    }

    /// Elements `start .. start + len` as a slice.
    ///
    /// # Safety
    /// No other thread may access these elements while the slice lives.
    #[allow(clippy::mut_from_ref)] // disjointness is the caller's contract, as documented
    pub(crate) unsafe fn row(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.1, "shared output: out of bounds");
        // SAFETY: in bounds (checked above); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Operands shared by the fused MLPs' tests.
#[cfg(test)]
pub(crate) mod mlp_test_data {
    /// An MLP block's operands for `m` tokens of `c` features and `hidden` hidden ones:
    /// `x [m, c]`, `W1ᵀ [c, hidden]`, `b1`, `W2ᵀ [hidden, c]`, `b2`, and a layer norm's
    /// weight and bias, all deterministic and of mixed signs.
    pub(crate) fn operands(m: usize, c: usize, hidden: usize) -> [Vec<f32>; 7] {
        let val = |i: usize, seed: usize| ((i * 7919 + seed * 104_729) % 211) as f32 / 105.0 - 1.0;
        let v = |n: usize, seed: usize, scale: f32, offset: f32| -> Vec<f32> {
            (0..n).map(|i| offset + val(i, seed) * scale).collect()
        };
        [
            v(m * c, 1, 1.0, 0.0),
            v(c * hidden, 2, 0.3, 0.0),
            v(hidden, 3, 1.0, 0.0),
            v(hidden * c, 4, 0.2, 0.0),
            v(c, 5, 1.0, 0.0),
            v(c, 6, 0.1, 1.0),
            v(c, 7, 0.5, 0.0),
        ]
    }

    /// The largest `|a - b|`, and the largest `|b|`.
    pub(crate) fn worst_and_scale(a: &[f32], b: &[f32]) -> (f32, f32) {
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        (worst, b.iter().fold(0f32, |m, y| m.max(y.abs())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile of the blocked linear GEMM, including partial token blocks and feature
    /// ranges, on one thread and on several, equals an f64 reference with bias and epilogues.
    #[test]
    fn linear_gemm_matches_f64_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let val = |i: usize, seed: usize| ((i * 7919 + seed * 104_729) % 211) as f32 / 105.0 - 1.0;
        // (m, n, k): tiny, one partial token block, several blocks, weights above the split
        // size, long and deep (gemm's own blocking).
        for (m, n, k) in [
            (1, 3, 5),
            (7, 24, 16),
            (49, 100, 33),
            (130, 1000, 70),
            (97, 700, 400),
            (2050, 24, 2048),
        ] {
            let x: Vec<f32> = (0..m * k).map(|i| val(i, 1)).collect();
            let w_t: Vec<f32> = (0..k * n).map(|i| val(i, 2)).collect();
            let bias: Vec<f32> = (0..n).map(|i| val(i, 3)).collect();
            let res: Vec<f32> = (0..m * n).map(|i| val(i, 4)).collect();
            let gelu64 = |v: f64| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2));
            let cases = [
                (Epilogue::None, false, false),
                (Epilogue::Gelu, true, false),
                (Epilogue::Add(&res), false, true),
                (Epilogue::AddGelu(&res), true, true),
            ];
            // With the bias, and without (the product alone then writes the output).
            for ((epilogue, gelu_after, add), b) in
                cases.into_iter().zip([true, false, true, false])
            {
                let b = b.then_some(bias.as_slice());
                let seq = linear_gemm(&x, &w_t, b, (m, n, k), epilogue);
                let par = pool.install(|| linear_gemm(&x, &w_t, b, (m, n, k), epilogue));
                for i in 0..m {
                    for j in 0..n {
                        let mut e = b.map_or(0.0, |b| f64::from(b[j]));
                        for c in 0..k {
                            e += f64::from(x[i * k + c]) * f64::from(w_t[c * n + j]);
                        }
                        if add {
                            e += f64::from(res[i * n + j]);
                        }
                        if gelu_after {
                            e = gelu64(e);
                        }
                        let tol = 1e-5 * (k as f64).sqrt() * 4.0;
                        for (what, got) in [("one thread", &seq), ("three threads", &par)] {
                            let d = (f64::from(got[i * n + j]) - e).abs();
                            assert!(d < tol, "{what} {m}x{n}x{k} [{i},{j}]: {d:e}");
                        }
                    }
                }
            }
        }
    }

    /// The fused f32 MLP equals its steps (the norm, then each layer through
    /// [`linear_gemm`]), with and without the norm and the biases, at a token count that
    /// leaves a partial block, on one thread and on three: the same tiles' products, so within
    /// 1e-6 of the largest value.
    #[test]
    fn fused_f32_mlp_equals_the_steps() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let (m, c, hidden) = (2 * MLP_ROWS + 37, 40, 160);
        let [x, w1, b1, w2, b2, g, beta] = mlp_test_data::operands(m, c, hidden);
        for (norm, biases) in [(false, true), (true, true), (true, false)] {
            let norm = norm.then_some((g.as_slice(), beta.as_slice(), 1e-6));
            let (b1, b2) = (biases.then_some(&b1[..]), biases.then_some(&b2[..]));
            let mut normed = x.clone();
            if let Some((w, b, eps)) = norm {
                crate::model::simd::layer_norm_rows(&mut normed, w, b, eps);
            }
            let h = linear_gemm(&normed, &w1, b1, (m, hidden, c), Epilogue::Gelu);
            let want = linear_gemm(&h, &w2, b2, (m, c, hidden), Epilogue::Add(&x));
            let one = residual_mlp_f32(&x, norm, (&w1, b1), (&w2, b2), c);
            let three = pool.install(|| residual_mlp_f32(&x, norm, (&w1, b1), (&w2, b2), c));
            for (what, got) in [("one thread", &one), ("three threads", &three)] {
                let (d, max) = mlp_test_data::worst_and_scale(got, &want);
                assert!(
                    d <= 1e-6 * max,
                    "{what}, norm {}: {d:e} of {max}",
                    norm.is_some()
                );
            }
        }
    }

    /// The product split along `k` equals [`linear_gemm`]'s within f32 rounding, for an
    /// inner dimension that does not divide evenly, on one thread and on three.
    #[test]
    fn split_k_product_equals_linear_gemm() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let val = |i: usize, seed: usize| ((i * 7919 + seed * 104_729) % 211) as f32 / 105.0 - 1.0;
        for (m, n, k) in [(7, 40, 9000), (64, 256, 4096), (3, 5, 100)] {
            let x: Vec<f32> = (0..m * k).map(|i| val(i, 1)).collect();
            let w_t: Vec<f32> = (0..k * n).map(|i| val(i, 2)).collect();
            let want = linear_gemm(&x, &w_t, None, (m, n, k), Epilogue::None);
            let one = product_split_k(&x, &w_t, (m, n, k));
            let three = pool.install(|| product_split_k(&x, &w_t, (m, n, k)));
            for got in [&one, &three] {
                let (d, max) = mlp_test_data::worst_and_scale(got, &want);
                assert!(d <= 1e-5 * max, "{m}x{n}x{k}: {d:e} of {max}");
            }
        }
    }
}
