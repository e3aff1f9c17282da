//! Building blocks shared by the models: linear layers and matmuls on a blocked GEMM with fused
//! epilogues, layer norms, softmaxes, transposes, exact and tanh GELU, dense (im2col) and
//! depthwise convolutions, and a PyTorch-equivalent bilinear resize.
//!
//! The CPU kernels here are `CustomOp`s that replace candle ops which are slow on this workload
//! (see `PERF` notes on each); on other devices and dtypes the same function falls back to
//! candle's op (half-precision normalisations and softmaxes computed in f32, see [`in_f32`]).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::weights::{Scope, WeightsError};

/// A fully connected layer `y = x Wᵀ + b` over the last dimension.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `Wᵀ`, `[in, out]`: the layout in which the CPU GEMM reads the weights without
    /// re-packing them (see [`linear_gemm`]).
    weight_t: Tensor,
    /// `[out]`
    bias: Option<Tensor>,
    /// The bias as host data for the CPU kernel (read once, not per call).
    bias_host: Option<Vec<f32>>,
}

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
    fn apply(self, offset: usize, block: &mut [f32]) {
        let residual = |r: &[f32], block: &mut [f32]| {
            for (y, x) in block.iter_mut().zip(&r[offset..]) {
                *y += x;
            }
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

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]` (when `bias` is true) from `scope`.
    pub fn load(
        scope: &Scope,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> std::result::Result<Self, WeightsError> {
        let weight = scope.get("weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(scope.get("bias", &[out_dim])?)
        } else {
            None
        };
        Self::from_tensors(weight, bias).map_err(|e| scope.error("weight", e))
    }

    /// Builds a layer from tensors (`weight` `[out, in]`, `bias` `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self::from_transposed(transpose_2d(&weight)?, bias))
    }

    /// Builds a layer from `Wᵀ` `[in, out]` (the layout of GPT-2's `Conv1D`) and `bias` `[out]`.
    pub fn from_transposed(weight_t: Tensor, bias: Option<Tensor>) -> Self {
        let bias_host = bias.as_ref().and_then(|b| {
            (matches!(b.device(), Device::Cpu) && b.dtype() == DType::F32)
                .then(|| b.to_vec1().ok())
                .flatten()
        });
        Self {
            weight_t,
            bias,
            bias_host,
        }
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight_t.dims()[1]
    }

    /// `gelu(x Wᵀ + b)`, fused on the CPU.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None, true)
    }

    /// `x Wᵀ + b + residual` (`residual` of the output's shape), then GELU when `gelu` is set;
    /// fused on the CPU.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor, gelu_after: bool) -> Result<Tensor> {
        self.forward_with(x, Some(residual), gelu_after)
    }

    fn forward_with(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        gelu_after: bool,
    ) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.out_dim();
        let x2 = x.reshape((rows, in_dim))?;
        let on_cpu = matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32;
        if on_cpu && (self.bias.is_none() || self.bias_host.is_some()) {
            let op = LinearOp {
                bias: self.bias_host.as_deref(),
                gelu: gelu_after,
            };
            let y = match residual {
                None => x2.contiguous()?.apply_op2_no_bwd(&self.weight_t, &op)?,
                Some(r) => {
                    let r = r.reshape((rows, self.out_dim()))?.contiguous()?;
                    let op3 = LinearResidualOp(op);
                    x2.contiguous()?
                        .apply_op3_no_bwd(&self.weight_t, &r, &op3)?
                }
            };
            return y.reshape(out_dims);
        }
        let mut y = x2.matmul(&self.weight_t)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut y = y.reshape(out_dims)?;
        if let Some(r) = residual {
            y = (y + r)?;
        }
        if gelu_after {
            y = gelu(&y)?;
        }
        Ok(y)
    }
}

impl Module for Linear {
    /// `[..., in]` → `[..., out]`; leading dimensions are flattened into one GEMM.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None, false)
    }
}

/// Products below this many multiply-adds run on one thread: waking the pool costs more.
const PARALLEL_GEMM_MIN_MACS: usize = 1 << 21;

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
const SPLIT_MAX_WEIGHTS: usize = 1 << 18;

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
/// packed, shared-operand blocking: measured 53 vs 58 ms at 4096 × 768 × 3072.
const DEEP_K: usize = 2048;

