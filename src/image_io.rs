//! Image decoding for SAM: any common format, 8/16-bit, grey, alpha, palette or CMYK, converted
//! to 8-bit RGB with its EXIF orientation applied; huge images are refused from the header,
//! before any pixel is allocated.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::model::sam::Rgb8;

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
    /// The pixel data is corrupt or truncated.
    #[error("cannot decode image ({reason}): {path}")]
    Decode {
        /// What the decoder said.
        reason: String,
        /// The file.
        path: PathBuf,
    },
}

/// Decodes `path` to 8-bit RGB.
pub fn load_rgb8(path: impl AsRef<Path>) -> Result<Rgb8, ImageLoadError> {
    let path = path.as_ref().to_path_buf();
    let io = |source| ImageLoadError::Io {
        source,
        path: path.clone(),
    };
    let decode = |e: image::ImageError| ImageLoadError::Decode {
        reason: e.to_string(),
        path: path.clone(),
    };
    let open = || -> Result<ImageReader<BufReader<std::fs::File>>, ImageLoadError> {
        let file = std::fs::File::open(&path).map_err(io)?;
        let reader = ImageReader::new(BufReader::new(file))
            .with_guessed_format()
            .map_err(io)?;
        if reader.format().is_none() {
            return Err(ImageLoadError::UnknownFormat { path: path.clone() });
        }
        Ok(reader)
    };
    let (width, height) = open()?.into_dimensions().map_err(decode)?;
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
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8); // RGBA, 16 bits per channel
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode)?;
    let orientation = decoder.orientation().map_err(decode)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode)?;
    img.apply_orientation(orientation);
    Ok(dynamic_to_rgb8(img))
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
