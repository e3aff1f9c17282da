//! The files labelling and training tools read: COCO instances JSON (RLE or polygons), YOLO
//! segmentation `.txt` with its `data.yaml`, and LabelMe JSON. Pure: values and text in, the
//! caller writes them (atomically, [`crate::files`]).
//!
//! Polygons in COCO, YOLO and LabelMe cannot carry holes. COCO's RLE can, so an object with
//! holes goes to COCO as RLE unless polygons are forced ([`CocoShape`]); YOLO and LabelMe keep
//! the outer borders and say what was lost in the [`Export::notices`].

use serde_json::{json, Value};

use super::polygon::{mask_polygons, Polygons};
use crate::types::problem::{ExportNotice, NoticeKind};
use crate::types::Mask;
use crate::viz::mask::{bbox, coco_rle};

/// One labelled object.
#[derive(Debug, Clone, Copy)]
pub struct Labeled<'a> {
    /// Its category.
    pub label: &'a str,
    /// Its mask at the image's size.
    pub mask: &'a Mask,
}

/// One image and its objects.
#[derive(Debug, Clone)]
pub struct AnnotatedImage<'a> {
    /// The image's file name (COCO `file_name`, LabelMe `imagePath`).
    pub file_name: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Its objects.
    pub objects: Vec<Labeled<'a>>,
}

/// How objects go to COCO's `segmentation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum CocoShape {
    /// Uncompressed RLE for every object (exact, holes included).
    #[default]
    Rle,
    /// Polygons, but RLE for an object with holes (or too thin for a polygon).
    Auto,
    /// Polygons for every object: holes are lost (said in the notices).
    Polygons,
}

impl CocoShape {
    /// Every choice, in menu order.
    pub const ALL: [CocoShape; 3] = [Self::Rle, Self::Auto, Self::Polygons];

    /// The menu's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Rle => "RLE (exact)",
            Self::Auto => "polygons, RLE where holes",
            Self::Polygons => "polygons (holes lost)",
        }
    }
}

/// A file's content and what the user should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Export<T> {
    /// The content.
    pub content: T,
    /// Objects left out, holes lost, shapes changed: one each.
    pub notices: Vec<ExportNotice>,
}

/// Why nothing can be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Every object was left out (or there was none), for the reasons given.
    #[error("nothing to export: {}", nothing(.0))]
    Nothing(Vec<ExportNotice>),
    /// `data.yaml` exists but its `names` cannot be read.
    #[error("cannot read the class names of data.yaml: {0}")]
    DataYaml(String),
}

/// The categories of `labels`, first seen first, after those of `known`.
pub fn categories<'a>(known: &[String], labels: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = known.to_vec();
    for l in labels {
        if !out.iter().any(|k| k == l) {
            out.push(l.to_owned());
        }
    }
    out
}

/// Index of `label` in `categories` (added by [`categories`], so always there).
fn category_index(categories: &[String], label: &str) -> usize {
    categories.iter().position(|c| c == label).unwrap_or(0)
}

/// What happened to object `i` of `image`.
fn notice(image: &AnnotatedImage, i: usize, kind: NoticeKind) -> ExportNotice {
    ExportNotice {
        image: image.file_name.clone(),
        object: i + 1,
        label: image.objects[i].label.to_owned(),
        kind,
    }
}

/// The objects worth writing: non-empty masks of the image's size (the others are noticed).
fn usable<'a>(
    image: &'a AnnotatedImage<'a>,
    notices: &mut Vec<ExportNotice>,
) -> Vec<(usize, &'a Labeled<'a>)> {
    let mut out = Vec::new();
    for (i, o) in image.objects.iter().enumerate() {
        if o.mask.width != image.width || o.mask.height != image.height {
            let kind = NoticeKind::SizeMismatch {
                mask: (o.mask.width, o.mask.height),
                image: (image.width, image.height),
            };
            notices.push(notice(image, i, kind));
        } else if o.mask.area() == 0 {
            notices.push(notice(image, i, NoticeKind::Empty));
        } else {
            out.push((i, o));
        }
    }
    out
}

/// A ring as COCO's flat `[x0, y0, x1, y1, …]`.
fn flat(ring: &[[f32; 2]]) -> Vec<f32> {
    ring.iter().flat_map(|v| [v[0], v[1]]).collect()
}

