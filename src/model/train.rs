//! Training a [`TinyNet`] on a [`Task`] in-process: seeded initial weights, a fresh seeded batch
//! per step, cross-entropy on the scored tokens, candle's automatic differentiation and AdamW,
//! evaluations on the held-out set (loss, accuracy, attention score), and the trained model
//! saved as a folder the text views open (`config.json`, `tokenizer.json`, `model.safetensors`).
//!
//! Deterministic: the same settings and seed give the same losses on the same machine (the
//! random numbers come from seeded generators, never from candle's unseeded ones).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::analysis::tasks::{self, Batch};
use crate::analysis::AttentionMaps;
use crate::model::ops::to_vec_f32;
use crate::model::text::tiny::{TinyNet, TinySpec, LAYER_NORM_EPS};
use crate::types::train::{Eval, Task, TrainReport, TrainSettings};

/// The `model_type` of a trained tiny model's `config.json`.
pub const TINY_MODEL_TYPE: &str = "segattn-tiny";

/// A model in training.
pub struct Trainer {
    settings: TrainSettings,
    spec: TinySpec,
    vars: Vec<(String, Var)>,
    net: TinyNet,
    opt: AdamW,
    rng: StdRng,
    held_out: Batch,
    vocab: Vec<String>,
    step: usize,
    device: Device,
    /// Time spent in [`Self::advance`] (steps and their evaluations; pauses excluded).
    seconds: f64,
    last_loss: f32,
    last_eval: Option<Eval>,
    best_accuracy: f32,
    reached_99: Option<(usize, f64)>,
}

/// Mean cross-entropy of `logits` `[b, n, vocab]` on the scored tokens of `batch`.
fn loss_of(logits: &Tensor, batch: &Batch, device: &Device) -> candle_core::Result<Tensor> {
    let (b, n, v) = logits.dims3()?;
    let logits = logits.reshape((b * n, v))?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_probs = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?;
    let targets = Tensor::from_slice(&batch.targets, (b * n, 1), device)?;
    let picked = log_probs.gather(&targets, D::Minus1)?.squeeze(D::Minus1)?; // [b·n]
    let weights = Tensor::from_slice(&batch.weights, b * n, device)?.to_dtype(picked.dtype())?;
    let count = batch.scored().max(1) as f64;
    (picked * weights)?.sum_all()?.neg()? / count
}

impl Trainer {
    /// A fresh model for `settings` (f32 on `device`).
    pub fn new(settings: &TrainSettings, device: &Device) -> Result<Self> {
        Self::with_dtype(settings, device, DType::F32)
    }

    /// [`Self::new`] in `dtype` (f64 for the finite-difference checks).
    pub fn with_dtype(settings: &TrainSettings, device: &Device, dtype: DType) -> Result<Self> {
        settings.validate().map_err(|e| anyhow!(e))?;
        let vocab = tasks::vocabulary(settings.task);
        let spec = TinySpec {
            vocab: vocab.len(),
            dim: settings.dim,
            layers: settings.layers,
            heads: settings.heads,
            max_len: tasks::seq_len(settings.task),
            positions: settings.positions,
            causal: settings.task.causal(),
        };
        let mut init = StdRng::seed_from_u64(settings.seed);
        let mut vars = Vec::new();
        for (name, shape) in spec.parameters() {
            let count: usize = shape.iter().product();
            let values: Vec<f64> =
                if (name.contains(".ln") || name.starts_with("ln_")) && name.ends_with(".weight") {
                    vec![1.0; count]
                } else if name.ends_with(".bias") {
                    vec![0.0; count]
                } else {
                    // Embeddings N(0, 1/√d)·…; dense layers N(0, 1/√fan_in), so every layer starts
                    // with unit-scale activations whatever the width.
                    let fan_in = *shape.last().unwrap_or(&1) as f64;
                    let std = if name.contains("emb") {
                        0.5
                    } else {
                        fan_in.powf(-0.5)
                    };
                    let normal = Normal::new(0.0, std).map_err(|e| anyhow!("{e}"))?;
                    (0..count).map(|_| normal.sample(&mut init)).collect()
                };
            let t = Tensor::from_vec(values, shape.as_slice(), device)?.to_dtype(dtype)?;
            vars.push((name, Var::from_tensor(&t)?));
        }
        let by_name: HashMap<&str, &Var> = vars.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let net = TinyNet::build(spec, device, dtype, |name, _| {
            by_name
                .get(name)
                .map(|v| v.as_tensor().clone())
                .with_context(|| format!("no parameter {name}"))
        })?;
        let opt = AdamW::new(
            vars.iter().map(|(_, v)| v.clone()).collect(),
            ParamsAdamW {
                lr: settings.lr,
                weight_decay: 0.0,
                ..ParamsAdamW::default()
            },
        )?;
        Ok(Self {
            settings: settings.clone(),
            spec,
            vars,
            net,
            opt,
            rng: StdRng::seed_from_u64(settings.seed.wrapping_add(1)),
            held_out: tasks::held_out(settings.task, settings.seed),
            vocab,
            step: 0,
            device: device.clone(),
            seconds: 0.0,
            last_loss: f32::NAN,
            last_eval: None,
            best_accuracy: 0.0,
            reached_99: None,
        })
    }

