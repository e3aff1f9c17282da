//! SAM's official pre- and post-processing (`segment_anything/utils/transforms.py`,
//! `Sam.preprocess`, `Sam.postprocess_masks`), bit-compatible with the reference.
//!
//! The reference resizes with torchvision on a PIL image, i.e. Pillow's bilinear *convolution*
//! on 8-bit pixels (antialiased when shrinking, fixed-point coefficients, horizontal pass then
//! vertical pass, each rounded to u8). [`resize_rgb8_pillow`] (in [`crate::image_io`], which
//! the app's display downscale uses too) reproduces it exactly; a plain bilinear resize moves
//! the logits by about 1%.

use rayon::prelude::*;

use super::config::IMG_SIZE;
pub use crate::image_io::resize_rgb8_pillow;
use crate::model::ops::{resize_bilinear_window, resize_bilinear_window_map};
use crate::types::Rgb8;

/// Official pixel mean (RGB, 0..255), `Sam.pixel_mean`.
pub const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// Official pixel std (RGB, 0..255), `Sam.pixel_std`.
pub const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// `ResizeLongestSide.get_preprocess_shape`: `(h, w)` scaled so the longest side is `target`.
pub fn preprocess_shape(h: usize, w: usize, target: usize) -> (usize, usize) {
    let scale = target as f64 / h.max(w) as f64;
    let nh = (h as f64 * scale + 0.5) as usize;
    let nw = (w as f64 * scale + 0.5) as usize;
    (nh.max(1), nw.max(1))
}

/// Maps original-image pixel coordinates into the resized input frame (`apply_coords`).
pub fn apply_coords((x, y): (f64, f64), (oh, ow): (usize, usize)) -> (f32, f32) {
    let (nh, nw) = preprocess_shape(oh, ow, IMG_SIZE);
    (
        (x * (nw as f64 / ow as f64)) as f32,
        (y * (nh as f64 / oh as f64)) as f32,
    )
}

/// [`apply_coords`] kept in f64, as the automatic mask generator's numpy code keeps it.
pub fn apply_coords_f64((x, y): (f64, f64), (oh, ow): (usize, usize)) -> [f64; 2] {
    let (nh, nw) = preprocess_shape(oh, ow, IMG_SIZE);
    [x * (nw as f64 / ow as f64), y * (nh as f64 / oh as f64)]
}

/// `ResizeLongestSide(1024).apply_image`.
pub fn resize_longest_side(img: &Rgb8) -> Rgb8 {
    let (h, w) = preprocess_shape(img.height, img.width, IMG_SIZE);
    resize_rgb8_pillow(img, w, h)
}

/// `Sam.preprocess`: normalise with the official mean/std and zero-pad bottom-right to
/// 1024 × 1024. Returns CHW f32 `[3, 1024, 1024]`.
pub fn normalize_and_pad(resized: &Rgb8) -> Vec<f32> {
    let s = IMG_SIZE;
    let mut out = vec![0f32; 3 * s * s];
    for (c, plane) in out.chunks_mut(s * s).enumerate() {
        plane
            .par_chunks_mut(s)
            .take(resized.height)
            .enumerate()
            .for_each(|(y, row)| {
                let src = &resized.data[y * resized.width * 3..][..resized.width * 3];
                for (d, px) in row.iter_mut().zip(src.chunks_exact(3)) {
                    *d = (f32::from(px[c]) - PIXEL_MEAN[c]) / PIXEL_STD[c];
                }
            });
    }
    out
}

/// `Sam.postprocess_masks` for one `256 × 256` low-res logit map: upscale to 1024, crop to the
/// resized image `input_hw`, resize to `original_hw`. Returns `original_h × original_w` logits.
pub fn upscale_logits(
    low_res: &[f32],
    low_res_hw: (usize, usize),
    input_hw: (usize, usize),
    original_hw: (usize, usize),
) -> Vec<f32> {
    upscale_map(low_res, low_res_hw, (input_hw, original_hw), |v| v)
}

/// Bit of [`upscale_classes`]: the logit lies above `threshold − offset`.
pub const ABOVE_LOW: u8 = 1;
/// Bit of [`upscale_classes`]: the logit lies above `threshold` (the mask).
pub const ABOVE_THRESHOLD: u8 = 2;
/// Bit of [`upscale_classes`]: the logit lies above `threshold + offset`.
pub const ABOVE_HIGH: u8 = 4;

