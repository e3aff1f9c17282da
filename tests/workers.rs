//! The SAM worker's protocol as the app uses it: a load the user cancels stops at its next
//! tensor and says so, a newer image stops an older encoding silently, and an image encoded
//! once with a model is answered from the cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use segattn::model::detweights;
use segattn::model::sam::config::{EncoderConfig, SamConfig, TinyVitConfig, VitConfig};
use segattn::model::sam::SamModel;
use segattn::runtime::Runtime;
use segattn::types::Rgb8;
use segattn::worker::sam::{SamRequest, SamResponse, SamWorker};

fn worker() -> SamWorker {
    SamWorker::spawn(Runtime::cpu(), Arc::new(|| {})).expect("worker")
}

/// Waits for the next response.
fn next(w: &SamWorker) -> SamResponse {
    w.recv_timeout(Duration::from_secs(120))
        .expect("a response in time")
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
    let config = SamConfig::with_encoder(EncoderConfig::Vit(VitConfig::official(
        96,
        4,
        4,
        vec![1, 3],
    )));
    let w = worker();
    w.send(SamRequest::UseModel(Box::new(
        SamModel::detweights(config, 2, &Device::Cpu).expect("model"),
    )))
    .expect("queued");
    assert!(matches!(next(&w), SamResponse::ModelLoaded { .. }));
    w.send(SamRequest::SetImage {
        image_id: 1,
        image: image(400, 300),
    })
    .expect("queued");
    assert!(matches!(next(&w), SamResponse::Encoding { image_id: 1 }));
    // Image 2 while image 1 encodes: image 1 stops without a word, image 2 answers.
    w.send(SamRequest::SetImage {
        image_id: 2,
        image: image(300, 200),
    })
    .expect("queued");
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
    w.send(SamRequest::SetImage {
        image_id: 2,
        image: image(300, 200),
    })
    .expect("queued");
    assert!(matches!(next(&w), SamResponse::Encoded { image_id: 2, .. }));
}
