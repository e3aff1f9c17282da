//! Vector kernels compiled three times: for the baseline x86-64 (SSE2) and, picked at run
//! time, for AVX2 + FMA and for AVX-512, so the app runs on any x86-64 yet uses the wide
//! registers where they exist.
//!
//! `SEGATTN_SIMD=sse2|avx2|avx512` caps the level at start-up (never above what the CPU has):
//! the tests run every variant on one machine, and `segattn bench` shows how a CPU without
//! AVX-512 fares. The GEMMs are the `gemm` crate's, which picks its own kernels: its AVX-512
//! ones are compiled in only with the `avx512-gemm` feature (on by default).

use std::sync::OnceLock;

/// The vector instruction sets the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The x86-64 baseline, 4 lanes (and every other architecture: plain code).
    Sse2,
    /// AVX2 with FMA, 8 lanes.
    Avx2,
    /// AVX-512F, 16 lanes.
    Avx512,
}

impl SimdLevel {
    /// Every level, lowest first.
    pub const ALL: [SimdLevel; 3] = [Self::Sse2, Self::Avx2, Self::Avx512];

    /// `"sse2"`, `"avx2"` or `"avx512"` (the values of `SEGATTN_SIMD`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sse2 => "sse2",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// The level named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name.trim())
    }
}

/// The environment variable that caps the level.
pub const SIMD_ENV: &str = "SEGATTN_SIMD";

/// The highest level this CPU runs.
pub fn detected() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Sse2
}

/// The level the kernels run at: [`detected`], capped by `SEGATTN_SIMD` (read once; an
/// unknown value is ignored).
pub fn level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var(SIMD_ENV)
            .ok()
            .and_then(|v| SimdLevel::from_name(&v));
        cap.map_or(detected(), |c| c.min(detected()))
    })
}

/// True when the `gemm` crate's AVX-512 kernels are compiled in (feature `avx512-gemm`).
pub const GEMM_AVX512: bool = cfg!(feature = "avx512-gemm");

/// Defines `fn name(args) -> ret` whose body is compiled for the baseline target and for
/// AVX2 + FMA and AVX-512F, and dispatches on the running CPU. The body must be safe code; the
/// compiler vectorises it for each instruction set.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[inline]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                match $crate::model::simd::level() {
                    // SAFETY: `level` is never above what the CPU supports.
                    $crate::model::simd::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above: this CPU has AVX2 and FMA.
                    $crate::model::simd::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::model::simd::SimdLevel::Sse2 => {}
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// `Σ a[i]·b[i]` over the shorter slice, with 16 independent partial sums so the compiler
    /// can keep them in vector registers. (Measured: 64 partial sums, or eight rows against
    /// one weight row at once, were slower for MiniLM's 16-token linears.)
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for k in 0..16 {
                acc[k] += x[k] * y[k];
            }
        }
        let mut s = tail;
        for v in acc {
            s += v;
        }
        s
    }
}

multiversion! {
    /// `y[i] += alpha · x[i]`.
    pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        for (o, v) in y.iter_mut().zip(x) {
            *o += alpha * v;
        }
    }
}

multiversion! {
    /// `dst[i] = a[i] + b[i]` over the shortest of the three.
    pub fn add_into(dst: &mut [f32], a: &[f32], b: &[f32]) {
        for ((o, x), y) in dst.iter_mut().zip(a).zip(b) {
            *o = x + y;
        }
    }
}

multiversion! {
    /// `dst[i] = a[i] + b[i]` over the shortest of the three, into memory that may not be
    /// initialised yet.
    pub fn add_into_uninit(dst: &mut [std::mem::MaybeUninit<f32>], a: &[f32], b: &[f32]) {
        for ((o, x), y) in dst.iter_mut().zip(a).zip(b) {
            o.write(x + y);
        }
    }
}

multiversion! {
    /// `dst[i] = a[i] + b` over the shorter of the two.
    pub fn add_scalar_into(dst: &mut [f32], a: &[f32], b: f32) {
        for (o, x) in dst.iter_mut().zip(a) {
            *o = x + b;
        }
    }
}

multiversion! {
    /// `x[i] /= d`.
    pub fn div_assign(x: &mut [f32], d: f32) {
        for v in x.iter_mut() {
            *v /= d;
        }
    }
}

