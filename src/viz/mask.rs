//! Mask encodings: grey PNG, cut-out with alpha, and COCO run-length encoding (the annotation
//! files are [`crate::annotate`]'s).

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Raster;
use crate::types::{Mask, Rgb8};

/// Distinct colours for objects (Tableau 10).
pub const OBJECT_COLORS: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Writes a mask as an 8-bit grey PNG (255 inside, 0 outside).
pub fn save_mask_png(mask: &Mask, path: &Path) -> Result<()> {
    let data: Vec<u8> = mask
        .data
        .iter()
        .map(|&v| if v != 0 { 255 } else { 0 })
        .collect();
    let img = image::GrayImage::from_raw(mask.width as u32, mask.height as u32, data)
        .context("mask buffer has the wrong size")?;
    crate::files::write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// The image's pixels inside the mask, transparent elsewhere.
pub fn cutout(image: &Rgb8, mask: &Mask) -> Raster {
    let mut rgba = Vec::with_capacity(image.width * image.height * 4);
    for (px, &m) in image.data.chunks_exact(3).zip(&mask.data) {
        rgba.extend_from_slice(&[px[0], px[1], px[2], if m != 0 { 255 } else { 0 }]);
    }
    Raster {
        width: image.width,
        height: image.height,
        rgba,
    }
}

/// COCO's uncompressed run-length encoding: `size` is `[height, width]`, `counts` alternate
/// runs of 0 and 1 in column-major order, starting with a (possibly empty) run of 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CocoRle {
    /// `[height, width]`
    pub size: [usize; 2],
    /// Run lengths.
    pub counts: Vec<u32>,
}

/// Encodes a mask as COCO RLE (the one encoder, [`crate::analysis::amg::mask_to_rle`]).
pub fn coco_rle(mask: &Mask) -> CocoRle {
    let rle = crate::analysis::amg::mask_to_rle(&mask.data, (mask.height, mask.width));
    CocoRle {
        size: rle.size,
        counts: rle.counts,
    }
}

/// Tight bounding box `[x, y, width, height]` of a mask (COCO `bbox`), zeros when empty.
pub fn bbox(mask: &Mask) -> [usize; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..mask.height {
        for x in 0..mask.width {
            if mask.data[y * mask.width + x] != 0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    if x0 == usize::MAX {
        [0; 4]
    } else {
        [x0, y0, x1 - x0, y1 - y0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rle_is_column_major_and_starts_with_zeros() {
        // 2 rows × 3 columns:
        // 0 1 1
        // 1 1 0
        let m = Mask {
            width: 3,
            height: 2,
            data: vec![0, 1, 1, 1, 1, 0],
        };
        let rle = coco_rle(&m);
        assert_eq!(rle.size, [2, 3]);
        // Column-major: 0,1 | 1,1 | 1,0 → runs 1×0, 4×1, 1×0.
        assert_eq!(rle.counts, vec![1, 4, 1]);
        assert_eq!(rle.counts.iter().sum::<u32>(), 6);
        let full = Mask {
            width: 2,
            height: 1,
            data: vec![1, 1],
        };
        assert_eq!(coco_rle(&full).counts, vec![0, 2]);
        assert_eq!(bbox(&m), [0, 0, 3, 2]);
    }

    #[test]
    fn cutout_keeps_the_pixels_inside() {
        let img = Rgb8 {
            width: 2,
            height: 1,
            data: vec![10, 20, 30, 40, 50, 60],
        };
        let m = Mask {
            width: 2,
            height: 1,
            data: vec![0, 1],
        };
        assert_eq!(cutout(&img, &m).rgba, vec![10, 20, 30, 0, 40, 50, 60, 255]);
    }
}