/// [`linear_gemm`] into `dst` `[m, n]`, on the calling thread unless `parallel`.
fn linear_gemm_into(
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

/// `xᵀ` of a 2-D tensor, contiguous.
///
/// PERF: candle's strided copy walks the source one element at a time through an index
/// iterator; on the CPU this copies in parallel blocks of 16 columns.
pub fn transpose_2d(x: &Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.rank() == 2 {
        x.contiguous()?.apply_op1_no_bwd(&TransposeOp)
    } else {
        x.t()?.contiguous()
    }
}

struct TransposeOp;

impl CustomOp1 for TransposeOp {
    fn name(&self) -> &'static str {
        "segattn-transpose"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let (r, c) = layout.shape().dims2()?;
        let mut dst = vec![0f32; r * c];
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
        if r * c > 0 {
            if r * c >= 1 << 16 {
                dst.par_chunks_mut(B * r).enumerate().for_each(work);
            } else {
                dst.chunks_mut(B * r).enumerate().for_each(work);
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from((c, r))))
    }
}

/// `x · Wᵀ + b` on the CPU with the bias (and optionally GELU) fused into the GEMM.
///
/// PERF: candle's matmul always wakes the thread pool and adds the bias in a second pass; for
/// the small products of a 16-token text model or a mask-decoder click the pool wake-up cost
/// more than the arithmetic.
struct LinearOp<'a> {
    bias: Option<&'a [f32]>,
    gelu: bool,
}

fn linear_dims(l1: &Layout, l2: &Layout) -> Result<(usize, usize, usize)> {
    let (m, k) = l1.shape().dims2()?;
    let (k2, n) = l2.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("linear: input has {k} features, weight expects {k2}");
    }
    Ok((m, n, k))
}

impl LinearOp<'_> {
    /// `x [m, k]`, `wᵀ [k, n]` (and `residual [m, n]`) → `[m, n]`.
    fn run_storages(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n, k) = linear_dims(l1, l2)?;
        let (x, w) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let epilogue = match (residual, self.gelu) {
            (None, false) => Epilogue::None,
            (None, true) => Epilogue::Gelu,
            (Some(r), false) => Epilogue::Add(r),
            (Some(r), true) => Epilogue::AddGelu(r),
        };
        let dst = linear_gemm(x, w, self.bias, (m, n, k), epilogue);
        Ok((CpuStorage::F32(dst), Shape::from((m, n))))
    }
}

impl candle_core::CustomOp2 for LinearOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run_storages((s1, l1), (s2, l2), None)
    }
}

/// [`LinearOp`] with a residual `[m, n]` added (before the optional GELU).
struct LinearResidualOp<'a>(LinearOp<'a>);

impl candle_core::CustomOp3 for LinearResidualOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-linear-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, n, _) = linear_dims(l1, l2)?;
        if l3.shape().dims() != [m, n] {
            candle_core::bail!("linear: residual {:?}, output [{m}, {n}]", l3.dims());
        }
        self.0
            .run_storages((s1, l1), (s2, l2), Some(contiguous_f32(s3, l3)?))
    }
}

