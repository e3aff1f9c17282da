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
    let mut dst = vec![0f32; m * n];
    if parallel && k >= DEEP_K && m >= DEEP_K {
        check_operands(x, w_t, bias, epilogue, (m, n, k));
        // Long and deep (a ViT MLP's second layer): gemm's own blocking, which packs both
        // operands once and shares them between the threads, beats the in-place tiles.
        if let Some(bias) = bias {
            dst.par_chunks_mut(n * 64).for_each(|rows| {
                rows.chunks_exact_mut(n)
                    .for_each(|r| r.copy_from_slice(bias))
            });
        }
        // SAFETY: dst `[n × m]` viewed transposed (strides 1, n) holds m·n elements; `Wᵀ` read
        // as `[n × k]` with strides (1, n) and x as `[k × m]` with strides (1, k) stay within
        // the lengths `check_operands` checked.
        unsafe {
            sgemm(
                (n, m, k),
                (dst.as_mut_ptr(), n as isize, 1),
                bias.is_some(),
                (w_t.as_ptr(), n as isize, 1),
                (x.as_ptr(), k as isize, 1),
                1.0,
                gemm::Parallelism::Rayon(threads),
            );
        }
        if !matches!(epilogue, Epilogue::None) {
            let rows = (16_384 / n).max(1);
            dst.par_chunks_mut(rows * n)
                .enumerate()
                .for_each(|(i, out)| epilogue.apply(i * rows * n, out));
        }
        return dst;
    }
    linear_gemm_into(x, w_t, bias, (m, n, k), epilogue, &mut dst, parallel);
    dst
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
    check_operands(x, w_t, bias, epilogue, (m, n, k));
    assert!(dst.len() >= m * n, "gemm: output too short");
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
    let out = SharedOut::new(dst);
    let tile = |job: usize| {
        let (r, b) = (job / token_blocks, job % token_blocks);
        let (f0, t0) = (r * width, b * TOKEN_BLOCK);
        let (nf, nt) = (width.min(n - f0), TOKEN_BLOCK.min(m - t0));
        // SAFETY: tiles cover disjoint (token, feature) ranges of the m·n output, which
        // outlives this call; every segment below lies inside this tile's ranges.
        let row = |t: usize| unsafe { out.row(t * n + f0, nf) };
        if let Some(bias) = bias {
            for t in t0..t0 + nt {
                row(t).copy_from_slice(&bias[f0..f0 + nf]);
            }
        }
        // SAFETY: dst `[nf features × nt tokens]` at strides (1, n) inside this tile; lhs
        // `Wᵀ[.., f0..f0+nf]` read as `[nf × k]` with strides (1, n); rhs `x[t0..t0+nt, ..]`
        // read as `[k × nt]` with strides (1, k); the assert above checks the lengths.
        unsafe {
            sgemm(
                (nf, nt, k),
                (out.at(t0 * n + f0), n as isize, 1),
                bias.is_some(),
                (w_t.as_ptr().add(f0), n as isize, 1),
                (x.as_ptr().add(t0 * k), k as isize, 1),
                1.0,
                gemm::Parallelism::None,
            );
        }
        if !matches!(epilogue, Epilogue::None) {
            for t in t0..t0 + nt {
                epilogue.apply(t * n + f0, row(t));
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

    /// The pointer to element `i`.
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
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
            for (epilogue, gelu_after, add) in cases {
                let seq = linear_gemm(&x, &w_t, Some(&bias), (m, n, k), epilogue);
                let par = pool.install(|| linear_gemm(&x, &w_t, Some(&bias), (m, n, k), epilogue));
                for i in 0..m {
                    for j in 0..n {
                        let mut e = f64::from(bias[j]);
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
}
