//! A whole folder's annotations written at once, in the formats labelling and training tools
//! read: one COCO instances file, YOLO label files with their `data.yaml`, or LabelMe JSON
//! beside each image.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{json, Value};

use super::FolderAnnotations;
use crate::types::problem::{ExportNotice, FolderWritten};
use crate::types::Mask;

/// Where a whole folder's annotations go.
#[derive(Debug, Clone, PartialEq)]
pub enum FolderExport {
    /// One COCO instances file, its objects shaped as `shape` says.
    Coco {
        /// The file.
        path: PathBuf,
        /// RLE or polygons.
        shape: crate::annotate::CocoShape,
    },
    /// YOLO segmentation: `<stem>.txt` per image and `data.yaml`, in `dir`.
    Yolo {
        /// The labels' folder.
        dir: PathBuf,
    },
    /// LabelMe: `<stem>.json` beside each image, as LabelMe keeps them.
    LabelMe,
}

impl FolderAnnotations {
    /// Writes every image's objects (those of `images_dir`'s images in natural order; others
    /// the file still holds are included too) as `to` says, categories `labels` first;
    /// polygons simplified to `tolerance`. Each image is decoded and written in turn (one
    /// image's masks in memory at a time); every file atomically. Returns what was written
    /// and the notices (objects left out, holes lost); nothing at all to write is an
    /// [`ExportError::Nothing`](crate::annotate::ExportError::Nothing) with the notices.
    pub fn export(
        &self,
        images_dir: &Path,
        to: &FolderExport,
        labels: &[String],
        tolerance: f32,
    ) -> Result<(FolderWritten, Vec<ExportNotice>)> {
        use crate::annotate::formats;
        let names = self.written_names();
        let cats = formats::categories(
            labels,
            self.images
                .values()
                .flat_map(|r| r.objects.iter().map(|o| o.label.as_str())),
        );
        let mut notices = Vec::new();
        let (mut images, mut annotations) = (Vec::new(), Vec::new());
        let mut files = 0usize;
        for name in names {
            let r = &self.images[name];
            let masks: Vec<(String, Mask)> = r
                .objects
                .iter()
                .map(|o| (o.label.clone(), o.mask()))
                .collect();
            let image = crate::annotate::AnnotatedImage {
                file_name: name.clone(),
                width: r.width,
                height: r.height,
                objects: masks
                    .iter()
                    .map(|(label, mask)| crate::annotate::Labeled { label, mask })
                    .collect(),
            };
            let stem = Path::new(name)
                .file_stem()
                .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
            match to {
                FolderExport::Coco { shape, .. } => {
                    let id = images.len() + 1;
                    images.push(
                        json!({"id": id, "file_name": name, "width": r.width, "height": r.height}),
                    );
                    if masks.is_empty() {
                        continue; // a done image without objects: a negative example
                    }
                    match formats::coco(std::slice::from_ref(&image), &cats, *shape, tolerance) {
                        Ok(out) => {
                            notices.extend(out.notices);
                            if let Some(list) = out.content["annotations"].as_array() {
                                for a in list {
                                    let mut a = a.clone();
                                    a["id"] = json!(annotations.len() + 1);
                                    a["image_id"] = json!(id);
                                    annotations.push(a);
                                }
                            }
                        }
                        Err(e) => notices.extend(left_out(e)),
                    }
                }
                FolderExport::Yolo { dir } => {
                    if masks.is_empty() {
                        continue;
                    }
                    match formats::yolo(&image, &cats, tolerance) {
                        Ok(out) => {
                            notices.extend(out.notices);
                            crate::files::write_bytes_atomic(
                                &dir.join(format!("{stem}.txt")),
                                out.content.as_bytes(),
                            )?;
                            files += 1;
                        }
                        Err(e) => notices.extend(left_out(e)),
                    }
                }
                FolderExport::LabelMe => {
                    if masks.is_empty() {
                        continue;
                    }
                    match formats::labelme(&image, tolerance) {
                        Ok(out) => {
                            notices.extend(out.notices);
                            let text = serde_json::to_string_pretty(&out.content)?;
                            crate::files::write_bytes_atomic(
                                &images_dir.join(format!("{stem}.json")),
                                text.as_bytes(),
                            )?;
                            files += 1;
                        }
                        Err(e) => notices.extend(left_out(e)),
                    }
                }
            }
        }
        let nothing =
            |notices: Vec<ExportNotice>| crate::annotate::ExportError::Nothing(notices).into();
        let written = match to {
            FolderExport::Coco { path, .. } => {
                if annotations.is_empty() {
                    return Err(nothing(notices));
                }
                let categories: Vec<Value> = cats
                    .iter()
                    .enumerate()
                    .map(|(i, name)| json!({"id": i + 1, "name": name, "supercategory": ""}))
                    .collect();
                let file =
                    json!({"images": images, "annotations": annotations, "categories": categories});
                crate::files::write_bytes_atomic(
                    path,
                    serde_json::to_string_pretty(&file)?.as_bytes(),
                )?;
                FolderWritten::Coco {
                    path: path.display().to_string(),
                    objects: annotations.len(),
                    images: images.len(),
                }
            }
            FolderExport::Yolo { dir } => {
                if files == 0 {
                    return Err(nothing(notices));
                }
                let yaml = dir.join("data.yaml");
                crate::files::write_bytes_atomic(&yaml, formats::data_yaml(&cats).as_bytes())?;
                FolderWritten::Yolo {
                    dir: dir.display().to_string(),
                    files,
                }
            }
            FolderExport::LabelMe => {
                if files == 0 {
                    return Err(nothing(notices));
                }
                FolderWritten::LabelMe {
                    dir: images_dir.display().to_string(),
                    files,
                }
            }
        };
        Ok((written, notices))
    }
}