/// `a · b` for `a [m, k]` and `b [k, n]`, or batched `a [B, m, k]` and `b [B, k, n]`.
///
/// PERF: candle's matmul wakes the whole thread pool for each product and packs a transposed
/// right-hand side on every call; on the CPU this runs [`linear_gemm`] (one product, tiled
/// over the threads) or one single-threaded GEMM per batch entry in parallel. Callers pass `b`
/// in the `[k, n]` layout that [`linear_gemm`] reads in place.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !(matches!(a.device(), Device::Cpu) && a.dtype() == DType::F32 && b.dtype() == DType::F32) {
        return a.matmul(b);
    }
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    match (a.rank(), b.rank()) {
        (2, 2) => a.apply_op2_no_bwd(
            &b,
            &LinearOp {
                bias: None,
                gelu: false,
            },
        ),
        (3, 3) => a.apply_op2_no_bwd(&b, &BatchedMatmul),
        _ => a.matmul(&b),
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
    let cpu = |t: &Tensor| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32;
    if cpu(a) && cpu(b) && cpu(residual) && a.rank() == 2 && b.rank() == 2 {
        let bias_host = bias.map(|t| t.to_vec1::<f32>()).transpose()?;
        let op = LinearResidualOp(LinearOp {
            bias: bias_host.as_deref(),
            gelu: false,
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

/// Softmax over the last dimension.
///
/// PERF: candle's CPU softmax calls libm's scalar `expf` per element; this one runs the
/// vectorised [`crate::model::simd::softmax_inplace`] on rows in parallel.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&SoftmaxOp)
    } else {
        in_f32(x, candle_nn::ops::softmax_last_dim)
    }
}

/// Softmax over dimension 1 of `x [A, T, P]` of `x / divisor` (attention scores laid out with
/// the positions `P` contiguous and the softmax running over the tokens `T`).
///
/// PERF: the alternative, transposing to `[P, A, T]` and taking row softmaxes, runs one
/// vector kernel per handful of values; here all lanes work across positions.
pub fn softmax_dim1(x: &Tensor, divisor: f64) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.rank() == 3 {
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

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "segattn-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut dst = contiguous_f32(storage, layout)?.to_vec();
        let n = layout.dims().last().copied().unwrap_or(1).max(1);
        let rows = (16_384 / n).max(1) * n;
        let run = |chunk: &mut [f32]| {
            chunk
                .chunks_mut(n)
                .for_each(crate::model::simd::softmax_inplace)
        };
        if dst.len() >= 1 << 16 {
            dst.par_chunks_mut(rows).for_each(run);
        } else {
            run(&mut dst);
        }
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Layer normalisation over the last dimension (PyTorch `nn.LayerNorm`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (or the older `gamma` and `beta`) of size `dim`.
    pub fn load(scope: &Scope, dim: usize, eps: f32) -> std::result::Result<Self, WeightsError> {
        let (w, b) = if scope.contains("gamma") {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Self {
            weight: scope.get(w, &[dim])?,
            bias: scope.get(b, &[dim])?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Two-pass layer norm over the last dimension: mean first, then the variance of the centred
/// values, as PyTorch computes it (candle's fused op uses `E[x²] − E[x]²`, which loses digits
/// on rows with a large mean).
struct LayerNormOp {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl CustomOp1 for LayerNormOp {
    fn name(&self) -> &'static str {
        "segattn-layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let dim = self.weight.len();
        let mut dst = vec![0f32; src.len()];
        let (w, b, eps) = (&self.weight, &self.bias, self.eps);
        dst.par_chunks_mut(dim.max(1) * 16)
            .zip(src.par_chunks(dim.max(1) * 16))
            .for_each(|(d, s)| {
                for (d, s) in d.chunks_mut(dim).zip(s.chunks(dim)) {
                    let n = dim as f32;
                    let mean = lane_sum(s, |v| v) / n;
                    let var = lane_sum(s, |v| (v - mean) * (v - mean)) / n;
                    let inv = 1.0 / (var + eps).sqrt();
                    for (((d, &s), &w), &b) in d.iter_mut().zip(s).zip(w).zip(b) {
                        *d = (s - mean) * inv * w + b;
                    }
                }
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Σ f(x) over a slice with 8 independent partial sums, so the loop vectorises (a single
/// running f32 sum is one long dependency chain).
pub(crate) fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let mut total = tail.iter().map(|&v| f(v)).sum::<f32>();
    for a in acc {
        total += a;
    }
    total
}

/// Layer norm over the last dimension of `x` with `weight` / `bias` `[dim]`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        let op = LayerNormOp {
            weight: weight.to_vec1()?,
            bias: bias.to_vec1()?,
            eps,
        };
        x.contiguous()?.apply_op1_no_bwd(&op)
    } else {
        in_f32(x, |x| {
            let mean = x.mean_keepdim(D::Minus1)?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            xc.broadcast_div(&(var + f64::from(eps))?.sqrt()?)?
                .broadcast_mul(&weight.to_dtype(x.dtype())?)?
                .broadcast_add(&bias.to_dtype(x.dtype())?)
        })
    }
}

/// `f(x)` computed in f32 when `x` is f16 or bf16 (cast back after), as PyTorch's autocast
/// runs normalisations and softmaxes: their sums lose too many digits, or overflow, in half
/// precision. Other dtypes are passed through.
pub fn in_f32(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match x.dtype() {
        DType::F16 | DType::BF16 => f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype()),
        _ => f(x),
    }
}

/// Output length of a convolution over `n` inputs (PyTorch's formula, dilation 1).
fn conv_out_size(n: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (n + 2 * padding).saturating_sub(kernel) / stride + 1
}

/// Memory order of a 4-D image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLayout {
    /// `[B, C, H, W]` (PyTorch's).
    Nchw,
    /// `[B, H, W, C]` (channels-last).
    Nhwc,
}

/// A dense square 2-D convolution with bias whose output is channels-last `[B, Ho, Wo, Cout]`,
/// from NCHW or NHWC input, optionally followed by GELU.
///
/// PERF: candle 0.11's CPU conv2d spent ~20% of a MobileSAM encode on the patch embedding and
/// the neck's 3×3 convolution. Here each block of output rows is unfolded (im2col) into a
/// small buffer and multiplied with the weights by one GEMM, blocks in parallel; with a large
/// weight matrix the whole image is unfolded and gemm's threads share one packed weight copy.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[k·k·Cin, Cout]`: PyTorch's `[Cout, Cin, k, k]` with each filter in (row, column,
    /// channel) order, transposed: the layout [`linear_gemm`] reads without packing, in the
    /// order [`Conv2d::unfold`] writes patches.
    weight_kn: Vec<f32>,
    /// `[Cout]`
    bias: Vec<f32>,
    /// The PyTorch-layout weight and bias for other devices.
    weight_t: Tensor,
    bias_t: Tensor,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// From a PyTorch-layout weight `[Cout, Cin, k, k]` and bias `[Cout]` (`None`: zeros).
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let (cout, cin, k, k2) = weight.dims4()?;
        if k != k2 {
            candle_core::bail!("conv weight must be square, got {:?}", weight.dims());
        }
        let bias_t = match bias {
            Some(b) => b.clone(),
            None => Tensor::zeros(cout, weight.dtype(), weight.device())?,
        };
        Ok(Self {
            weight_kn: transpose_2d(
                &weight
                    .permute((0, 2, 3, 1))?
                    .to_dtype(DType::F32)?
                    .contiguous()?
                    .reshape((cout, k * k * cin))?,
            )?
            .flatten_all()?
            .to_vec1()?,
            bias: bias_t.to_dtype(DType::F32)?.to_vec1()?,
            weight_t: weight.clone(),
            bias_t,
            cin,
            cout,
            kernel: k,
            stride,
            padding,
        })
    }

    /// `x` in `layout` → `[B, Ho, Wo, Cout]`, then GELU when `gelu_after` is set.
    pub fn forward(&self, x: &Tensor, layout: ImageLayout, gelu_after: bool) -> Result<Tensor> {
        if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
            return x.contiguous()?.apply_op1_no_bwd(&Conv2dOp {
                conv: self,
                layout,
                gelu: gelu_after,
            });
        }
        let x = match layout {
            ImageLayout::Nchw => x.clone(),
            ImageLayout::Nhwc => x.permute((0, 3, 1, 2))?,
        };
        let y = x
            .conv2d(&self.weight_t, self.padding, self.stride, 1, 1)?
            .broadcast_add(&self.bias_t.reshape((1, self.cout, 1, 1))?)?
            .permute((0, 2, 3, 1))?
            .contiguous()?;
        if gelu_after {
            gelu(&y)
        } else {
            Ok(y)
        }
    }

    fn out_size(&self, n: usize) -> usize {
        conv_out_size(n, self.kernel, self.stride, self.padding)
    }

    /// Writes the unfolded patches of output rows `oy0..oy0 + rows.len() / (wo·K)` into `rows`
    /// (`[pixels, k·k·Cin]`, each patch in (row, column, channel) order, zeros outside the
    /// image) from one image with element strides `(c, y, x)`.
    ///
    /// PERF: with channels-last input a patch row inside the image is one contiguous run of
    /// `k·Cin` values, copied at once.
    fn unfold(
        &self,
        img: &[f32],
        strides: (usize, usize, usize),
        hw: (usize, usize),
        oy0: usize,
        rows: &mut [f32],
    ) {
        let (sc, sy, sx) = strides;
        let (h, w) = hw;
        let (k, s, p, cin) = (self.kernel, self.stride, self.padding, self.cin);
        let kk = cin * k * k;
        let wo = self.out_size(w);
        let runs = sc == 1 && sx == cin; // channels-last
        for (i, patch) in rows.chunks_exact_mut(kk).enumerate() {
            let (oy, ox) = (oy0 + i / wo, i % wo);
            let ix0 = (ox * s) as isize - p as isize;
            for (ky, prow) in patch.chunks_exact_mut(k * cin).enumerate() {
                let iy = (oy * s + ky) as isize - p as isize;
                if iy < 0 || iy as usize >= h {
                    prow.fill(0.0);
                    continue;
                }
                let row0 = iy as usize * sy;
                if runs && ix0 >= 0 && ix0 as usize + k <= w {
                    let start = row0 + ix0 as usize * sx;
                    prow.copy_from_slice(&img[start..start + k * cin]);
                    continue;
                }
                for (kx, px) in prow.chunks_exact_mut(cin).enumerate() {
                    let ix = ix0 + kx as isize;
                    if ix < 0 || ix as usize >= w {
                        px.fill(0.0);
                    } else {
                        let at = row0 + ix as usize * sx;
                        for (ci, v) in px.iter_mut().enumerate() {
                            *v = img[at + ci * sc];
                        }
                    }
                }
            }
        }
    }
}

struct Conv2dOp<'a> {
    conv: &'a Conv2d,
    layout: ImageLayout,
    gelu: bool,
}

impl CustomOp1 for Conv2dOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let conv = self.conv;
        let src = contiguous_f32(storage, layout)?;
        let (b, d1, d2, d3) = layout.shape().dims4()?;
        let (c, h, w) = match self.layout {
            ImageLayout::Nchw => (d1, d2, d3),
            ImageLayout::Nhwc => (d3, d1, d2),
        };
        if c != conv.cin {
            candle_core::bail!(
                "conv2d: input has {c} channels, weight expects {}",
                conv.cin
            );
        }
        let strides = match self.layout {
            ImageLayout::Nchw => (h * w, w, 1),
            ImageLayout::Nhwc => (1, w * c, c),
        };
        let (ho, wo) = (conv.out_size(h), conv.out_size(w));
        let (kk, n) = (conv.cin * conv.kernel * conv.kernel, conv.cout);
        let epilogue = if self.gelu {
            Epilogue::Gelu
        } else {
            Epilogue::None
        };
        let mut dst = Vec::new();
        for bi in 0..b {
            let img = &src[bi * c * h * w..][..c * h * w];
            let image_out = if n * kk > SPLIT_MAX_WEIGHTS {
                let mut cols = vec![0f32; ho * wo * kk];
                cols.par_chunks_mut(wo * kk)
                    .enumerate()
                    .for_each(|(oy, r)| conv.unfold(img, strides, (h, w), oy, r));
                let (w, bias) = (&conv.weight_kn, Some(conv.bias.as_slice()));
                linear_gemm(&cols, w, bias, (ho * wo, n, kk), epilogue)
            } else {
                // Output rows per block: about 256 KB of unfolded patches.
                let block = (65_536 / (wo * kk).max(1)).clamp(1, ho);
                let mut out = vec![0f32; ho * wo * n];
                out.par_chunks_mut(block * wo * n)
                    .enumerate()
                    .for_each(|(i, out)| {
                        let pixels = out.len() / n;
                        let mut cols = vec![0f32; pixels * kk];
                        conv.unfold(img, strides, (h, w), i * block, &mut cols);
                        let (w, bias) = (&conv.weight_kn, Some(conv.bias.as_slice()));
                        let dims = (pixels, n, kk);
                        linear_gemm_into(&cols, w, bias, dims, epilogue, out, false);
                    });
                out
            };
            if b == 1 {
                dst = image_out;
            } else {
                dst.extend_from_slice(&image_out);
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from((b, ho, wo, n))))
    }
}

