//! Products on Intel AMX tiles in split bfloat16 ("bf16×3"), for the image encoders' linear
//! layers and convolutions marked `split_bf16`, their blocks' norm + MLP + residual in one
//! pass (`residual_mlp`), Hiera's global attention and the mask decoder's image side (its
//! passes over the image and first upscaling step).
//!
//! Every f32 operand `x` is split into two bfloat16 halves, `hi = bf16(x)` and
//! `lo = bf16(x − hi)`, and a product is summed as `hi·hi + hi·lo + lo·hi` with f32
//! accumulation (`TDPBF16PS`). What is left out (`lo·lo` and the rounding of `lo`) is about
//! 2⁻¹⁷ of each product, so a dot product keeps about 16 significant bits instead of f32's 24:
//! the tests bound it at 2·10⁻⁵ of `Σ|x|·|w|`.
//!
//! On the official fixtures the encoders' outputs move from about 1e-6 of max |ref| (f32) to
//! 1e-5-3e-5 (the parity tolerance is 1e-4); SAM 2.1 Hiera-L, 48 blocks, measured 1.5e-5 on
//! its image embedding; the decoder's low-res logits from the official SAM 2.1 embeddings
//! move from 1e-6 to 4.6-7e-6. `SEGATTN_AMX=0` turns it off.
//!
//! PERF: measured on 2 cores of an Intel Xeon with AMX (session 32). A core runs
//! `TDPBF16PS` at about 3.2 TFLOP/s bf16 when its tiles are loaded. A 1 KiB `TILELOADD` takes
//! 2.3 ns when its rows are 64-byte aligned and 15.5 ns when they straddle cache lines, so
//! every pack and accumulator buffer is aligned (`Lines`). The kernel holds a 32 × 32 output
//! block in four tiles and loads 8 tiles per 12 products (`hi·lo`, then `hi·hi` reusing the
//! rows, then `lo·hi` reusing the weights' `hi`), each operand tile reloaded right after its
//! last reader (tiles are not renamed). Single-threaded products at Hiera-T's shapes: 300-560
//! GFLOP/s (f32 equivalent) against 100-170 for the `gemm` crate's AVX-512 kernels. Encoders
//! in one run, f32 → split (linear layers only, before the alignment): Hiera-T 1470 → 1066
//! ms, MobileSAM 611 → 439 ms, SAM ViT-B 5318 → 4207 ms; Hiera-T now 818-910 ms.
//!
//! Layouts (bfloat16 bits as `u16`):
//! - the weights `Wᵀ` `[k, n]` are packed once per layer (kept by [`super::linear::Linear`]),
//!   per block of 32 output features and chunk of 32 inputs: two tiles of 16 input pairs × 16
//!   features × 2 (the VNNI layout `TDPBF16PS` reads), for `hi` and for `lo`;
//! - each job packs its 64 rows of `x` row-major (`PackedRows`); the kernel loads them as
//!   tiles of 16 rows × 32 inputs at the rows' stride.
//!
//! Sizes need not be multiples of anything: the packs are padded with zeros. The accumulators
//! start from the bias; whole 64-row, whole-tile blocks accumulate in the output itself when
//! it is aligned, others in a padded buffer whose valid part is copied out after the
//! epilogue.

use rayon::prelude::*;

use super::gemm::{filled_by, Epilogue, SharedOut};

mod mlp;
pub(crate) use mlp::residual_mlp;

/// Rows of `x` per thread job (four tiles of 16; the kernel takes two at a time).
const ROWS: usize = 64;
/// Input features per chunk: one tile's row of bfloat16 pairs.
const CHUNK: usize = 32;
/// Output features per kernel call: two tiles of 16.
const COLS: usize = 32;
/// Chunks per kernel call: between calls the accumulators are stored and loaded again (16
/// measured 5-10 % faster than 4, 8 or all).
const KBLOCK: usize = 16;
/// Elements of `u16` in a tile.
const TILE: usize = 512;

