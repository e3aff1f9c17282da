//! A folder's annotations: every image's objects (label and RLE mask) and whether the user
//! marked it done, kept in one COCO instances file in the folder ([`ANNOTATION_FILE`]), read
//! when the folder is opened and written atomically after each change. Pure data and I/O, no UI.
//!
//! The file is plain COCO: pycocotools, CVAT, FiftyOne and Roboflow read it. Masks are stored
//! as compressed RLE (exact, holes included); an image's `segattn_done` field carries its done
//! mark (other tools ignore it). Reading also takes uncompressed RLE and polygons (another
//! tool's file), and images the folder no longer holds are kept, never dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::analysis::amg::{
    mask_to_rle, rle_area, rle_from_coco_string, rle_to_coco_string, rle_to_mask,
};
use crate::types::problem::SkippedAnnotation;
use crate::types::{Mask, Rle};

mod export;
pub use export::FolderExport;

/// The annotation file's name in the folder (Roboflow's name for a folder's COCO file).
pub const ANNOTATION_FILE: &str = "_annotations.coco.json";

/// The annotation file of folder `dir`.
pub fn annotation_path(dir: &Path) -> PathBuf {
    dir.join(ANNOTATION_FILE)
}

/// The images of folder `dir`: file names with an image extension
/// ([`crate::image_io::IMAGE_EXTENSIONS`]), hidden files left out, in natural order
/// (`img2` before `img10`).
pub fn list_images(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read the folder {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_image = Path::new(&name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|e| crate::image_io::IMAGE_EXTENSIONS.contains(&e.as_str()));
        if is_image && !name.starts_with('.') && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort_by(|a, b| natural_cmp(a, b));
    Ok(names)
}

/// Compares names as people sort them: runs of digits by value, the rest case-insensitively.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, ra), (db, rb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (ta, tb) = (ra.trim_start_matches('0'), rb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            ra.to_lowercase().cmp(&rb.to_lowercase())
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// One stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    /// Its label (category).
    pub label: String,
    /// Its mask over the whole image.
    pub rle: Arc<Rle>,
}

impl StoredObject {
    /// `mask` labelled `label`, run-length encoded.
    pub fn from_mask(label: &str, mask: &Mask) -> Self {
        Self {
            label: label.to_owned(),
            rle: Arc::new(mask_to_rle(&mask.data, (mask.height, mask.width))),
        }
    }

    /// The mask, decoded.
    pub fn mask(&self) -> Mask {
        let [height, width] = self.rle.size;
        Mask {
            width,
            height,
            data: rle_to_mask(&self.rle),
        }
    }
}

/// One image's annotations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageRecord {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The user marked it done.
    pub done: bool,
    /// Its objects.
    pub objects: Vec<StoredObject>,
}

impl ImageRecord {
    /// Whether the file needs an entry for it (objects or a done mark).
    fn worth_writing(&self) -> bool {
        self.done || !self.objects.is_empty()
    }
}

/// A folder's annotations, by image file name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FolderAnnotations {
    /// Categories in the file's order (COCO ids 1, 2, … when written).
    pub categories: Vec<String>,
    /// Each image's record.
    pub images: BTreeMap<String, ImageRecord>,
}

/// Why an annotation file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FolderFileError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON, but not COCO instances as far as needed.
    #[error("not a COCO instances file: {0}")]
    NotCoco(String),
}

fn field<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a Value, FolderFileError> {
    v.get(key)
        .ok_or_else(|| FolderFileError::NotCoco(format!("{what} has no \"{key}\"")))
}

fn as_usize(v: &Value, key: &str, what: &str) -> Result<usize, FolderFileError> {
    field(v, key, what)?
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| FolderFileError::NotCoco(format!("{what}: \"{key}\" is not a count")))
}

