//! SAM 2.1 (Hiera-T) against the official `sam2` 1.1.0 `SAM2ImagePredictor`.
//!
//! `tests/fixtures/sam2/sam2.1_hiera_t.{safetensors,json}` hold the official outputs for
//! `sam2.1_hiera_t` with detweights seed 11 over every floating tensor of its state dict (the
//! checksums of each are in `weights_checksums.json`): the model input, the image embedding,
//! both high-resolution feature maps, and five prompts. Tolerances are the json's: embeddings
//! and low-res logits within 1e-4 of max |ref|, IoU within 1e-4, masks from the image file in
//! at most 0.2% of pixels.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::common::{
    f32s, json, load_tensors, mask_mismatch, max_abs, predict_fixture_prompts, prompts_of, rel_err,
    sam_fixture_image,
};
use candle_core::{Device, Tensor};
use segattn::model::sam::automatic::generate;
use segattn::model::sam::config::{EncoderConfig, HieraConfig, SamConfig};
use segattn::model::sam::transforms::sam2_input;
use segattn::model::sam::{ImageEmbedding, SamModel};
use segattn::types::EverythingParams;
use sha2::{Digest, Sha256};

const SEED: u64 = 11;
const ORIGINAL_HW: (usize, usize) = (300, 451);

struct Case {
    model: SamModel,
    reference: HashMap<String, Tensor>,
    meta: serde_json::Value,
}

fn config() -> SamConfig {
    SamConfig::with_encoder(EncoderConfig::Hiera(HieraConfig::tiny()))
}

fn case() -> &'static Case {
    static CASE: OnceLock<Case> = OnceLock::new();
    CASE.get_or_init(|| Case {
        model: SamModel::detweights(config(), SEED, &Device::Cpu).expect("model builds"),
        reference: load_tensors("sam2/sam2.1_hiera_t.safetensors"),
        meta: json("sam2/sam2.1_hiera_t.json"),
    })
}

/// A fixture map stored with its values in `(H, W, C)` memory order under a `[1, C, H, W]`
/// shape, as plain `[C, H, W]` data (see `tests/fixtures/README.md`: the fixture's
/// `image_embed` and `high_res_feats.1` are the official channels-last views' memory).
fn chw_of_hwc_memory(v: &[f32], c: usize, side: usize) -> Vec<f32> {
    assert_eq!(v.len(), c * side * side);
    let mut out = vec![0f32; v.len()];
    for p in 0..side * side {
        for ch in 0..c {
            out[ch * side * side + p] = v[p * c + ch];
        }
    }
    out
}

/// The fixture's image embedding `[256, 64, 64]`.
fn reference_embed(c: &Case) -> Vec<f32> {
    chw_of_hwc_memory(&f32s(&c.reference, "image_embed"), 256, 64)
}

/// The fixture's `high_res_feats.1` `[64, 128, 128]`.
fn reference_s1(c: &Case) -> Vec<f32> {
    chw_of_hwc_memory(&f32s(&c.reference, "high_res_feats.1"), 64, 128)
}

/// The embedding made from the official encoder outputs (for the decoder's own check).
fn official_embedding() -> &'static ImageEmbedding {
    static EMB: OnceLock<ImageEmbedding> = OnceLock::new();
    EMB.get_or_init(|| {
        let c = case();
        c.model
            .embedding_from_features(
                reference_embed(c),
                Some((reference_s1(c), f32s(&c.reference, "high_res_feats.0"))),
                ORIGINAL_HW,
            )
            .expect("embedding from the official features")
    })
}

/// Everything mode with SAM 2.1 against sam2 1.1.0's `SAM2AutomaticMaskGenerator`
/// (`amg_sam2.1_hiera_t.json`, `tools/reference/make_sam2_amg_fixtures.py`), with the
/// tolerances of `sam_everything.rs`. The whole-image crop uses the official embedding; the
/// crops of the `crop_n_layers` case are encoded here from the image.
#[test]
fn sam2_everything_matches_the_official_generator() {
    let c = case();
    let reference = json("sam2/amg_sam2.1_hiera_t.json");
    let image = sam_fixture_image("image");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 5, "{} cases", cases.len());
    for case in cases {
        let params: EverythingParams =
            serde_json::from_value(case["params"].clone()).expect("params");
        let ours = generate(
            &c.model,
            &image,
            &params,
            Some(official_embedding()),
            &mut |_| {},
            &|| false,
        )
        .expect("generates");
        eprintln!(
            "sam2 everything {}: {} records",
            case["id"].as_str().unwrap_or("?"),
            ours.len()
        );
        crate::sam_everything::check_case("sam2.1_hiera_t", case, &ours);
    }
}