/// Whether this process can run AMX bfloat16 tiles (the CPU has them and Linux let this
/// process use them), unless `SEGATTN_AMX=0` is set. Checked once.
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("SEGATTN_AMX").is_ok_and(|v| v == "0") {
            return false;
        }
        imp::enable()
    })
}

/// `bias + x[m×k] · w_t[k×n]`, then `epilogue`, as a new `[m, n]` row-major buffer: see
/// [`linear_bf16x3_into`].
pub(crate) fn linear_bf16x3(
    x: &[f32],
    weights: &PackedWeights,
    bias: Option<&[f32]>,
    dims: (usize, usize, usize),
    epilogue: Epilogue<'_>,
    parallel: bool,
) -> Vec<f32> {
    // SAFETY: `run` writes all `m·n` elements (its contract).
    let (dst, ()) = unsafe {
        filled_by(dims.0 * dims.1, |out| {
            let out = Placement::new(out, (0, dims.1));
            run(x, weights, bias, dims, epilogue, out, parallel)
        })
    };
    dst
}

/// `dst[m×n] = bias + x[m×k] · w_t[k×n]`, then `epilogue`, in split bfloat16 on AMX tiles,
/// threads over blocks of 64 rows when `parallel`.
///
/// # Panics
/// When [`available`] is false, or an operand is shorter than its dimensions say.
pub(crate) fn linear_bf16x3_into(
    x: &[f32],
    weights: &PackedWeights,
    bias: Option<&[f32]>,
    dims: (usize, usize, usize),
    epilogue: Epilogue<'_>,
    dst: &mut [f32],
    parallel: bool,
) {
    assert!(dst.len() >= dims.0 * dims.1, "output too short");
    let out = Placement::new(SharedOut::new(dst), (0, dims.1));
    run(x, weights, bias, dims, epilogue, out, parallel);
}

