//! What the Segment view exports: the chosen mask as a grey PNG or a cut-out PNG with alpha,
//! and the image's objects (or only the chosen mask) as COCO instances JSON, YOLO segmentation
//! labels with their `data.yaml`, or LabelMe JSON ([`crate::annotate`]). Written atomically, on
//! a job (a 12-megapixel PNG takes a good part of a second to encode).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use super::{Notify, SegmentSettings, SegmentState};
use crate::annotate::{AnnotatedImage, CocoShape, Labeled};
use crate::types::{ExportNotice, Mask, Problem, Rgb8};
use crate::ui::i18n::Lang;
use crate::ui::problems::{error_text, problem_text, written_text};
use crate::viz::mask::{cutout, save_mask_png};

/// Which file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// The chosen mask, 8-bit grey, 255 inside.
    MaskPng,
    /// The image's pixels inside the chosen mask, transparent elsewhere.
    CutoutPng,
    /// COCO instances JSON (RLE or polygons, as the settings say).
    Coco,
    /// YOLO segmentation labels, `data.yaml` beside them.
    Yolo,
    /// LabelMe JSON.
    LabelMe,
}

impl ExportKind {
    /// Every export, in button order.
    pub const ALL: [ExportKind; 5] = [
        Self::MaskPng,
        Self::CutoutPng,
        Self::Coco,
        Self::Yolo,
        Self::LabelMe,
    ];

    /// The button's label, in the language of `ui`.
    pub fn label(self, ui: &egui::Ui) -> String {
        match self {
            Self::MaskPng => crate::tr!(ui, "seg-export-mask"),
            Self::CutoutPng => crate::tr!(ui, "seg-export-cutout"),
            Self::Coco => crate::tr!(ui, "seg-export-coco"),
            Self::Yolo => crate::tr!(ui, "seg-export-yolo"),
            Self::LabelMe => crate::tr!(ui, "seg-export-labelme"),
        }
    }

    /// The suggested file name for an image named `stem`.
    pub fn file_name(self, stem: &str) -> String {
        match self {
            Self::MaskPng => format!("{stem}-mask.png"),
            Self::CutoutPng => format!("{stem}-cutout.png"),
            Self::Coco => format!("{stem}-coco.json"),
            Self::Yolo => format!("{stem}.txt"),
            Self::LabelMe => format!("{stem}.json"),
        }
    }
}

/// The settings an export follows.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// The labels in their order (category ids and class indices follow it).
    pub labels: Vec<String>,
    /// How objects go to COCO.
    pub coco_shape: CocoShape,
    /// Polygon simplification in pixels.
    pub tolerance: f32,
    /// Every object (and the chosen mask), else only the chosen mask.
    pub all: bool,
}