/// Layer norm over the channel axis of an NCHW tensor (SAM's `LayerNorm2d`, eps 1e-6).
#[derive(Debug, Clone)]
pub struct LayerNorm2d {
    /// `[1, C, 1, 1]`
    weight: Tensor,
    /// `[1, C, 1, 1]`
    bias: Tensor,
    eps: f64,
}

impl LayerNorm2d {
    /// Loads `weight` and `bias` of size `channels`.
    pub fn load(scope: &Scope, channels: usize, eps: f64) -> anyhow::Result<Self> {
        Ok(Self {
            weight: scope
                .get("weight", &[channels])?
                .reshape((1, channels, 1, 1))?,
            bias: scope
                .get("bias", &[channels])?
                .reshape((1, channels, 1, 1))?,
            eps,
        })
    }
}

impl Module for LayerNorm2d {
    /// `[B, C, H, W]` → `[B, C, H, W]`
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        in_f32(x, |x| {
            let u = x.mean_keepdim(1)?;
            let xc = x.broadcast_sub(&u)?;
            let s = xc.sqr()?.mean_keepdim(1)?;
            let y = xc.broadcast_div(&(s + self.eps)?.sqrt()?)?;
            y.broadcast_mul(&self.weight.to_dtype(x.dtype())?)?
                .broadcast_add(&self.bias.to_dtype(x.dtype())?)
        })
    }
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