/// `out[offset + i·stride + j] = epilogue(bias + x[m×k] · w_t[k×n])[i, j]` on the calling
/// thread, in split bfloat16 on AMX tiles: a product written into a block of a larger output
/// (the attention's products, the decoder's passes), which may start uninitialised (each row
/// is written whole before it is read).
///
/// # Safety
/// No other thread accesses the `m` rows of `n` elements written meanwhile (the bounds are
/// checked).
pub(crate) unsafe fn product_into(
    x: &[f32],
    weights: &PackedWeights,
    (bias, epilogue): (Option<&[f32]>, Epilogue<'_>),
    dims: (usize, usize, usize),
    out: SharedOut,
    (offset, stride): (usize, usize),
) {
    let out = Placement::new(out, (offset, stride));
    run(x, weights, bias, dims, epilogue, out, false);
}

/// Where a product's `[m, n]` result goes: row `i` at `offset + i·stride` of `out`.
#[derive(Clone, Copy)]
struct Placement {
    out: SharedOut,
    offset: usize,
    stride: usize,
}

impl Placement {
    /// Rows `offset + i·stride` of `out`.
    fn new(out: SharedOut, (offset, stride): (usize, usize)) -> Self {
        Self {
            out,
            offset,
            stride,
        }
    }

    /// A pointer to `len` elements from column `col` of row `row` (bounds checked).
    fn at(self, row: usize, col: usize, len: usize) -> *mut f32 {
        self.out
            .ptr_within(self.offset + row * self.stride + col, len)
    }
}

/// The product of [`linear_bf16x3_into`] placed by `out`, whose `m` rows of `n` it writes
/// whole before reading any of them, so they may start uninitialised. Rows of different
/// jobs must not overlap (`stride ≥ n`).
fn run(
    x: &[f32],
    weights: &PackedWeights,
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue<'_>,
    out: Placement,
    parallel: bool,
) {
    assert!(available(), "AMX is not available");
    assert!(x.len() >= m * k && out.stride >= n);
    if m > 0 {
        // The output's bounds: `ptr_within` panics beyond them.
        let _ = out.at(m - 1, 0, n);
    }
    assert_eq!(
        (weights.k, weights.n),
        (k, n),
        "packed weights of another shape"
    );
    if m == 0 || n == 0 {
        return;
    }
    let job = |j: usize| {
        let r0 = j * ROWS;
        let rows = ROWS.min(m - r0);
        let mut scratch = Scratch::take();
        let Scratch {
            rows: a, padded, ..
        } = &mut scratch;
        a.pack(&x[r0 * k..(r0 + rows) * k], k);
        block_product(a, weights, bias, epilogue, out, r0, padded);
        scratch.give_back();
    };
    let jobs = m.div_ceil(ROWS);
    if parallel {
        (0..jobs).into_par_iter().for_each(job);
    } else {
        (0..jobs).for_each(job);
    }
}

/// Up to 64 rows of a left operand `[rows, k]` packed for the kernel: `hi` and `lo` each
/// `[64, lda]` row-major bfloat16 (the kernel loads tiles of 16 rows × 32 at stride `lda`),
/// zero from `k` to whole chunks of 32.
///
/// PERF: `lda` is the chunks' width plus one cache line, so that a tile's 16 rows do not fall
/// into one L1 set. Tiles packed contiguously (16 × 32 each) had each row's split scattered
/// over every chunk: the stores of the attention's probabilities took 20 % of its time.
#[derive(Default)]
pub(crate) struct PackedRows {
    hi: Lines,
    lo: Lines,
    rows: usize,
    k: usize,
}

impl PackedRows {
    /// Room for 64 rows of `k`, none of which counts yet.
    pub(crate) fn new(k: usize) -> Self {
        let mut p = Self::default();
        p.reset(0, k);
        p
    }

    /// The distance between rows for `k` inputs.
    fn lda(k: usize) -> usize {
        k.div_ceil(CHUNK) * CHUNK + CHUNK
    }

    /// Makes room for 64 rows of `k`, of which the first `rows` count.
    fn reset(&mut self, rows: usize, k: usize) {
        assert!(rows <= ROWS && available(), "at most 64 rows, on AMX");
        let len = ROWS * Self::lda(k);
        self.hi.u16s(len);
        self.lo.u16s(len);
        (self.rows, self.k) = (rows, k);
    }

    /// Packs `x` `[rows ≤ 64, k]`.
    fn pack(&mut self, x: &[f32], k: usize) {
        let rows = x.len() / k.max(1);
        self.reset(rows, k);
        for r in 0..rows {
            self.write_row(r, &x[r * k..(r + 1) * k]);
        }
    }

    /// Sets row `r` to `exp(row − max row)`, a softmax's numerators, and returns their sum;
    /// `row` `[k]` is not empty. The rows before it count too, so set them in order.
    pub(crate) fn set_row_exp(&mut self, r: usize, row: &[f32]) -> f32 {
        assert!(
            r < ROWS && row.len() == self.k && !row.is_empty(),
            "row {r} of {} values",
            self.k
        );
        self.rows = self.rows.max(r + 1);
        let lda = Self::lda(self.k);
        let (hi, lo) = (self.hi.u16s(ROWS * lda), self.lo.u16s(ROWS * lda));
        // SAFETY: as in `write_row`.
        unsafe { imp::pack_exp_row(row, (r, lda), hi, lo) }
    }

    fn write_row(&mut self, r: usize, row: &[f32]) {
        let lda = Self::lda(self.k);
        let (hi, lo) = (self.hi.u16s(ROWS * lda), self.lo.u16s(ROWS * lda));
        // SAFETY: `reset` checked that AMX (hence AVX-512 BF16) is available; the rows hold
        // 64 × lda values.
        unsafe { imp::pack_row(row, (r, lda), self.k, hi, lo) };
    }

    /// Counts no row again (until [`set_row_exp`](Self::set_row_exp)).
    pub(crate) fn clear(&mut self) {
        self.rows = 0;
    }
}

/// `out[r0 + i, ..] = epilogue(bias + a[i] · w_t)` for the rows `i` of `a`, on the calling
/// thread: the kernel over every block of features, then per row the bias and epilogue.
///
/// The rows are written whole before they are read, so they may start uninitialised.
fn block_product(
    a: &mut PackedRows,
    weights: &PackedWeights,
    bias: Option<&[f32]>,
    epilogue: Epilogue<'_>,
    out: Placement,
    r0: usize,
    padded: &mut Lines,
) {
    let (rows, k, n) = (a.rows, a.k, weights.n);
    assert_eq!(weights.k, k, "packed weights of another shape");
    let _ = out.at(r0 + rows.max(1) - 1, 0, n); // bounds
    let (chunks, blocks) = (k.div_ceil(CHUNK), n.div_ceil(COLS));
    let cols = blocks * COLS;
    // Whole tiles accumulate in the output rows when they are aligned to cache lines (a tile
    // row across two lines loads and stores several times slower); others in an aligned,
    // padded buffer.
    let direct = rows == ROWS
        && n == cols
        && out.stride.is_multiple_of(16)
        && (out.at(r0, 0, 0) as usize).is_multiple_of(64);
    // One cache line more per row, so that a tile's 16 rows do not share an L1 set (a row of
    // 4096 floats did: 325 against 394 GFLOP/s at 1024).
    let lpad = cols + 16;
    let padded = padded.f32s(ROWS * lpad); // [64, lpad]
    let (acc, stride) = if direct {
        (out.at(r0, 0, (ROWS - 1) * out.stride + n), out.stride)
    } else {
        (padded.as_mut_ptr(), lpad)
    };
    let lda = PackedRows::lda(k);
    let (a_hi, a_lo) = (
        a.hi.u16s(ROWS * lda).as_ptr(),
        a.lo.u16s(ROWS * lda).as_ptr(),
    );
    // The bias, aligned and padded to whole blocks: the accumulators start from it.
    let mut bias_line = Lines::default();
    let bias_line = bias.map(|bias| {
        let line = bias_line.f32s(cols);
        line[..n].copy_from_slice(&bias[..n]);
        line.as_ptr()
    });
    // SAFETY: AMX is available (`PackedRows` checked); the tile configuration is this
    // thread's; every pointer below stays inside its pack (chunks × tiles) or `acc` (64 rows
    // of `stride` ≥ `cols`).
    unsafe {
        imp::configure();
        for c0 in (0..chunks).step_by(KBLOCK) {
            let cs = KBLOCK.min(chunks - c0);
            for b in 0..blocks {
                let (w_hi, w_lo) = weights.block(b, c0);
                for p in 0..rows.div_ceil(32) {
                    let at = 32 * p * lda + c0 * CHUNK;
                    imp::kernel(
                        ([a_hi.add(at), a_lo.add(at)], lda),
                        [w_hi, w_lo],
                        cs,
                        acc.add(32 * p * stride + b * COLS),
                        stride,
                        match bias_line {
                            _ if c0 > 0 => imp::Init::Load,
                            Some(line) => imp::Init::Rows(line.add(b * COLS)),
                            None => imp::Init::Zero,
                        },
                    );
                }
            }
        }
        imp::release();
    }
    for r in 0..rows {
        // The epilogue on the row while it is in cache, then (from the padded buffer) its one
        // write to the output.
        let finish = |row: &mut [f32]| epilogue.apply((r0 + r) * n, row);
        if direct {
            // SAFETY: the caller's rows are its alone; the tiles stored this one.
            finish(unsafe { std::slice::from_raw_parts_mut(out.at(r0 + r, 0, n), n) });
        } else {
            let row = &mut padded[r * lpad..r * lpad + n];
            finish(row);
            // SAFETY: the row lies within the output (checked) and is the caller's alone.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), out.at(r0 + r, 0, n), n) };
        }
    }
}

/// `out[offset + i·stride + j] = (a · w_t)[i, j]` for the rows of `a`, on the calling
/// thread: the attention's `P·V` from probabilities packed as the softmax wrote them.
///
/// # Safety
/// No other thread accesses the rows written meanwhile (the bounds are checked).
pub(crate) unsafe fn packed_product_into(
    a: &mut PackedRows,
    weights: &PackedWeights,
    out: SharedOut,
    (offset, stride): (usize, usize),
) {
    let out = Placement::new(out, (offset, stride));
    let mut scratch = Scratch::take();
    block_product(
        a,
        weights,
        None,
        Epilogue::None,
        out,
        0,
        &mut scratch.padded,
    );
    scratch.give_back();
}

/// A buffer of whole 64-byte cache lines, aligned to them: `TILELOADD` and `TILESTORED` of
/// tile rows that straddle two lines took 15.5 ns a tile here, of aligned ones 2.3 ns.
#[derive(Default, Clone)]
pub(crate) struct Lines(Vec<Line>);

/// One cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

impl Lines {
    /// `len` bytes or more, zeroed.
    fn zeroed(len: usize) -> Self {
        Self(vec![Line([0; 64]); len.div_ceil(64)])
    }

    /// The first `len` `u16`s, grown (with zeros) to hold them.
    fn u16s(&mut self, len: usize) -> &mut [u16] {
        self.grow(2 * len);
        // SAFETY: the lines hold at least 2·len bytes, aligned for u16, every bit pattern valid.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), len) }
    }

    /// The first `len` `f32`s, grown (with zeros) to hold them.
    pub(crate) fn f32s(&mut self, len: usize) -> &mut [f32] {
        self.grow(4 * len);
        // SAFETY: the lines hold at least 4·len bytes, aligned for f32, every bit pattern valid.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), len) }
    }

    /// All of it as `u16`s.
    fn as_u16s(&self) -> &[u16] {
        // SAFETY: as `u16s`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * 32) }
    }

    fn grow(&mut self, bytes: usize) {
        if self.0.len() * 64 < bytes {
            self.0.resize(bytes.div_ceil(64), Line([0; 64]));
        }
    }
}

/// One job's buffers, kept per thread between jobs and calls (no allocation, no page faults).
#[derive(Default)]
struct Scratch {
    /// The job's rows packed.
    rows: PackedRows,
    /// The accumulators when the output rows cannot hold whole aligned tiles.
    padded: Lines,
    /// [`residual_mlp`]'s normed rows, hidden rows and the hidden rows packed.
    mlp: (Vec<f32>, Lines, PackedRows),
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers (new ones the first time).
    fn take() -> Self {
        SCRATCH.with(|s| s.take()).unwrap_or_default()
    }

    /// Keeps the buffers for this thread's next job.
    fn give_back(self) {
        SCRATCH.with(|s| s.set(Some(self)));
    }
}

/// `(hi, lo)` bfloat16 halves of `v`: `hi` rounded to nearest even, `lo` the same of the rest.
#[inline(always)]
fn split(v: f32) -> (u16, u16) {
    let hi = bf16(v);
    (hi, bf16(v - f32::from_bits(u32::from(hi) << 16)))
}

/// `v` rounded to the nearest bfloat16 (ties to even), as its bits.
#[inline(always)]
fn bf16(v: f32) -> u16 {
    let b = v.to_bits();
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `Wᵀ` `[k, n]` packed for the kernel: per block of 32 features and chunk of 32 inputs, two
/// tiles `[16 input pairs][16 features][2]` of `hi`, and the same of `lo` (4 bytes a weight,
/// as the f32 weights). A layer packs its weights once and keeps them.
pub struct PackedWeights {
    hi: Lines,
    lo: Lines,
    chunks: usize,
    /// Inputs.
    pub(crate) k: usize,
    /// Outputs.
    pub(crate) n: usize,
}

impl std::fmt::Debug for PackedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedWeights [{}, {}]", self.k, self.n)
    }
}

