//! Images and masks as plain pixels.

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

/// A binary mask at the original image size (`1` inside).
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width` values, 1 inside, 0 outside.
    pub data: Vec<u8>,
}

impl Mask {
    /// Pixels inside.
    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }
}
