//! `segattn export`: a binary mask PNG to COCO (RLE and polygons), YOLO and LabelMe, read back
//! with pycocotools and a plain YOLO parser; empty masks and bad flags fail cleanly.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::{assert_clean_error, segattn};

const W: usize = 120;
const H: usize = 90;

/// A disc with a square hole and a separate rectangle: two parts, one hole.
fn test_mask() -> Vec<u8> {
    let mut m = vec![0u8; W * H];
    for y in 0..H {
        for x in 0..W {
            let (dx, dy) = (x as f32 - 45.0, y as f32 - 45.0);
            let disc = dx * dx + dy * dy <= 35.0 * 35.0;
            let hole = (38..52).contains(&x) && (38..52).contains(&y);
            let rect = (92..115).contains(&x) && (10..30).contains(&y);
            m[y * W + x] = u8::from(disc && !hole || rect);
        }
    }
    m
}

fn write_png(path: &Path, mask: &[u8]) {
    let data: Vec<u8> = mask.iter().map(|&v| v * 255).collect();
    image::GrayImage::from_raw(W as u32, H as u32, data)
        .expect("size")
        .save(path)
        .expect("png");
}

fn export(args: &[&str]) -> common::Run {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    segattn(&all)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// Distance from each pixel to the nearest border pixel of `mask` (a pixel inside with a
/// 4-neighbour outside, or outside with one inside), brute force.
fn border_distance(mask: &[u8], x: usize, y: usize) -> f32 {
    let mut best = f32::INFINITY;
    for by in 0..H {
        for bx in 0..W {
            let v = mask[by * W + bx];
            let n = [(0i64, 1i64), (1, 0), (0, -1), (-1, 0)]
                .iter()
                .any(|(dx, dy)| {
                    let (nx, ny) = (bx as i64 + dx, by as i64 + dy);
                    nx >= 0
                        && ny >= 0
                        && (nx as usize) < W
                        && (ny as usize) < H
                        && mask[ny as usize * W + nx as usize] != v
                });
            if n {
                let d = ((bx as f32 - x as f32).powi(2) + (by as f32 - y as f32).powi(2)).sqrt();
                best = best.min(d);
            }
        }
    }
    best
}

/// pycocotools' `annToMask` of every annotation of `coco`, written raw (one byte per pixel).
fn decode_with_pycocotools(python: &str, coco: &Path, out: &Path) {
    let script = r#"
import json, sys
import numpy as np
from pycocotools.coco import COCO
c = COCO(sys.argv[1])
masks = [c.annToMask(a) for a in c.loadAnns(c.getAnnIds())]
assert all(int(a["iscrowd"]) == 0 for a in c.loadAnns(c.getAnnIds()))
np.stack(masks).astype(np.uint8).tofile(sys.argv[2])
"#;
    let run = std::process::Command::new(python)
        .args(["-c", script])
        .arg(coco)
        .arg(out)
        .output()
        .expect("python runs");
    assert!(
        run.status.success(),
        "pycocotools failed: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn a_mask_png_exports_to_coco_yolo_and_labelme_and_reads_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let mask = test_mask();
    let png = dir.path().join("photo-mask.png");
    write_png(&png, &mask);
    let area = mask.iter().filter(|&&v| v != 0).count();

    // COCO with RLE: exact, holes included.
    let rle = dir.path().join("rle.json");
    let run = export(&["--mask", s(&png), "--coco", s(&rle), "--label", "cat"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&rle).expect("written")).expect("json");
    assert_eq!(json["images"][0]["file_name"], "photo.png");
    assert_eq!(json["images"][0]["width"], W);
    assert_eq!(json["categories"][0]["name"], "cat");
    let ann = &json["annotations"][0];
    assert_eq!(ann["area"], area);
    assert_eq!(ann["bbox"], serde_json::json!([10, 10, 105, 71]));

    // COCO with polygons: the hole is lost, and said.
    let poly = dir.path().join("poly.json");
    let run = export(&[
        "--mask",
        s(&png),
        "--coco",
        s(&poly),
        "--polygons",
        "--simplify",
        "1.5",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("hole"), "stderr: {}", run.stderr);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&poly).expect("written")).expect("json");
    let seg = json["annotations"][0]["segmentation"]
        .as_array()
        .expect("polygons");
    assert_eq!(seg.len(), 2, "one polygon per part");
    let vertices: usize = seg
        .iter()
        .map(|p| p.as_array().expect("ring").len() / 2)
        .sum();
    assert!(vertices < 60, "simplified: {vertices} vertices");

    if let Some(py) = common::python_with_pycocotools() {
        let raw = dir.path().join("rle.raw");
        decode_with_pycocotools(&py, &rle, &raw);
        assert_eq!(
            std::fs::read(&raw).expect("raw"),
            mask,
            "RLE decodes to our mask"
        );
        let raw = dir.path().join("poly.raw");
        decode_with_pycocotools(&py, &poly, &raw);
        let theirs = std::fs::read(&raw).expect("raw");
        let hole = |x: usize, y: usize| (38..52).contains(&x) && (38..52).contains(&y);
        let mut differ = 0;
        for y in 0..H {
            for x in 0..W {
                let (a, b) = (mask[y * W + x], theirs[y * W + x]);
                if a != b && !hole(x, y) {
                    differ += 1;
                    let d = border_distance(&mask, x, y);
                    assert!(
                        d <= 1.5 + 1.0,
                        "pixel ({x}, {y}) differs {d} px from the border"
                    );
                }
            }
        }
        assert!(differ < area / 10, "{differ} pixels differ");
        // The hole is filled in the polygons.
        assert!(theirs[45 * W + 45] == 1);
    }

    // YOLO: normalised polygons, one line per part, and data.yaml naming the class.
    let labels = dir.path().join("labels");
    std::fs::create_dir(&labels).expect("dir");
    let txt = labels.join("photo.txt");
    let run = export(&[
        "--mask",
        s(&png),
        "--yolo",
        s(&txt),
        "--label",
        "cat",
        "--simplify",
        "1",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&txt).expect("txt");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let mut it = line.split_whitespace();
        assert_eq!(it.next(), Some("0"));
        let v: Vec<f32> = it.map(|t| t.parse().expect("number")).collect();
        assert!(v.len() >= 6 && v.len().is_multiple_of(2));
        for p in v.chunks(2) {
            assert!((0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1]));
            let (x, y) = (
                (p[0] * W as f32).round() as usize,
                (p[1] * H as f32).round() as usize,
            );
            assert!(
                border_distance(&mask, x, y) <= 1.5,
                "vertex ({x}, {y}) off the border"
            );
        }
    }
    let yaml = std::fs::read_to_string(labels.join("data.yaml")).expect("data.yaml");
    assert!(yaml.contains("  0: cat"), "{yaml}");
    // A second label in the same folder keeps the first's index.
    let txt2 = labels.join("other.txt");
    let run = export(&["--mask", s(&png), "--yolo", s(&txt2), "--label", "dog"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(std::fs::read_to_string(&txt2)
        .expect("txt")
        .starts_with("1 "));
    let yaml = std::fs::read_to_string(labels.join("data.yaml")).expect("data.yaml");
    assert!(
        yaml.contains("  0: cat") && yaml.contains("  1: dog"),
        "{yaml}"
    );

    // LabelMe: two polygon shapes of one group.
    let lm = dir.path().join("photo.json");
    let run = export(&["--mask", s(&png), "--labelme", s(&lm), "--label", "cat"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lm).expect("written")).expect("json");
    assert_eq!(json["imagePath"], "photo.png");
    assert_eq!(json["imageHeight"], H);
    let shapes = json["shapes"].as_array().expect("shapes");
    assert_eq!(shapes.len(), 2);
    assert!(shapes
        .iter()
        .all(|s| s["label"] == "cat" && s["group_id"] == 1));
}

#[test]
fn empty_masks_and_bad_flags_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let png = dir.path().join("empty.png");
    write_png(&png, &vec![0; W * H]);
    let coco = dir.path().join("c.json");
    assert_clean_error(
        &export(&["--mask", s(&png), "--coco", s(&coco)]),
        &["empty"],
    );
    assert!(!coco.exists(), "no empty annotation written");
    let good = dir.path().join("good.png");
    write_png(&good, &test_mask());
    assert_clean_error(&export(&["--mask", s(&good)]), &["--coco"]);
    assert_clean_error(
        &export(&["--mask", s(&good), "--coco", s(&coco), "--simplify", "-1"]),
        &["--simplify"],
    );
    assert_clean_error(
        &export(&["--mask", s(&good), "--yolo", s(&coco), "--polygons"]),
        &["--coco"],
    );
    let missing: PathBuf = dir.path().join("missing.png");
    assert_clean_error(
        &export(&["--mask", s(&missing), "--coco", s(&coco)]),
        &["missing.png"],
    );
    let not_png = dir.path().join("bad.png");
    std::fs::write(&not_png, b"not an image").expect("write");
    assert_clean_error(
        &export(&["--mask", s(&not_png), "--coco", s(&coco)]),
        &["bad.png"],
    );
    // A data.yaml we cannot read is kept, and said.
    let yaml = dir.path().join("data.yaml");
    std::fs::write(&yaml, "names: 5\n").expect("write");
    let txt = dir.path().join("l.txt");
    assert_clean_error(
        &export(&["--mask", s(&good), "--yolo", s(&txt)]),
        &["data.yaml"],
    );
    assert_eq!(std::fs::read_to_string(&yaml).expect("kept"), "names: 5\n");
    assert!(!txt.exists());
}

/// `segattn segment` writes the same annotation files for its mask.
#[test]
fn segment_writes_annotations_for_its_mask() {
    let dir = tempfile::tempdir().expect("tmp");
    let w = common::small_vit_file();
    let img = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/chelsea.png");
    let (png, coco, txt) = (
        dir.path().join("m.png"),
        dir.path().join("c.json"),
        dir.path().join("c.txt"),
    );
    let run = segattn(&[
        "segment",
        "--weights",
        s(&w),
        "--image",
        s(&img),
        "--point",
        "250,130",
        "--multimask",
        "--out",
        s(&png),
        "--coco",
        s(&coco),
        "--polygons",
        "--yolo",
        s(&txt),
        "--label",
        "cat",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(out["annotations"].as_array().expect("files").len(), 3);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&coco).expect("coco")).expect("json");
    assert_eq!(json["images"][0]["file_name"], "chelsea.png");
    assert_eq!(json["images"][0]["width"], 451);
    assert_eq!(json["categories"][0]["name"], "cat");
    // The annotation is the candidate of highest predicted IoU.
    let ious: Vec<f64> = out["masks"]
        .as_array()
        .expect("masks")
        .iter()
        .map(|m| m["predicted_iou"].as_f64().expect("iou"))
        .collect();
    let best = (0..ious.len())
        .max_by(|&a, &b| ious[a].total_cmp(&ious[b]))
        .expect("3");
    assert_eq!(json["annotations"][0]["area"], out["masks"][best]["area"]);
    assert!(std::fs::read_to_string(&txt)
        .expect("txt")
        .starts_with("0 "));
}