impl PackedWeights {
    /// Packs `w_t` `[k, n]`, threads over blocks of features when `parallel`.
    pub fn new(w_t: &[f32], k: usize, n: usize, parallel: bool) -> Self {
        let chunks = k.div_ceil(CHUNK);
        let len = 2 * n.div_ceil(COLS) * chunks * 2 * TILE;
        let mut packed = Self {
            hi: Lines::zeroed(len),
            lo: Lines::zeroed(len),
            chunks,
            k,
            n,
        };
        packed.fill(w_t, parallel);
        packed
    }

    /// Packs `w_t` `[k, n]` in place of what these weights held, on the calling thread: with
    /// the same shape no memory is allocated or cleared (the padding stays zero, as the same
    /// positions are written again), else as [`PackedWeights::new`].
    pub(crate) fn repack(&mut self, w_t: &[f32], k: usize, n: usize) {
        if (self.k, self.n) == (k, n) {
            self.fill(w_t, false);
        } else {
            *self = Self::new(w_t, k, n, false);
        }
    }

    /// Writes every block of `w_t` `[k, n]` (this packing's shape) into the tiles, with the
    /// vectorised packer where the CPU has AMX; the padding is left as it is (zero).
    fn fill(&mut self, w_t: &[f32], parallel: bool) {
        let (k, n) = (self.k, self.n);
        assert!(w_t.len() >= k * n, "weights shorter than [{k}, {n}]");
        let blocks = n.div_ceil(COLS);
        let per_block = self.chunks * 2 * TILE;
        let fast = available();
        let pack = |(b, (hi, lo)): (usize, (&mut [u16], &mut [u16]))| {
            if fast {
                pack_weight_block_fast(w_t, (k, n), b * COLS, hi, lo);
            } else {
                pack_weight_block(w_t, (k, n), b * COLS, hi, lo);
            }
        };
        let blocks_iter = (self.hi.u16s(blocks * per_block).chunks_mut(per_block))
            .zip(self.lo.u16s(blocks * per_block).chunks_mut(per_block));
        if parallel {
            blocks_iter
                .enumerate()
                .collect::<Vec<_>>()
                .into_par_iter()
                .for_each(pack);
        } else {
            blocks_iter.enumerate().for_each(pack);
        }
    }