multiversion! {
    /// `dst[i] += a[i]`.
    pub fn add_assign(dst: &mut [f32], a: &[f32]) {
        for (o, x) in dst.iter_mut().zip(a) {
            *o += x;
        }
    }
}

multiversion! {
    /// Two-pass layer norm (mean, then the variance of the centred values, as PyTorch) of each
    /// row of `x` in place, the rows `w.len()` long, with weight `w`, bias `b` and `eps`.
    pub fn layer_norm_rows(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
        let dim = w.len().max(1);
        let n = dim as f32;
        for row in x.chunks_exact_mut(dim) {
            let mean = crate::model::ops::lane_sum(row, |v| v) / n;
            let var = crate::model::ops::lane_sum(row, |v| (v - mean) * (v - mean)) / n;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(w).zip(b) {
                *v = (*v - mean) * inv * w + b;
            }
        }
    }
}

/// Exact GELU in place, `x·½·(1 + erf(x/√2))` with [`crate::model::ops::erf_f32`].
///
/// PERF: the baseline build only has 4-wide SSE2 (GELU was 14% of a MobileSAM encode). On
/// AVX-512 the rational function's division is a reciprocal estimate and one Newton step
/// (`vdivps` on 16 lanes issues once per 16 cycles or so): 1.67 → 1.21 ms for 2 M values on
/// one core of an Intel Xeon, at most 1.2e-6 (about 2.5 ulp, at |x| ≈ 5) from the divided
/// form.
pub fn gelu_inplace(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level() == SimdLevel::Avx512 {
        // SAFETY: `level` is never above what the CPU supports.
        unsafe { gelu_avx512(x) };
        return;
    }
    gelu_portable(x);
}

multiversion! {
    /// [`gelu_inplace`] in plain code, for the compiler to vectorise.
    fn gelu_portable(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = *v * 0.5 * (1.0 + crate::model::ops::erf_f32(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// [`gelu_inplace`] on 16 lanes with the division by a reciprocal and a Newton step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_avx512(x: &mut [f32]) {
    use crate::model::ops::activation::{ERF_CLAMP, ERF_P, ERF_Q};
    use std::arch::x86_64::*;
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: 16 values in `c`; AVX-512F is enabled for this function.
        unsafe {
            let v = _mm512_loadu_ps(c.as_ptr());
            let t = _mm512_mul_ps(v, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
            let t = _mm512_min_ps(
                _mm512_max_ps(t, _mm512_set1_ps(-ERF_CLAMP)),
                _mm512_set1_ps(ERF_CLAMP),
            );
            let t2 = _mm512_mul_ps(t, t);
            let mut p = _mm512_set1_ps(ERF_P[0]);
            for k in &ERF_P[1..] {
                p = _mm512_fmadd_ps(t2, p, _mm512_set1_ps(*k));
            }
            let p = _mm512_mul_ps(t, p);
            let mut q = _mm512_set1_ps(ERF_Q[0]);
            for k in &ERF_Q[1..] {
                q = _mm512_fmadd_ps(t2, q, _mm512_set1_ps(*k));
            }
            // 1/q to 14 bits, then r·(2 − q·r): the error squared, below f32's rounding.
            let r = _mm512_rcp14_ps(q);
            let r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0)));
            let erf = _mm512_mul_ps(p, r);
            let half = _mm512_mul_ps(v, _mm512_set1_ps(0.5));
            let y = _mm512_mul_ps(half, _mm512_add_ps(_mm512_set1_ps(1.0), erf));
            _mm512_storeu_ps(c.as_mut_ptr(), y);
        }
    }
    gelu_portable(chunks.into_remainder());
}

multiversion! {
    /// The tanh approximation of GELU in place, `½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
    /// with `tanh(u) = 1 − 2/(e^{2u} + 1)` through [`exp_f32`] (saturating to ±1 for large
    /// |u|; near 0 its absolute error, ~1e-7, is what matters next to the 1 it is added to).
    pub fn gelu_tanh_inplace(x: &mut [f32]) {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        for v in x.iter_mut() {
            let u = SQRT_2_OVER_PI * (*v + 0.044_715 * *v * *v * *v);
            let t = 1.0 - 2.0 / (exp_f32(2.0 * u) + 1.0);
            *v = 0.5 * *v * (1.0 + t);
        }
    }
}

