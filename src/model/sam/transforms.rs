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

#[cfg(test)]
mod tests {
    use super::*;

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
