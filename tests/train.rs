//! Training tiny transformers: the copy task learns its shifted diagonal, a trained model is a
//! model like the others (saved, reopened, the same attention, its tokenizer and position
//! table), and `segattn train --json` through the real binary.

use candle_core::Device;

use segattn::model::text::TextModel;
use segattn::model::train::Trainer;
use segattn::types::train::{Positions, Task, TrainSettings};

use crate::common::segattn;

fn settings(task: Task, positions: Positions, steps: usize) -> TrainSettings {
    TrainSettings {
        task,
        layers: 1,
        heads: 2,
        dim: 32,
        positions,
        steps,
        seed: 1,
        lr: 1e-2,
        batch: 32,
        eval_every: 50,
    }
}

fn train(s: &TrainSettings) -> Trainer {
    let mut t = Trainer::new(s, &Device::Cpu).expect("trainer");
    for _ in 0..s.steps {
        t.step().expect("step");
    }
    t
}

#[test]
fn the_copy_task_is_learned_and_its_shifted_diagonal_dominates() {
    let t = train(&settings(Task::Copy, Positions::Learned, 400));
    let eval = t.evaluate().expect("eval");
    assert!(eval.accuracy >= 0.99, "{eval:?}");
    let score = eval.attention_score.expect("a pattern");
    assert!(
        score > 0.6,
        "the best head's mass on the key two back: {eval:?}"
    );
}

#[test]
fn a_trained_model_reopens_with_the_same_attention() {
    for positions in Positions::ALL {
        let s = TrainSettings {
            layers: 2,
            ..settings(Task::Reverse, positions, 30)
        };
        let t = train(&s);
        let dir = tempfile::tempdir().expect("tmp");
        t.save(dir.path()).expect("saved");
        let m = TextModel::load_dir(dir.path(), &Device::Cpu).expect("reopens");
        assert_eq!(m.config().model_type.as_str(), "segattn-tiny");
        assert_eq!((m.config().num_layers, m.config().num_heads), (2, 2));
        assert!(!m.config().causal);
        // The tokenizer cuts digits with or without spaces.
        let ids = |text: &str| m.encode(text).expect("encodes").ids();
        assert_eq!(ids("3 1 4 1 5 9 2 6"), ids("31415926"));
        let first: Vec<String> = t.vocabulary().to_vec();
        let held = t.held_out();
        let text: String = held.ids[..held.n]
            .iter()
            .map(|&i| first[i as usize].clone())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(ids(&text), held.ids[..held.n].to_vec());
        let ours = t.sample_attention().expect("attention");
        let out = m.run(&text).expect("runs");
        assert_eq!(out.attentions.tokens, ours.tokens);
        let gap = out
            .attentions
            .probs
            .iter()
            .zip(&ours.probs)
            .fold(0f32, |g, (a, b)| g.max((a - b).abs()));
        assert!(gap < 1e-6, "{positions:?}: {gap}");
        // The step view's softmax is the heatmap's row.
        let steps = m
            .head_steps(
                out.attentions.tokens.clone(),
                &out.hidden_states[1],
                (1, 1, 2),
            )
            .expect("steps");
        let row = &out.attentions.head(1, 1)[2 * held.n..3 * held.n];
        let gap = steps
            .probs
            .iter()
            .zip(row)
            .fold(0f32, |g, (a, b)| g.max((a - b).abs()));
        assert!(gap < 1e-5, "{positions:?}: step view vs heatmap {gap}");
        match positions {
            Positions::Rope => assert!(m.position_table().is_err()),
            _ => assert_eq!(m.position_table().expect("table").0, held.n),
        }
    }
}

#[test]
fn the_sentences_model_reads_the_lesson() {
    let t = train(&TrainSettings {
        task: Task::Sentences,
        ..settings(Task::Sentences, Positions::Learned, 5)
    });
    let dir = tempfile::tempdir().expect("tmp");
    t.save(dir.path()).expect("saved");
    let m = TextModel::load_dir(dir.path(), &Device::Cpu).expect("reopens");
    assert!(m.config().causal);
    let out = m.run("Le chat noir mange le poisson.").expect("runs");
    assert_eq!(
        out.attentions.tokens,
        ["<s>", "Le", "chat", "noir", "mange", "le", "poisson", "."]
    );
    assert!(out.encoded.tokens[0].special);
    // A word it never saw is unknown, not an error.
    let out = m.run("Le chat bleu").expect("runs");
    assert_eq!(out.attentions.tokens[3], "<unk>");
}

#[test]
fn train_prints_one_json_report() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("model");
    let run = segattn(&[
        "train",
        "--task",
        "copy",
        "--layers",
        "1",
        "--dim",
        "32",
        "--steps",
        "40",
        "--eval-every",
        "20",
        "--json",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one json object");
    assert_eq!(v["task"], "copy");
    assert_eq!(v["steps"], 40);
    for key in ["final_loss", "accuracy", "seconds", "attention_score"] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    assert!(run.stderr.contains("step 20:"), "{}", run.stderr);
    assert!(out.join("model.safetensors").is_file());
    let bad = segattn(&["train", "--task", "copy", "--dim", "20", "--heads", "4"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("width"), "{}", bad.stderr);
}
