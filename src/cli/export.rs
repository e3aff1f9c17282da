//! `segattn export`, and the annotation flags `segment` shares with it: a mask as COCO
//! instances JSON (RLE or polygons), YOLO segmentation labels with their `data.yaml`, and
//! LabelMe JSON.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::annotate::{AnnotatedImage, CocoShape, Labeled};
use crate::types::Mask;

/// The annotation files to write for a mask (`segment` and `export`).
#[derive(Debug, Clone, clap::Args)]
pub struct AnnotationArgs {
    /// Write COCO instances JSON (segmentation as uncompressed RLE, exact; see --polygons).
    #[arg(long, value_name = "FILE.json")]
    pub coco: Option<PathBuf>,
    /// COCO segmentation as polygons (COCO polygons cannot carry holes: they are lost, and
    /// said on stderr).
    #[arg(long)]
    pub polygons: bool,
    /// Polygon simplification in pixels: no border pixel is farther from the polygon (0 keeps
    /// every corner).
    #[arg(
        long,
        value_name = "PX",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub simplify: f32,
    /// Write YOLO segmentation labels (`class x y x y …`, normalised; one line per part), and
    /// `data.yaml` with the class names beside them (an existing one keeps its indices).
    #[arg(long, value_name = "FILE.txt")]
    pub yolo: Option<PathBuf>,
    /// Write LabelMe JSON (one polygon per part).
    #[arg(long, value_name = "FILE.json")]
    pub labelme: Option<PathBuf>,
    /// The object's label (category).
    #[arg(long, value_name = "NAME", default_value = "object")]
    pub label: String,
}

impl AnnotationArgs {
    /// True when some annotation file is asked for.
    pub fn any(&self) -> bool {
        self.coco.is_some() || self.yolo.is_some() || self.labelme.is_some()
    }

    /// Checks the values before any model runs.
    pub fn validate(&self) -> Result<()> {
        if !self.simplify.is_finite() || self.simplify < 0.0 {
            bail!(
                "--simplify must be a number of pixels ≥ 0, not {}",
                self.simplify
            );
        }
        if self.label.trim().is_empty() {
            bail!("--label must not be empty");
        }
        if self.polygons && self.coco.is_none() {
            bail!("--polygons is about the COCO file: give --coco FILE.json too");
        }
        Ok(())
    }

    /// Writes every asked-for file for `mask` of the image called `file_name`; notices go to
    /// stderr. Returns the files written.
    pub fn write(&self, mask: &Mask, file_name: &str) -> Result<Vec<PathBuf>> {
        if mask.area() == 0 {
            bail!("the mask is empty: no annotation written");
        }
        let image = AnnotatedImage {
            file_name: file_name.to_owned(),
            width: mask.width,
            height: mask.height,
            objects: vec![Labeled {
                label: &self.label,
                mask,
            }],
        };
        let mut written = Vec::new();
        let mut notices = Vec::new();
        if let Some(path) = &self.coco {
            let shape = if self.polygons {
                CocoShape::Polygons
            } else {
                CocoShape::Rle
            };
            notices.extend(crate::annotate::write_coco(
                path,
                std::slice::from_ref(&image),
                &[],
                shape,
                self.simplify,
            )?);
            written.push(path.clone());
        }
        if let Some(path) = &self.yolo {
            notices.extend(crate::annotate::write_yolo(
                path,
                &image,
                &[],
                self.simplify,
            )?);
            written.push(path.clone());
            written.push(crate::annotate::data_yaml_path(path));
        }
        if let Some(path) = &self.labelme {
            notices.extend(crate::annotate::write_labelme(path, &image, self.simplify)?);
            written.push(path.clone());
        }
        let mut seen = std::collections::HashSet::new();
        for n in notices.into_iter().filter(|n| seen.insert(n.clone())) {
            eprintln!("note: {n}");
        }
        Ok(written)
    }
}

/// Arguments of `segattn export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A binary mask image (8-bit grey PNG from segattn or another tool; > 127 inside).
    #[arg(long)]
    pub mask: PathBuf,
    /// The image's file name in the annotations (COCO `file_name`, LabelMe `imagePath`);
    /// by default the mask's name without a `-mask` suffix.
    #[arg(long, value_name = "NAME")]
    pub image_name: Option<String>,
    /// The files to write.
    #[command(flatten)]
    pub annotations: AnnotationArgs,
}

/// The image name a mask file stands for: `photo-mask.png` → `photo.png`.
fn image_name_of(mask: &Path) -> String {
    let name = mask
        .file_name()
        .map_or_else(|| "image.png".into(), |n| n.to_string_lossy().into_owned());
    name.replacen("-mask.", ".", 1)
}

/// Runs `segattn export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    args.annotations.validate()?;
    if !args.annotations.any() {
        bail!("nothing to write: give --coco FILE.json, --yolo FILE.txt or --labelme FILE.json");
    }
    let mask = crate::image_io::load_mask(&args.mask)?;
    let name = args
        .image_name
        .clone()
        .unwrap_or_else(|| image_name_of(&args.mask));
    for f in args.annotations.write(&mask, &name)? {
        println!("{}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_name_drops_the_mask_suffix() {
        assert_eq!(image_name_of(Path::new("a/photo-mask.png")), "photo.png");
        assert_eq!(image_name_of(Path::new("m.png")), "m.png");
    }
}