/// COCO instances JSON for `images` (ids 1, 2, … in order), categories `known` first then the
/// objects' labels. Polygons simplified to `tolerance` pixels.
pub fn coco(
    images: &[AnnotatedImage],
    known: &[String],
    shape: CocoShape,
    tolerance: f32,
) -> Result<Export<Value>, ExportError> {
    let cats = categories(
        known,
        images
            .iter()
            .flat_map(|i| i.objects.iter().map(|o| o.label)),
    );
    let mut notices = Vec::new();
    let mut annotations = Vec::new();
    for (image_index, image) in images.iter().enumerate() {
        for (i, o) in usable(image, &mut notices) {
            let segmentation = match shape {
                CocoShape::Rle => json!(coco_rle(o.mask)),
                CocoShape::Auto | CocoShape::Polygons => {
                    let polys = mask_polygons(o.mask, tolerance);
                    let rings: Vec<Vec<f32>> = polys.outer_rings().map(|r| flat(r)).collect();
                    let thin = polys.degenerate_parts();
                    if shape == CocoShape::Auto && (polys.has_holes() || rings.is_empty()) {
                        json!(coco_rle(o.mask))
                    } else if rings.is_empty() {
                        notices.push(notice(image, i, NoticeKind::TooThin));
                        continue;
                    } else {
                        if polys.has_holes() {
                            let kind = NoticeKind::HolesLost {
                                holes: polys.hole_count(),
                                format: "COCO",
                            };
                            notices.push(notice(image, i, kind));
                        }
                        if thin > 0 {
                            notices.push(notice(image, i, NoticeKind::ThinPartsLost(thin)));
                        }
                        json!(rings)
                    }
                }
            };
            annotations.push(json!({
                "id": annotations.len() + 1,
                "image_id": image_index + 1,
                "category_id": category_index(&cats, o.label) + 1,
                "iscrowd": 0,
                "area": o.mask.area(),
                "bbox": bbox(o.mask),
                "segmentation": segmentation,
            }));
        }
    }
    if annotations.is_empty() {
        return Err(ExportError::Nothing(notices));
    }
    let images: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, im)| {
            json!({"id": i + 1, "file_name": im.file_name, "width": im.width, "height": im.height})
        })
        .collect();
    let categories: Vec<Value> = cats
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"id": i + 1, "name": name, "supercategory": ""}))
        .collect();
    Ok(Export {
        content: json!({"images": images, "annotations": annotations, "categories": categories}),
        notices,
    })
}

/// Why nothing was exported, in English.
fn nothing(notices: &[ExportNotice]) -> String {
    if notices.is_empty() {
        "no object (keep or select a mask first)".into()
    } else {
        let lines: Vec<String> = notices.iter().map(ToString::to_string).collect();
        lines.join("; ")
    }
}

/// YOLO segmentation lines for one image: `class x0 y0 x1 y1 …`, coordinates divided by the
/// image's width and height, one line per connected part (outer border; holes lost, said in
/// the notices). Class indices are positions in `categories` (which must hold every label:
/// see [`categories`]).
pub fn yolo(
    image: &AnnotatedImage,
    categories: &[String],
    tolerance: f32,
) -> Result<Export<String>, ExportError> {
    let mut notices = Vec::new();
    let mut text = String::new();
    let (w, h) = (image.width.max(1) as f32, image.height.max(1) as f32);
    for (i, o) in usable(image, &mut notices) {
        let polys = mask_polygons(o.mask, tolerance);
        let class = category_index(categories, o.label);
        let mut lines = 0;
        for ring in polys.outer_rings() {
            text.push_str(&class.to_string());
            for v in ring {
                text.push_str(&format!(" {:.6} {:.6}", v[0] / w, v[1] / h));
            }
            text.push('\n');
            lines += 1;
        }
        if lines == 0 {
            notices.push(notice(image, i, NoticeKind::TooThin));
        }
        if lines > 1 {
            notices.push(notice(image, i, NoticeKind::SeparateLines(lines)));
        }
        if polys.has_holes() {
            let kind = NoticeKind::HolesLost {
                holes: polys.hole_count(),
                format: "YOLO",
            };
            notices.push(notice(image, i, kind));
        }
    }
    if text.is_empty() {
        return Err(ExportError::Nothing(notices));
    }
    Ok(Export {
        content: text,
        notices,
    })
}

/// The `data.yaml` YOLO's trainers read beside the labels: the class names in index order.
/// `path`/`train`/`val` point at the usual `images/` layout, to be adjusted by the user.
pub fn data_yaml(categories: &[String]) -> String {
    let mut s = String::from(
        "# Written by segattn. Class indices are the order of `names`.\n\
         path: .\ntrain: images\nval: images\n",
    );
    s.push_str(&format!("nc: {}\nnames:\n", categories.len()));
    for (i, c) in categories.iter().enumerate() {
        s.push_str(&format!("  {i}: {}\n", yaml_scalar(c)));
    }
    s
}

