//! `segattn attend` and `segattn encodings` through the real binary, and bad model folders.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::{assert_clean_error, segattn};

fn minilm() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testdata/all-MiniLM-L6-v2")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn attend_prints_json_and_writes_safetensors() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("att.safetensors");
    let run = segattn(&[
        "attend",
        "--model",
        s(&minilm()),
        "--text",
        "Le chat noir mange le poisson.",
        "--json",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["model_type"], "bert");
    assert_eq!(v["layers"], 6);
    assert_eq!(v["heads"], 12);
    let tokens: Vec<&str> = v["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("str"))
        .collect();
    assert_eq!(
        tokens,
        ["[CLS]", "le", "chat", "noir", "man", "##ge", "le", "po", "##isson", ".", "[SEP]"]
    );
    let row: Vec<f64> = v["attentions"][5][11][3]
        .as_array()
        .expect("row")
        .iter()
        .map(|x| x.as_f64().expect("f"))
        .collect();
    assert_eq!(row.len(), 11);
    assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);

    let bytes = std::fs::read(&out).expect("written");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    assert_eq!(
        st.tensor("attentions").expect("attentions").shape(),
        &[6, 12, 11, 11]
    );
    assert_eq!(st.tensor("input_ids").expect("ids").shape(), &[11]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
    let toks: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().expect("meta")["tokens"])
            .expect("tokens json");
    assert_eq!(toks.len(), 11);
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn attend_truncates_long_text_with_a_notice_and_refuses_empty_text() {
    let long = "mot ".repeat(10_000);
    let run = segattn(&["attend", "--model", s(&minilm()), "--text", &long]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("truncated to 512"), "{}", run.stderr);
    assert!(run.stdout.starts_with("512 tokens"), "{}", run.stdout);
    assert_clean_error(
        &segattn(&["attend", "--model", s(&minilm()), "--text", "  "]),
        &["empty"],
    );
}

fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

#[test]
fn bad_model_folders_fail_cleanly() {
    let no_config = folder_with(&[("tokenizer.json", "{}")]);
    assert_clean_error(
        &segattn(&["attend", "--model", s(no_config.path()), "--text", "hi"]),
        &["lacks config.json"],
    );
    let bert_config = r#"{"model_type":"bert","vocab_size":30522,"hidden_size":384,"num_hidden_layers":6,"num_attention_heads":12,"intermediate_size":1536,"max_position_embeddings":512}"#;
    let no_tok = folder_with(&[("config.json", bert_config)]);
    assert_clean_error(
        &segattn(&["attend", "--model", s(no_tok.path()), "--text", "hi"]),
        &["lacks tokenizer.json"],
    );
    let llama = folder_with(&[
        ("config.json", r#"{"model_type":"llama"}"#),
        ("tokenizer.json", "{}"),
    ]);
    assert_clean_error(
        &segattn(&["attend", "--model", s(llama.path()), "--text", "hi"]),
        &["llama", "bert, gpt2"],
    );
    assert_clean_error(
        &segattn(&["attend", "--model", "/nonexistent/model", "--text", "hi"]),
        &["not a model folder"],
    );
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn weights_that_do_not_match_the_config_name_the_tensor_and_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = minilm();
    std::fs::copy(
        src.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .expect("copy");
    std::os::unix::fs::symlink(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .expect("link");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("cfg"))
            .expect("json");
    cfg["intermediate_size"] = 2048.into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).expect("write");
    assert_clean_error(
        &segattn(&["attend", "--model", s(dir.path()), "--text", "hi"]),
        &[
            "encoder.layer.0.intermediate.dense.weight",
            "[1536, 384]",
            "model.safetensors",
        ],
    );
}

#[test]
fn encodings_write_the_library_heatmap() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("sin.png");
    let run = segattn(&[
        "encodings",
        "--kind",
        "sinusoidal",
        "--positions",
        "64",
        "--dims",
        "32",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let png = image::open(&out).expect("png").into_rgba8();
    assert_eq!(png.dimensions(), (32 * 8, 64 * 8));
    // Headless twin: the CLI's pixels are the library's heatmap, cell for cell.
    let m = segattn::analysis::positional::sinusoidal(64, 32, 10000.0);
    let raster = segattn::viz::heatmap(
        &m.data,
        64,
        32,
        segattn::viz::ValueRange::Symmetric,
        segattn::viz::Colormap::RdBu,
        |_, _| false,
    );
    for (r, c) in [(0, 0), (0, 1), (5, 7), (63, 31)] {
        let px = png.get_pixel(c as u32 * 8 + 3, r as u32 * 8 + 3).0;
        assert_eq!(px, raster.rgba[(r * 32 + c) * 4..][..4], "cell ({r}, {c})");
    }
    let sim = dir.path().join("rope-sim.png");
    let run = segattn(&[
        "encodings",
        "--kind",
        "rope",
        "--positions",
        "100",
        "--dims",
        "64",
        "--similarity",
        "--out",
        s(&sim),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(image::image_dimensions(&sim).expect("png"), (500, 500));
    assert_clean_error(
        &segattn(&["encodings", "--kind", "learned", "--out", s(&sim)]),
        &["--model"],
    );
    assert_clean_error(
        &segattn(&[
            "encodings",
            "--kind",
            "sinusoidal",
            "--positions",
            "0",
            "--out",
            s(&sim),
        ]),
        &["at least 1"],
    );
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn learned_encodings_come_from_the_weights() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("learned.png");
    let run = segattn(&[
        "encodings",
        "--kind",
        "learned",
        "--model",
        s(&minilm()),
        "--positions",
        "64",
        "--dims",
        "384",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let png = image::open(&out).expect("png").into_rgba8();
    assert_eq!(png.dimensions(), (384, 64));
    // Every pixel is the colour of the weight: rows 0..64 of `position_embeddings.weight`
    // (transformers' values in the fixture), coloured as the library colours them.
    let table = common::f32s(
        &common::load_tensors("text/minilm.safetensors"),
        "position_embeddings_0_64",
    );
    let raster = segattn::viz::heatmap(
        &table,
        64,
        384,
        segattn::viz::ValueRange::Symmetric,
        segattn::viz::Colormap::RdBu,
        |_, _| false,
    );
    assert_eq!(png.into_raw(), raster.rgba);
}
