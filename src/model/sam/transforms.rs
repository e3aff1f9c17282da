//! SAM's official pre- and post-processing (`segment_anything/utils/transforms.py`,
//! `Sam.preprocess`, `Sam.postprocess_masks`), bit-compatible with the reference.
//!
//! The reference resizes with torchvision on a PIL image, i.e. Pillow's bilinear *convolution*
//! on 8-bit pixels (antialiased when shrinking, fixed-point coefficients, horizontal pass then
//! vertical pass, each rounded to u8). [`resize_rgb8_pillow`] reproduces it exactly; a plain
//! bilinear resize moves the logits by about 1%.

use rayon::prelude::*;

use super::config::IMG_SIZE;
use crate::model::ops::{resize_bilinear_window, resize_bilinear_window_map};

/// Official pixel mean (RGB, 0..255), `Sam.pixel_mean`.
pub const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// Official pixel std (RGB, 0..255), `Sam.pixel_std`.
pub const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

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

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS` in `Resample.c`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output index: first source index and fixed-point weights (`precompute_coeffs` +
/// `normalize_coeffs_8bpc` for the bilinear/triangle filter).
fn pillow_coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear filter support 1.0
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize; // C cast truncates
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut k: Vec<f64> = (0..n)
                .map(|x| {
                    let t = ((x + xmin) as f64 - center + 0.5) * ss;
                    (1.0 - t.abs()).max(0.0)
                })
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                for v in &mut k {
                    *v /= ww;
                }
            }
            let one = f64::from(1u32 << PRECISION_BITS);
            let fixed = k
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes like Pillow's `Image.resize((w, h), BILINEAR)` on an RGB image.
pub fn resize_rgb8_pillow(src: &Rgb8, out_w: usize, out_h: usize) -> Rgb8 {
    let half = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (only when the width changes), then vertical, as Pillow does.
    let horiz = if out_w != src.width {
        let cx = pillow_coeffs(src.width, out_w);
        let mut tmp = vec![0u8; src.height * out_w * 3];
        tmp.par_chunks_mut(out_w * 3)
            .zip(src.data.par_chunks(src.width * 3))
            .for_each(|(out, row)| {
                for (xx, (xmin, k)) in cx.iter().enumerate() {
                    for c in 0..3 {
                        let mut ss = half;
                        for (i, &w) in k.iter().enumerate() {
                            ss += i64::from(row[(xmin + i) * 3 + c]) * i64::from(w);
                        }
                        out[xx * 3 + c] = clip8(ss);
                    }
                }
            });
        Rgb8 {
            width: out_w,
            height: src.height,
            data: tmp,
        }
    } else {
        src.clone()
    };
    if out_h == src.height {
        return horiz;
    }
    let cy = pillow_coeffs(src.height, out_h);
    let stride = out_w * 3;
    let mut data = vec![0u8; out_h * stride];
    data.par_chunks_mut(stride)
        .zip(cy.par_iter())
        .for_each(|(out, (ymin, k))| {
            for (x, o) in out.iter_mut().enumerate() {
                let mut ss = half;
                for (i, &w) in k.iter().enumerate() {
                    ss += i64::from(horiz.data[(ymin + i) * stride + x]) * i64::from(w);
                }
                *o = clip8(ss);
            }
        });
    Rgb8 {
        width: out_w,
        height: out_h,
        data,
    }
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

/// The binary mask of [`upscale_logits`] (1 where the logit is > 0), thresholded as the last
/// resize computes each pixel: the same logits, without a full-size f32 image in between
/// (48 MB per mask for a 12-megapixel photo).
pub fn upscale_mask(
    low_res: &[f32],
    low_res_hw: (usize, usize),
    input_hw: (usize, usize),
    original_hw: (usize, usize),
) -> Vec<u8> {
    upscale_map(low_res, low_res_hw, (input_hw, original_hw), |v| {
        u8::from(v > 0.0)
    })
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

    /// The thresholded upscale is exactly the threshold of the upscaled logits, for a
    /// downscaled and an upscaled original.
    #[test]
    fn upscale_mask_is_the_thresholded_logits() {
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
            let mask = upscale_mask(&low, (64, 64), input, original);
            assert_eq!(mask.len(), logits.len());
            assert!(mask.contains(&1) && mask.contains(&0));
            for (m, l) in mask.iter().zip(&logits) {
                assert_eq!(*m, u8::from(*l > 0.0));
            }
        }
    }
}
