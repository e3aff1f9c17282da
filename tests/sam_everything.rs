//! Everything mode and stability scores against the official `SamAutomaticMaskGenerator`
//! (segment_anything 1.0; MobileSAM's copy of it) and `calculate_stability_score`.
//!
//! `tests/fixtures/sam/amg_*.json` come from `tools/reference/make_amg_fixtures.py` on the
//! detweights models. Tolerances (from the issue): the same number of records; each of ours
//! matched to one of theirs with mask IoU ≥ 0.99, `predicted_iou` and `stability_score`
//! within 1e-3, identical `bbox` and `crop_box`, `point_coords` within 1e-3 px; single-prompt
//! stability scores within 1e-4.

use crate::common::{fixture_sam, json, sam_fixture_image};
use candle_core::Device;
use segattn::analysis::amg;
use segattn::model::sam::automatic::generate;
use segattn::model::sam::transforms;
use segattn::model::sam::SamModel;
use segattn::types::{
    BoxPrompt, EverythingParams, MaskRecord, PointLabel, PointPrompt, Prompts, LOW_RES,
};

fn model(name: &str) -> SamModel {
    let (config, seed) = fixture_sam(name);
    SamModel::detweights(config, seed, &Device::Cpu).expect("model builds")
}

/// Their record's mask, decoded from its COCO string.
fn their_mask(r: &serde_json::Value) -> Vec<u8> {
    let seg = &r["segmentation"];
    let size = [
        seg["size"][0].as_u64().expect("h") as usize,
        seg["size"][1].as_u64().expect("w") as usize,
    ];
    let rle = amg::rle_from_coco_string(seg["counts"].as_str().expect("counts"), size)
        .expect("their RLE parses");
    amg::rle_to_mask(&rle)
}

fn mask_iou(a: &[u8], b: &[u8]) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        inter += u64::from(x != 0 && y != 0);
        union += u64::from(x != 0 || y != 0);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as i64)
        .collect()
}

/// Our records of one fixture case against the official ones, with the tolerances above.
pub(crate) fn check_case(name: &str, case: &serde_json::Value, ours: &[MaskRecord]) {
    let id = case["id"].as_str().expect("id");
    let theirs = case["records"].as_array().expect("records");
    assert_eq!(ours.len(), theirs.len(), "{name} {id}: number of records");
    let their_masks: Vec<Vec<u8>> = theirs.iter().map(their_mask).collect();
    let mut used = vec![false; theirs.len()];
    for (k, r) in ours.iter().enumerate() {
        let mask = amg::rle_to_mask(&r.segmentation);
        // Among the unused records with our box: those whose mask matches (IoU ≥ 0.99) by
        // the nearest grid point and predicted IoU (masks cleaned of their small regions can
        // coincide), else the best mask.
        let point_and_iou = |j: usize| {
            let t = &theirs[j];
            let p = &t["point_coords"][0];
            let dp = (r.point_coords[0] - p[0].as_f64().unwrap_or(f64::NAN)).abs()
                + (r.point_coords[1] - p[1].as_f64().unwrap_or(f64::NAN)).abs();
            dp + (f64::from(r.predicted_iou) - t["predicted_iou"].as_f64().unwrap_or(f64::NAN))
                .abs()
        };
        let (j, iou) = (0..theirs.len())
            .filter(|&j| !used[j])
            .map(|j| (j, mask_iou(&mask, &their_masks[j])))
            .filter(|&(j, _)| ints(&theirs[j]["bbox"]) == r.bbox.map(i64::from))
            .max_by(|a, b| {
                (a.1 >= 0.99)
                    .cmp(&(b.1 >= 0.99))
                    .then_with(|| point_and_iou(b.0).total_cmp(&point_and_iou(a.0)))
                    .then_with(|| a.1.total_cmp(&b.1))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{name} {id}: our record {k} (box {:?}) has no match",
                    r.bbox
                )
            });
        used[j] = true;
        let t = &theirs[j];
        assert!(iou >= 0.99, "{name} {id}: record {k} mask IoU {iou}");
        let d_iou = (f64::from(r.predicted_iou) - t["predicted_iou"].as_f64().expect("iou")).abs();
        assert!(
            d_iou <= 1e-3,
            "{name} {id}: record {k} predicted_iou off by {d_iou}"
        );
        let d_st =
            (f64::from(r.stability_score) - t["stability_score"].as_f64().expect("stab")).abs();
        assert!(
            d_st <= 1e-3,
            "{name} {id}: record {k} stability off by {d_st}"
        );
        assert_eq!(
            ints(&t["crop_box"]),
            r.crop_box.map(i64::from),
            "{name} {id}: crop box"
        );
        let p = &t["point_coords"][0];
        for (a, b) in r.point_coords.iter().zip([&p[0], &p[1]]) {
            assert!(
                (a - b.as_f64().expect("coord")).abs() <= 1e-3,
                "{name} {id}: point"
            );
        }
        let their_area = t["area"].as_u64().expect("area");
        assert_eq!(r.area, amg::rle_area(&r.segmentation), "{name} {id}: area");
        assert!(
            r.area.abs_diff(their_area) as f64 <= 0.01 * their_area.max(1) as f64,
            "{name} {id}: record {k} area {} against {their_area}",
            r.area
        );
    }
}

