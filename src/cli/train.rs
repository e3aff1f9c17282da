//! `segattn train`: trains a tiny transformer on a task with a known attention pattern, prints
//! its progress, saves it as a model folder, and with `--json` ends with one report object.

use std::path::PathBuf;

use anyhow::Result;

use crate::model::train::Trainer;
use crate::types::train::{Positions, Task, TrainReport, TrainSettings};

/// Arguments of `segattn train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The task.
    #[arg(long, value_enum)]
    pub task: Task,
    /// Transformer blocks (1-4).
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Attention heads per block (1-4).
    #[arg(long, default_value_t = 2)]
    pub heads: usize,
    /// Model width (16-128, a multiple of 2 × heads).
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// How positions are encoded.
    #[arg(long, value_enum, default_value_t)]
    pub positions: Positions,
    /// Optimiser steps.
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Seeds the weights, the data and the held-out set.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// AdamW's learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Sequences per step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Steps between evaluations on the held-out set.
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Stop at the first evaluation whose held-out accuracy reaches this (e.g. 0.99).
    #[arg(long)]
    pub stop_at: Option<f32>,
    /// Save the trained model here (a folder the Attention view opens).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// End with one JSON object: task, steps, final_loss, accuracy, seconds, attention_score
    /// (and best_head, reached_99, best_accuracy).
    #[arg(long)]
    pub json: bool,
}

/// Runs `segattn train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let settings = TrainSettings {
        task: args.task,
        layers: args.layers,
        heads: args.heads,
        dim: args.dim,
        positions: args.positions,
        steps: args.steps,
        seed: args.seed,
        lr: args.lr,
        batch: args.batch,
        eval_every: args.eval_every,
    };
    let (trainer, report) = train(&settings, args.stop_at, |line| eprintln!("{line}"))?;
    if let Some(dir) = &args.out {
        trainer.save(dir)?;
        eprintln!("saved the model to {}", dir.display());
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// Trains with `settings` (stopping early once held-out accuracy reaches `stop_at`), calling
/// `progress` with a line at each evaluation; returns the trainer and its report.
pub fn train(
    settings: &TrainSettings,
    stop_at: Option<f32>,
    mut progress: impl FnMut(String),
) -> Result<(Trainer, TrainReport)> {
    let mut trainer = Trainer::new(settings, &candle_core::Device::Cpu)?;
    while !trainer.finished() {
        let (loss, eval) = trainer.advance(false)?;
        let Some(e) = eval else { continue };
        let score = e
            .attention_score
            .map_or(String::new(), |s| format!(", attention score {s:.3}"));
        progress(format!(
            "step {}: loss {loss:.4}, held-out loss {:.4}, accuracy {:.3}{score} ({:.1} s)",
            e.step,
            e.loss,
            e.accuracy,
            trainer.seconds()
        ));
        if stop_at.is_some_and(|a| e.accuracy >= a) {
            break;
        }
    }
    let report = trainer.report();
    Ok((trainer, report))
}
