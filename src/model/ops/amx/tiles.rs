//! The AMX side of the split-bfloat16 products (x86-64 Linux with glibc): the tile state
//! requested from Linux, the rows' split into bfloat16 halves, and the kernel, in inline
//! assembly.

use std::arch::asm;

/// Asks Linux for the AMX tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`)
/// when the CPU reports AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22).
pub(super) fn enable() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // Leaf 7 is read only when the CPU has it (the maximum leaf, from leaf 0).
    let has = __cpuid_count(0, 0).eax >= 7 && {
        let edx = __cpuid_count(7, 0).edx;
        edx & (1 << 24) != 0 && edx & (1 << 22) != 0
    };
    if !has
        || !std::arch::is_x86_feature_detected!("avx512bw")
        || !std::arch::is_x86_feature_detected!("avx512bf16")
    {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a documented request with integer arguments; it changes no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    r == 0
}

use std::arch::x86_64::{
    __m256bh, __m256i, __m512, _mm256_storeu_si256, _mm512_castsi512_ps, _mm512_cvtepu16_epi32,
    _mm512_cvtneps_pbh, _mm512_maskz_loadu_ps, _mm512_slli_epi32, _mm512_sub_ps,
};

/// Two rows of `Wᵀ` (inputs `i` and `i + 1`: `even`, and `odd` or zeros when `None`) across
/// up to 32 features into the `(hi, lo)` tiles of one chunk pair of a feature block, as
/// [`super::PackedWeights::new`] lays them out: for each 16 features `t` (of `width.div_ceil
/// (16)`), the 16 `(even, odd)` pairs of bfloat16 at `t·TILE` of `hi` and of `lo`. Features
/// past `width` are zero.
///
/// PERF: the portable packer converted and stored one value at a time (6.8 ns a weight on a
/// Xeon); here 16 pairs are converted, interleaved and stored at once.
///
/// # Safety
/// The CPU has AVX-512 BF16 (checked by [`enable`]); `even` and `odd` hold `width ≤ 32`
/// values; `hi` and `lo` hold `TILE + 32` values.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_pair(
    even: &[f32],
    odd: Option<&[f32]>,
    width: usize,
    hi: &mut [u16],
    lo: &mut [u16],
) {
    use std::arch::x86_64::{_mm512_or_si512, _mm512_setzero_ps, _mm512_storeu_si512};
    assert!(width <= 32 && even.len() >= width && odd.is_none_or(|o| o.len() >= width));
    assert!(hi.len() >= super::TILE + 32 && lo.len() >= super::TILE + 32);
    for t in 0..width.div_ceil(16) {
        let valid = (width - 16 * t).min(16);
        let mask = ((1u32 << valid) - 1) as u16;
        // SAFETY: the masks cover only the `width` values of the rows (masked lanes are not
        // read); each store writes 32 `u16` at `t·TILE`, within the lengths checked above.
        unsafe {
            let e = _mm512_maskz_loadu_ps(mask, even.as_ptr().add(16 * t));
            let o = match odd {
                Some(o) => _mm512_maskz_loadu_ps(mask, o.as_ptr().add(16 * t)),
                None => _mm512_setzero_ps(),
            };
            let ((eh, el), (oh, ol)) = (split16(e), split16(o));
            // Each 32-bit lane: the even input's half, then the odd input's.
            let pairs = |a: __m256i, b: __m256i| {
                _mm512_or_si512(
                    _mm512_cvtepu16_epi32(a),
                    _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(b)),
                )
            };
            let at = t * super::TILE;
            _mm512_storeu_si512(hi.as_mut_ptr().add(at).cast(), pairs(eh, oh));
            _mm512_storeu_si512(lo.as_mut_ptr().add(at).cast(), pairs(el, ol));
        }
    }
}