    /// The `hi` and `lo` tiles of feature block `b` from chunk `c`.
    fn block(&self, b: usize, c: usize) -> (*const u16, *const u16) {
        let at = (b * self.chunks + c) * 2 * TILE;
        (
            self.hi.as_u16s()[at..].as_ptr(),
            self.lo.as_u16s()[at..].as_ptr(),
        )
    }
}

/// [`pack_weight_block`] with AVX-512 BF16 (on CPUs with AMX): the same bits.
fn pack_weight_block_fast(
    w_t: &[f32],
    (k, n): (usize, usize),
    f0: usize,
    hi: &mut [u16],
    lo: &mut [u16],
) {
    let width = COLS.min(n - f0);
    for i in (0..k).step_by(2) {
        let even = &w_t[i * n + f0..][..width];
        let odd = (i + 1 < k).then(|| &w_t[(i + 1) * n + f0..][..width]);
        let at = (i / CHUNK) * 2 * TILE + ((i % CHUNK) / 2) * 32;
        // SAFETY: `available` checked AVX-512 BF16; the rows hold `width` values; the chunk's
        // two tiles start at `at` in the block's `chunks · 2 · TILE` values.
        unsafe { imp::pack_pair(even, odd, width, &mut hi[at..], &mut lo[at..]) };
    }
}

