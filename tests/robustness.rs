//! Robustness: malformed checkpoints never panic (every tensor whose shape the architecture
//! detection reads is given shapes of the wrong rank, empty, zero-sized or inconsistent, and
//! loading must answer with an error, never a panic), and the SAM worker's protocol as the app
//! uses it (a load the user cancels stops at its next tensor and says so, a newer image stops
//! an older encoding silently, an image encoded once with a model comes from the cache).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use segattn::model::detweights;
use segattn::model::sam::config::{EncoderConfig, SamConfig, TinyVitConfig, VitConfig};
use segattn::model::sam::SamModel;
use segattn::runtime::Runtime;
use segattn::types::Rgb8;
use segattn::weights::Weights;
use segattn::worker::sam::{SamRequest, SamResponse, SamWorker};

/// The tensors detection reads, per architecture.
const VIT_READ: &[&str] = &[
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.blocks.0.attn.rel_pos_h",
    "image_encoder.blocks.1.attn.rel_pos_h",
    "image_encoder.blocks.0.mlp.lin1.weight",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight",
    "mask_decoder.mask_tokens.weight",
];

const TINY_VIT_READ: &[&str] = &[
    "image_encoder.layers.0.blocks.0.conv1.c.weight",
    "image_encoder.layers.1.blocks.0.attn.qkv.weight",
    "image_encoder.layers.1.blocks.0.attn.attention_biases",
    "image_encoder.layers.1.blocks.0.mlp.fc1.weight",
    "image_encoder.layers.1.blocks.0.local_conv.c.weight",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight",
    "mask_decoder.mask_tokens.weight",
];

/// Wrong shapes for a tensor of shape `good`: other ranks, empty, zeros, off by one, huge.
fn bad_shapes(good: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![
        vec![],
        vec![0],
        vec![7],
        vec![3, 5],
        vec![1, 1, 1, 1, 1],
        good.iter().map(|_| 0).collect(),
        good.iter().map(|_| 1).collect(),
    ];
    for i in 0..good.len() {
        let mut off = good.to_vec();
        off[i] += 1;
        out.push(off);
        let mut big = good.to_vec();
        big[i] = 1 << 40;
        out.push(big);
    }
    out
}

fn check(config: SamConfig, read: &[&str]) {
    let shapes: HashMap<String, Vec<usize>> = config.state_dict_shapes().into_iter().collect();
    for name in read {
        let good = shapes
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is in the state dict"));
        for bad in bad_shapes(good) {
            let mut edited = shapes.clone();
            edited.insert((*name).to_string(), bad.clone());
            let weights = Weights::generated(
                edited,
                // Generated on request: tensors of absurd sizes must be refused before this.
                Box::new(|_, shape| vec![0.01; shape.iter().product()]),
                "<edited checkpoint>",
            );
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SamModel::load(&weights, &Device::Cpu).map(|_| ())
            }));
            match outcome {
                Err(_) => panic!("loading panicked with `{name}` of shape {bad:?}"),
                Ok(Err(e)) => {
                    let msg = format!("{e:#}");
                    assert!(!msg.is_empty(), "{name} {bad:?}: an empty message");
                }
                Ok(Ok(())) => {} // a shape the architecture accepts (e.g. another MLP width)
            }
        }
    }
}

#[test]
fn malformed_vit_checkpoints_are_refused_without_a_panic() {
    check(
        SamConfig::with_encoder(EncoderConfig::Vit(VitConfig::official(96, 2, 4, vec![1]))),
        VIT_READ,
    );
}

#[test]
fn malformed_tiny_vit_checkpoints_are_refused_without_a_panic() {
    check(
        SamConfig::with_encoder(EncoderConfig::TinyVit(TinyVitConfig::mobile_sam())),
        TINY_VIT_READ,
    );
}

fn worker() -> SamWorker {
    SamWorker::spawn(Runtime::cpu(), Arc::new(|| {})).expect("worker")
}

/// A worker with a small ViT SAM (deterministic weights) queued.
fn small_vit_worker() -> SamWorker {
    let w = worker();
    w.send(SamRequest::UseModel(Box::new(
        SamModel::detweights(crate::common::small_vit_config(), 2, &Device::Cpu).expect("model"),
    )))
    .expect("queued");
    w
}

/// Waits for the next response.
fn next(w: &SamWorker) -> SamResponse {
    w.recv_timeout(Duration::from_secs(120))
        .expect("a response in time")
}

/// Asks the worker to show image `image_id`.
fn set_image(w: &SamWorker, image_id: u64, image: Arc<Rgb8>) {
    w.send(SamRequest::SetImage { image_id, image })
        .expect("queued");
}

