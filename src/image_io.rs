//! Image decoding for SAM: any common format, 8/16-bit, grey, alpha, palette or CMYK, converted
//! to 8-bit RGB with its EXIF orientation applied; huge images are refused from the header,
//! before any pixel is allocated. Also Pillow's exact bilinear resize of 8-bit images, which
//! SAM's preprocessing and the app's display downscale share.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use rayon::prelude::*;

use crate::types::Rgb8;

/// File extensions of the images segattn opens (lower case): the image dialog's filter and
/// what a folder lists.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"];

/// The largest image accepted, in pixels (250 megapixels; a 50-megapixel photo is well inside).
pub const MAX_PIXELS: u64 = 250_000_000;

/// Why an image could not be opened. Every variant names the file, last.
#[derive(Debug, thiserror::Error)]
pub enum ImageLoadError {
    /// The file could not be read.
    #[error("cannot read image ({source}): {path}")]
    Io {
        /// Underlying error.
        source: std::io::Error,
        /// The file.
        path: PathBuf,
    },
    /// Not an image format we decode.
    #[error("not a supported image (PNG, JPEG, GIF, BMP, TIFF, WebP): {path}")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The image has no pixels.
    #[error("the image is empty ({width}x{height} pixels): {path}")]
    Empty {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The file.
        path: PathBuf,
    },
    /// The header claims more pixels than [`MAX_PIXELS`].
    #[error(
        "the image is too large: {width}x{height} is {} megapixels, over the {} megapixel limit: {path}",
        (*width as u64 * *height as u64) / 1_000_000,
        MAX_PIXELS / 1_000_000
    )]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The file.
        path: PathBuf,
    },
    /// The file ends before the image does (a JPEG cut short; PNG reports it as a decode
    /// error).
    #[error("the image file is truncated: its data ends before the image does: {path}")]
    Truncated {
        /// The file.
        path: PathBuf,
    },
    /// The pixel data is corrupt or truncated.
    #[error("cannot decode image ({reason}): {path}")]
    Decode {
        /// What the decoder said.
        reason: String,
        /// The file.
        path: PathBuf,
    },
}

/// Decodes the file at `path` to 8-bit RGB.
pub fn load_rgb8(path: impl AsRef<Path>) -> Result<Rgb8, ImageLoadError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ImageLoadError::Io {
        source,
        path: path.to_path_buf(),
    })?;
    decode_rgb8(&bytes, path)
}

/// Decodes an encoded image held in memory to 8-bit RGB; `name` stands for its file in
/// messages. Checks the size from the header before decoding, and refuses a JPEG whose data
/// ends before its end-of-image marker (Pillow's "image file is truncated"; the decoder would
/// fill the missing rows with grey).
pub fn decode_rgb8(bytes: &[u8], name: impl AsRef<Path>) -> Result<Rgb8, ImageLoadError> {
    decode_dynamic(bytes, name).map(dynamic_to_rgb8)
}

/// Reads a binary mask image (ours or another tool's): any format and depth, converted to
/// grey; pixels above 127 are inside. Same checks as [`load_rgb8`].
pub fn load_mask(path: impl AsRef<Path>) -> Result<crate::types::Mask, ImageLoadError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ImageLoadError::Io {
        source,
        path: path.to_path_buf(),
    })?;
    let grey = decode_dynamic(&bytes, path)?.into_luma8();
    Ok(crate::types::Mask {
        width: grey.width() as usize,
        height: grey.height() as usize,
        data: grey
            .into_raw()
            .into_iter()
            .map(|v| u8::from(v > 127))
            .collect(),
    })
}

/// [`decode_rgb8`] before the conversion to RGB.
fn decode_dynamic(bytes: &[u8], name: impl AsRef<Path>) -> Result<DynamicImage, ImageLoadError> {
    let path = name.as_ref().to_path_buf();
    let decode = |e: image::ImageError| ImageLoadError::Decode {
        reason: e.to_string(),
        path: path.clone(),
    };
    let open = || -> Result<ImageReader<Cursor<&[u8]>>, ImageLoadError> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|source| ImageLoadError::Io {
                source,
                path: path.clone(),
            })?;
        if reader.format().is_none() {
            return Err(ImageLoadError::UnknownFormat { path: path.clone() });
        }
        Ok(reader)
    };
    let reader = open()?;
    let format = reader.format();
    let (width, height) = reader.into_dimensions().map_err(decode)?;
    if width == 0 || height == 0 {
        return Err(ImageLoadError::Empty {
            width,
            height,
            path,
        });
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageLoadError::TooLarge {
            width,
            height,
            path,
        });
    }
    if format == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(ImageLoadError::Truncated { path });
    }
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8); // RGBA, 16 bits per channel
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode)?;
    let orientation = decoder.orientation().map_err(decode)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// True when a JPEG stream reaches its end-of-image marker: the marker segments are walked
/// (so an embedded EXIF thumbnail's own end marker does not count) and each scan's
/// entropy-coded data is skipped up to the next marker.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOI: u8 = 0xD8;
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != SOI {
        return false;
    }
    let mut pos = 2;
    loop {
        // A marker: 0xFF (any number of fill bytes), then its code.
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            return false;
        };
        pos += 1;
        match marker {
            EOI => return true,
            // Standalone markers: restart intervals, TEM.
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return false;
        };
        if len < 2 || pos + len > bytes.len() {
            return false;
        }
        pos += len;
        if marker == SOS {
            // Entropy-coded data: ends at the first 0xFF not followed by 0x00 (a stuffed byte)
            // or a restart marker.
            loop {
                let Some(next) = bytes[pos..].iter().position(|&b| b == 0xFF) else {
                    return false;
                };
                pos += next;
                match bytes.get(pos + 1) {
                    None => return false,
                    Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Converts any decoded image to 8-bit RGB (alpha dropped, grey expanded, 16-bit rounded).
pub fn dynamic_to_rgb8(img: DynamicImage) -> Rgb8 {
    let rgb = img.into_rgb8();
    Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rocket() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/rocket.jpg")).expect("jpeg")
    }

    /// An end marker inside an embedded segment (an EXIF thumbnail's) does not make a cut
    /// JPEG complete: the walk skips segments by their lengths.
    #[test]
    fn jpeg_completeness_skips_embedded_end_markers() {
        let jpeg = rocket();
        assert!(jpeg_is_complete(&jpeg));
        // SOI, then an APP1 segment holding a "thumbnail" with its own SOI … EOI.
        let thumbnail = [0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
        let mut with_app1 = jpeg[..2].to_vec();
        with_app1.extend_from_slice(&[0xFF, 0xE1]);
        with_app1.extend_from_slice(&((thumbnail.len() + 2) as u16).to_be_bytes());
        with_app1.extend_from_slice(&thumbnail);
        with_app1.extend_from_slice(&jpeg[2..]);
        assert!(jpeg_is_complete(&with_app1));
        assert!(!jpeg_is_complete(&with_app1[..with_app1.len() / 2]));
        assert!(!jpeg_is_complete(&with_app1[..with_app1.len() - 2]));
        assert!(!jpeg_is_complete(&[0xFF, 0xD8]));
        assert!(!jpeg_is_complete(b"not a jpeg"));
        let e = decode_rgb8(&with_app1[..with_app1.len() - 2], "cut.jpg").expect_err("refused");
        assert!(matches!(e, ImageLoadError::Truncated { .. }), "{e}");
        let img = decode_rgb8(&with_app1, "whole.jpg").expect("decodes");
        assert_eq!((img.width, img.height), (640, 427));
    }
}