/// The objects an image's export left out: every one of them, since it wrote nothing.
fn left_out(e: crate::annotate::ExportError) -> Vec<ExportNotice> {
    match e {
        crate::annotate::ExportError::Nothing(notices) => notices,
        // Only `data.yaml` gives the other error, and the folder export writes its own.
        crate::annotate::ExportError::DataYaml(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::mask;
    use super::super::{ImageRecord, StoredObject};
    use super::*;

    #[test]
    fn a_whole_folder_exports_to_coco_yolo_and_labelme() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut a = FolderAnnotations::default();
        let square = |x0: usize| {
            let on: Vec<(usize, usize)> = (x0..x0 + 4)
                .flat_map(|x| (2..6).map(move |y| (x, y)))
                .collect();
            mask(12, 8, &on)
        };
        for (name, objects) in [
            ("a10.png", vec![StoredObject::from_mask("dog", &square(6))]),
            (
                "a2.png",
                vec![
                    StoredObject::from_mask("cat", &square(1)),
                    StoredObject::from_mask("dog", &square(7)),
                ],
            ),
            ("empty.png", vec![]),
        ] {
            a.images.insert(
                name.into(),
                ImageRecord {
                    width: 12,
                    height: 8,
                    done: true,
                    objects,
                },
            );
        }
        let labels = vec!["cat".to_string()];
        let coco = dir.path().join("all.json");
        let (written, notes) = a
            .export(
                dir.path(),
                &FolderExport::Coco {
                    path: coco.clone(),
                    shape: crate::annotate::CocoShape::Polygons,
                },
                &labels,
                0.0,
            )
            .expect("coco");
        assert!(notes.is_empty(), "{notes:?}");
        assert!(
            written
                .to_string()
                .ends_with("all.json: 3 objects on 3 images"),
            "{written}"
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&coco).expect("file")).expect("json");
        assert_eq!(v["images"][0]["file_name"], "a2.png");
        assert_eq!(
            v["images"][2]["file_name"], "empty.png",
            "a done image without objects"
        );
        let ids: Vec<_> = v["annotations"]
            .as_array()
            .expect("list")
            .iter()
            .map(|a| {
                (
                    a["id"].clone(),
                    a["image_id"].clone(),
                    a["category_id"].clone(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                (json!(1), json!(1), json!(1)),
                (json!(2), json!(1), json!(2)),
                (json!(3), json!(2), json!(2))
            ]
        );
        assert_eq!(
            v["annotations"][0]["segmentation"][0]
                .as_array()
                .map(Vec::len),
            Some(8),
            "a square's 4 corners"
        );

        let labels_dir = dir.path().join("labels");
        std::fs::create_dir(&labels_dir).expect("dir");
        a.export(
            dir.path(),
            &FolderExport::Yolo {
                dir: labels_dir.clone(),
            },
            &labels,
            0.0,
        )
        .expect("yolo");
        let txt = std::fs::read_to_string(labels_dir.join("a2.txt")).expect("a2.txt");
        assert!(
            txt.starts_with("0 ") && txt.lines().nth(1).is_some_and(|l| l.starts_with("1 ")),
            "{txt}"
        );
        assert!(labels_dir.join("a10.txt").is_file() && !labels_dir.join("empty.txt").exists());
        let yaml = std::fs::read_to_string(labels_dir.join("data.yaml")).expect("yaml");
        assert!(
            yaml.contains("  0: cat") && yaml.contains("  1: dog"),
            "{yaml}"
        );

        a.export(dir.path(), &FolderExport::LabelMe, &labels, 0.0)
            .expect("labelme");
        let lm: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("a10.json")).expect("json"))
                .expect("json");
        assert_eq!(lm["imagePath"], "a10.png");
        assert_eq!(lm["shapes"][0]["label"], "dog");

        let nothing =
            FolderAnnotations::default().export(dir.path(), &FolderExport::LabelMe, &labels, 0.0);
        assert!(nothing.is_err());
    }
}
