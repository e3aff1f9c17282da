//! French-capable text models against Hugging Face `transformers` (eager attention): tiny
//! CamemBERT, XLM-RoBERTa, RoBERTa and a BERT with a SentencePiece vocabulary
//! (`tests/fixtures/text/french/`, made by `tools/reference/make_french_fixtures.py` with
//! transformers 5.24 / tokenizers 0.23), on the lesson's sentences, accents, apostrophes, emoji
//! and a text of more than 100 tokens.

use candle_core::Device;
use segattn::analysis::word_groups;
use segattn::model::text::TextModel;

use crate::common::{f32s, french_model_dir, json, load_tensors, max_abs, FRENCH_MODELS};

fn load(name: &str) -> TextModel {
    TextModel::load_dir(&french_model_dir(name), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{name} loads: {e:#}"))
}

#[test]
fn french_models_match_transformers_token_for_token() {
    for name in FRENCH_MODELS {
        let model = load(name);
        let meta = json(&format!("text/french/{name}.json"));
        let reference = load_tensors(&format!("text/french/{name}.safetensors"));
        for s in meta["sentences"].as_array().expect("sentences") {
            let (sid, text) = (
                s["id"].as_str().expect("id"),
                s["text"].as_str().expect("text"),
            );
            let out = model.run(text).expect("runs");
            let ids: Vec<u32> = serde_json::from_value(s["input_ids"].clone()).expect("ids");
            let tokens: Vec<String> = serde_json::from_value(s["tokens"].clone()).expect("tokens");
            assert_eq!(out.encoded.ids(), ids, "{name} {sid}: ids");
            let ours: Vec<&str> = out.encoded.tokens.iter().map(|t| t.text.as_str()).collect();
            assert_eq!(ours, tokens, "{name} {sid}: tokens");
            let attentions = out.attentions.probs.clone();
            let err = max_abs(&attentions, &f32s(&reference, &format!("{sid}.attentions")));
            eprintln!("{name} {sid} ({} tokens): attentions {err:.2e}", ids.len());
            assert!(err <= 1e-5, "{name} {sid}: attentions {err:e}");
            let hidden: Vec<f32> = out.hidden_states.concat();
            let err = max_abs(&hidden, &f32s(&reference, &format!("{sid}.hidden_states")));
            assert!(err <= 1e-4, "{name} {sid}: hidden states {err:e}");
        }
        let longest = meta["sentences"]
            .as_array()
            .expect("sentences")
            .iter()
            .map(|s| s["n_tokens"].as_u64().expect("n"))
            .max();
        assert!(longest >= Some(100), "{name}: a 100+ token case");
    }
}

/// Padding: the RoBERTa family gives padding tokens the padding row and counts positions over
/// the real tokens only.
#[test]
fn french_models_padded_input_matches_transformers() {
    for name in FRENCH_MODELS {
        let model = load(name);
        let reference = load_tensors(&format!("text/french/{name}.safetensors"));
        let ints = |key: &str| -> Vec<u32> {
            let v = reference[key].to_vec1::<i64>().expect("integers");
            v.into_iter().map(|v| v as u32).collect()
        };
        let (ids, mask) = (ints("pad.input_ids"), ints("pad.attention_mask"));
        let out = model.forward_ids(&ids, Some(&mask)).expect("forward");
        let n_real = mask.iter().filter(|&&m| m == 1).count();
        let n = ids.len();
        let ours: Vec<f32> = out
            .attentions
            .iter()
            .flat_map(|t| {
                t.flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .expect("data")
            })
            .collect();
        let theirs = f32s(&reference, "pad.attentions");
        // Rows of real tokens (padding rows are not compared: nobody reads them).
        let rows = ours.len() / n;
        for r in 0..rows {
            if r % n >= n_real {
                continue;
            }
            let err = max_abs(&ours[r * n..(r + 1) * n], &theirs[r * n..(r + 1) * n]);
            assert!(err <= 1e-5, "{name}: padded attention row {r}: {err:e}");
        }
        let last = out.hidden_states.last().expect("hidden");
        let last: Vec<f32> = last.flatten_all().and_then(|t| t.to_vec1()).expect("data");
        let d = last.len() / n;
        let theirs = f32s(&reference, "pad.last_hidden_state");
        let err = max_abs(&last[..n_real * d], &theirs[..n_real * d]);
        assert!(err <= 1e-4, "{name}: padded last hidden state {err:e}");
    }
}

#[test]
fn sentencepiece_and_byte_level_pieces_merge_into_the_lessons_words() {
    let words = |name: &str, text: &str| {
        let model = load(name);
        let encoded = model.encode(text).expect("encodes");
        word_groups(&encoded.tokens, text).1
    };
    let lesson = "Le chat noir mange le poisson.";
    for (name, open, close) in [
        ("camembert_tiny", "<s>", "</s>"),
        ("roberta_tiny", "<s>", "</s>"),
        ("bert_sentencepiece_tiny", "<s>", "</s>"),
    ] {
        assert_eq!(
            words(name, lesson),
            [open, "Le", "chat", "noir", "mange", "le", "poisson", ".", close],
            "{name}"
        );
    }
    // The byte-level pieces of accented letters and of each emoji join; the emoji stay two.
    let hard = "Élève naïve 🐈🍣";
    assert_eq!(
        words("roberta_tiny", hard),
        ["<s>", "Élève", "naïve", "🐈", "🍣", "</s>"]
    );
}

/// RoBERTa-style tables: rows `0..=padding_idx` are never read; the shown table starts at the
/// row token 0 reads, and its length is the usable positions.
#[test]
fn roberta_position_table_skips_the_unused_rows() {
    let model = load("camembert_tiny");
    assert_eq!(model.config().position_offset, 2);
    let (rows, cols, table) = model.position_table().expect("table");
    assert_eq!((rows, cols), (256, 64));
    let all = segattn::model::detweights::generate(
        21,
        "roberta.embeddings.position_embeddings.weight",
        &[258, 64],
    );
    assert_eq!(table[..], all[2 * 64..]);
    assert_eq!(model.info("tiny".into()).skipped_position_rows, 2);
    // 300 words: truncated to the 256 usable positions, `</s>` kept.
    let out = model.run(&"le chat noir ".repeat(100)).expect("runs");
    assert_eq!(out.encoded.tokens.len(), 256);
    assert_eq!(
        out.encoded.tokens.last().map(|t| t.text.as_str()),
        Some("</s>")
    );
}