impl FolderAnnotations {
    /// Reads a COCO instances file. An annotation that cannot be decoded is left out and
    /// said in the notices (one line each); a file that is not COCO is an error.
    pub fn parse(bytes: &[u8]) -> Result<(Self, Vec<SkippedAnnotation>), FolderFileError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| FolderFileError::Json(e.to_string()))?;
        let mut out = Self::default();
        let mut notices = Vec::new();
        let mut category_names = BTreeMap::new();
        if let Some(cats) = v.get("categories").and_then(Value::as_array) {
            for c in cats {
                let id = field(c, "id", "a category")?.clone();
                let name = field(c, "name", "a category")?
                    .as_str()
                    .ok_or_else(|| {
                        FolderFileError::NotCoco("a category's name is not text".into())
                    })?
                    .to_owned();
                if !out.categories.contains(&name) {
                    out.categories.push(name.clone());
                }
                category_names.insert(id.to_string(), name);
            }
        }
        let images = field(&v, "images", "the file")?
            .as_array()
            .ok_or_else(|| FolderFileError::NotCoco("\"images\" is not a list".into()))?;
        let mut names_by_id = BTreeMap::new();
        for im in images {
            let name = field(im, "file_name", "an image")?
                .as_str()
                .ok_or_else(|| FolderFileError::NotCoco("a file_name is not text".into()))?;
            // Tools write paths relative to the folder or to an images/ folder: the name is
            // what the folder's listing knows.
            let name = name.rsplit(['/', '\\']).next().unwrap_or(name).to_owned();
            let record = ImageRecord {
                width: as_usize(im, "width", "an image")?,
                height: as_usize(im, "height", "an image")?,
                done: im
                    .get("segattn_done")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                objects: Vec::new(),
            };
            names_by_id.insert(field(im, "id", "an image")?.to_string(), name.clone());
            out.images.insert(name, record);
        }
        let annotations = v
            .get("annotations")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (i, a) in annotations.iter().enumerate() {
            let Some(name) = a
                .get("image_id")
                .and_then(|id| names_by_id.get(&id.to_string()))
            else {
                notices.push(SkippedAnnotation {
                    index: i + 1,
                    image: None,
                    why: String::new(),
                });
                continue;
            };
            let record = out.images.get_mut(name).expect("names_by_id lists records");
            let label = a
                .get("category_id")
                .and_then(|id| category_names.get(&id.to_string()))
                .cloned()
                .unwrap_or_else(|| "object".to_owned());
            match decode_segmentation(a.get("segmentation"), record.height, record.width) {
                Ok(rle) => {
                    if !out.categories.contains(&label) {
                        out.categories.push(label.clone());
                    }
                    record.objects.push(StoredObject {
                        label,
                        rle: Arc::new(rle),
                    });
                }
                Err(why) => notices.push(SkippedAnnotation {
                    index: i + 1,
                    image: Some(name.clone()),
                    why: why.to_string(),
                }),
            }
        }
        Ok((out, notices))
    }

    /// The images worth an entry (objects or a done mark), in natural order.
    fn written_names(&self) -> Vec<&String> {
        let mut names: Vec<&String> = self
            .images
            .iter()
            .filter(|(_, r)| r.worth_writing())
            .map(|(n, _)| n)
            .collect();
        names.sort_by(|a, b| natural_cmp(a, b));
        names
    }

    /// The COCO instances JSON of every image worth an entry (objects or a done mark), in
    /// natural order of names; categories are [`Self::categories`] then any other label.
    pub fn to_json(&self) -> Value {
        let names = self.written_names();
        let cats = super::formats::categories(
            &self.categories,
            names
                .iter()
                .flat_map(|n| self.images[*n].objects.iter().map(|o| o.label.as_str())),
        );
        let mut images = Vec::new();
        let mut annotations = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let r = &self.images[*name];
            images.push(json!({
                "id": i + 1,
                "file_name": name,
                "width": r.width,
                "height": r.height,
                "segattn_done": r.done,
            }));
            for o in &r.objects {
                annotations.push(json!({
                    "id": annotations.len() + 1,
                    "image_id": i + 1,
                    "category_id": cats.iter().position(|c| *c == o.label).unwrap_or(0) + 1,
                    "iscrowd": 0,
                    "area": rle_area(&o.rle),
                    "bbox": rle_bbox(&o.rle),
                    "segmentation": {
                        "size": o.rle.size,
                        "counts": rle_to_coco_string(&o.rle),
                    },
                }));
            }
        }
        let categories: Vec<Value> = cats
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"id": i + 1, "name": name, "supercategory": ""}))
            .collect();
        json!({
            "info": {"description": "segattn annotations", "version": "1.0"},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        })
    }

    /// Reads folder `dir`'s annotation file; no file is an empty set of annotations.
    pub fn load(dir: &Path) -> Result<(Self, Vec<SkippedAnnotation>)> {
        let path = annotation_path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                Self::parse(&bytes).with_context(|| format!("cannot read {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::default(), Vec::new())),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes folder `dir`'s annotation file atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(&self.to_json())?;
        crate::files::write_bytes_atomic(&annotation_path(dir), &bytes)
    }

    /// Images marked done among `names`.
    pub fn done_count<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> usize {
        names
            .into_iter()
            .filter(|n| self.images.get(*n).is_some_and(|r| r.done))
            .count()
    }
}

/// Moves an annotation file that cannot be read out of the way (renamed beside itself, never
/// deleted) so that the folder's work can be saved again; returns the new name.
pub fn set_aside(dir: &Path) -> Result<PathBuf> {
    let path = annotation_path(dir);
    let mut n = 1;
    let target = loop {
        let t = dir.join(format!("{ANNOTATION_FILE}.unreadable-{n}"));
        if !t.exists() {
            break t;
        }
        n += 1;
    };
    std::fs::rename(&path, &target)
        .with_context(|| format!("cannot move {} aside", path.display()))?;
    Ok(target)
}

/// The RLE of a COCO `segmentation` for an `h × w` image: compressed or uncompressed RLE, or
/// polygons (filled as imageproc draws them).
fn decode_segmentation(seg: Option<&Value>, h: usize, w: usize) -> Result<Rle, String> {
    let seg = seg.ok_or("no segmentation")?;
    if let Some(obj) = seg.as_object() {
        let size: Vec<usize> = obj
            .get("size")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_u64)
                    .map(|n| n as usize)
                    .collect()
            })
            .unwrap_or_default();
        if size != [h, w] {
            return Err(format!(
                "its RLE size {size:?} is not the image's [{h}, {w}]"
            ));
        }
        return match obj.get("counts") {
            Some(Value::String(s)) => rle_from_coco_string(s, [h, w]),
            Some(Value::Array(runs)) => {
                let counts: Option<Vec<u32>> = runs
                    .iter()
                    .map(|r| r.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect();
                let counts = counts.ok_or("its RLE counts are not counts")?;
                let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
                if total != (h * w) as u64 {
                    return Err(format!(
                        "its RLE covers {total} pixels, the image {}",
                        h * w
                    ));
                }
                Ok(Rle {
                    size: [h, w],
                    counts,
                })
            }
            _ => Err("its RLE has no counts".into()),
        };
    }
    let rings = seg
        .as_array()
        .ok_or("its segmentation is neither RLE nor polygons")?;
    let mut canvas = image::GrayImage::new(w as u32, h as u32);
    for ring in rings {
        let xy: Vec<f64> = ring
            .as_array()
            .ok_or("a polygon is not a list")?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let mut points: Vec<imageproc::point::Point<i32>> = xy
            .chunks_exact(2)
            .map(|p| imageproc::point::Point::new(p[0].round() as i32, p[1].round() as i32))
            .collect();
        points.dedup();
        if points.len() > 1 && points.first() == points.last() {
            points.pop();
        }
        if points.len() >= 3 {
            imageproc::drawing::draw_polygon_mut(&mut canvas, &points, image::Luma([1u8]));
        }
    }
    Ok(mask_to_rle(canvas.as_raw(), (h, w)))
}