    /// One step ([`Self::step`]) and, when one is due (every `eval_every` steps, at the last
    /// step, or `force_eval`), an evaluation ([`Self::evaluate`]); keeps what
    /// [`Self::report`] reports. Returns the step's loss and the evaluation, if one ran.
    pub fn advance(&mut self, force_eval: bool) -> Result<(f32, Option<Eval>)> {
        let t = std::time::Instant::now();
        let loss = self.step()?;
        let due =
            force_eval || self.step.is_multiple_of(self.settings.eval_every) || self.finished();
        let eval = if due { Some(self.evaluate()?) } else { None };
        self.seconds += t.elapsed().as_secs_f64();
        self.last_loss = loss;
        if let Some(e) = &eval {
            self.best_accuracy = self.best_accuracy.max(e.accuracy);
            if self.reached_99.is_none() && e.accuracy >= 0.99 {
                self.reached_99 = Some((self.step, self.seconds));
            }
            self.last_eval = Some(e.clone());
        }
        Ok((loss, eval))
    }

    /// True once every step of the settings is done.
    pub fn finished(&self) -> bool {
        self.step >= self.settings.steps
    }

    /// Seconds spent in [`Self::advance`].
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// The run so far, as `segattn train --json` reports it (from the last evaluation).
    pub fn report(&self) -> TrainReport {
        let last = self.last_eval.as_ref();
        TrainReport {
            task: self.settings.task.as_str(),
            steps: self.step,
            final_loss: self.last_loss,
            accuracy: last.map_or(0.0, |e| e.accuracy),
            seconds: self.seconds,
            attention_score: last.and_then(|e| e.attention_score),
            best_head: last.and_then(|e| e.best_head),
            reached_99: self.reached_99,
            best_accuracy: self.best_accuracy,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// Steps done.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// The model's shape.
    pub fn spec(&self) -> &TinySpec {
        &self.spec
    }

    /// The net (its tensors are the trained parameters).
    pub fn net(&self) -> &TinyNet {
        &self.net
    }

    /// Every parameter by name, in [`TinySpec::parameters`] order.
    pub fn parameters(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The held-out set.
    pub fn held_out(&self) -> &Batch {
        &self.held_out
    }

    /// The task's tokens.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocab
    }

    fn ids(&self, batch: &Batch) -> candle_core::Result<Tensor> {
        Tensor::from_slice(&batch.ids, (batch.size, batch.n), &self.device)
    }

    /// The mean loss of `batch` as a tensor that gradients flow from.
    pub fn loss(&self, batch: &Batch) -> Result<Tensor> {
        let out = self.net.forward_batch(&self.ids(batch)?)?;
        Ok(loss_of(&out.logits, batch, &self.device)?)
    }

    /// One optimiser step on a fresh batch; returns its loss (before the step).
    pub fn step(&mut self) -> Result<f32> {
        let batch = tasks::batch(self.settings.task, self.settings.batch, &mut self.rng);
        let loss = self.loss(&batch)?;
        let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if !value.is_finite() {
            bail!(
                "the loss is {value} at step {}: lower the learning rate",
                self.step + 1
            );
        }
        self.opt.backward_step(&loss)?;
        self.step += 1;
        Ok(value)
    }

    /// Loss, accuracy and attention score on the held-out set.
    pub fn evaluate(&self) -> Result<Eval> {
        let b = &self.held_out;
        let out = self.net.forward_batch(&self.ids(b)?)?;
        let loss = loss_of(&out.logits, b, &self.device)?
            .to_dtype(DType::F32)?
            .to_scalar::<f32>()?;
        let predicted = out
            .logits
            .argmax(D::Minus1)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        let right = (0..b.ids.len())
            .filter(|&i| b.weights[i] > 0.0 && predicted[i] == b.targets[i])
            .count();
        let accuracy = right as f32 / b.scored().max(1) as f32;
        let (attention_score, best_head) = if self.settings.task.has_pattern() {
            let maps = self.attention_maps(&out.attentions, b)?;
            match tasks::attention_score(b, &maps) {
                Some((s, h)) => (Some(s), Some(h)),
                None => (None, None),
            }
        } else {
            (None, None)
        };
        Ok(Eval {
            step: self.step,
            loss,
            accuracy,
            attention_score,
            best_head,
        })
    }

    /// Per sequence of `b`, every layer's and head's attention from `per_layer`
    /// (`[b, heads, n, n]` each).
    fn attention_maps(&self, per_layer: &[Tensor], b: &Batch) -> Result<Vec<AttentionMaps>> {
        let layers: Vec<Vec<f32>> = per_layer
            .iter()
            .map(to_vec_f32)
            .collect::<candle_core::Result<_>>()?;
        let (h, n) = (self.spec.heads, b.n);
        Ok((0..b.size)
            .map(|s| {
                let mut probs = Vec::with_capacity(layers.len() * h * n * n);
                for l in &layers {
                    probs.extend_from_slice(&l[s * h * n * n..(s + 1) * h * n * n]);
                }
                AttentionMaps {
                    tokens: self.tokens_of(&b.ids[s * n..(s + 1) * n]),
                    layers: layers.len(),
                    heads: h,
                    n,
                    probs,
                    causal: self.spec.causal,
                }
            })
            .collect())
    }

    fn tokens_of(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| self.vocab.get(i as usize).cloned().unwrap_or_default())
            .collect()
    }

    /// Every layer's and head's attention on the first held-out sequence (the sentences task:
    /// the lesson's first sentence, without its padding).
    pub fn sample_attention(&self) -> Result<AttentionMaps> {
        let b = &self.held_out;
        let mut ids = b.ids[..b.n].to_vec();
        if let Some(pad) = self.vocab.iter().position(|v| v == tasks::PAD) {
            while ids.len() > 1 && ids.last() == Some(&(pad as u32)) {
                ids.pop();
            }
        }
        let out = self.net.forward(&ids)?;
        crate::model::text::attention_maps(&out.attentions, self.tokens_of(&ids), self.spec.causal)
    }

    /// Saves the model as a folder: `model.safetensors` (f32), `config.json` and
    /// `tokenizer.json`, each written to a temporary file first and renamed into place.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut data = Vec::with_capacity(self.vars.len());
        for (name, v) in &self.vars {
            let bytes: Vec<u8> = to_vec_f32(v.as_tensor())?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            data.push((name.as_str(), v.dims().to_vec(), bytes));
        }
        let views = data
            .iter()
            .map(|(name, shape, bytes)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )?;
                Ok((*name, view))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        crate::files::write_bytes_atomic(
            &dir.join("model.safetensors"),
            &safetensors::serialize(views, None)?,
        )?;
        let config = serde_json::json!({
            "model_type": TINY_MODEL_TYPE,
            "vocab_size": self.spec.vocab,
            "hidden_size": self.spec.dim,
            "num_hidden_layers": self.spec.layers,
            "num_attention_heads": self.spec.heads,
            "intermediate_size": self.spec.hidden(),
            "max_position_embeddings": self.spec.max_len,
            "positions": self.spec.positions.as_str(),
            "causal": self.spec.causal,
            "layer_norm_eps": LAYER_NORM_EPS,
            "hidden_act": "gelu_new",
            "task": self.settings.task.as_str(),
            "trained_steps": self.step,
            "seed": self.settings.seed,
        });
        crate::files::write_bytes_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
        crate::files::write_bytes_atomic(
            &dir.join("tokenizer.json"),
            tokenizer_json(self.settings.task, &self.vocab).as_bytes(),
        )?;
        Ok(())
    }
}