/// Asks the worker to encode `image` ahead, into the disk cache.
fn preencode(w: &SamWorker, token: u64, image: Arc<Rgb8>) {
    w.send(SamRequest::Preencode { token, image })
        .expect("queued");
}

fn image(width: usize, height: usize) -> Arc<Rgb8> {
    Arc::new(Rgb8 {
        width,
        height,
        data: (0..width * height * 3).map(|i| (i % 251) as u8).collect(),
    })
}

/// MobileSAM with deterministic weights, written as a safetensors checkpoint.
fn mobile_sam_file(dir: &std::path::Path) -> std::path::PathBuf {
    let config = SamConfig::with_encoder(EncoderConfig::TinyVit(TinyVitConfig::mobile_sam()));
    let tensors: HashMap<String, Tensor> = config
        .state_dict_shapes()
        .into_iter()
        .map(|(k, shape)| {
            let t = Tensor::from_vec(detweights::generate(1, &k, &shape), shape, &Device::Cpu)
                .expect("tensor");
            (k, t)
        })
        .collect();
    let path = dir.join("mobile_sam-tiny-vitt.safetensors");
    candle_core::safetensors::save(&tensors, &path).expect("write");
    path
}

#[test]
fn cancelling_a_load_stops_it_and_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = mobile_sam_file(dir.path());
    let w = worker();
    w.send(SamRequest::LoadModel { path: path.clone() })
        .expect("queued");
    // Cancel until the worker answers: a Cancel that comes before the load starts is spent
    // by it, one during the load stops it at the next tensor.
    let start = Instant::now();
    let answer = loop {
        w.cancel();
        if let Some(r) = w.recv_timeout(Duration::from_millis(1)) {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no answer");
    };
    assert!(matches!(answer, SamResponse::LoadCancelled), "{answer:?}");
    // Not cancelled, the same file loads.
    w.send(SamRequest::LoadModel { path }).expect("queued");
    assert!(matches!(next(&w), SamResponse::ModelLoaded { .. }));
}

#[test]
fn a_newer_image_stops_an_encoding_silently_and_a_known_one_comes_from_the_cache() {
    let w = small_vit_worker();
    assert!(matches!(next(&w), SamResponse::ModelLoaded { .. }));
    set_image(&w, 1, image(400, 300));
    assert!(matches!(next(&w), SamResponse::Encoding { image_id: 1 }));
    // Image 2 while image 1 encodes: image 1 stops without a word, image 2 answers.
    set_image(&w, 2, image(300, 200));
    let mut seen = Vec::new();
    loop {
        let r = next(&w);
        let done = matches!(r, SamResponse::Encoded { image_id: 2, .. });
        seen.push(format!("{r:?}").chars().take(40).collect::<String>());
        assert!(
            !matches!(
                r,
                SamResponse::Cancelled { .. } | SamResponse::Failed { .. }
            ),
            "{seen:?}"
        );
        if done {
            break;
        }
    }
    // Image 2 again with the same model: answered at once from the cache, no new encoding.
    set_image(&w, 2, image(300, 200));
    assert!(matches!(next(&w), SamResponse::Encoded { image_id: 2, .. }));
}

/// Cancel pressed right after an image was opened, before the worker has even started on it,
/// still cancels it (nothing waits for a task to begin).
#[test]
fn cancel_before_the_encoding_starts_still_cancels_it() {
    let w = small_vit_worker();
    set_image(&w, 7, image(400, 300));
    w.cancel();
    assert!(matches!(next(&w), SamResponse::ModelLoaded { .. }));
    loop {
        match next(&w) {
            SamResponse::Encoding { image_id: 7 } => {}
            SamResponse::Cancelled { image_id: 7 } => break,
            other => panic!("expected the encoding to be cancelled, got {other:?}"),
        }
    }
    // A later image is not affected by that Cancel.
    set_image(&w, 8, image(300, 200));
    assert!(matches!(next(&w), SamResponse::Encoding { image_id: 8 }));
    assert!(matches!(next(&w), SamResponse::Encoded { image_id: 8, .. }));
}

/// The next response that is not `Encoding`.
fn answer(w: &SamWorker) -> SamResponse {
    loop {
        match next(w) {
            SamResponse::Encoding { .. } | SamResponse::Preencoding { .. } => {}
            r => return r,
        }
    }
}

/// The masks a foreground point at (120, 90) gives on the current image.
fn masks_at_a_point(w: &SamWorker, image_id: u64) -> Vec<segattn::types::Mask> {
    let mut prompts = segattn::types::Prompts::default();
    prompts.points.push(segattn::types::PointPrompt {
        pos_in_image: [120.0, 90.0],
        label: segattn::types::PointLabel::Foreground,
    });
    w.send(SamRequest::Predict {
        image_id,
        request_id: 1,
        prompts,
        multimask: true,
    })
    .expect("queued");
    match answer(w) {
        SamResponse::Prediction { prediction, .. } => prediction.masks,
        other => panic!("expected a prediction, got {other:?}"),
    }
}