impl ExportOptions {
    /// The options `settings` hold.
    pub fn of(settings: &SegmentSettings) -> Self {
        Self {
            labels: settings.labels.clone(),
            coco_shape: settings.coco_shape,
            tolerance: settings.simplify_px,
            all: settings.export_all,
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
    /// The chosen candidate mask and the label it would get, if any.
    pub current: Option<(String, Arc<Mask>)>,
    /// The kept objects: label and mask.
    pub objects: Vec<(String, Arc<Mask>)>,
    /// The settings.
    pub options: ExportOptions,
}

impl ExportData {
    /// The labelled masks an annotation export holds.
    fn annotated(&self) -> Result<AnnotatedImage<'_>> {
        let mut objects: Vec<Labeled> = Vec::new();
        if self.options.all {
            objects.extend(
                self.objects
                    .iter()
                    .map(|(label, mask)| Labeled { label, mask }),
            );
        }
        if let Some((label, mask)) = &self.current {
            objects.push(Labeled { label, mask });
        }
        if objects.is_empty() {
            // "nothing to export: no object (keep or select a mask first)"
            return Err(crate::annotate::ExportError::Nothing(Vec::new()).into());
        }
        Ok(AnnotatedImage {
            file_name: self.image_name.clone(),
            width: self.image.width,
            height: self.image.height,
            objects,
        })
    }
}

/// Writes `kind` of `data` to `path`; returns the notices (holes lost, objects left out).
pub fn write(kind: ExportKind, data: &ExportData, path: &Path) -> Result<Vec<ExportNotice>> {
    let no_mask = || anyhow::Error::new(NoMask);
    let current = || data.current.as_ref().map(|(_, m)| m).ok_or_else(no_mask);
    let o = &data.options;
    match kind {
        ExportKind::MaskPng => save_mask_png(current()?, path).map(|()| Vec::new()),
        ExportKind::CutoutPng => cutout(&data.image, current()?)
            .save_png(path)
            .map(|()| Vec::new()),
        ExportKind::Coco => crate::annotate::write_coco(
            path,
            &[data.annotated()?],
            &o.labels,
            o.coco_shape,
            o.tolerance,
        ),
        ExportKind::Yolo => {
            crate::annotate::write_yolo(path, &data.annotated()?, &o.labels, o.tolerance)
        }
        ExportKind::LabelMe => {
            crate::annotate::write_labelme(path, &data.annotated()?, o.tolerance)
        }
    }
}

/// The outcome of an export job: what the status bar says, or why it failed.
pub type ExportResult = Result<String, String>;

/// An export of the current mask with none chosen.
#[derive(Debug, thiserror::Error)]
#[error("no mask to export: click on the image first")]
pub struct NoMask;

/// An export with no image open.
#[derive(Debug, thiserror::Error)]
#[error("no image is open")]
pub struct NoImage;

/// `err` in `lang`, with this module's own errors translated too.
pub fn export_error_text(lang: Lang, err: &anyhow::Error) -> String {
    if err.is::<NoMask>() {
        problem_text(lang, &Problem::NoMaskToExport)
    } else if err.is::<NoImage>() {
        problem_text(lang, &Problem::NoImage)
    } else {
        error_text(lang, err)
    }
}

/// A path for the dialog's suggestion.
pub fn suggested(kind: ExportKind, image_name: &str) -> PathBuf {
    let stem = Path::new(image_name)
        .file_stem()
        .map_or("mask".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(kind.file_name(&stem))
}

impl SegmentState {
    /// What the exports read, shared (no pixel copied).
    fn export_data(&self, settings: &SegmentSettings) -> anyhow::Result<ExportData> {
        let img = self.image.as_ref().ok_or(NoImage)?;
        Ok(ExportData {
            image_name: img.name.clone(),
            image: img.rgb.clone(),
            current: self
                .selected_mask()
                .map(|m| (settings.label.clone(), m.clone())),
            objects: self
                .objects
                .iter()
                .map(|o| (o.label.clone(), o.mask.clone()))
                .collect(),
            options: ExportOptions::of(settings),
        })
    }

    /// Writes `kind` to `path` now, as `settings` say (tests and scripts; the buttons use
    /// [`Self::start_export`]); returns the notices.
    pub fn export(
        &self,
        kind: ExportKind,
        settings: &SegmentSettings,
        path: &Path,
    ) -> anyhow::Result<Vec<ExportNotice>> {
        write(kind, &self.export_data(settings)?, path)
    }

    /// Writes `kind` to `path` on a job; the status bar reports the outcome in `lang`.
    pub fn start_export(
        &mut self,
        kind: ExportKind,
        settings: &SegmentSettings,
        path: PathBuf,
        lang: Lang,
        notify: Notify,
    ) {
        match self.export_data(settings) {
            Ok(data) => self.exports.submit(move |_| {
                write(kind, &data, &path)
                    .map(|notices| written_text(lang, &path.display().to_string(), &notices))
                    .map_err(|e| export_error_text(lang, &e))
            }),
            Err(e) => notify(Err(export_error_text(lang, &e))),
        }
    }

    /// True while an export is being written.
    pub fn exporting(&self) -> bool {
        self.exports.is_pending()
    }
}
