//! Colormaps, heatmap rasters and mask encodings shared by the CLI and the app (no egui, no
//! candle): a picture in the app equals the one `segattn` exports.

pub mod mask;

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Perceptual colormaps (from `colorous`, ports of d3-scale-chromatic / matplotlib).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Colormap {
    /// Sequential, perceptually uniform (matplotlib's default).
    #[default]
    Viridis,
    /// Sequential, dark to light through magenta.
    Magma,
    /// Sequential, dark to light through red.
    Inferno,
    /// Sequential, colour-blind friendly.
    Cividis,
    /// Diverging red–blue for signed values (0 is white).
    RdBu,
}

impl Colormap {
    /// Every colormap, for pickers.
    pub const ALL: [Colormap; 5] = [
        Colormap::Viridis,
        Colormap::Magma,
        Colormap::Inferno,
        Colormap::Cividis,
        Colormap::RdBu,
    ];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Viridis => "viridis",
            Self::Magma => "magma",
            Self::Inferno => "inferno",
            Self::Cividis => "cividis",
            Self::RdBu => "RdBu (diverging)",
        }
    }

    /// True for maps meant for signed data centred on 0.
    pub fn is_diverging(self) -> bool {
        matches!(self, Self::RdBu)
    }

    /// Colour of `t` in `[0, 1]` (clamped; NaN maps to 0) as opaque RGBA.
    pub fn rgba(self, t: f32) -> [u8; 4] {
        let t = if t.is_nan() {
            0.0
        } else {
            f64::from(t.clamp(0.0, 1.0))
        };
        let g = match self {
            Self::Viridis => colorous::VIRIDIS,
            Self::Magma => colorous::MAGMA,
            Self::Inferno => colorous::INFERNO,
            Self::Cividis => colorous::CIVIDIS,
            Self::RdBu => colorous::RED_BLUE,
        };
        let c = g.eval_continuous(t);
        [c.r, c.g, c.b, 255]
    }
}

/// How values map to `[0, 1]` before colouring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRange {
    /// From the data's minimum to its maximum.
    Auto,
    /// A fixed `[lo, hi]` (e.g. `[0, 1]` for probabilities).
    Fixed(f32, f32),
    /// `[−m, m]` with `m` the largest magnitude (for diverging maps).
    Symmetric,
}

impl ValueRange {
    /// The `(lo, hi)` this range gives for `values` (ignoring non-finite values).
    pub fn resolve(self, values: &[f32]) -> (f32, f32) {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        match self {
            Self::Fixed(lo, hi) => (lo, hi),
            Self::Auto => finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            }),
            Self::Symmetric => {
                let m = finite.fold(0f32, |m, v| m.max(v.abs()));
                (-m, m)
            }
        }
    }
}

/// An RGBA image, row-major, unpremultiplied.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

/// Colour of cells that are masked (e.g. the future tokens of a causal model).
pub const MASKED_RGBA: [u8; 4] = [128, 128, 128, 96];

/// Colours a `rows × cols` matrix, one pixel per cell; `masked(r, c)` cells get
/// [`MASKED_RGBA`].
pub fn heatmap(
    values: &[f32],
    rows: usize,
    cols: usize,
    range: ValueRange,
    cmap: Colormap,
    masked: impl Fn(usize, usize) -> bool,
) -> Raster {
    let (lo, hi) = range.resolve(values);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut rgba = Vec::with_capacity(rows * cols * 4);
    for r in 0..rows {
        for c in 0..cols {
            let px = if masked(r, c) {
                MASKED_RGBA
            } else {
                cmap.rgba((values[r * cols + c] - lo) / span)
            };
            rgba.extend_from_slice(&px);
        }
    }
    Raster {
        width: cols,
        height: rows,
        rgba,
    }
}

impl Raster {
    /// Nearest-neighbour enlargement by an integer factor (for crisp exported cells).
    pub fn scaled(&self, factor: usize) -> Raster {
        let f = factor.max(1);
        let (w, h) = (self.width * f, self.height * f);
        let mut rgba = Vec::with_capacity(w * h * 4);
        for y in 0..h {
            for x in 0..w {
                let i = ((y / f) * self.width + x / f) * 4;
                rgba.extend_from_slice(&self.rgba[i..i + 4]);
            }
        }
        Raster {
            width: w,
            height: h,
            rgba,
        }
    }

    /// Writes the raster as a PNG.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let img =
            image::RgbaImage::from_raw(self.width as u32, self.height as u32, self.rgba.clone())
                .context("raster has the wrong size")?;
        crate::files::write_atomic(path, |w| {
            img.write_to(w, image::ImageFormat::Png)
                .with_context(|| format!("cannot write {}", path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormaps_span_their_gradients() {
        assert_eq!(Colormap::Viridis.rgba(0.0), [68, 1, 84, 255]);
        assert_eq!(Colormap::Viridis.rgba(1.0), [253, 231, 37, 255]);
        assert_eq!(
            Colormap::Viridis.rgba(f32::NAN),
            Colormap::Viridis.rgba(0.0)
        );
        let mid = Colormap::RdBu.rgba(0.5);
        assert!(
            mid[..3].iter().all(|&c| c > 230),
            "diverging centre is light: {mid:?}"
        );
    }

    #[test]
    fn heatmap_maps_range_and_masks() {
        let r = heatmap(
            &[0.0, 1.0, 0.5, 0.25],
            2,
            2,
            ValueRange::Fixed(0.0, 1.0),
            Colormap::Magma,
            |r, c| c > r,
        );
        assert_eq!((r.width, r.height), (2, 2));
        assert_eq!(&r.rgba[0..4], &Colormap::Magma.rgba(0.0));
        assert_eq!(&r.rgba[4..8], &MASKED_RGBA);
        assert_eq!(&r.rgba[12..16], &Colormap::Magma.rgba(0.25));
        assert_eq!(ValueRange::Symmetric.resolve(&[-2.0, 1.0]), (-2.0, 2.0));
        assert_eq!(r.scaled(3).width, 6);
    }
}
