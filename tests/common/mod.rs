//! Helpers shared by the integration tests: fixture paths and comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// All tensors of a fixture safetensors file, on the CPU.
pub fn load_tensors(rel: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(rel), &Device::Cpu).expect("fixture readable")
}

/// A fixture tensor as flat f32 data.
pub fn f32s(map: &HashMap<String, Tensor>, key: &str) -> Vec<f32> {
    map.get(key)
        .unwrap_or_else(|| panic!("fixture lacks {key}"))
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .expect("f32 data")
}

/// A fixture JSON file.
pub fn json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(rel)).expect("fixture json"))
        .expect("valid json")
}

/// max |a − b| / max |b|, asserting equal lengths.
pub fn rel_err(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "length mismatch");
    let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    max_diff / max_ref.max(f32::MIN_POSITIVE)
}

/// max |a − b|.
pub fn max_abs(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "length mismatch");
    ours.iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
}

/// What a run of the `segattn` binary printed.
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs the real `segattn` binary with `args`.
pub fn segattn(args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_segattn"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A clean failure: exit code 1, one line on stderr containing every needle
/// (case-insensitive), no panic.
pub fn assert_clean_error(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 1, "stdout: {} stderr: {}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    assert_eq!(
        run.stderr.trim().lines().count(),
        1,
        "not one line: {}",
        run.stderr
    );
    for n in needles {
        assert!(
            run.stderr.to_lowercase().contains(&n.to_lowercase()),
            "`{n}` not in: {}",
            run.stderr
        );
    }
}

/// The app in a headless harness.
pub type App = egui_kittest::Harness<'static, segattn::app::SegattnApp>;

/// Steps the app (in real time: workers and jobs run on their threads, `pause` between
/// steps) until `cond` holds, or fails after two minutes naming `what`.
pub fn wait_until_with(
    h: &mut App,
    what: &str,
    pause: std::time::Duration,
    cond: impl Fn(&segattn::app::SegattnApp) -> bool,
) {
    let start = std::time::Instant::now();
    loop {
        h.step();
        if cond(h.state()) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "timed out waiting for {what}; status: {:?}",
            h.state().status.message
        );
        std::thread::sleep(pause);
    }
}

/// Whether the Segment view's current image has its embedding.
pub fn encoded(a: &segattn::app::SegattnApp) -> bool {
    matches!(
        a.segment.encode,
        segattn::ui::segment::EncodeState::Ready { .. }
    )
}

/// The primary button going down (`pressed`) or up at `pos`.
pub fn primary_button(h: &App, pos: egui::Pos2, pressed: bool) {
    h.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    });
}

/// The point at `t` (0 = left, 1 = right) along the app's first slider (the Segment view's
/// opacity).
pub fn along_slider(h: &App) -> impl Fn(f32) -> egui::Pos2 {
    use egui_kittest::kittest::Queryable;
    let slider = h
        .get_all_by_role(egui::accesskit::Role::Slider)
        .next()
        .expect("a slider")
        .rect();
    move |t| egui::Pos2::new(slider.min.x + slider.width() * t, slider.center().y)
}

/// MobileSAM's official architecture (the `mobilesam_vit_t` fixtures).
pub fn mobile_sam_config() -> segattn::model::sam::config::SamConfig {
    use segattn::model::sam::config::{EncoderConfig, SamConfig, TinyVitConfig};
    SamConfig::with_encoder(EncoderConfig::TinyVit(TinyVitConfig::mobile_sam()))
}

/// The small ViT SAM of the `sam_vit_small` fixtures (`_build_sam(96, 4, 4, [1, 3])`).
pub fn small_vit_config() -> segattn::model::sam::config::SamConfig {
    use segattn::model::sam::config::{EncoderConfig, SamConfig, VitConfig};
    SamConfig::with_encoder(EncoderConfig::Vit(VitConfig::official(
        96,
        4,
        4,
        vec![1, 3],
    )))
}

/// A temp folder holding the small ViT SAM (detweights seed 2) as `sam_small.safetensors`,
/// written once per test run.
pub fn small_vit_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let weights = segattn::model::sam::detweights_sam(&small_vit_config(), 2).expect("weights");
        let tensors: HashMap<String, Tensor> = weights
            .names()
            .into_iter()
            .map(|n| {
                let t = weights.load_any(&n, &Device::Cpu).expect("tensor");
                (n, t)
            })
            .collect();
        candle_core::safetensors::save(&tensors, dir.path().join("sam_small.safetensors"))
            .expect("save");
        dir
    })
    .path()
}

/// The small ViT SAM's file in [`small_vit_dir`].
pub fn small_vit_file() -> PathBuf {
    small_vit_dir().join("sam_small.safetensors")
}

/// The architecture and detweights seed of fixture model `name`.
pub fn fixture_sam(name: &str) -> (segattn::model::sam::config::SamConfig, u64) {
    match name {
        "mobilesam_vit_t" => (mobile_sam_config(), 1),
        _ => (small_vit_config(), 2),
    }
}

