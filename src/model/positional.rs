//! Positional encodings as plain matrices: sinusoidal (Vaswani et al. 2017), rotary (RoPE, Su
//! et al. 2021) angles and their relative-distance decay, the cosine similarity between
//! positions of any table, and SAM's random-Fourier point encoding over an image grid.

use crate::model::sam::prompt_encoder::RandomFourierEncoding;

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

/// Cosine similarity between every pair of rows: `rows × rows`.
pub fn cosine_similarity(m: &Matrix) -> Matrix {
    let norms: Vec<f64> = (0..m.rows)
        .map(|r| {
            m.row(r)
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let mut data = vec![0f32; m.rows * m.rows];
    for a in 0..m.rows {
        for b in a..m.rows {
            let dot: f64 = m
                .row(a)
                .iter()
                .zip(m.row(b))
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            let denom = norms[a] * norms[b];
            let v = if denom > 0.0 {
                (dot / denom) as f32
            } else {
                0.0
            };
            data[a * m.rows + b] = v;
            data[b * m.rows + a] = v;
        }
    }
    Matrix {
        rows: m.rows,
        cols: m.rows,
        data,
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