/// The embedding cache on disk as the worker uses it: a miss encodes and stores, a new worker
/// (a restart) answers from the disk with the same masks, a corrupt entry is encoded again and
/// rewritten, another model or image misses, a checkpoint's digest keys its entries, an image
/// encoded ahead is then read from the disk, and one opened while it is encoded ahead waits
/// for that encoding instead of starting another.
#[test]
fn embeddings_on_disk_survive_a_restart_and_corrupt_ones_are_redone() {
    use segattn::embed_cache::{EmbeddingCache, DEFAULT_MAX_BYTES};
    let dir = tempfile::tempdir().expect("tmp");
    let cache = || EmbeddingCache::new(dir.path().join("emb"), DEFAULT_MAX_BYTES);
    let entries = || {
        std::fs::read_dir(dir.path().join("emb"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
                    .map(|e| e.path())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let encoded = |r: SamResponse| match r {
        SamResponse::Encoded { from_cache, .. } => from_cache,
        other => panic!("expected Encoded, got {other:?}"),
    };
    // Opens an image; whether its embedding came from the disk.
    let open = |w: &SamWorker, image_id: u64, image: Arc<Rgb8>| {
        set_image(w, image_id, image);
        encoded(answer(w))
    };
    let start = |w: &SamWorker| {
        w.send(SamRequest::SetCache(Some(cache()))).expect("queued");
        assert!(matches!(next(w), SamResponse::ModelLoaded { .. }));
    };

    let w = small_vit_worker();
    start(&w);
    assert!(!open(&w, 1, image(400, 300)), "a miss encodes");
    let fresh = masks_at_a_point(&w, 1);
    assert_eq!(entries().len(), 1, "and stores");
    drop(w);

    let w = small_vit_worker();
    start(&w);
    assert!(
        open(&w, 1, image(400, 300)),
        "after a restart it comes from the disk"
    );
    assert_eq!(masks_at_a_point(&w, 1), fresh, "with the very same masks");

    // A corrupt entry: ignored, encoded again, rewritten whole.
    let path = entries().pop().expect("entry");
    let whole = std::fs::read(&path).expect("read");
    std::fs::write(&path, &whole[..1000]).expect("cut");
    assert!(
        !open(&w, 2, image(400, 300)),
        "a corrupt entry is not trusted"
    );
    assert_eq!(masks_at_a_point(&w, 2), fresh); // (the entry is written before this answer)
    assert_eq!(
        std::fs::metadata(&path).expect("rewritten").len(),
        whole.len() as u64
    );
    assert!(open(&w, 4, image(400, 300)), "and trusted again");

    // Another image misses; encoded ahead, it is then read from the disk.
    preencode(&w, 9, image(300, 200));
    assert!(matches!(
        answer(&w),
        SamResponse::Preencoded { token: 9, .. }
    ));
    assert_eq!(entries().len(), 2);
    assert!(open(&w, 3, image(300, 200)), "the image encoded ahead");

    // Opened while it is encoded ahead: the encoding is handed over, not stopped and redone.
    preencode(&w, 10, image(200, 300));
    assert!(matches!(next(&w), SamResponse::Preencoding { token: 10 }));
    set_image(&w, 5, image(200, 300));
    let mut ahead_ms = None;
    let from_cache = loop {
        match next(&w) {
            SamResponse::Encoding { image_id: 5 } => {}
            SamResponse::Preencoded { token: 10, ms } => ahead_ms = Some(ms),
            SamResponse::Encoded {
                image_id: 5,
                from_cache,
                ..
            } => break from_cache,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        from_cache && ahead_ms.is_some_and(|ms| ms > 0.0),
        "one encoding, in the background: {from_cache} {ahead_ms:?}"
    );
    assert_eq!(entries().len(), 3);
    drop(w);

    // A checkpoint file: keyed by its SHA-256, remembered in checkpoints.json.
    let ckpt = mobile_sam_file(dir.path());
    let w = worker();
    w.send(SamRequest::SetCache(Some(cache()))).expect("queued");
    w.send(SamRequest::LoadModel { path: ckpt })
        .expect("queued");
    assert!(matches!(next(&w), SamResponse::ModelLoaded { .. }));
    assert!(dir.path().join("emb/checkpoints.json").is_file());
    assert!(!open(&w, 1, image(400, 300)), "another model misses");
    masks_at_a_point(&w, 1); // (the entry is written before this answer)
    assert_eq!(entries().len(), 4);
}