/// An elementwise activation on the CPU: `kernel` applied in place to chunks, in parallel.
///
/// PERF: candle's `gelu_erf` and `gelu` run per element on one thread through libm's `erf` /
/// `tanh` (18% of a GPT-2 forward); these kernels are parallel and vectorise (see
/// [`erf_f32`] and [`crate::model::simd::exp_f32`]).
struct Elementwise {
    name: &'static str,
    kernel: fn(&mut [f32]),
}

impl CustomOp1 for Elementwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout)?;
        let mut dst = vec![0f32; src.len()];
        dst.par_chunks_mut(1 << 14)
            .zip(src.par_chunks(1 << 14))
            .for_each(|(d, s)| {
                d.copy_from_slice(s);
                (self.kernel)(d);
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// `erf(x)` in f32 as a branch-free rational approximation that vectorises (the form Eigen and
/// XLA use): within 5e-7 of the true value everywhere (worst near |x| = 3.5, where erf ≈ 1), on a
/// par with PyTorch's own vectorised erf (Abramowitz–Stegun 7.1.26, 1.5e-7 absolute).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    let p = x * p;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_3e-3;
    q = x2 * q + -1.426_473_9e-2;
    p / q
}

/// Exact GELU of `x`, `0.5·x·(1 + erf(x/√2))`, as PyTorch's `nn.GELU()`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&Elementwise {
            name: "segattn-gelu-erf",
            kernel: crate::model::simd::gelu_inplace,
        })
    } else {
        x.gelu_erf()
    }
}