/// Row `r` of a block's `(hi, lo)` rows (`lda` apart, see [`super::PackedRows`]) from
/// `x` `[k]`, zero beyond `k` up to whole chunks.
///
/// # Safety
/// The CPU has AVX-512 BF16 (checked by [`enable`]).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_row(
    x: &[f32],
    (r, lda): (usize, usize),
    k: usize,
    hi: &mut [u16],
    lo: &mut [u16],
) {
    let width = k.div_ceil(super::CHUNK) * super::CHUNK;
    assert!(width <= lda && x.len() == k);
    let (hi, lo) = (
        &mut hi[r * lda..r * lda + width],
        &mut lo[r * lda..r * lda + width],
    );
    for (i, (hi, lo)) in hi
        .chunks_exact_mut(16)
        .zip(lo.chunks_exact_mut(16))
        .enumerate()
    {
        let valid = k.saturating_sub(16 * i).min(16);
        let mask = ((1u32 << valid) - 1) as u16;
        // SAFETY: the mask covers only elements of `x` (masked lanes are not read); the
        // stores write the 16 `u16` of `hi` / `lo`.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, x.as_ptr().add(16 * i));
            let (h16, l16) = split16(v);
            _mm256_storeu_si256(hi.as_mut_ptr().cast(), h16);
            _mm256_storeu_si256(lo.as_mut_ptr().cast(), l16);
        }
    }
}

/// Row `r` of a block's `(hi, lo)` rows, as [`pack_row`], set to `exp(x − max x)`: a
/// softmax's numerators, whose sum (accumulated in f32) it returns. `x` `[k]`, `k > 0`.
///
/// The exponential is `2^t` for `t = (x − max)·log₂e`, clamped at −125: the power of two of
/// `round(t)` put in by `VSCALEFPS`, and of the rest `f ∈ [−½, ½]` a degree-5 polynomial
/// (least squares on Chebyshev nodes: within 2.2·10⁻⁷ relative, evaluated in f32). `t`
/// rounded to f32 adds up to `ln 2·|t|·2⁻²⁴` of relative error, at most 2.2·10⁻⁸ of absolute
/// error on a term (at `t = −1/ln 2`). Terms below e⁻⁸⁶·⁶ become that instead of smaller,
/// which no sum of at least one (the maximum's own term) can tell.
///
/// PERF: this CPU has one 512-bit FMA port, which bounds the loop: per 16 values one FMA
/// for `t`, the clamp, the rounding, a subtraction, five FMAs, the scaling, the sum and
/// half of each of the two `VCVTNE2PS2BF16` of the split. The softmax, then `pack_row`, took
/// twice as many operations (Cephes' reduction by ln 2 in two parts, the power of two by
/// integer arithmetic, a separate normalising pass).
///
/// # Safety
/// The CPU has AVX-512 BF16 (checked by [`enable`]).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_exp_row(
    x: &[f32],
    (r, lda): (usize, usize),
    hi: &mut [u16],
    lo: &mut [u16],
) -> f32 {
    use std::arch::x86_64::{
        _mm512_add_ps, _mm512_cvtne2ps_pbh, _mm512_fmadd_ps, _mm512_fmsub_ps, _mm512_loadu_ps,
        _mm512_loadu_si512, _mm512_mask_max_ps, _mm512_maskz_mov_ps,
        _mm512_maskz_permutexvar_epi16, _mm512_max_ps, _mm512_reduce_add_ps, _mm512_reduce_max_ps,
        _mm512_roundscale_ps, _mm512_scalef_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_si512,
    };
    let k = x.len();
    let width = k.div_ceil(super::CHUNK) * super::CHUNK;
    assert!(k > 0 && width <= lda);
    let (hi, lo) = (
        &mut hi[r * lda..r * lda + width],
        &mut lo[r * lda..r * lda + width],
    );
    // Lanes of vector `i` (16 values) inside `x`.
    let mask = |i: usize| {
        let valid = k.saturating_sub(16 * i).min(16);
        ((1u32 << valid) - 1) as u16
    };
    // SAFETY (every load below): each mask covers only elements of `x`.
    let load = |i: usize| unsafe { _mm512_maskz_loadu_ps(mask(i), x.as_ptr().add(16 * i)) };
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    for i in 0..k.div_ceil(16) {
        vmax = _mm512_mask_max_ps(vmax, mask(i), vmax, load(i));
    }
    let log2e = _mm512_set1_ps(std::f32::consts::LOG2_E);
    let shift = _mm512_set1_ps(_mm512_reduce_max_ps(vmax) * std::f32::consts::LOG2_E);
    let floor = _mm512_set1_ps(-125.0);
    let c = [
        1.326_697_1e-3_f32,
        9.675_46e-3,
        5.550_742_5e-2,
        2.402_212_2e-1,
        6.931_469_4e-1,
        1.000_000_1,
    ]
    .map(|v| _mm512_set1_ps(v));
    // 2^t of vector `i`, lanes beyond `x` 0; `whole`: all its lanes lie in `x`.
    let exp = |i: usize, whole: bool| {
        let v = if whole {
            // SAFETY: the 16 values lie in `x`.
            unsafe { _mm512_loadu_ps(x.as_ptr().add(16 * i)) }
        } else {
            load(i)
        };
        let t = _mm512_max_ps(_mm512_fmsub_ps(v, log2e, shift), floor);
        let n = _mm512_roundscale_ps::<0x08>(t);
        let f = _mm512_sub_ps(t, n);
        let mut p = c[0];
        for &ci in &c[1..] {
            p = _mm512_fmadd_ps(p, f, ci);
        }
        let e = _mm512_scalef_ps(p, n);
        if whole {
            e
        } else {
            _mm512_maskz_mov_ps(mask(i), e)
        }
    };
    // `VPERMW` indices: the bfloat16 `j` of a 32-lane vector into the top half of f32 lane
    // `j` (low 16 values) or `j − 16` (high 16), the other halves zeroed by the mask.
    let index = |base: u16| {
        let mut idx = [0u16; 32];
        for (j, v) in idx.iter_mut().enumerate() {
            *v = base + (j / 2) as u16;
        }
        // SAFETY: 64 bytes read from a 64-byte array.
        unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
    };
    let (low, high, odd) = (index(0), index(16), 0xAAAA_AAAA_u32);
    let mut sum = _mm512_setzero_ps();
    for (j, (hi, lo)) in hi
        .chunks_exact_mut(super::CHUNK)
        .zip(lo.chunks_exact_mut(super::CHUNK))
        .enumerate()
    {
        let whole = 32 * (j + 1) <= k;
        let (e0, e1) = (exp(2 * j, whole), exp(2 * j + 1, whole));
        sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
        // SAFETY: 32 bfloat16 are 64 bytes of plain bits.
        let bits = |b| unsafe { std::mem::transmute::<_, std::arch::x86_64::__m512i>(b) };
        let h = bits(_mm512_cvtne2ps_pbh(e1, e0));
        let back0 = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(odd, low, h));
        let back1 = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(odd, high, h));
        let l = bits(_mm512_cvtne2ps_pbh(
            _mm512_sub_ps(e1, back1),
            _mm512_sub_ps(e0, back0),
        ));
        // SAFETY: the stores write the 32 `u16` of `hi` / `lo`.
        unsafe {
            _mm512_storeu_si512(hi.as_mut_ptr().cast(), h);
            _mm512_storeu_si512(lo.as_mut_ptr().cast(), l);
        }
    }
    _mm512_reduce_add_ps(sum)
}

