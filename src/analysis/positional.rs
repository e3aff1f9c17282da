//! Positional encodings as plain matrices: sinusoidal (Vaswani et al. 2017), rotary (RoPE, Su
//! et al. 2021) angles and their relative-distance decay, the cosine similarity between
//! positions of any table, and SAM's random-Fourier point encoding (the math the prompt
//! encoder uses for points, and its values over an image grid).

/// A row-major `rows × cols` matrix of f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Rows (positions).
    pub rows: usize,
    /// Columns (dimensions).
    pub cols: usize,
    /// `rows * cols` values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// The top-left `rows × cols` block (clamped to the matrix).
    pub fn top_left(&self, rows: usize, cols: usize) -> Matrix {
        let (rows, cols) = (rows.min(self.rows), cols.min(self.cols));
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            data.extend_from_slice(&self.row(r)[..cols]);
        }
        Matrix { rows, cols, data }
    }

    /// Column `c` as a vector (a curve over positions).
    pub fn column(&self, c: usize) -> Vec<f32> {
        (0..self.rows)
            .map(|r| self.data[r * self.cols + c])
            .collect()
    }
}

/// Sinusoidal encoding: `PE[p, 2i] = sin(p / base^(2i/d))`, `PE[p, 2i+1] = cos(p / base^(2i/d))`
/// for `positions × dims` (base 10000 in the paper). Computed in f64, stored as f32.
pub fn sinusoidal(positions: usize, dims: usize, base: f64) -> Matrix {
    let mut data = vec![0f32; positions * dims];
    for p in 0..positions {
        for c in 0..dims {
            let i = (c / 2) as f64;
            let angle = p as f64 / base.powf(2.0 * i / dims as f64);
            data[p * dims + c] = if c % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Matrix {
        rows: positions,
        cols: dims,
        data,
    }
}

/// RoPE rotation angles `θ[p, i] = p · base^(−2i/head_dim)` for each of the `head_dim / 2`
/// dimension pairs.
pub fn rope_angles(positions: usize, head_dim: usize, base: f64) -> Matrix {
    let pairs = head_dim / 2;
    let mut data = vec![0f32; positions * pairs];
    for p in 0..positions {
        for i in 0..pairs {
            data[p * pairs + i] = (p as f64 * base.powf(-2.0 * i as f64 / head_dim as f64)) as f32;
        }
    }
    Matrix {
        rows: positions,
        cols: pairs,
        data,
    }
}

/// `cos θ[p, i]` of [`rope_angles`]: the rotation each dimension pair applies at each position.
pub fn rope_cos(positions: usize, head_dim: usize, base: f64) -> Matrix {
    let a = rope_angles(positions, head_dim, base);
    Matrix {
        data: a.data.iter().map(|t| t.cos()).collect(),
        ..a
    }
}

/// Relative-distance decay of RoPE: for constant query and key vectors (all ones) the rotated
/// dot product depends only on the distance `Δ`: `q·k(Δ) = 2 Σ_i cos(Δ·θ_i)`, divided by
/// `head_dim` so `Δ = 0` gives 1. Returns one value per `Δ = 0..max_distance`.
pub fn rope_decay(max_distance: usize, head_dim: usize, base: f64) -> Vec<f32> {
    let pairs = head_dim / 2;
    (0..max_distance)
        .map(|d| {
            let s: f64 = (0..pairs)
                .map(|i| (d as f64 * base.powf(-2.0 * i as f64 / head_dim as f64)).cos())
                .sum();
            (2.0 * s / head_dim as f64) as f32
        })
        .collect()
}

/// Cosine similarity between every pair of rows: `rows × rows`, exactly symmetric, rows of
/// zeros similar to nothing (0).
///
/// PERF: the rows are normalised (in f64) and multiplied as one GEMM (`gemm` crate, one
/// thread): SAM's 4096 grid cells × 256 features take about a tenth of a second instead of
/// seconds of dot products.
pub fn cosine_similarity(m: &Matrix) -> Matrix {
    let (n, d) = (m.rows, m.cols);
    let mut unit = vec![0f32; n * d];
    for (r, out) in unit.chunks_exact_mut(d.max(1)).enumerate().take(n) {
        let row = m.row(r);
        let norm = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for (o, &v) in out.iter_mut().zip(row) {
                *o = (f64::from(v) / norm) as f32;
            }
        }
    }
    let mut data = super::product(&unit, &unit, (n, n, d), true);
    for a in 0..n {
        for b in a + 1..n {
            data[b * n + a] = data[a * n + b];
        }
    }
    Matrix {
        rows: n,
        cols: n,
        data,
    }
}

/// SAM's `PositionEmbeddingRandom`: maps `[0,1]²` coordinates to 256 sin/cos features.
#[derive(Debug, Clone)]
pub struct RandomFourierEncoding {
    /// `[2, 128]`
    gaussian: Vec<f32>,
}

impl RandomFourierEncoding {
    /// From `positional_encoding_gaussian_matrix` `[2, F]`, row-major.
    pub fn new(gaussian: Vec<f32>) -> Self {
        Self { gaussian }
    }

    /// Number of frequencies F (output has 2F features).
    pub fn num_freqs(&self) -> usize {
        self.gaussian.len() / 2
    }

    /// Encodes a point with coordinates normalised to `[0, 1]`: `[sin(2π·p), cos(2π·p)]` with
    /// `p = (2c − 1) · G`.
    pub fn encode(&self, x01: f32, y01: f32) -> Vec<f32> {
        let f = self.num_freqs();
        let (cx, cy) = (2.0 * x01 - 1.0, 2.0 * y01 - 1.0);
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        let mut out = vec![0f32; 2 * f];
        for j in 0..f {
            let p = two_pi * (cx * self.gaussian[j] + cy * self.gaussian[f + j]);
            out[j] = p.sin();
            out[f + j] = p.cos();
        }
        out
    }

    /// The encoding of every cell centre of an `h × w` grid, channel-major `[2F, h, w]`.
    pub fn grid(&self, h: usize, w: usize) -> Vec<f32> {
        let c = 2 * self.num_freqs();
        let mut out = vec![0f32; c * h * w];
        for y in 0..h {
            for x in 0..w {
                let e = self.encode((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
                for (ch, v) in e.into_iter().enumerate() {
                    out[ch * h * w + y * w + x] = v;
                }
            }
        }
        out
    }
}

/// SAM's random-Fourier encoding of every cell centre of an `h × w` grid: `(h·w) × 256`
/// (rows in raster order), as the prompt encoder sees points.
pub fn sam_point_encoding(pe: &RandomFourierEncoding, h: usize, w: usize) -> Matrix {
    let c = 2 * pe.num_freqs();
    let chw = pe.grid(h, w);
    let mut data = vec![0f32; h * w * c];
    for ch in 0..c {
        for p in 0..h * w {
            data[p * c + ch] = chw[ch * h * w + p];
        }
    }
    Matrix {
        rows: h * w,
        cols: c,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoidal_equals_the_formula() {
        let m = sinusoidal(50, 16, 10000.0);
        for p in 0..50 {
            for i in 0..8 {
                let a = p as f64 / 10000f64.powf(2.0 * i as f64 / 16.0);
                assert!((f64::from(m.data[p * 16 + 2 * i]) - a.sin()).abs() < 1e-6);
                assert!((f64::from(m.data[p * 16 + 2 * i + 1]) - a.cos()).abs() < 1e-6);
            }
        }
        assert_eq!(m.row(0)[0], 0.0);
        assert_eq!(m.row(0)[1], 1.0);
    }

    #[test]
    fn rope_angles_and_decay() {
        let a = rope_angles(4, 8, 10000.0);
        assert_eq!(a.cols, 4);
        assert_eq!(a.data[3 * 4], 3.0); // θ_0 = 1
        assert!((a.data[4 + 1] - 0.1).abs() < 1e-7); // 10000^(-2/8) = 0.1
        let d = rope_decay(64, 64, 10000.0);
        assert!((d[0] - 1.0).abs() < 1e-6);
        assert!(
            d[1] < d[0] && d[8] < d[1],
            "decays with distance: {:?}",
            &d[..9]
        );
    }

    #[test]
    fn sam_point_encoding_is_sin_cos_of_projected_cell_centres() {
        let g = vec![1.0, 0.5, -2.0, 0.25]; // [2, 2]: 2 frequencies
        let pe = RandomFourierEncoding::new(g.clone());
        let m = sam_point_encoding(&pe, 2, 3);
        assert_eq!((m.rows, m.cols), (6, 4));
        // Cell (y=1, x=2): centre (2.5/3, 1.5/2) → 2c − 1.
        let (cx, cy) = (2.0 * (2.5f32 / 3.0) - 1.0, 2.0 * 0.75f32 - 1.0);
        let tau = (2.0 * std::f64::consts::PI) as f32;
        let p0 = tau * (cx * g[0] + cy * g[2]);
        let p1 = tau * (cx * g[1] + cy * g[3]);
        let row = m.row(5);
        assert!((row[0] - p0.sin()).abs() < 1e-6 && (row[1] - p1.sin()).abs() < 1e-6);
        assert!((row[2] - p0.cos()).abs() < 1e-6 && (row[3] - p1.cos()).abs() < 1e-6);
    }

    /// The GEMM form equals the f64 dot products of the rows, zero rows included.
    #[test]
    fn cosine_similarity_matches_f64_dot_products() {
        let mut m = sinusoidal(70, 24, 100.0);
        m.data[5 * 24..6 * 24].fill(0.0);
        let s = cosine_similarity(&m);
        for a in 0..70 {
            for b in 0..70 {
                let dot = |x: usize, y: usize| -> f64 {
                    m.row(x)
                        .iter()
                        .zip(m.row(y))
                        .map(|(&p, &q)| f64::from(p) * f64::from(q))
                        .sum()
                };
                let denom = (dot(a, a) * dot(b, b)).sqrt();
                let want = if denom > 0.0 { dot(a, b) / denom } else { 0.0 };
                assert!(
                    (f64::from(s.data[a * 70 + b]) - want).abs() < 1e-6,
                    "[{a},{b}]"
                );
            }
        }
    }

    #[test]
    fn cosine_similarity_of_sinusoids_is_one_on_the_diagonal_and_symmetric() {
        let s = cosine_similarity(&sinusoidal(20, 32, 10000.0));
        for i in 0..20 {
            assert!((s.data[i * 20 + i] - 1.0).abs() < 1e-6);
            for j in 0..20 {
                assert_eq!(s.data[i * 20 + j], s.data[j * 20 + i]);
            }
        }
        assert!(s.data[1] > s.data[10], "nearby positions are more alike");
    }
}