/// The tanh approximation of GELU (GPT-2's `gelu_new`),
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&Elementwise {
            name: "segattn-gelu-tanh",
            kernel: crate::model::simd::gelu_tanh_inplace,
        })
    } else {
        x.gelu()
    }
}

/// A depthwise (one filter per channel) square convolution on channels-last data, with the
/// bias (and any folded BatchNorm) applied.
///
/// PERF: candle 0.11 runs grouped convolutions group by group with a tiny GEMM per tile
/// (~94,000 GEMM calls for one MobileSAM forward, 44% of its time); this direct kernel works on
/// `[B, H, W, C]` rows in parallel with the channel axis innermost, so it vectorises.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    /// `[k*k, C]`, tap-major.
    weight_hwc: Vec<f32>,
    /// `[C]`
    bias: Vec<f32>,
    /// The same filter as an NCHW candle kernel `[C, 1, k, k]` for non-CPU devices.
    weight_nchw: Tensor,
    bias_tensor: Tensor,
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl DepthwiseConv {
    /// From a PyTorch-layout weight `[C, 1, k, k]` and bias `[C]`.
    pub fn new(weight: &Tensor, bias: &Tensor, stride: usize, padding: usize) -> Result<Self> {
        let (c, one, k, k2) = weight.dims4()?;
        if one != 1 || k != k2 {
            candle_core::bail!(
                "depthwise weight must be [C, 1, k, k], got {:?}",
                weight.dims()
            );
        }
        let w: Vec<f32> = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut weight_hwc = vec![0f32; c * k * k];
        for ch in 0..c {
            for t in 0..k * k {
                weight_hwc[t * c + ch] = w[ch * k * k + t];
            }
        }
        Ok(Self {
            weight_hwc,
            bias: bias.to_dtype(DType::F32)?.to_vec1()?,
            weight_nchw: weight.clone(),
            bias_tensor: bias.clone(),
            channels: c,
            kernel: k,
            stride,
            padding,
        })
    }

    /// `[B, H, W, C]` → `[B, Ho, Wo, C]`.
    pub fn forward_nhwc(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, false)
    }

    /// `gelu(conv(x))`, `[B, H, W, C]` → `[B, Ho, Wo, C]`; on the CPU the GELU runs on each
    /// output row while it is in cache.
    pub fn forward_nhwc_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, true)
    }

    fn forward_impl(&self, x: &Tensor, gelu_after: bool) -> Result<Tensor> {
        if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
            x.contiguous()?.apply_op1_no_bwd(&DepthwiseOp {
                conv: self,
                gelu: gelu_after,
            })
        } else if gelu_after {
            gelu(&self.forward_impl(x, false)?)
        } else {
            let y = x.permute((0, 3, 1, 2))?.conv2d(
                &self.weight_nchw,
                self.padding,
                self.stride,
                1,
                self.channels,
            )?;
            let y = y.broadcast_add(&self.bias_tensor.reshape((1, self.channels, 1, 1))?)?;
            y.permute((0, 2, 3, 1))?.contiguous()
        }
    }

    fn out_size(&self, n: usize) -> usize {
        conv_out_size(n, self.kernel, self.stride, self.padding)
    }
}