/// `2^n` for an integer-valued `n` in [−127, 128] (128 gives +inf): `n + 127` put in the
/// mantissa's low bits by adding 1.5·2^23, then shifted into the exponent.
///
/// PERF: the same bits as `f32::from_bits(((n as i32 + 127) as u32) << 23)`, without the
/// saturating `as i32`, which kept [`exp_f32`] from vectorising (16 scalar conversions per
/// vector): the softmaxes of Hiera-T's global attention took 13% of its encoder's time.
#[inline(always)]
fn pow2i(n: f32) -> f32 {
    f32::from_bits((n + (127.0 + 12_582_912.0)).to_bits() << 23)
}

/// `e^x` in f32 for the kernels below: Cephes' `expf` (range reduction by ln 2, a degree-6
/// polynomial, the exponent put in by bit arithmetic), branch-free so it vectorises; within 3e-7
/// relative of the true value on [-87, 88], exactly 0 below -87.33 (so `-inf` masks give 0).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.33, 88.37);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = pow2i(n);
    if x < -87.33 {
        0.0
    } else {
        y * scale
    }
}

/// Softmax of `row` in place, `exp(x - max) / Σ`, with the sum accumulated in f32 like
/// PyTorch's CPU kernel.
pub fn softmax_inplace(row: &mut [f32]) {
    let inv = 1.0 / softmax_numerators(row);
    scale_inplace(row, inv);
}

multiversion! {
    /// The softmax's numerators of `row` in place, `exp(x - max)`, and their sum (accumulated
    /// in f32 like PyTorch's CPU kernel): the division left to the caller, who may apply it
    /// to a product of the numerators instead (`P·V` of an attention, `hd` values per row
    /// rather than `n`).
    pub fn softmax_numerators(row: &mut [f32]) -> f32 {
        let mut max = [f32::NEG_INFINITY; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for k in 0..16 {
                max[k] = max[k].max(c[k]);
            }
        }
        let max = chunks
            .remainder()
            .iter()
            .chain(&max)
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = [0f32; 16];
        let mut chunks = row.chunks_exact_mut(16);
        for c in &mut chunks {
            for k in 0..16 {
                c[k] = exp_f32(c[k] - max);
                sum[k] += c[k];
            }
        }
        let mut total = 0f32;
        for v in chunks.into_remainder() {
            *v = exp_f32(*v - max);
            total += *v;
        }
        for v in sum {
            total += v;
        }
        total
    }
}

multiversion! {
    /// `row *= s`.
    pub fn scale_inplace(row: &mut [f32], s: f32) {
        for v in row.iter_mut() {
            *v *= s;
        }
    }
}