/// [`upscale_logits`] reduced to three bits per pixel ([`ABOVE_LOW`], [`ABOVE_THRESHOLD`],
/// [`ABOVE_HIGH`]): the mask and the two masks of the stability score in one pass, without
/// the full-size logits.
pub fn upscale_classes(
    low_res: &[f32],
    low_res_hw: (usize, usize),
    input_hw: (usize, usize),
    original_hw: (usize, usize),
    threshold: f32,
    offset: f32,
) -> Vec<u8> {
    let (lo, hi) = (threshold - offset, threshold + offset);
    upscale_map(low_res, low_res_hw, (input_hw, original_hw), |v| {
        let bit = |above: bool, b: u8| if above { b } else { 0 };
        bit(v > lo, ABOVE_LOW) | bit(v > threshold, ABOVE_THRESHOLD) | bit(v > hi, ABOVE_HIGH)
    })
}

/// The official `calculate_stability_score` of classes from [`upscale_classes`]: the pixels
/// above `threshold + offset` over those above `threshold − offset`.
pub fn stability_of_classes(classes: &[u8]) -> f32 {
    let (mut high, mut low) = (0u64, 0u64);
    for &c in classes {
        high += u64::from(c & ABOVE_HIGH != 0);
        low += u64::from(c & ABOVE_LOW != 0);
    }
    crate::analysis::amg::stability_score(high, low)
}

/// [`upscale_logits`] with `f` applied to each final value.
fn upscale_map<T: Copy + Default + Send>(
    low_res: &[f32],
    low_res_hw: (usize, usize),
    (input_hw, original_hw): ((usize, usize), (usize, usize)),
    f: impl Fn(f32) -> T + Sync,
) -> Vec<T> {
    let padded = resize_bilinear_window(low_res, low_res_hw, (IMG_SIZE, IMG_SIZE), input_hw);
    resize_bilinear_window_map(&padded, input_hw, original_hw, original_hw, f)
}