/// [`DepthwiseConv`] on the CPU, optionally followed by GELU.
struct DepthwiseOp<'a> {
    conv: &'a DepthwiseConv,
    gelu: bool,
}

impl CustomOp1 for DepthwiseOp<'_> {
    fn name(&self) -> &'static str {
        "segattn-depthwise-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let conv = self.conv;
        let src = contiguous_f32(storage, layout)?;
        let (b, h, w, c) = layout.shape().dims4()?;
        if c != conv.channels {
            candle_core::bail!("depthwise conv: {c} channels, filter has {}", conv.channels);
        }
        let (ho, wo) = (conv.out_size(h), conv.out_size(w));
        let mut dst = vec![0f32; b * ho * wo * c];
        dst.par_chunks_mut(wo * c)
            .enumerate()
            .for_each(|(row, out)| {
                let (bi, oy) = (row / ho, row % ho);
                let image = &src[bi * h * w * c..][..h * w * c];
                depthwise_row(conv, image, (h, w), oy, out);
                if self.gelu {
                    crate::model::simd::gelu_inplace(out);
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((b, ho, wo, c))))
    }
}

crate::model::simd::multiversion! {
    /// One output row `oy` (`[Wo, C]`) of a depthwise convolution of `image` `[H, W, C]`.
    fn depthwise_row(conv: &DepthwiseConv, image: &[f32], hw: (usize, usize), oy: usize, out: &mut [f32]) {
        let (h, w) = hw;
        let c = conv.channels;
        let (k, s, p) = (conv.kernel, conv.stride, conv.padding);
        for px in out.chunks_exact_mut(c) {
            px.copy_from_slice(&conv.bias);
        }
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - p as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let in_row = &image[iy as usize * w * c..][..w * c];
            for kx in 0..k {
                let wt = &conv.weight_hwc[(ky * k + kx) * c..][..c];
                for (ox, px) in out.chunks_exact_mut(c).enumerate() {
                    let ix = (ox * s + kx) as isize - p as isize;
                    if ix < 0 || ix >= w as isize {
                        continue;
                    }
                    let inp = &in_row[ix as usize * c..][..c];
                    for ((o, i), wv) in px.iter_mut().zip(inp).zip(wt) {
                        *o += i * wv;
                    }
                }
            }
        }
    }
}

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

