//! What the Segment view exports: the chosen mask as a grey PNG, a cut-out PNG with alpha, and
//! every object (and the current mask) as COCO RLE JSON. Written atomically, on a job (a
//! 12-megapixel PNG takes a good part of a second to encode).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};

use crate::types::{Mask, Rgb8};
use crate::viz::mask::{coco_json, cutout, save_mask_png};

/// Which file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// The chosen mask, 8-bit grey, 255 inside.
    MaskPng,
    /// The image's pixels inside the chosen mask, transparent elsewhere.
    CutoutPng,
    /// Every object and the chosen mask as COCO run-length encoded annotations.
    CocoJson,
}

impl ExportKind {
    /// Every export, in button order.
    pub const ALL: [ExportKind; 3] = [Self::MaskPng, Self::CutoutPng, Self::CocoJson];

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::MaskPng => "Mask PNG…",
            Self::CutoutPng => "Cut-out PNG…",
            Self::CocoJson => "COCO JSON…",
        }
    }

    /// The suggested file name for an image named `stem`.
    pub fn file_name(self, stem: &str) -> String {
        match self {
            Self::MaskPng => format!("{stem}-mask.png"),
            Self::CutoutPng => format!("{stem}-cutout.png"),
            Self::CocoJson => format!("{stem}-coco.json"),
        }
    }
}

/// Everything an export reads, shared with the view (no pixel is copied).
#[derive(Clone)]
pub struct ExportData {
    /// The image's file name.
    pub image_name: String,
    /// The image.
    pub image: Arc<Rgb8>,
    /// The chosen candidate mask, if any.
    pub current: Option<Arc<Mask>>,
    /// The kept objects: name and mask.
    pub objects: Vec<(String, Arc<Mask>)>,
}

/// Writes `kind` of `data` to `path`.
pub fn write(kind: ExportKind, data: &ExportData, path: &Path) -> Result<()> {
    let no_mask = || anyhow::anyhow!("no mask to export: click on the image first");
    match kind {
        ExportKind::MaskPng => save_mask_png(data.current.as_ref().ok_or_else(no_mask)?, path),
        ExportKind::CutoutPng => {
            let m = data.current.as_ref().ok_or_else(no_mask)?;
            cutout(&data.image, m).save_png(path)
        }
        ExportKind::CocoJson => {
            let mut masks: Vec<(&str, &Mask)> = data
                .objects
                .iter()
                .map(|(name, m)| (name.as_str(), m.as_ref()))
                .collect();
            if let Some(m) = &data.current {
                masks.push(("current", m));
            }
            if masks.is_empty() {
                bail!(no_mask());
            }
            let json = coco_json(&data.image_name, &masks);
            crate::files::write_bytes_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())
        }
    }
}

/// The outcome of an export job: the file written, or why not.
pub type ExportResult = Result<PathBuf, String>;