#[test]
fn everything_matches_the_official_generator() {
    let image = sam_fixture_image("image");
    for name in ["mobilesam_vit_t", "sam_vit_small"] {
        let reference = json(&format!("sam/amg_{name}.json"));
        let model = model(name);
        // The whole-image crop uses the embedding of the official resized image, as the view
        // passes its own; other crops are resized and encoded by the generator.
        let emb = model
            .embed_resized(&sam_fixture_image("resized"), (300, 451))
            .expect("encodes");
        for case in reference["cases"].as_array().expect("cases") {
            let params: EverythingParams =
                serde_json::from_value(case["params"].clone()).expect("params");
            let ours = generate(&model, &image, &params, Some(&emb), &mut |_| {}, &|| false)
                .expect("generates");
            check_case(name, case, &ours);
        }
    }
}

/// The stability scores of the single-prompt fixtures (offset 1 as the view and `segment`
/// report them, and 0.02 where the detweights logits give scores away from 0).
#[test]
fn single_prompt_stability_matches_the_official_score() {
    for name in ["mobilesam_vit_t", "sam_vit_small"] {
        let reference = json(&format!("sam/amg_{name}.json"));
        let meta = json(&format!("sam/{name}.json"));
        let model = model(name);
        let emb = model
            .embed_resized(&sam_fixture_image("resized"), (300, 451))
            .expect("encodes");
        for p in meta["prompts"].as_array().expect("prompts") {
            let id = p["id"].as_str().expect("id");
            let pts = p["points"].as_array().cloned().unwrap_or_default();
            let labels = p["labels"].as_array().cloned().unwrap_or_default();
            let prompts = Prompts {
                points: pts
                    .iter()
                    .zip(&labels)
                    .map(|(xy, l)| PointPrompt {
                        pos_in_image: [
                            xy[0].as_f64().expect("x") as f32,
                            xy[1].as_f64().expect("y") as f32,
                        ],
                        label: if l.as_i64() == Some(1) {
                            PointLabel::Foreground
                        } else {
                            PointLabel::Background
                        },
                    })
                    .collect(),
                bbox: p["box"].as_array().map(|b| BoxPrompt {
                    corners_in_image: [0, 1, 2, 3].map(|i| b[i].as_f64().expect("box") as f32),
                }),
                mask_input: None,
            };
            let pred = model
                .predict(&emb, &prompts, p["multimask"].as_bool().expect("multimask"))
                .expect("predicts");
            let theirs = |offset: &str| -> Vec<f64> {
                reference["prompt_stability_scores"][format!("{id}@{offset}")]
                    .as_array()
                    .expect("scores")
                    .iter()
                    .map(|v| v.as_f64().expect("score"))
                    .collect()
            };
            let at_002: Vec<f32> = pred
                .low_res_logits
                .iter()
                .map(|l| {
                    transforms::stability_of_classes(&transforms::upscale_classes(
                        l,
                        (LOW_RES, LOW_RES),
                        emb.input_hw,
                        emb.original_hw,
                        0.0,
                        0.02,
                    ))
                })
                .collect();
            for (ours, offset) in [(&pred.stability_scores, "1.0"), (&at_002, "0.02")] {
                let t = theirs(offset);
                assert_eq!(ours.len(), t.len(), "{name} {id}");
                for (a, b) in ours.iter().zip(&t) {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-4,
                        "{name} {id} offset {offset}: stability {a} against {b}"
                    );
                }
            }
        }
    }
}
