//! `segattn segment` end to end through the real binary, and its handling of bad input: every
//! case must end with a one-line error and a non-zero exit, never a panic.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::{assert_clean_error, fixture, load_tensors, segattn, Run};
use candle_core::Device;

/// A clean failure mentioning `needle`.
fn fails_with(run: &Run, needle: &str) {
    assert_clean_error(run, &[needle]);
}

/// The temp folder that holds the small ViT's file; outputs go there too.
fn workdir() -> &'static Path {
    common::small_vit_dir()
}

fn weights() -> PathBuf {
    common::small_vit_file()
}

fn segment(weights: &Path, image: &Path, extra: &[&str]) -> Run {
    let out = workdir().join(format!("out-{}.png", std::process::id()));
    segment_to(weights, image, &out, extra)
}

/// `segattn segment` writing its mask to `out`.
fn segment_to(weights: &Path, image: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "segment",
        "--weights",
        weights.to_str().expect("utf8"),
        "--image",
        image.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    segattn(&args)
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = workdir().join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

fn chelsea() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/chelsea.png")
}

#[test]
fn segments_chelsea_like_pytorch() {
    let out = workdir().join("cat.png");
    let logits = workdir().join("cat.safetensors");
    let run = segment_to(
        &weights(),
        &chelsea(),
        &out,
        &[
            "--point",
            "250,130",
            "--multimask",
            "--json",
            "--logits-out",
            logits.to_str().expect("utf8"),
            "--device",
            "cpu",
        ],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect("json on stdout");
    assert_eq!(summary["model"]["kind"], "vit");
    assert_eq!(summary["model"]["embed_dim"], 96);
    assert_eq!(summary["masks"].as_array().expect("masks").len(), 3);
    for m in summary["masks"].as_array().expect("masks") {
        let s = m["stability_score"]
            .as_f64()
            .expect("a stability score per mask");
        assert!((0.0..=1.0).contains(&s), "stability {s}");
    }
    let reference = load_tensors("sam/sam_vit_small.safetensors");
    let ref_masks: Vec<u8> = reference["p0.masks"]
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("u8");
    let plane = 300 * 451;
    for i in 0..3 {
        let png = image::open(workdir().join(format!("cat-{i}.png")))
            .expect("mask png")
            .into_luma8();
        assert_eq!(png.dimensions(), (451, 300));
        assert!(png.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        let ours: Vec<u8> = png.pixels().map(|p| u8::from(p.0[0] == 255)).collect();
        let differ = ours
            .iter()
            .zip(&ref_masks[i * plane..(i + 1) * plane])
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            differ as f64 / plane as f64 <= 0.002,
            "mask {i}: {differ} pixels differ"
        );
        assert_eq!(
            summary["masks"][i]["area"].as_u64(),
            Some(ours.iter().filter(|&&v| v == 1).count() as u64)
        );
    }
    let saved = candle_core::safetensors::load(&logits, &Device::Cpu).expect("logits file");
    assert_eq!(saved["low_res_masks"].dims(), &[3, 256, 256]);
    assert_eq!(saved["iou_predictions"].dims(), &[3]);
    assert_eq!(saved["image_embeddings"].dims(), &[256, 64, 64]);
    assert_eq!(saved["masks"].dims(), &[3, 300, 451]);
    let saved_masks: Vec<u8> = saved["masks"]
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("u8");
    for i in 0..3 {
        let png = image::open(workdir().join(format!("cat-{i}.png")))
            .expect("mask png")
            .into_luma8();
        let ours: Vec<u8> = png.pixels().map(|p| u8::from(p.0[0] == 255)).collect();
        assert!(ours == saved_masks[i * plane..(i + 1) * plane], "mask {i}");
    }
}

#[test]
fn converts_grey_alpha_palette_cmyk_and_16_bit_images() {
    let rgb16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 1000) as u16, (y * 1000) as u16, 40000])
    });
    let p16 = workdir().join("rgb16.png");
    rgb16.save(&p16).expect("save 16-bit");
    let rgba = image::RgbaImage::from_fn(64, 48, |x, y| {
        image::Rgba([x as u8 * 3, y as u8 * 4, 9, 128])
    });
    let prgba = workdir().join("rgba.png");
    rgba.save(&prgba).expect("save rgba");
    for (path, w, h) in [
        (p16, 64, 48),
        (prgba, 64, 48),
        (fixture("images/cmyk.jpg"), 90, 60),
        (fixture("images/palette.png"), 90, 60),
        (fixture("images/grey_alpha.png"), 90, 60),
        (fixture("images/grey16.png"), 90, 60),
    ] {
        let img = segattn::image_io::load_rgb8(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((img.width, img.height), (w, h), "{}", path.display());
        assert_eq!(img.data.len(), w * h * 3);
    }
    // CMYK is converted to RGB, not misread: the cat photo stays mostly warm-toned.
    let cmyk = segattn::image_io::load_rgb8(fixture("images/cmyk.jpg")).expect("cmyk");
    let (r, b) = cmyk.data.chunks(3).fold((0u64, 0u64), |(r, b), p| {
        (r + u64::from(p[0]), b + u64::from(p[2]))
    });
    assert!(r > b, "CMYK conversion looks wrong (R {r}, B {b})");
    // And a converted image segments.
    let run = segment(
        &weights(),
        &fixture("images/palette.png"),
        &["--point", "40,30"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn fifty_megapixel_photo_works() {
    let (w, h) = (8660u32, 5780u32); // 50.05 MP
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x / 40) as u8, (y / 30) as u8, 128])
    });
    let path = workdir().join("big.png");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let enc = image::codecs::png::PngEncoder::new_with_quality(
        file,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    );
    image::ImageEncoder::write_image(enc, img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encode");
    drop(img);
    let out = workdir().join("big-mask.png");
    let run = segattn(&[
        "segment",
        "--weights",
        weights().to_str().expect("utf8"),
        "--image",
        path.to_str().expect("utf8"),
        "--box",
        "100,100,6000,5000",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(image::image_dimensions(&out).expect("mask"), (w, h));
}

/// A PNG whose header claims `w × h` pixels, followed by a token IDAT.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_images_fail_cleanly() {
    let w = weights();
    let p = ["--point", "10,10"];
    fails_with(
        &segment(&w, &write("notes.png", b"this is not an image"), &p),
        "not a supported image",
    );
    let png = std::fs::read(chelsea()).expect("png");
    fails_with(
        &segment(&w, &write("truncated.png", &png[..png.len() / 3]), &p),
        "cannot decode image",
    );
    // A JPEG cut short anywhere, even only its end marker, is refused as Pillow refuses it
    // ("image file is truncated"); the decoder alone would fill the missing rows with grey.
    let jpeg = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/rocket.jpg"))
        .expect("jpeg");
    for (name, len) in [
        ("half.jpg", jpeg.len() / 2),
        ("most.jpg", jpeg.len() * 19 / 20),
        ("no-end-marker.jpg", jpeg.len() - 2),
    ] {
        fails_with(&segment(&w, &write(name, &jpeg[..len]), &p), "truncated");
    }
    // The whole file, and trailing bytes after its end marker (which Pillow ignores), segment.
    let mut trailing = jpeg.clone();
    trailing.extend_from_slice(b"\0\0trailing bytes");
    let ok = segment(&w, &write("trailing.jpg", &trailing), &p);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    fails_with(
        &segment(&w, &write("huge.png", &png_header_only(60000, 60000)), &p),
        "too large",
    );
    fails_with(
        &segment(&w, &write("zero.png", &png_header_only(0, 10)), &p),
        "image",
    );
    fails_with(
        &segment(&w, Path::new("/nonexistent/cat.png"), &p),
        "cannot read image",
    );
}

#[test]
fn bad_prompts_fail_cleanly() {
    let (w, img) = (weights(), chelsea());
    fails_with(&segment(&w, &img, &[]), "no prompt");
    fails_with(
        &segment(&w, &img, &["--point", "500,10"]),
        "outside the 451x300 image",
    );
    fails_with(&segment(&w, &img, &["--point", "-3,10"]), "outside");
    fails_with(&segment(&w, &img, &["--box", "10,10,400,900"]), "outside");
    fails_with(&segment(&w, &img, &["--box", "300,10,100,200"]), "empty");
    let bad_label = segment(&w, &img, &["--point", "10,10,maybe"]);
    assert_ne!(bad_label.code, 0);
    assert!(bad_label.stderr.contains("fg or bg") && !bad_label.stderr.contains("panicked"));
}

/// Rewrites the small-ViT checkpoint with `edit` applied to its tensors.
fn edited_weights(
    name: &str,
    edit: impl FnOnce(&mut std::collections::HashMap<String, candle_core::Tensor>),
) -> PathBuf {
    let mut tensors = candle_core::safetensors::load(weights(), &Device::Cpu).expect("load");
    edit(&mut tensors);
    let p = workdir().join(name);
    candle_core::safetensors::save(&tensors, &p).expect("save");
    p
}

#[test]
fn bad_weights_fail_cleanly_naming_tensor_and_file() {
    let img = chelsea();
    let p = ["--point", "10,10"];
    let bytes = std::fs::read(weights()).expect("weights");
    let truncated = write("truncated.safetensors", &bytes[..bytes.len() / 2]);
    let run = segment(&truncated, &img, &p);
    fails_with(&run, "truncated");
    assert!(run.stderr.contains("truncated.safetensors"));

    fails_with(
        &segment(&write("readme.safetensors", b"# not weights\n"), &img, &p),
        "not a usable checkpoint",
    );

    let missing = edited_weights("missing.safetensors", |t| {
        t.remove("image_encoder.blocks.2.mlp.lin1.weight");
    });
    let run = segment(&missing, &img, &p);
    fails_with(&run, "image_encoder.blocks.2.mlp.lin1.weight");
    assert!(run.stderr.contains("missing.safetensors"), "{}", run.stderr);

    let misshaped = edited_weights("misshaped.safetensors", |t| {
        t.insert(
            "mask_decoder.transformer.layers.1.norm2.weight".into(),
            candle_core::Tensor::zeros(255, candle_core::DType::F32, &Device::Cpu).expect("zeros"),
        );
    });
    let run = segment(&misshaped, &img, &p);
    fails_with(&run, "mask_decoder.transformer.layers.1.norm2.weight");
    assert!(
        run.stderr.contains("[255]") && run.stderr.contains("misshaped.safetensors"),
        "{}",
        run.stderr
    );

    let text_model = edited_weights("not_sam.safetensors", |t| {
        t.retain(|k, _| k.starts_with("mask_decoder"))
    });
    fails_with(&segment(&text_model, &img, &p), "not a SAM checkpoint");
}

#[test]
fn pickles_with_code_are_refused_and_never_run() {
    let _ = std::fs::remove_file("/tmp/segattn-pwned");
    let img = chelsea();
    let p = ["--point", "10,10"];
    let run = segment(&fixture("weights/evil_zip.pth"), &img, &p);
    fails_with(&run, "posix.system");
    assert!(run.stderr.contains("evil_zip.pth"));
    fails_with(
        &segment(&fixture("weights/evil_raw.pth"), &img, &p),
        "raw pickle",
    );
    assert!(
        !Path::new("/tmp/segattn-pwned").exists(),
        "the pickle's code ran"
    );
    // A truncated real torch.save file.
    let pth = std::fs::read(fixture("sam/sam_vit_small_image_encoder.pth")).expect("pth");
    let cut = write("cut.pth", &pth[..pth.len() - 5000]);
    fails_with(&segment(&cut, &img, &p), "cut.pth");
}

/// `segattn everything` with arguments `extra` after the weights, image and output.
fn everything_to(out: &Path, extra: &[&str]) -> Run {
    let w = weights();
    let img = chelsea();
    let mut args = vec![
        "everything",
        "--weights",
        w.to_str().expect("utf8"),
        "--image",
        img.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    segattn(&args)
}

/// Relaxed thresholds: the detweights model's IoU predictions are near 0 and its logits
/// small, so the defaults keep nothing.
pub(crate) const RELAXED: [&str; 10] = [
    "--points-per-side",
    "3",
    "--pred-iou-thresh",
    "-10",
    "--stability-score-thresh",
    "0",
    "--stability-score-offset",
    "0.02",
    "--box-nms-thresh",
    "1.0",
];

/// The records of the official generator's `coco_rle` output: every field, 3 masks per
/// point when nothing is suppressed, sorted by predicted IoU within the crop; our RLE decodes
/// with pycocotools to exactly our mask.
#[test]
fn everything_writes_the_official_records() {
    let out = workdir().join("everything.json");
    let run = everything_to(&out, &RELAXED);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("27 masks"), "stderr: {}", run.stderr);
    let records: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&out).expect("json written")).expect("json");
    assert_eq!(records.len(), 27);
    let mut masks = Vec::new();
    let mut last_iou = f64::INFINITY;
    for r in &records {
        for key in [
            "segmentation",
            "area",
            "bbox",
            "predicted_iou",
            "point_coords",
            "stability_score",
            "crop_box",
        ] {
            assert!(r.get(key).is_some(), "record lacks {key}: {r}");
        }
        assert_eq!(r["crop_box"], serde_json::json!([0, 0, 451, 300]));
        let iou = r["predicted_iou"].as_f64().expect("iou");
        assert!(iou <= last_iou, "records sorted by predicted IoU");
        last_iou = iou;
        let seg = &r["segmentation"];
        assert_eq!(seg["size"], serde_json::json!([300, 451]));
        let rle = segattn::analysis::amg::rle_from_coco_string(
            seg["counts"].as_str().expect("counts"),
            [300, 451],
        )
        .expect("our RLE parses");
        let mask = segattn::analysis::amg::rle_to_mask(&rle);
        assert_eq!(
            mask.iter().filter(|&&v| v != 0).count() as u64,
            r["area"].as_u64().expect("area")
        );
        masks.extend(mask);
    }
    // pycocotools (a pip wheel; CI installs it) decodes our strings to the same masks.
    let raw = workdir().join("everything.masks");
    std::fs::write(&raw, &masks).expect("write masks");
    let script = r#"