/// A YAML scalar: quoted when it would not read back as the same plain string.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
        && !s.starts_with([' ', '-', '.'])
        && !s.ends_with(' ')
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "null" | "on" | "off" | "~"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// The class names of an existing `data.yaml`: `names:` as a block mapping (`  0: cat`), a
/// block list (`  - cat`) or a flow list (`names: [cat, dog]`), the forms YOLO's tools write.
pub fn parse_data_yaml_names(text: &str) -> Result<Vec<String>, ExportError> {
    let bad = |m: &str| Err(ExportError::DataYaml(m.to_owned()));
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.trim_start() == *l && l.starts_with("names:"))
    else {
        return bad("no `names:` line");
    };
    let rest = lines[start]["names:".len()..].trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        if let Some(inner) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .split(',')
                .map(|s| unquote(s.trim()))
                .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
                .collect();
        }
        let Some(inner) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
            return bad("`names:` is neither a list nor a mapping");
        };
        let items: Vec<&str> = inner.split(',').filter(|i| !i.trim().is_empty()).collect();
        return indexed(items.into_iter().map(str::trim));
    }
    let items = lines[start + 1..]
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .take_while(|l| l.starts_with([' ', '\t']))
        .map(|l| l.trim());
    indexed(items)
}

/// Names from `- name` or `index: name` items, in index order.
fn indexed<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<String>, ExportError> {
    let bad = |m: &str| Err(ExportError::DataYaml(m.to_owned()));
    let mut names: Vec<(usize, String)> = Vec::new();
    for item in items {
        if let Some(v) = item.strip_prefix("- ") {
            names.push((names.len(), unquote(v.trim())?));
        } else if let Some((k, v)) = item.split_once(':') {
            let Ok(k) = k.trim().parse::<usize>() else {
                return bad(&format!("`{item}` is not `index: name`"));
            };
            names.push((k, unquote(v.trim())?));
        } else {
            return bad(&format!("`{item}` is not a name"));
        }
    }
    names.sort_by_key(|(k, _)| *k);
    if names.iter().enumerate().any(|(i, (k, _))| i != *k) {
        return bad("the class indices are not 0, 1, 2, …");
    }
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

fn unquote(s: &str) -> Result<String, ExportError> {
    if s.starts_with('"') {
        serde_json::from_str(s).map_err(|_| ExportError::DataYaml(format!("bad string {s}")))
    } else if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Ok(inner.replace("''", "'"))
    } else {
        Ok(s.split(" #").next().unwrap_or(s).trim().to_owned())
    }
}