multiversion! {
    /// Softmax down each column of the row-major `[rows, cols]` block `x`, of the values
    /// divided by `divisor`: `exp(x/d - max) / Σ` per column, the sum accumulated in f32 row by
    /// row. For softmaxes over a short axis (an image position's handful of tokens) laid out
    /// so the long axis is contiguous: 64 columns at a time, all vector lanes busy.
    pub fn softmax_columns(x: &mut [f32], cols: usize, divisor: f32) {
        const W: usize = 64;
        let rows = x.len() / cols.max(1);
        for c0 in (0..cols).step_by(W) {
            let w = W.min(cols - c0);
            let mut max = [f32::NEG_INFINITY; W];
            for r in 0..rows {
                let row = &mut x[r * cols + c0..][..w];
                for (m, v) in max.iter_mut().zip(row.iter_mut()) {
                    *v /= divisor;
                    *m = m.max(*v);
                }
            }
            let mut sum = [0f32; W];
            for r in 0..rows {
                let row = &mut x[r * cols + c0..][..w];
                for ((s, m), v) in sum.iter_mut().zip(&max).zip(row.iter_mut()) {
                    *v = exp_f32(*v - m);
                    *s += *v;
                }
            }
            let mut inv = [0f32; W];
            for (i, s) in inv.iter_mut().zip(&sum) {
                *i = 1.0 / s;
            }
            for r in 0..rows {
                let row = &mut x[r * cols + c0..][..w];
                for (v, i) in row.iter_mut().zip(&inv) {
                    *v *= i;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The level is the one `SEGATTN_SIMD` asks for (when the CPU has it): run by
    /// [`every_simd_level_passes_the_kernel_tests`] in a process per level.
    #[test]
    fn level_is_the_one_asked_for() {
        if let Some(asked) = std::env::var(SIMD_ENV)
            .ok()
            .and_then(|v| SimdLevel::from_name(&v))
        {
            assert_eq!(level(), asked.min(detected()));
        }
    }

    /// Runs the model's kernel tests (these SIMD kernels, the ops and the attention kernels
    /// that call them) again in one process per SIMD level this CPU has, so every variant is
    /// exercised: on an AVX-512 machine, all three.
    #[test]
    fn every_simd_level_passes_the_kernel_tests() {
        if std::env::var_os(SIMD_ENV).is_some() {
            return; // a child run
        }
        let exe = std::env::current_exe().expect("the test binary");
        for lvl in SimdLevel::ALL.into_iter().filter(|&l| l <= detected()) {
            let out = std::process::Command::new(&exe)
                .args([
                    "model::",
                    "--skip",
                    "every_simd_level",
                    "--test-threads",
                    "2",
                ])
                .env(SIMD_ENV, lvl.name())
                .output()
                .expect("the test binary runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "kernel tests at {}: {stdout}{}",
                lvl.name(),
                String::from_utf8_lossy(&out.stderr)
            );
            let passed: usize = stdout
                .lines()
                .find_map(|l| l.strip_prefix("test result: ok. "))
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(passed >= 20, "{} kernel tests at {}", passed, lvl.name());
            eprintln!("{passed} kernel tests passed at {}", lvl.name());
        }
        if detected() < SimdLevel::Avx512 {
            eprintln!("this CPU has no AVX-512: that variant is not exercised here");
        }
    }

    #[test]
    fn dot_and_axpy_match_scalar_loops() {
        for n in [0usize, 1, 7, 16, 33, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - exact).abs() < 1e-4, "n={n}");
            let mut y = b.clone();
            axpy(0.5, &a, &mut y);
            for i in 0..n {
                assert_eq!(y[i], b[i] + 0.5 * a[i]);
            }
        }
    }

    #[test]
    fn exp_and_softmax_are_accurate() {
        for i in -900_000..=880_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (exp_f32(x), (f64::from(x)).exp());
            if x > -87.0 {
                assert!(
                    ((f64::from(got) - want) / want).abs() < 3e-7,
                    "exp({x}) = {got}"
                );
            }
        }
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        for n in -127..=128 {
            let want = f32::from_bits(((n + 127) as u32) << 23);
            assert_eq!(pow2i(n as f32).to_bits(), want.to_bits(), "2^{n}");
        }
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
        row[3] = f32::NEG_INFINITY;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let denom: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
        let want: Vec<f64> = row
            .iter()
            .map(|&v| f64::from(v - max).exp() / denom)
            .collect();
        softmax_inplace(&mut row);
        assert_eq!(row[3], 0.0);
        for (g, w) in row.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() < 1e-7, "{g} vs {w}");
        }
    }

    #[test]
    fn softmax_columns_is_the_row_softmax_transposed() {
        let (rows, cols) = (7, 70);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37) % 23) as f32 * 0.9 - 9.0)
            .collect();
        let mut got = x.clone();
        softmax_columns(&mut got, cols, 4.0);
        for c in 0..cols {
            let mut col: Vec<f32> = (0..rows).map(|r| x[r * cols + c] / 4.0).collect();
            softmax_inplace(&mut col);
            for r in 0..rows {
                assert!((got[r * cols + c] - col[r]).abs() < 1e-7, "[{r},{c}]");
            }
        }
    }

    #[test]
    fn gelu_tanh_matches_the_f64_formula() {
        let mut x: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.01).collect();
        x.extend([-100.0, 100.0, 1e-6, -1e-6, 0.0]);
        let want: Vec<f64> = x
            .iter()
            .map(|&v| {
                let v = f64::from(v);
                let u = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
                0.5 * v * (1.0 + u.tanh())
            })
            .collect();
        gelu_tanh_inplace(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!(
                (f64::from(*g) - w).abs() <= 2e-6 * w.abs().max(1.0),
                "{g} vs {w}"
            );
        }
    }

    #[test]
    fn gelu_inplace_matches_the_scalar_formula() {
        let mut x: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let want: Vec<f32> = x
            .iter()
            .map(|&v| {
                let e = libm::erf(f64::from(v) * std::f64::consts::FRAC_1_SQRT_2);
                (f64::from(v) * 0.5 * (1.0 + e)) as f32
            })
            .collect();
        gelu_inplace(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!((g - w).abs() < 2e-6, "{g} vs {w}");
        }
    }
}