crate::model::simd::multiversion! {
    /// One block of 32 features from `f0` of `Wᵀ` `[k, n]` into `hi` and `lo`
    /// `[chunk][2 tiles][16 pairs][16][2]`, zero beyond `k` and `n`.
    fn pack_weight_block(w_t: &[f32], dims: (usize, usize), f0: usize, hi: &mut [u16], lo: &mut [u16]) {
        let (k, n) = dims;
        let width = COLS.min(n - f0);
        let zeros = [0f32; COLS];
        for i in (0..k).step_by(2) {
            let even = &w_t[i * n + f0..i * n + f0 + width];
            let odd = if i + 1 < k { &w_t[(i + 1) * n + f0..(i + 1) * n + f0 + width] } else { &zeros[..width] };
            let (c, pair) = (i / CHUNK, (i % CHUNK) / 2);
            for t in 0..width.div_ceil(16) {
                let at = (c * 2 + t) * TILE + pair * 32;
                let (e, o) = (&even[t * 16..width.min(t * 16 + 16)], &odd[t * 16..width.min(t * 16 + 16)]);
                let (h, l) = (&mut hi[at..at + 32], &mut lo[at..at + 32]);
                for (j, (&a, &b)) in e.iter().zip(o).enumerate() {
                    (h[2 * j], l[2 * j]) = split(a);
                    (h[2 * j + 1], l[2 * j + 1]) = split(b);
                }
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#[path = "tiles.rs"]
mod imp;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
mod imp {
    //! No AMX here: [`super::available`] is false and nothing else is called.
    pub(super) fn enable() -> bool {
        false
    }
    pub(super) unsafe fn pack_row(
        _: &[f32],
        _: (usize, usize),
        _: usize,
        _: &mut [u16],
        _: &mut [u16],
    ) {
        unreachable!("AMX is not available")
    }
    pub(super) unsafe fn pack_exp_row(
        _: &[f32],
        _: (usize, usize),
        _: &mut [u16],
        _: &mut [u16],
    ) -> f32 {
        unreachable!("AMX is not available")
    }
    pub(super) unsafe fn pack_pair(
        _: &[f32],
        _: Option<&[f32]>,
        _: usize,
        _: &mut [u16],
        _: &mut [u16],
    ) {
        unreachable!("AMX is not available")
    }
    pub(super) unsafe fn configure() {
        unreachable!("AMX is not available")
    }
    pub(super) unsafe fn release() {}
    #[derive(Clone, Copy)]
    #[allow(dead_code)] // built by the caller; without AMX nothing reads it
    pub(super) enum Init {
        Zero,
        Load,
        Rows(*const f32),
    }
    pub(super) unsafe fn kernel(
        _: ([*const u16; 2], usize),
        _: [*const u16; 2],
        _: usize,
        _: *mut f32,
        _: usize,
        _: Init,
    ) {
        unreachable!("AMX is not available")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised packer writes the portable one's bits, at widths and depths that are
    /// not multiples of the tiles, and so does packing again in place.
    #[test]
    fn fast_packing_equals_the_portable_one() {
        if !available() {
            eprintln!("no AMX on this CPU: the weights are packed by the portable code only");
            return;
        }
        for (k, n) in [(1, 1), (5, 3), (33, 17), (96, 196), (147, 64), (64, 50)] {
            let w_t: Vec<f32> = (0..k * n)
                .map(|i| ((i * 7919) % 211) as f32 / 105.0 - 1.0 + 1e-3 * i as f32)
                .collect();
            let fast = PackedWeights::new(&w_t, k, n, false);
            let (chunks, blocks) = (k.div_ceil(CHUNK), n.div_ceil(COLS));
            let per_block = chunks * 2 * TILE;
            let (mut hi, mut lo) = (
                vec![0u16; blocks * per_block],
                vec![0u16; blocks * per_block],
            );
            for (b, (h, l)) in hi
                .chunks_mut(per_block)
                .zip(lo.chunks_mut(per_block))
                .enumerate()
            {
                pack_weight_block(&w_t, (k, n), b * COLS, h, l);
            }
            assert_eq!(&fast.hi.as_u16s()[..hi.len()], &hi[..], "hi [{k}, {n}]");
            assert_eq!(&fast.lo.as_u16s()[..lo.len()], &lo[..], "lo [{k}, {n}]");
            // Packed again in place, from other weights of the same shape and of another.
            let mut again = PackedWeights::new(&vec![7.5f32; k * n], k, n, false);
            again.repack(&w_t, k, n);
            assert_eq!(
                again.hi.as_u16s(),
                fast.hi.as_u16s(),
                "repacked hi [{k}, {n}]"
            );
            assert_eq!(
                again.lo.as_u16s(),
                fast.lo.as_u16s(),
                "repacked lo [{k}, {n}]"
            );
            let mut other = PackedWeights::new(&[1.0; 40], 5, 8, false);
            other.repack(&w_t, k, n);
            assert_eq!(
                other.hi.as_u16s(),
                fast.hi.as_u16s(),
                "reshaped hi [{k}, {n}]"
            );
        }
    }

    /// The split-bfloat16 product equals an f64 reference within 2·10⁻⁵ of `Σ|x|·|w|` per
    /// output (bias and residual included) at sizes that are not multiples of the tiles, on
    /// one thread and several (measured ≤ 3.7·10⁻⁶); a plain bfloat16 product (`lo` dropped:
    /// 1.7·10⁻³) fails it.
    #[test]
    fn split_bf16_matches_f64_reference() {
        if !available() {
            eprintln!("no AMX on this CPU: the split-bfloat16 GEMM is not used here");
            return;
        }
        let val = |i: usize, seed: usize| {
            (((i * 7919 + seed * 104_729) % 211) as f32 / 105.0 - 1.0)
                * 1.37f32.powi((i % 7) as i32)
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        for (m, n, k) in [(1, 3, 5), (37, 50, 147), (130, 96, 96), (200, 300, 1000)] {
            let x: Vec<f32> = (0..m * k).map(|i| val(i, 1)).collect();
            let w_t: Vec<f32> = (0..k * n).map(|i| val(i, 2)).collect();
            let bias: Vec<f32> = (0..n).map(|i| val(i, 3)).collect();
            let res: Vec<f32> = (0..m * n).map(|i| val(i, 4)).collect();
            for (epilogue, add) in [(Epilogue::None, false), (Epilogue::Add(&res), true)] {
                let packed = PackedWeights::new(&w_t, k, n, false);
                let seq = linear_bf16x3(&x, &packed, Some(&bias), (m, n, k), epilogue, false);
                let packed = pool.install(|| PackedWeights::new(&w_t, k, n, true));
                let mut par = vec![f32::NAN; m * n];
                pool.install(|| {
                    linear_bf16x3_into(
                        &x,
                        &packed,
                        Some(&bias),
                        (m, n, k),
                        epilogue,
                        &mut par,
                        true,
                    )
                });
                let mut worst = 0f64;
                for i in 0..m {
                    for j in 0..n {
                        let (mut e, mut size) = (f64::from(bias[j]), f64::from(bias[j].abs()));
                        for c in 0..k {
                            let p = f64::from(x[i * k + c]) * f64::from(w_t[c * n + j]);
                            e += p;
                            size += p.abs();
                        }
                        if add {
                            e += f64::from(res[i * n + j]);
                            size += f64::from(res[i * n + j].abs());
                        }
                        for got in [&seq, &par] {
                            let d = (f64::from(got[i * n + j]) - e).abs() / size;
                            worst = worst.max(d);
                        }
                    }
                }
                assert!(worst < 2e-5, "{m}x{n}x{k}: error {worst:e} of Σ|x·w|");
            }
        }
    }
}