/// LabelMe JSON for one image: one `polygon` shape per connected part (an object of several
/// parts has them share a `group_id`); holes lost, said in the notices.
pub fn labelme(image: &AnnotatedImage, tolerance: f32) -> Result<Export<Value>, ExportError> {
    let mut notices = Vec::new();
    let mut shapes = Vec::new();
    for (i, o) in usable(image, &mut notices) {
        let polys: Polygons = mask_polygons(o.mask, tolerance);
        let rings: Vec<_> = polys.outer_rings().collect();
        if rings.is_empty() {
            notices.push(notice(image, i, NoticeKind::TooThin));
            continue;
        }
        let group = if rings.len() > 1 {
            json!(i + 1)
        } else {
            Value::Null
        };
        for ring in rings {
            shapes.push(json!({
                "label": o.label,
                "points": ring,
                "group_id": group,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
                "mask": null,
            }));
        }
        if polys.has_holes() {
            let kind = NoticeKind::HolesLost {
                holes: polys.hole_count(),
                format: "LabelMe",
            };
            notices.push(notice(image, i, kind));
        }
    }
    if shapes.is_empty() {
        return Err(ExportError::Nothing(notices));
    }
    Ok(Export {
        content: json!({
            "version": "5.5.0",
            "flags": {},
            "shapes": shapes,
            "imagePath": image.file_name,
            "imageData": null,
            "imageHeight": image.height,
            "imageWidth": image.width,
        }),
        notices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(w: usize, h: usize, x0: usize, y0: usize, s: usize) -> Mask {
        let mut data = vec![0; w * h];
        for y in y0..y0 + s {
            for x in x0..x0 + s {
                data[y * w + x] = 1;
            }
        }
        Mask {
            width: w,
            height: h,
            data,
        }
    }

    fn ring_mask() -> Mask {
        let mut m = square(20, 20, 2, 2, 12);
        for y in 6..10 {
            for x in 6..10 {
                m.data[y * 20 + x] = 0;
            }
        }
        m
    }

    fn image<'a>(objects: Vec<Labeled<'a>>) -> AnnotatedImage<'a> {
        AnnotatedImage {
            file_name: "a.png".into(),
            width: 20,
            height: 20,
            objects,
        }
    }

    #[test]
    fn coco_auto_keeps_holes_as_rle_and_polygons_otherwise() {
        let (sq, ring) = (square(20, 20, 1, 1, 5), ring_mask());
        let im = image(vec![
            Labeled {
                label: "cat",
                mask: &sq,
            },
            Labeled {
                label: "dog",
                mask: &ring,
            },
        ]);
        let out = coco(
            std::slice::from_ref(&im),
            &["dog".into()],
            CocoShape::Auto,
            1.0,
        )
        .expect("export");
        let anns = out.content["annotations"].as_array().expect("list");
        assert!(anns[0]["segmentation"].is_array());
        assert_eq!(anns[0]["category_id"], 2); // "dog" was known first
        assert!(anns[1]["segmentation"]["counts"].is_array());
        assert_eq!(anns[1]["area"], 144 - 16);
        assert_eq!(anns[1]["bbox"], json!([2, 2, 12, 12]));
        assert!(out.notices.is_empty());
        let forced = coco(&[im], &[], CocoShape::Polygons, 1.0).expect("export");
        assert!(forced.content["annotations"][1]["segmentation"].is_array());
        assert_eq!(forced.notices.len(), 1, "{:?}", forced.notices);
        assert!(forced.notices[0].to_string().contains("hole"));
        assert_eq!(forced.content["categories"][0]["name"], "cat");
    }

    #[test]
    fn empty_masks_are_refused_never_written() {
        let empty = Mask {
            width: 20,
            height: 20,
            data: vec![0; 400],
        };
        let im = image(vec![Labeled {
            label: "x",
            mask: &empty,
        }]);
        let err = coco(std::slice::from_ref(&im), &[], CocoShape::Rle, 1.0).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(yolo(&im, &["x".into()], 1.0).is_err());
        assert!(labelme(&im, 1.0).is_err());
        assert!(coco(&[], &[], CocoShape::Rle, 1.0).is_err());
        // With another object the empty one is left out and said.
        let sq = square(20, 20, 1, 1, 5);
        let im = image(vec![
            Labeled {
                label: "x",
                mask: &empty,
            },
            Labeled {
                label: "y",
                mask: &sq,
            },
        ]);
        let out = yolo(&im, &["x".into(), "y".into()], 1.0).expect("one object");
        assert_eq!(out.content.lines().count(), 1);
        assert!(out.content.starts_with("1 "));
        assert_eq!(out.notices.len(), 1);
    }

    #[test]
    fn yolo_lines_are_normalised_and_labelme_groups_parts() {
        let mut two = square(20, 20, 0, 0, 4);
        for y in 10..14 {
            for x in 10..14 {
                two.data[y * 20 + x] = 1;
            }
        }
        let im = image(vec![Labeled {
            label: "a",
            mask: &two,
        }]);
        let out = yolo(&im, &["a".into()], 0.0).expect("yolo");
        let lines: Vec<&str> = out.content.lines().collect();
        assert_eq!(lines.len(), 2);
        for l in &lines {
            let v: Vec<f32> = l
                .split(' ')
                .skip(1)
                .map(|t| t.parse().expect("num"))
                .collect();
            assert_eq!(v.len(), 8);
            assert!(v.iter().all(|c| (0.0..=1.0).contains(c)));
        }
        assert!(lines[0].starts_with("0 ") && lines[0].contains("0.150000"));
        let lm = labelme(&im, 0.0).expect("labelme");
        let shapes = lm.content["shapes"].as_array().expect("shapes");
        assert_eq!(shapes.len(), 2);
        assert_eq!(shapes[0]["group_id"], 1);
        assert_eq!(shapes[0]["shape_type"], "polygon");
        assert_eq!(lm.content["imageWidth"], 20);
    }

    #[test]
    fn data_yaml_round_trips_and_reads_the_usual_forms() {
        let names: Vec<String> = ["cat", "traffic light", "yes", "a: b", "3"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            parse_data_yaml_names(&data_yaml(&names)).expect("ours"),
            names
        );
        assert_eq!(
            parse_data_yaml_names("path: x\nnames: [cat, 'dog', \"bird\"]\n").expect("flow"),
            ["cat", "dog", "bird"]
        );
        assert_eq!(
            parse_data_yaml_names("names:\n  - cat\n  - dog # pets\nnc: 2\n").expect("list"),
            ["cat", "dog"]
        );
        assert_eq!(
            parse_data_yaml_names("names: {0: cat, 1: 'dog'}\n").expect("flow map"),
            ["cat", "dog"]
        );
        assert!(parse_data_yaml_names("nc: 2\n").is_err());
        assert!(parse_data_yaml_names("names: 5\n").is_err());
        assert!(parse_data_yaml_names("names:\n  0: a\n  2: b\n").is_err());
        assert_eq!(categories(&names[..1], ["dog", "cat"]), ["cat", "dog"]);
    }
}