/// `[B, H, W, C]` contiguous f32 data of a tensor, copied to the CPU (for small results only).
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candle fallbacks (taken on GPUs, exercised here with f64 tensors on the CPU) agree
    /// with the CPU kernels.
    #[test]
    fn fallback_paths_match_the_cpu_kernels() {
        let dev = Device::Cpu;
        let vals = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 37 + seed * 11) % 97) as f32 / 48.0 - 1.0) * 0.7)
                .collect()
        };
        let t = |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, &dev).expect("tensor");
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let a: Vec<f32> = a.flatten_all().and_then(|x| x.to_vec1()).expect(what);
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
            assert!(worst < 1e-5, "{what}: max diff {worst}");
        };
        let f64_of = |x: &Tensor| x.to_dtype(DType::F64).expect("f64");

        // Linear with fused GELU and residual.
        let lin = Linear::from_tensors(t(vals(24 * 16, 1), &[24, 16]), Some(t(vals(24, 2), &[24])))
            .expect("linear");
        let lin64 = Linear::from_transposed(f64_of(&lin.weight_t), lin.bias.as_ref().map(&f64_of));
        let x = t(vals(40 * 16, 3), &[2, 20, 16]);
        let r = t(vals(40 * 24, 4), &[2, 20, 24]);
        close(
            &lin.forward_add(&x, &r, true).expect("cpu"),
            &lin64
                .forward_add(&f64_of(&x), &f64_of(&r), true)
                .expect("fallback"),
            "linear + residual + gelu",
        );

        // Matmuls (one and batched), with bias and residual; transpose; the softmaxes.
        let (a, b) = (t(vals(70 * 9, 8), &[70, 9]), t(vals(9 * 50, 9), &[9, 50]));
        let (bias, res) = (t(vals(50, 10), &[50]), t(vals(70 * 50, 11), &[70, 50]));
        let mm = |a: &Tensor, b: &Tensor| matmul(a, b).expect("matmul");
        close(&mm(&a, &b), &mm(&f64_of(&a), &f64_of(&b)), "matmul");
        let (a3, b3) = (
            a.reshape((7, 10, 9)).expect("a3"),
            t(vals(7 * 9 * 5, 12), &[7, 9, 5]),
        );
        close(
            &mm(&a3, &b3),
            &mm(&f64_of(&a3), &f64_of(&b3)),
            "batched matmul",
        );
        close(
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
        close(
            &transpose_2d(&a).expect("cpu"),
            &transpose_2d(&f64_of(&a)).expect("fallback"),
            "transpose",
        );
        let s3 = t(vals(3 * 7 * 40, 13), &[3, 7, 40]);
        close(
            &softmax_dim1(&s3, 4.0).expect("cpu"),
            &softmax_dim1(&f64_of(&s3), 4.0).expect("fallback"),
            "softmax over dim 1",
        );
        close(
            &softmax_last_dim(&s3).expect("cpu"),
            &softmax_last_dim(&f64_of(&s3)).expect("fallback"),
            "softmax over the last dim",
        );
        let g = t(vals(500, 14).iter().map(|v| v * 6.0).collect(), &[500]);
        close(
            &gelu_tanh(&g).expect("cpu"),
            &gelu_tanh(&f64_of(&g)).expect("fallback"),
            "tanh gelu",
        );
        close(
            &gelu(&g).expect("cpu"),
            &gelu(&f64_of(&g)).expect("fallback"),
            "erf gelu",
        );

        // Dense convolution, NCHW and NHWC input, with GELU.
        let w = t(vals(8 * 3 * 9, 5), &[8, 3, 3, 3]);
        let b = t(vals(8, 6), &[8]);
        let conv = Conv2d::new(&w, Some(&b), 2, 1).expect("conv");
        let conv64 = Conv2d::new(&f64_of(&w), Some(&f64_of(&b)), 2, 1).expect("conv");
        let img = t(vals(3 * 11 * 9, 7), &[1, 3, 11, 9]);
        close(
            &conv.forward(&img, ImageLayout::Nchw, true).expect("cpu"),
            &conv64
                .forward(&f64_of(&img), ImageLayout::Nchw, true)
                .expect("fallback"),
            "conv nchw",
        );
        let nhwc = img
            .permute((0, 2, 3, 1))
            .and_then(|x| x.contiguous())
            .expect("nhwc");
        close(
            &conv.forward(&nhwc, ImageLayout::Nhwc, false).expect("cpu"),
            &conv64
                .forward(&f64_of(&nhwc), ImageLayout::Nhwc, false)
                .expect("fallback"),
            "conv nhwc",
        );

        // Depthwise convolution with GELU.
        let dw_w = t(vals(6 * 9, 8), &[6, 1, 3, 3]);
        let dw_b = t(vals(6, 9), &[6]);
        let dw = DepthwiseConv::new(&dw_w, &dw_b, 2, 1).expect("dw");
        let dw64 = DepthwiseConv::new(&f64_of(&dw_w), &f64_of(&dw_b), 2, 1).expect("dw");
        let x = t(vals(7 * 5 * 6, 10), &[1, 7, 5, 6]);
        close(
            &dw.forward_nhwc_gelu(&x).expect("cpu"),
            &dw64.forward_nhwc_gelu(&f64_of(&x)).expect("fallback"),
            "depthwise + gelu",
        );
    }

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

    #[test]
    fn erf_f32_is_accurate() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let err = (f64::from(erf_f32(x)) - libm::erf(f64::from(x))).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "max |erf error| {worst:e}");
    }

    #[test]
    fn layer_norm_matches_two_pass_f64() {
        let x: Vec<f32> = (0..3 * 37)
            .map(|i| ((i * 7919) % 101) as f32 * 0.37 + 1000.0)
            .collect();
        let w: Vec<f32> = (0..37).map(|i| 1.0 + i as f32 * 0.01).collect();
        let b: Vec<f32> = (0..37).map(|i| i as f32 * -0.02).collect();
        let dev = Device::Cpu;
        let t = Tensor::from_slice(&x, (3, 37), &dev).expect("tensor");
        let wt = Tensor::from_slice(&w, 37, &dev).expect("tensor");
        let bt = Tensor::from_slice(&b, 37, &dev).expect("tensor");
        let ours: Vec<f32> = layer_norm(&t, &wt, &bt, 1e-5)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("layer norm");
        for (r, row) in x.chunks(37).enumerate() {
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / 37.0;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / 37.0;
            for i in 0..37 {
                let e = (f64::from(row[i]) - mean) / (var + 1e-5).sqrt() * f64::from(w[i])
                    + f64::from(b[i]);
                assert!(
                    (f64::from(ours[r * 37 + i]) - e).abs() < 1e-4,
                    "row {r} col {i}"
                );
            }
        }
    }
}