/// COCO's `bbox` `[x, y, width, height]` of an RLE, without decoding it (zeros when empty).
pub fn rle_bbox(rle: &Rle) -> [usize; 4] {
    let h = rle.size[0].max(1);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    let mut pos = 0usize;
    for (i, &run) in rle.counts.iter().enumerate() {
        let run = run as usize;
        if i % 2 == 1 && run > 0 {
            let (first, last) = (pos, pos + run - 1);
            let (c0, c1) = (first / h, last / h);
            x0 = x0.min(c0);
            x1 = x1.max(c1 + 1);
            if c0 == c1 {
                y0 = y0.min(first % h);
                y1 = y1.max(last % h + 1);
            } else {
                // The run wraps from one column's bottom row to a later column's top row.
                y0 = 0;
                y1 = h;
            }
        }
        pos += run;
    }
    if x0 == usize::MAX {
        return [0; 4];
    }
    [x0, y0, x1 - x0, y1 - y0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::mask::bbox;

    pub(super) fn mask(w: usize, h: usize, on: &[(usize, usize)]) -> Mask {
        let mut data = vec![0u8; w * h];
        for &(x, y) in on {
            data[y * w + x] = 1;
        }
        Mask {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn names_sort_naturally() {
        let mut v = vec!["img10.png", "img2.png", "IMG1.png", "a.jpg"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a.jpg", "IMG1.png", "img2.png", "img10.png"]);
    }

    #[test]
    fn the_rle_bbox_is_the_mask_bbox() {
        let cases = [
            mask(5, 4, &[(1, 1)]),
            mask(5, 4, &[(1, 3), (2, 0)]), // a run wrapping into the next column
            mask(5, 4, &[(0, 2), (3, 1), (3, 2)]),
            mask(5, 4, &[(0, 0), (4, 3)]),
            mask(5, 4, &[]),
            mask(5, 4, &[(1, 3), (2, 0), (2, 1), (2, 2), (2, 3), (3, 0)]),
        ];
        for m in cases {
            let rle = mask_to_rle(&m.data, (m.height, m.width));
            assert_eq!(rle_bbox(&rle), bbox(&m), "{:?}", m.data);
        }
    }

    #[test]
    fn annotations_survive_a_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut a = FolderAnnotations {
            categories: vec!["cat".into()],
            ..Default::default()
        };
        let m1 = mask(6, 4, &[(1, 1), (2, 1), (1, 2), (5, 3)]);
        let m2 = mask(6, 4, &[(0, 0)]);
        a.images.insert(
            "b10.png".into(),
            ImageRecord {
                width: 6,
                height: 4,
                done: true,
                objects: vec![
                    StoredObject::from_mask("cat", &m1),
                    StoredObject::from_mask("dog", &m2),
                ],
            },
        );
        a.images.insert(
            "b2.png".into(),
            ImageRecord {
                width: 3,
                height: 3,
                done: true,
                objects: vec![],
            },
        );
        a.images
            .insert("untouched.png".into(), ImageRecord::default());
        a.save(dir.path()).expect("save");
        let (back, notices) = FolderAnnotations::load(dir.path()).expect("load");
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(back.categories, ["cat", "dog"]);
        assert_eq!(
            back.images.len(),
            2,
            "an image without objects or mark is not written"
        );
        let r = &back.images["b10.png"];
        assert!(r.done);
        assert_eq!(r.objects[0].mask(), m1);
        assert_eq!(r.objects[1].label, "dog");
        assert_eq!(r.objects[1].mask(), m2);
        let json: Value =
            serde_json::from_slice(&std::fs::read(annotation_path(dir.path())).expect("file"))
                .expect("json");
        assert_eq!(json["images"][0]["file_name"], "b2.png", "natural order");
        assert_eq!(json["annotations"][0]["area"], 4);
        assert_eq!(json["annotations"][0]["bbox"], json!([1, 1, 5, 3]));
        assert_eq!(json["annotations"][1]["category_id"], 2);
    }

    #[test]
    fn other_tools_files_are_read_and_bad_annotations_left_out() {
        let file = json!({
            "images": [{"id": 7, "file_name": "imgs/x.jpg", "width": 4, "height": 3}],
            "categories": [{"id": 3, "name": "car"}],
            "annotations": [
                {"image_id": 7, "category_id": 3, "segmentation": {"size": [3, 4], "counts": [1, 2, 9]}},
                {"image_id": 7, "category_id": 3, "segmentation": [[0, 0, 3, 0, 3, 2, 0, 2]]},
                {"image_id": 7, "category_id": 3, "segmentation": {"size": [3, 5], "counts": [15]}},
                {"image_id": 8, "category_id": 3, "segmentation": {"size": [3, 4], "counts": [12]}}
            ]
        });
        let (a, notices) =
            FolderAnnotations::parse(file.to_string().as_bytes()).expect("a COCO file");
        let r = &a.images["x.jpg"];
        assert_eq!(r.objects.len(), 2);
        assert_eq!(r.objects[0].label, "car");
        assert_eq!(
            r.objects[0].mask().data,
            [0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            r.objects[1].mask().area(),
            12,
            "the polygon fills the image"
        );
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(notices[0].to_string().contains("RLE size"), "{notices:?}");
        assert!(
            notices[1].to_string().contains("no such image"),
            "{notices:?}"
        );
        assert!(matches!(
            FolderAnnotations::parse(b"{\"images\": 3}"),
            Err(FolderFileError::NotCoco(_))
        ));
        assert!(matches!(
            FolderAnnotations::parse(b"{not json"),
            Err(FolderFileError::Json(_))
        ));
    }

    #[test]
    fn an_unreadable_file_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(annotation_path(dir.path()), b"{broken").expect("write");
        assert!(FolderAnnotations::load(dir.path()).is_err());
        let moved = set_aside(dir.path()).expect("moved");
        assert_eq!(std::fs::read(&moved).expect("kept"), b"{broken");
        assert!(!annotation_path(dir.path()).exists());
        let (a, _) = FolderAnnotations::load(dir.path()).expect("no file is empty");
        assert!(a.images.is_empty());
    }

    #[test]
    fn images_are_listed_without_hidden_or_other_files() {
        let dir = tempfile::tempdir().expect("tmp");
        for n in [
            "b.PNG",
            "a10.jpg",
            "a9.jpeg",
            ".hidden.png",
            "notes.txt",
            ANNOTATION_FILE,
        ] {
            std::fs::write(dir.path().join(n), b"x").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub.png")).expect("dir");
        assert_eq!(
            list_images(dir.path()).expect("list"),
            ["a9.jpeg", "a10.jpg", "b.PNG"]
        );
    }
}
