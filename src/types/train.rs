//! Training a tiny transformer in the app, as plain data: the tasks, the settings the Train view
//! and `segattn train` choose, and what training reports back (progress, evaluations, the final
//! report of `segattn train --json`).

use serde::Serialize;

use crate::analysis::AttentionMaps;

/// How a model knows where each token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// A learned table, one row per position, added to the token embedding (BERT, GPT-2).
    #[default]
    Learned,
    /// The fixed sinusoidal table of "Attention is all you need", added to the embedding.
    Sinusoidal,
    /// Rotary embeddings: each head's queries and keys rotated by an angle proportional to the
    /// position (RoFormer, Llama); nothing is added to the embedding.
    Rope,
}

impl Positions {
    /// Every kind, in the order the UI lists them.
    pub const ALL: [Self; 3] = [Self::Learned, Self::Sinusoidal, Self::Rope];

    /// The name in `config.json` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::Sinusoidal => "sinusoidal",
            Self::Rope => "rope",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A task whose right attention pattern is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Reverse 8 digits (an encoder): each position looks at its mirror, an anti-diagonal.
    #[default]
    Reverse,
    /// Repeat the digit seen [`COPY_OFFSET`] positions earlier (a decoder): a shifted diagonal.
    Copy,
    /// Sort 8 digits (an encoder): position `i` looks at the digit of rank `i`, wherever it is.
    Sort,
    /// Predict the token that followed the previous occurrence of the current token, in a
    /// random sequence repeated after a random-length prefix (a decoder, two layers): an
    /// induction head.
    Induction,
    /// Next-word prediction on the French lesson's sentences (a decoder); no single expected
    /// pattern.
    Sentences,
}

/// How far back the copy task copies.
pub const COPY_OFFSET: usize = 2;

impl Task {
    /// Every task, in the order the UI lists them.
    pub const ALL: [Self; 5] = [
        Self::Reverse,
        Self::Copy,
        Self::Sort,
        Self::Induction,
        Self::Sentences,
    ];

    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reverse => "reverse",
            Self::Copy => "copy",
            Self::Sort => "sort",
            Self::Induction => "induction",
            Self::Sentences => "sentences",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// True for the tasks a causal (left-to-right) model learns.
    pub fn causal(self) -> bool {
        matches!(self, Self::Copy | Self::Induction | Self::Sentences)
    }

    /// True when the task has an expected attention pattern ([`Eval::attention_score`]).
    pub fn has_pattern(self) -> bool {
        self != Self::Sentences
    }
}

/// What to train: the task, the model's size and the optimiser's settings.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    /// The task.
    pub task: Task,
    /// Transformer blocks (1–4).
    pub layers: usize,
    /// Attention heads per block (1–4).
    pub heads: usize,
    /// Model width (16–128), a multiple of `2 × heads`.
    pub dim: usize,
    /// How positions are encoded.
    pub positions: Positions,
    /// Optimiser steps to run.
    pub steps: usize,
    /// Seeds the initial weights, the training data and the held-out set.
    pub seed: u64,
    /// AdamW's learning rate.
    pub lr: f64,
    /// Sequences per step.
    pub batch: usize,
    /// Steps between evaluations on the held-out set.
    pub eval_every: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            task: Task::Reverse,
            layers: 2,
            heads: 2,
            dim: 64,
            positions: Positions::Learned,
            steps: 1500,
            seed: 0,
            lr: 3e-3,
            batch: 64,
            eval_every: 50,
        }
    }
}

impl TrainSettings {
    /// The widths of [`Self::WIDTHS`] that `heads` heads divide into pairs (RoPE rotates
    /// pairs of a head's dimensions, so every head's width is even).
    pub fn widths_for(heads: usize) -> Vec<usize> {
        Self::WIDTHS
            .into_iter()
            .filter(|w| w.is_multiple_of(2 * heads.max(1)))
            .collect()
    }

    /// The widths the Train view offers.
    pub const WIDTHS: [usize; 7] = [16, 24, 32, 48, 64, 96, 128];

    /// [`Self::dim`] moved to the nearest width that suits [`Self::heads`], if it does not.
    pub fn snap_width(&mut self) {
        let widths = Self::widths_for(self.heads);
        if !widths.contains(&self.dim) {
            if let Some(&w) = widths.iter().min_by_key(|w| w.abs_diff(self.dim)) {
                self.dim = w;
            }
        }
    }

    /// Checks the ranges the model supports; the message says which setting is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=4).contains(&self.layers) {
            return Err(format!("layers must be 1 to 4, not {}", self.layers));
        }
        if !(1..=4).contains(&self.heads) {
            return Err(format!("heads must be 1 to 4, not {}", self.heads));
        }
        if !(16..=128).contains(&self.dim) || !self.dim.is_multiple_of(2 * self.heads) {
            return Err(format!(
                "the width must be 16 to 128 and a multiple of 2 × heads ({}), not {}",
                2 * self.heads,
                self.dim
            ));
        }
        if self.steps == 0 || self.batch == 0 || self.eval_every == 0 {
            return Err("steps, batch and eval_every must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return Err(format!(
                "the learning rate must be in (0, 1), not {}",
                self.lr
            ));
        }
        Ok(())
    }
}

/// One evaluation on the held-out set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Eval {
    /// The step it was measured after.
    pub step: usize,
    /// Mean cross-entropy on the held-out set.
    pub loss: f32,
    /// Share of the held-out set's scored tokens predicted right (argmax).
    pub accuracy: f32,
    /// The best head's mean attention mass on the task's expected keys, over the held-out
    /// set's scored tokens (1: every scored query puts all its attention there); `None` for
    /// tasks without an expected pattern.
    pub attention_score: Option<f32>,
    /// The layer and head of [`Self::attention_score`].
    pub best_head: Option<(usize, usize)>,
}

/// What the trainer reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainProgress {
    /// Steps done.
    pub step: usize,
    /// Every step's training loss so far (mean cross-entropy of its batch).
    pub losses: Vec<f32>,
    /// Every evaluation so far.
    pub evals: Vec<Eval>,
    /// Steps per second over the last stretch of steps.
    pub steps_per_second: f32,
    /// Training time so far in seconds (pauses excluded).
    pub seconds: f64,
    /// Every layer's and head's attention on the first held-out sequence, at the last
    /// evaluation.
    pub attention: Option<AttentionMaps>,
}

/// The end of `segattn train --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainReport {
    /// The task's name.
    pub task: &'static str,
    /// Steps run.
    pub steps: usize,
    /// The last step's training loss.
    pub final_loss: f32,
    /// Held-out accuracy at the end.
    pub accuracy: f32,
    /// Training time in seconds (evaluations included, saving excluded).
    pub seconds: f64,
    /// [`Eval::attention_score`] at the end.
    pub attention_score: Option<f32>,
    /// [`Eval::best_head`] at the end.
    pub best_head: Option<(usize, usize)>,
    /// The first evaluation with accuracy ≥ 0.99: its step and the seconds to get there.
    pub reached_99: Option<(usize, f64)>,
    /// The best held-out accuracy seen.
    pub best_accuracy: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_head_count_has_widths_and_a_width_snaps_to_one() {
        for heads in 1..=4 {
            let widths = TrainSettings::widths_for(heads);
            assert!(!widths.is_empty(), "{heads} heads");
            let mut s = TrainSettings {
                heads,
                dim: 64,
                ..TrainSettings::default()
            };
            s.snap_width();
            assert!(s.validate().is_ok(), "{heads} heads: {}", s.dim);
        }
    }
}