/// A `tokenizers` `tokenizer.json` for a task's vocabulary: a word-level model; the symbol
/// tasks split every character (`31415926` or `3 1 4 1 5 9 2 6`), the sentences task splits
/// words and punctuation as `Whitespace` and starts each text with `<s>`.
pub fn tokenizer_json(task: Task, vocab: &[String]) -> String {
    let vocab_map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
        .collect();
    let added = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let (pre_tokenizer, post_processor, specials) = if task == Task::Sentences {
        let bos = vocab.iter().position(|v| v == tasks::BOS).unwrap_or(0);
        let pad = vocab.iter().position(|v| v == tasks::PAD).unwrap_or(0);
        (
            serde_json::json!({"type": "Whitespace"}),
            serde_json::json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": tasks::BOS, "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": tasks::BOS, "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {tasks::BOS: {"id": tasks::BOS, "ids": [bos], "tokens": [tasks::BOS]}}
            }),
            vec![
                added(0, tasks::UNK),
                added(pad, tasks::PAD),
                added(bos, tasks::BOS),
            ],
        )
    } else {
        (
            serde_json::json!({"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"},
                {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": false}
            ]}),
            serde_json::Value::Null,
            vec![added(0, tasks::UNK)],
        )
    };
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": specials,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab_map, "unk_token": tasks::UNK}
    });
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::train::Positions;

    fn small(task: Task, positions: Positions) -> TrainSettings {
        TrainSettings {
            task,
            layers: 2,
            heads: 2,
            dim: 16,
            positions,
            steps: 20,
            seed: 5,
            lr: 3e-3,
            batch: 4,
            eval_every: 10,
        }
    }

    /// Every parameter tensor's gradient against central finite differences, in f64, on
    /// an encoder with learned positions and a decoder with rotary ones.
    #[test]
    fn every_layers_gradient_agrees_with_finite_differences() {
        for (task, positions) in [
            (Task::Reverse, Positions::Learned),
            (Task::Induction, Positions::Rope),
            (Task::Copy, Positions::Sinusoidal),
        ] {
            let settings = small(task, positions);
            let mut t = Trainer::with_dtype(&settings, &Device::Cpu, DType::F64).expect("trainer");
            // A few steps first, so LayerNorm and attention are away from their initial state.
            for _ in 0..3 {
                t.step().expect("step");
            }
            let mut rng = StdRng::seed_from_u64(9);
            let batch = tasks::batch(task, 3, &mut rng);
            let loss = t.loss(&batch).expect("loss");
            let grads = loss.backward().expect("backward");
            let eps = 1e-5;
            for (name, var) in t.parameters() {
                let grad = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{task:?}: no gradient for {name}"))
                    .flatten_all()
                    .and_then(|g| g.to_vec1::<f64>())
                    .expect("grad");
                let base = var
                    .as_tensor()
                    .flatten_all()
                    .and_then(|v| v.to_vec1::<f64>())
                    .expect("v");
                // The entries with the largest gradients, and the first one.
                let mut order: Vec<usize> = (0..grad.len()).collect();
                order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
                let picks = [order[0], order[order.len() / 3], 0];
                let max_grad = grad[order[0]].abs().max(1e-12);
                for &i in &picks {
                    let at = |delta: f64| -> f64 {
                        let mut v = base.clone();
                        v[i] += delta;
                        let shaped = Tensor::from_vec(v, var.shape(), &Device::Cpu).expect("t");
                        var.set(&shaped).expect("set");
                        t.loss(&batch)
                            .expect("loss")
                            .to_scalar::<f64>()
                            .expect("f64")
                    };
                    let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                    let restored = Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu);
                    var.set(&restored.expect("t")).expect("set");
                    // Relative to the tensor's largest gradient; an absolute floor for the
                    // gradients that are zero in exact arithmetic (a key bias shifts every
                    // score of a row alike), where the differences are round-off (~1e-11).
                    let diff = (numeric - grad[i]).abs();
                    let err = diff / max_grad;
                    assert!(
                        err < 1e-5 || diff < 1e-9,
                        "{task:?} {name}[{i}]: autograd {} vs finite differences {numeric} \
                         (relative to the largest {max_grad}: {err:e})",
                        grad[i]
                    );
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_losses() {
        let settings = small(Task::Sort, Positions::Learned);
        let run = |s: &TrainSettings| -> Vec<f32> {
            let mut t = Trainer::new(s, &Device::Cpu).expect("trainer");
            (0..8).map(|_| t.step().expect("step")).collect()
        };
        assert_eq!(run(&settings), run(&settings));
        let other = TrainSettings {
            seed: 6,
            ..settings.clone()
        };
        assert_ne!(run(&settings), run(&other));
    }

    #[test]
    fn the_loss_decreases() {
        for task in Task::ALL {
            let settings = TrainSettings {
                batch: 32,
                ..small(task, Positions::Learned)
            };
            let mut t = Trainer::new(&settings, &Device::Cpu).expect("trainer");
            let before = t.evaluate().expect("eval").loss;
            for _ in 0..80 {
                t.step().expect("step");
            }
            let after = t.evaluate().expect("eval").loss;
            assert!(
                after < 0.9 * before,
                "{task:?}: held-out loss {before} → {after}"
            );
        }
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let settings = TrainSettings {
            dim: 18,
            heads: 4,
            ..TrainSettings::default()
        };
        let err = Trainer::new(&settings, &Device::Cpu)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("width"), "{err}");
    }
}