/// An image of `sam/image.safetensors`: `image` (the cat) or `resized` (the official resize).
pub fn sam_fixture_image(key: &str) -> segattn::types::Rgb8 {
    let t = load_tensors("sam/image.safetensors");
    let img = t.get(key).expect("image tensor");
    let (h, w, _) = img.dims3().expect("hwc");
    segattn::types::Rgb8 {
        width: w,
        height: h,
        data: img
            .flatten_all()
            .and_then(|t| t.to_vec1::<u8>())
            .expect("u8"),
    }
}

/// The Python with pycocotools and numpy (`SEGATTN_PYTHON`, else `python3`); `None` (said on
/// stderr, so the caller skips its check) when it has not, except under CI, where the check
/// must run and fail loudly.
pub fn python_with_pycocotools() -> Option<String> {
    let python = std::env::var("SEGATTN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pycocotools, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if ok || std::env::var_os("CI").is_some() {
        Some(python)
    } else {
        eprintln!("pycocotools not installed ({python}): the check against it is skipped");
        None
    }
}

/// The tiny French-capable models of `tests/fixtures/text/french/` (made by
/// `tools/reference/make_french_fixtures.py`).
pub const FRENCH_MODELS: [&str; 4] = [
    "camembert_tiny",
    "xlm_roberta_tiny",
    "roberta_tiny",
    "bert_sentencepiece_tiny",
];

/// A model folder (`config.json`, `tokenizer.json`, `model.safetensors`) of the tiny French
/// model `name`, its weights generated by detweights over the fixture's `weight_keys` (the same
/// values transformers ran with), written once per test run into a temp folder.
pub fn french_model_dir(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let root = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        for model in FRENCH_MODELS {
            let meta = json(&format!("text/french/{model}.json"));
            let seed = meta["seed"].as_u64().expect("seed");
            let mut tensors = HashMap::new();
            for (key, shape) in meta["weight_keys"].as_object().expect("keys") {
                let shape: Vec<usize> = serde_json::from_value(shape.clone()).expect("shape");
                let data = segattn::model::detweights::generate(seed, key, &shape);
                let t = Tensor::from_vec(data, shape, &Device::Cpu).expect("tensor");
                tensors.insert(key.clone(), t);
            }
            let folder = dir.path().join(model);
            std::fs::create_dir_all(&folder).expect("folder");
            for file in ["config.json", "tokenizer.json"] {
                std::fs::copy(
                    fixture(&format!("text/french/{model}/{file}")),
                    folder.join(file),
                )
                .expect("copy");
            }
            candle_core::safetensors::save(&tensors, folder.join("model.safetensors"))
                .expect("save");
        }
        dir
    });
    root.path().join(name)
}

/// A fixture prompt (`points` with `labels`, `box`, `multimask`, in original-image pixels)
/// as [`segattn::types::Prompts`], and whether it asks for the three candidate masks.
pub fn prompts_of(p: &serde_json::Value) -> (segattn::types::Prompts, bool) {
    let mut prompts = segattn::types::Prompts::default();
    if let Some(points) = p["points"].as_array() {
        for (pt, label) in points.iter().zip(p["labels"].as_array().expect("labels")) {
            prompts.points.push(segattn::types::PointPrompt {
                pos_in_image: [
                    pt[0].as_f64().expect("x") as f32,
                    pt[1].as_f64().expect("y") as f32,
                ],
                label: if label.as_i64() == Some(1) {
                    segattn::types::PointLabel::Foreground
                } else {
                    segattn::types::PointLabel::Background
                },
            });
        }
    }
    if let Some(b) = p["box"].as_array() {
        let v: Vec<f32> = b.iter().map(|x| x.as_f64().expect("box") as f32).collect();
        prompts.bbox = Some(segattn::types::BoxPrompt {
            corners_in_image: [v[0], v[1], v[2], v[3]],
        });
    }
    (prompts, p["multimask"].as_bool().expect("multimask"))
}

/// How many of `pred`'s mask pixels differ from the reference `{id}.masks`, and what fraction.
pub fn mask_mismatch(
    pred: &segattn::types::Prediction,
    reference: &HashMap<String, Tensor>,
    id: &str,
) -> (usize, f64) {
    let want: Vec<u8> = reference[&format!("{id}.masks")]
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("mask data");
    let got: Vec<u8> = pred
        .masks
        .iter()
        .flat_map(|m| m.data.iter().copied())
        .collect();
    assert_eq!(got.len(), want.len(), "{id} mask size");
    let n = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    (n, n as f64 / got.len() as f64)
}

/// Each prompt of a fixture's json (`meta["prompts"]`) run through `model.predict` on `emb`:
/// the prompt's id, its json entry and the prediction.
pub fn predict_fixture_prompts<'a>(
    model: &segattn::model::sam::SamModel,
    emb: &segattn::model::sam::ImageEmbedding,
    meta: &'a serde_json::Value,
) -> Vec<(&'a str, &'a serde_json::Value, segattn::types::Prediction)> {
    meta["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| {
            let (prompts, multimask) = prompts_of(p);
            let pred = model.predict(emb, &prompts, multimask).expect("predicts");
            (p["id"].as_str().expect("id"), p, pred)
        })
        .collect()
}