/// SAM 2's generator defaults differ from SAM 1's in the predicted-IoU threshold only.
#[test]
fn sam2_everything_defaults_are_the_official_ones() {
    let sam1 = EverythingParams::default();
    let sam2 = EverythingParams::defaults_for(true);
    assert_eq!(sam2.pred_iou_thresh, 0.8);
    assert_eq!(sam1.pred_iou_thresh, 0.88);
    assert_eq!(
        EverythingParams {
            pred_iou_thresh: sam1.pred_iou_thresh,
            ..sam2
        },
        sam1
    );
}

/// Every tensor the image mode reads is the detweights generator's, bit for bit: the SHA-256
/// of each matches the official state dict's (`weights_checksums.json`), with its shape.
#[test]
fn sam2_detweights_match_the_official_state_dict() {
    let sums = json("weights_checksums.json");
    let tensors = &sums["models"]["sam2.1_hiera_t"]["tensors"];
    let shapes = config().state_dict_shapes();
    assert!(shapes.len() > 200, "{} tensors", shapes.len());
    for (key, shape) in shapes {
        let want = &tensors[&key];
        assert!(want.is_object(), "{key} is not in the official state dict");
        let official: Vec<usize> = want["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(shape, official, "{key}");
        let values = segattn::model::detweights::generate(SEED, &key, &shape);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let digest = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(digest, want["sha256_f32le"].as_str().expect("sha"), "{key}");
    }
}

/// The detected architecture of the official layout is Hiera-T, with no flag.
#[test]
fn sam2_tiny_is_detected_from_its_tensors() {
    let weights = segattn::model::sam::detweights_sam(&config(), SEED).expect("weights");
    let root = segattn::weights::Scope::new(&weights, &Device::Cpu);
    let detected = SamConfig::detect(&root).expect("detects");
    assert_eq!(detected, config());
    assert_eq!(detected.name(), "SAM 2.1 Hiera-T");
}

/// Our `SAM2Transforms` (antialiased resize to 1024 × 1024, ImageNet normalisation) gives
/// torchvision's model input from the image file.
#[test]
fn sam2_input_matches_torchvision() {
    let c = case();
    let ours = sam2_input(&sam_fixture_image("image"));
    let reference = f32s(&c.reference, "input_image");
    let err = max_abs(&ours, &reference);
    assert!(err < 1e-5, "model input differs by {err}");
}

/// Given the official model input: the image embedding (with `no_mem_embed`) and both
/// high-resolution feature maps within 1e-4 of max |ref|.
#[test]
fn sam2_encoder_matches_official() {
    let c = case();
    let input = f32s(&c.reference, "input_image");
    let emb = c
        .model
        .embed_sam2_input(input, ORIGINAL_HW, &|| false)
        .expect("encodes");
    let tol = 1e-4;
    let embed = rel_err(&emb.to_vec().expect("features"), &reference_embed(c));
    let (s1, s0) = emb.high_res_to_vec().expect("vec").expect("SAM 2 has them");
    let e1 = rel_err(&s1, &reference_s1(c));
    let e0 = rel_err(&s0, &f32s(&c.reference, "high_res_feats.0"));
    eprintln!("sam2 encoder rel errors: embed {embed:.2e}, s1 {e1:.2e}, s0 {e0:.2e}");
    assert!(embed < tol, "image_embed rel err {embed}");
    assert!(e1 < tol, "high_res_feats.1 rel err {e1}");
    assert!(e0 < tol, "high_res_feats.0 rel err {e0}");
}

/// Given the official embeddings: every prompt's low-res logits within 1e-4 of max |ref| and
/// IoU within 1e-4 (single-mask prompts through `dynamic_multimask_via_stability`).
#[test]
fn sam2_decoder_matches_official_for_every_prompt() {
    let c = case();
    let emb = official_embedding();
    for p in c.meta["prompts"].as_array().expect("prompts") {
        let id = p["id"].as_str().expect("id");
        let (prompts, multimask) = prompts_of(p);
        let pred = c
            .model
            .predict_low_res(emb, &prompts, multimask)
            .expect("predicts");
        let logits: Vec<f32> = pred.low_res_logits.concat();
        let err = rel_err(
            &logits,
            &f32s(&c.reference, &format!("{id}.low_res_logits")),
        );
        let iou = max_abs(
            &pred.iou_predictions,
            &f32s(&c.reference, &format!("{id}.iou_predictions")),
        );
        eprintln!("sam2 {id}: low-res rel {err:.2e}, iou {iou:.2e}");
        assert!(err < 1e-4, "{id}: low-res logits rel err {err}");
        assert!(iou < 1e-4, "{id}: IoU err {iou}");
    }
}

/// End to end from the image file: every prompt's masks at the original size differ from
/// the official ones in at most 0.2% of their pixels.
#[test]
fn sam2_masks_from_the_image_match_official() {
    let c = case();
    let emb = c.model.embed(&sam_fixture_image("image")).expect("encodes");
    for (id, _, pred) in predict_fixture_prompts(&c.model, &emb, &c.meta) {
        let (differ, frac) = mask_mismatch(&pred, &c.reference, id);
        eprintln!(
            "sam2 {id}: {differ} mask pixels differ ({:.4}%)",
            frac * 100.0
        );
        assert!(
            frac <= 0.002,
            "{id}: {:.3}% of mask pixels differ",
            frac * 100.0
        );
    }
}

/// `segattn segment` and `segattn everything` with a SAM 2.1 checkpoint (the official state
/// dict's tensors, no flag):
/// the masks of a multimask point and of a box with a point from `assets/chelsea.png` and,
/// through `--logits-out`, their low-res logits (every prompt is checked in the library above).
#[test]
fn sam2_segment_cli_matches_official() {
    let c = case();
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = segattn::model::sam::detweights_sam(&config(), SEED).expect("weights");
    let tensors: HashMap<String, Tensor> = weights
        .names()
        .into_iter()
        .map(|n| {
            let t = weights.load_any(&n, &Device::Cpu).expect("tensor");
            (n, t)
        })
        .collect();
    let ckpt = dir.path().join("sam2.1_hiera_tiny.safetensors");
    candle_core::safetensors::save(&tensors, &ckpt).expect("save");
    let image = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/chelsea.png");
    for p in c.meta["prompts"].as_array().expect("prompts") {
        let id = p["id"].as_str().expect("id");
        if !matches!(id, "p0" | "p3") {
            continue;
        }
        let out = dir.path().join(format!("{id}.png"));
        let logits = dir.path().join(format!("{id}.safetensors"));
        let mut args: Vec<String> = [
            "segment",
            "--weights",
            ckpt.to_str().expect("utf8"),
            "--image",
            image.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
            "--logits-out",
            logits.to_str().expect("utf8"),
            "--json",
        ]
        .map(String::from)
        .to_vec();
        let labels = p["labels"].as_array().cloned().unwrap_or_default();
        for (pt, l) in p["points"].as_array().into_iter().flatten().zip(labels) {
            let fg = if l.as_i64() == Some(1) { "fg" } else { "bg" };
            args.push("--point".into());
            args.push(format!("{},{},{fg}", pt[0], pt[1]));
        }
        if let Some(b) = p["box"].as_array() {
            args.push("--box".into());
            args.push(format!("{},{},{},{}", b[0], b[1], b[2], b[3]));
        }
        if p["multimask"].as_bool() == Some(true) {
            args.push("--multimask".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = crate::common::segattn(&refs);
        assert_eq!(run.code, 0, "{id}: {}", run.stderr);
        let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        assert_eq!(
            summary["model"]["name"], "SAM 2.1 Hiera-T",
            "{id}: {summary}"
        );
        let got = load_tensors_at(&logits);
        let low = rel_err(
            &f32s(&got, "low_res_masks"),
            &f32s(&c.reference, &format!("{id}.low_res_logits")),
        );
        assert!(low < 1e-4, "{id}: low-res logits rel err {low}");
        let reference = f32s(&c.reference, &format!("{id}.masks"));
        let n = reference.len() / (ORIGINAL_HW.0 * ORIGINAL_HW.1);
        let files: Vec<std::path::PathBuf> = if n == 1 {
            vec![out.clone()]
        } else {
            (0..n)
                .map(|i| dir.path().join(format!("{id}-{i}.png")))
                .collect()
        };
        let ours: Vec<f32> = files
            .iter()
            .flat_map(|f| {
                image::open(f)
                    .expect("mask png")
                    .to_luma8()
                    .pixels()
                    .map(|p| f32::from(u8::from(p.0[0] > 127)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ours.len(), reference.len(), "{id}: mask sizes");
        let differ = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
        assert!(
            differ as f64 <= 0.002 * ours.len() as f64,
            "{id}: {differ} mask pixels differ"
        );
    }
    // `segattn everything` on the same checkpoint and image file: the official generator's
    // records of the fixture's first case (every mask kept), each by its grid point and box.
    let reference = json("sam2/amg_sam2.1_hiera_t.json");
    let case = &reference["cases"][0];
    assert_eq!(case["id"], "g3_all");
    let out = dir.path().join("everything.json");
    let mut args = vec![
        "everything",
        "--weights",
        ckpt.to_str().expect("utf8"),
        "--image",
        image.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ];
    // The fixture case's parameters (3 × 3 points, the filters off).
    args.extend_from_slice(&crate::cli_segment::RELAXED);
    let run = crate::common::segattn(&args);
    assert_eq!(run.code, 0, "everything: {}", run.stderr);
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("records")).expect("json");
    let ours = ours.as_array().expect("a list of records");
    let theirs = case["records"].as_array().expect("records");
    assert_eq!(ours.len(), theirs.len(), "everything: number of records");
    let num = |v: &serde_json::Value| v.as_f64().expect("number");
    let nums = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array().expect("array").iter().map(num).collect()
    };
    let iou_gap = |a: &serde_json::Value, b: &serde_json::Value| {
        (num(&a["predicted_iou"]) - num(&b["predicted_iou"])).abs()
    };
    let mut used = vec![false; theirs.len()];
    for (k, a) in ours.iter().enumerate() {
        // Theirs from the same grid point with the same box, nearest in predicted IoU.
        let same_point = |b: &serde_json::Value| {
            (0..2).all(|i| {
                (num(&a["point_coords"][0][i]) - num(&b["point_coords"][0][i])).abs() <= 1e-3
            })
        };
        let j = (0..theirs.len())
            .filter(|&j| {
                !used[j] && same_point(&theirs[j]) && nums(&theirs[j]["bbox"]) == nums(&a["bbox"])
            })
            .min_by(|&x, &y| iou_gap(a, &theirs[x]).total_cmp(&iou_gap(a, &theirs[y])))
            .unwrap_or_else(|| panic!("everything record {k} has no match: {}", a["bbox"]));
        used[j] = true;
        let d = iou_gap(a, &theirs[j]);
        assert!(d <= 1e-3, "everything record {k}: predicted IoU off by {d}");
    }
}

/// The tensors of a safetensors file anywhere.
fn load_tensors_at(path: &std::path::Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).expect("readable")
}

/// The Hiera encoder in f16 (what `--dtype auto` picks on a GPU; on the CPU it runs through
/// candle's generic ops and the official window partitioning, the code a GPU runs) gives the
/// f32 embedding within half precision's rounding and the f32 masks for every fixture prompt
/// (mask IoU ≥ 0.99, from the f16 embedding of the official model input).
#[test]
fn sam2_half_precision_masks_equal_f32() {
    let c = case();
    let weights = segattn::model::sam::detweights_sam(&config(), SEED).expect("weights");
    let half = SamModel::load_with_config(
        &weights,
        config(),
        &Device::Cpu,
        segattn::runtime::Precision::F16,
    )
    .expect("model builds");
    let input = f32s(&c.reference, "input_image");
    let emb = half
        .embed_sam2_input(input, ORIGINAL_HW, &|| false)
        .expect("encodes");
    let err = rel_err(&emb.to_vec().expect("features"), &reference_embed(c));
    let (s1, s0) = emb.high_res_to_vec().expect("vec").expect("SAM 2 has them");
    let e1 = rel_err(&s1, &reference_s1(c));
    let e0 = rel_err(&s0, &f32s(&c.reference, "high_res_feats.0"));
    eprintln!("sam2 f16: embed rel err {err:.2e}, s1 {e1:.2e}, s0 {e0:.2e}");
    // Half precision did run (its rounding shows) and stays close.
    for e in [err, e1, e0] {
        assert!(e > 1e-5 && e < 1e-2, "rel err {e:e}");
    }
    for p in c.meta["prompts"].as_array().expect("prompts") {
        let id = p["id"].as_str().unwrap_or("?");
        let (prompts, multimask) = prompts_of(p);
        let ours = half.predict(&emb, &prompts, multimask).expect("predicts");
        let full = c
            .model
            .predict(official_embedding(), &prompts, multimask)
            .expect("predicts");
        for (h, f) in ours.masks.iter().zip(&full.masks) {
            let (mut inter, mut union) = (0u64, 0u64);
            for (&a, &b) in h.data.iter().zip(&f.data) {
                inter += u64::from(a != 0 && b != 0);
                union += u64::from(a != 0 || b != 0);
            }
            let iou = if union == 0 {
                1.0
            } else {
                inter as f64 / union as f64
            };
            eprintln!("sam2 f16 {id}: mask IoU {iou:.4}");
            assert!(iou >= 0.99, "{id}: f16 mask IoU {iou:.4}");
        }
    }
}