/// SAM 2's ImageNet mean (RGB, 0..1), `SAM2Transforms.mean`.
pub const SAM2_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// SAM 2's ImageNet std (RGB, 0..1), `SAM2Transforms.std`.
pub const SAM2_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Source range and weights of each output sample of an antialiased linear resize from `n_in`
/// to `n_out` samples: PyTorch's `_upsample_bilinear2d_aa` (what torchvision's
/// `Resize(antialias=True)` runs on a float tensor), in f32 as it computes them. Shrinking
/// widens the triangle filter to the scale; enlarging keeps it one sample wide, which is plain
/// bilinear with clamped edges.
fn aa_linear_taps(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f32 / n_out as f32;
    let support = if scale >= 1.0 { scale } else { 1.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..n_out)
        .map(|i| {
            let center = scale * (i as f32 + 0.5);
            // `as i64` truncates toward zero, as the C++ cast does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(n_in as i64).max(0) as usize;
            let mut w: Vec<f32> = (xmin..xmax.max(xmin))
                .map(|j| {
                    let x = (j as f32 - center + 0.5) * invscale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            let total: f32 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

/// `SAM2Transforms` on an image: `ToTensor` (0..1), `Resize((1024, 1024))` with antialiasing
/// (no aspect-preserving resize, no padding), ImageNet mean/std. Returns CHW f32
/// `[3, 1024, 1024]`. The resize runs along x first, then along y, as PyTorch's separable
/// kernel does.
pub fn sam2_input(img: &Rgb8) -> Vec<f32> {
    let s = IMG_SIZE;
    let (w, h) = (img.width, img.height);
    let xs = aa_linear_taps(w, s);
    let ys = aa_linear_taps(h, s);
    let mut out = vec![0f32; 3 * s * s];
    for (c, plane) in out.chunks_mut(s * s).enumerate() {
        // Horizontal pass: [h, 1024] of 0..1 values.
        let mut rows = vec![0f32; h * s];
        rows.par_chunks_mut(s).enumerate().for_each(|(y, row)| {
            let src = &img.data[y * w * 3..][..w * 3];
            for (d, (x0, wx)) in row.iter_mut().zip(&xs) {
                let mut acc = 0f32;
                for (k, wt) in wx.iter().enumerate() {
                    acc += f32::from(src[(x0 + k) * 3 + c]) / 255.0 * wt;
                }
                *d = acc;
            }
        });
        plane
            .par_chunks_mut(s)
            .zip(ys.par_iter())
            .for_each(|(row, (y0, wy))| {
                for (x, d) in row.iter_mut().enumerate() {
                    let mut acc = 0f32;
                    for (k, wt) in wy.iter().enumerate() {
                        acc += rows[(y0 + k) * s + x] * wt;
                    }
                    *d = (acc - SAM2_MEAN[c]) / SAM2_STD[c];
                }
            });
    }
    out
}

/// Maps original-image pixel coordinates into SAM 2's 1024 × 1024 frame
/// (`SAM2Transforms.transform_coords` with `normalize=True`): `x / W · 1024`, `y / H · 1024`,
/// in f32 as the official code.
pub fn sam2_coords((x, y): (f32, f32), (oh, ow): (usize, usize)) -> (f32, f32) {
    let s = IMG_SIZE as f32;
    ((x / ow as f32) * s, (y / oh as f32) * s)
}

/// SAM 2's `postprocess_masks` for one low-res logit map, reduced to the classes of
/// [`upscale_classes`]: one bilinear resize straight to `original_hw` (the input was not
/// padded, so nothing is cropped).
pub fn sam2_upscale_classes(
    low_res: &[f32],
    low_res_hw: (usize, usize),
    original_hw: (usize, usize),
    threshold: f32,
    offset: f32,
) -> Vec<u8> {
    let (lo, hi) = (threshold - offset, threshold + offset);
    resize_bilinear_window_map(low_res, low_res_hw, original_hw, original_hw, |v| {
        let bit = |above: bool, b: u8| if above { b } else { 0 };
        bit(v > lo, ABOVE_LOW) | bit(v > threshold, ABOVE_THRESHOLD) | bit(v > hi, ABOVE_HIGH)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The antialiased taps sum to one, enlarging reads at most two samples, and shrinking by
    /// 4 averages the four samples under each output with a triangle.
    #[test]
    fn antialiased_taps_follow_pytorch() {
        for (n_in, n_out) in [(300, 1024), (451, 1024), (4000, 1024), (1024, 1024)] {
            for (_, w) in aa_linear_taps(n_in, n_out) {
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                if n_in <= n_out {
                    assert!(w.len() <= 3);
                }
            }
        }
        let taps = aa_linear_taps(4096, 1024);
        let (x0, w) = &taps[10];
        assert_eq!(*x0, 38);
        assert_eq!(w.len(), 8);
        let same = aa_linear_taps(1024, 1024);
        assert!(same.iter().enumerate().all(|(i, (x0, w))| {
            w.iter()
                .enumerate()
                .all(|(k, &v)| if x0 + k == i { v == 1.0 } else { v == 0.0 })
        }));
    }

    /// The upscaled classes are exactly the thresholds of the upscaled logits, for a
    /// downscaled and an upscaled original.
    #[test]
    fn upscale_classes_are_the_thresholded_logits() {
        let low: Vec<f32> = (0..64 * 64)
            .map(|i| ((i * 7919) % 101) as f32 * 0.05 - 2.5)
            .collect();
        for original in [(300, 451), (1500, 2000)] {
            let scale = IMG_SIZE as f32 / original.0.max(original.1) as f32;
            let input = (
                (original.0 as f32 * scale).round() as usize,
                (original.1 as f32 * scale).round() as usize,
            );
            let logits = upscale_logits(&low, (64, 64), input, original);
            let classes = upscale_classes(&low, (64, 64), input, original, 0.0, 1.0);
            assert_eq!(classes.len(), logits.len());
            let mask: Vec<u8> = classes
                .iter()
                .map(|c| u8::from(c & ABOVE_THRESHOLD != 0))
                .collect();
            assert!(mask.contains(&1) && mask.contains(&0));
            for (c, l) in classes.iter().zip(&logits) {
                assert_eq!(c & ABOVE_THRESHOLD != 0, *l > 0.0);
                assert_eq!(c & ABOVE_LOW != 0, *l > -1.0);
                assert_eq!(c & ABOVE_HIGH != 0, *l > 1.0);
            }
        }
    }
}