/// The bfloat16 `(hi, lo)` halves of 16 floats, rounded to nearest even.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
fn split16(v: __m512) -> (__m256i, __m256i) {
    // SAFETY: both are 32 bytes of plain bits.
    let bits = |b: __m256bh| unsafe { std::mem::transmute::<__m256bh, __m256i>(b) };
    let hi = bits(_mm512_cvtneps_pbh(v));
    let back = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(hi)));
    (hi, bits(_mm512_cvtneps_pbh(_mm512_sub_ps(v, back))))
}

/// Palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct Config([u8; 64]);

static CONFIG: Config = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64;
        c[48 + t] = 16;
        t += 1;
    }
    Config(c)
};

/// Loads the tile configuration on this thread.
///
/// # Safety
/// [`enable`] must have returned true.
pub(super) unsafe fn configure() {
    // SAFETY: a valid palette-1 configuration; AMX is enabled (the caller's contract).
    unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack)) };
}

/// Returns the tiles to their initial state on this thread.
///
/// # Safety
/// As [`configure`].
pub(super) unsafe fn release() {
    // SAFETY: as above.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// What the accumulators of [`kernel`] start from.
#[derive(Clone, Copy)]
pub(super) enum Init {
    /// Zero.
    Zero,
    /// What `acc` holds (a later chunk block).
    Load,
    /// The 32 floats there (64-byte aligned) in every row: the bias.
    Rows(*const f32),
}

/// `acc[32 × 32] (+)= A·Bᵀ` over `chunks` chunks of 32 inputs in split bfloat16: `a` the
/// `(hi, lo)` pointers to 32 rows of bfloat16 `lda` apart (a chunk is 32 of them), `b` to
/// two feature tiles per chunk (chunk stride 2 tiles), `acc` rows `stride` floats apart,
/// starting from `init`. Tiles 0-3 hold the accumulators, 4-5 the
/// rows, 6-7 the features.
///
/// # Safety
/// [`configure`] was called on this thread; the pointers reach `chunks` chunks and 32 rows
/// of 32 floats.
pub(super) unsafe fn kernel(
    (a, lda): ([*const u16; 2], usize),
    b: [*const u16; 2],
    chunks: usize,
    acc: *mut f32,
    stride: usize,
    init: Init,
) {
    let s = stride * 4;
    let sa = lda * 2;
    // SAFETY: within the bounds the caller guarantees; tiles are not Rust-visible state.
    unsafe {
        let c10 = acc.add(16 * stride);
        match init {
            Init::Load => asm!(
                "tileloadd tmm0, [{c00} + {s}*1]",
                "tileloadd tmm1, [{c00} + {s}*1 + 64]",
                "tileloadd tmm2, [{c10} + {s}*1]",
                "tileloadd tmm3, [{c10} + {s}*1 + 64]",
                c00 = in(reg) acc, c10 = in(reg) c10, s = in(reg) s,
                options(nostack, readonly),
            ),
            // A row stride of 0: every row of the tile is the same 16 floats.
            Init::Rows(line) => asm!(
                "tileloadd tmm0, [{line} + {zero}*1]",
                "tileloadd tmm1, [{line} + {zero}*1 + 64]",
                "tileloadd tmm2, [{line} + {zero}*1]",
                "tileloadd tmm3, [{line} + {zero}*1 + 64]",
                line = in(reg) line, zero = in(reg) 0usize,
                options(nostack, readonly),
            ),
            Init::Zero => asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            ),
        }
        // Software-pipelined: each operand tile is reloaded right after its last reader
        // in the chunk (tiles are not renamed, so a load waits for them), and the next
        // chunk's first operands are loaded during this chunk's last products.
        let (bs, ah0) = (64usize, a[0]);
        asm!(
            "tileloadd tmm4, [{ah} + {sa}*1]",
            "tileloadd tmm5, [{ah16} + {sa}*1]",
            "tileloadd tmm6, [{bl} + {bs}*1]",
            "tileloadd tmm7, [{bl} + {bs}*1 + 1024]",
            ah = in(reg) ah0, ah16 = in(reg) ah0.add(16 * lda), bl = in(reg) b[1],
            sa = in(reg) sa, bs = in(reg) bs,
            options(nostack, readonly),
        );
        for c in 0..chunks {
            let (al, bh) = (a[1].add(c * super::CHUNK), b[0].add(c * 2 * super::TILE));
            let al16 = al.add(16 * lda);
            // The products of this chunk, with tiles 4-7 holding A_hi and B_lo.
            macro_rules! chunk {
                ($($next:literal,)*) => {
                    asm!(
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tileloadd tmm6, [{bh} + {bs}*1]",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        "tileloadd tmm7, [{bh} + {bs}*1 + 1024]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tileloadd tmm4, [{al} + {sa}*1]",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        "tileloadd tmm5, [{al16} + {sa}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        $($next,)*
                        al = in(reg) al, al16 = in(reg) al16, bh = in(reg) bh,
                        nah = in(reg) a[0].wrapping_add((c + 1) * super::CHUNK),
                        nah16 = in(reg) a[0].wrapping_add((c + 1) * super::CHUNK + 16 * lda),
                        nbl = in(reg) b[1].wrapping_add((c + 1) * 2 * super::TILE),
                        sa = in(reg) sa, bs = in(reg) bs,
                        options(nostack, readonly),
                    )
                };
            }
            if c + 1 < chunks {
                chunk!(
                    "tileloadd tmm4, [{nah} + {sa}*1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tileloadd tmm6, [{nbl} + {bs}*1]",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    "tileloadd tmm5, [{nah16} + {sa}*1]",
                    "tileloadd tmm7, [{nbl} + {bs}*1 + 1024]",
                );
            } else {
                chunk!(
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    "/* {nah} {nah16} {nbl} */",
                );
            }
        }
        asm!(
            "tilestored [{c00} + {s}*1], tmm0",
            "tilestored [{c00} + {s}*1 + 64], tmm1",
            "tilestored [{c10} + {s}*1], tmm2",
            "tilestored [{c10} + {s}*1 + 64], tmm3",
            c00 = in(reg) acc, c10 = in(reg) c10, s = in(reg) s,
            options(nostack),
        );
    }
}