import json, sys
import numpy as np
from pycocotools import mask as mask_utils
records = json.load(open(sys.argv[1]))
ours = np.fromfile(sys.argv[2], dtype=np.uint8).reshape(len(records), 300, 451)
for i, r in enumerate(records):
    seg = dict(r["segmentation"], counts=r["segmentation"]["counts"].encode())
    theirs = mask_utils.decode(seg)
    assert theirs.shape == (300, 451), theirs.shape
    assert (theirs == ours[i]).all(), f"record {i} differs"
    assert int(mask_utils.area(seg)) == r["area"], f"record {i} area"
print(f"pycocotools: {len(records)} masks equal")
"#;
    let Some(python) = common::python_with_pycocotools() else {
        return;
    };
    let check = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&out)
        .arg(&raw)
        .output()
        .expect("python runs");
    assert!(
        check.status.success(),
        "pycocotools check failed: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn everything_rejects_bad_parameters_cleanly() {
    let out = workdir().join("bad-everything.json");
    fails_with(
        &everything_to(&out, &["--points-per-side", "0"]),
        "points per side",
    );
    fails_with(
        &everything_to(&out, &["--crop-overlap-ratio", "1.5"]),
        "overlap",
    );
    fails_with(&everything_to(&out, &["--points-per-batch", "0"]), "batch");
    assert!(!out.exists(), "no output after an error");
    let missing = workdir().join("missing.png");
    let w = weights();
    let run = segattn(&[
        "everything",
        "--weights",
        w.to_str().expect("utf8"),
        "--image",
        missing.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    fails_with(&run, "missing.png");
}

/// `segattn detweights` (the GPU check's weights): the small ViT comes out equal to the tests'
/// own file, a text fixture's `weight_keys` with their shapes and values, and a file without
/// keys is refused cleanly.
#[test]
fn detweights_writes_the_fixture_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sam = dir.path().join("small.safetensors");
    let run = segattn(&[
        "detweights",
        "--arch",
        "sam-vit-small",
        "--seed",
        "2",
        "--out",
        sam.to_str().expect("utf8"),
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let ours = candle_core::safetensors::load(&sam, &Device::Cpu).expect("written");
    let tests = candle_core::safetensors::load(weights(), &Device::Cpu).expect("test file");
    assert_eq!(ours.len(), tests.len());
    for (key, t) in &tests {
        let a: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("f32");
        let b: Vec<f32> = ours[key]
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("f32");
        assert!(a == b, "{key}");
    }

    let text = dir.path().join("camembert.safetensors");
    let meta = fixture("text/french/camembert_tiny.json");
    let run = segattn(&[
        "detweights",
        "--keys",
        meta.to_str().expect("utf8"),
        "--seed",
        "21",
        "--out",
        text.to_str().expect("utf8"),
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let ours = candle_core::safetensors::load(&text, &Device::Cpu).expect("written");
    let keys = common::json("text/french/camembert_tiny.json")["weight_keys"].clone();
    let keys = keys.as_object().expect("keys");
    assert_eq!(ours.len(), keys.len());
    for (key, shape) in keys {
        let shape: Vec<usize> = serde_json::from_value(shape.clone()).expect("shape");
        assert_eq!(ours[key].dims(), &shape[..], "{key}");
        let values: Vec<f32> = ours[key]
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("f32");
        assert!(
            values == segattn::model::detweights::generate(21, key, &shape),
            "{key}"
        );
    }

    let no_keys = fixture("sam/manifest.json");
    fails_with(
        &segattn(&[
            "detweights",
            "--keys",
            no_keys.to_str().expect("utf8"),
            "--seed",
            "1",
            "--out",
            text.to_str().expect("utf8"),
        ]),
        "weight_keys",
    );
}
