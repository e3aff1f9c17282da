//! Annotations as labelling and training tools read them: masks as polygons ([`polygon`]),
//! COCO / YOLO / LabelMe files ([`formats`]), written atomically beside what is there, mask
//! editing ([`edit`]) and a folder's annotation file ([`folder`]).

pub mod edit;
pub mod folder;
pub mod formats;
pub mod polygon;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::types::problem::ExportNotice;

pub use formats::{AnnotatedImage, CocoShape, Export, ExportError, Labeled};

/// Writes COCO instances JSON for `images` to `path` (see [`formats::coco`]); returns the
/// notices.
pub fn write_coco(
    path: &Path,
    images: &[AnnotatedImage],
    known: &[String],
    shape: CocoShape,
    tolerance: f32,
) -> Result<Vec<ExportNotice>> {
    let out = formats::coco(images, known, shape, tolerance)?;
    crate::files::write_bytes_atomic(path, serde_json::to_string_pretty(&out.content)?.as_bytes())?;
    Ok(out.notices)
}

/// The `data.yaml` that goes with YOLO labels written to `txt`: in its folder.
pub fn data_yaml_path(txt: &Path) -> PathBuf {
    txt.with_file_name("data.yaml")
}

/// Writes one image's YOLO segmentation labels to `txt` and the `data.yaml` beside it. An
/// existing `data.yaml` keeps its class indices (new labels are appended), so the labels of a
/// whole folder agree; one that cannot be read is an error, never overwritten. Returns the
/// notices.
pub fn write_yolo(
    txt: &Path,
    image: &AnnotatedImage,
    known: &[String],
    tolerance: f32,
) -> Result<Vec<ExportNotice>> {
    let yaml = data_yaml_path(txt);
    let existing = match std::fs::read_to_string(&yaml) {
        Ok(text) => formats::parse_data_yaml_names(&text)
            .with_context(|| format!("{} is kept as it is", yaml.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", yaml.display())),
    };
    let cats = formats::categories(
        &formats::categories(&existing, known.iter().map(String::as_str)),
        image.objects.iter().map(|o| o.label),
    );
    let out = formats::yolo(image, &cats, tolerance)?;
    crate::files::write_bytes_atomic(txt, out.content.as_bytes())?;
    if cats != existing {
        crate::files::write_bytes_atomic(&yaml, formats::data_yaml(&cats).as_bytes())?;
    }
    Ok(out.notices)
}

/// Writes one image's LabelMe JSON to `path`; returns the notices.
pub fn write_labelme(
    path: &Path,
    image: &AnnotatedImage,
    tolerance: f32,
) -> Result<Vec<ExportNotice>> {
    let out = formats::labelme(image, tolerance)?;
    crate::files::write_bytes_atomic(path, serde_json::to_string_pretty(&out.content)?.as_bytes())?;
    Ok(out.notices)
}
