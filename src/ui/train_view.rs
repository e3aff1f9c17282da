//! The Train view: choose a task, a model size and a seed, press Train, and watch the loss and
//! accuracy curves and every head's attention form while a tiny transformer trains on the
//! training worker. Pause, resume, step once, reset; save the model or open it in the
//! Attention view.

use std::path::PathBuf;

use egui::{TextureHandle, Vec2};
use egui_plot::{Legend, Line, Plot, PlotPoint, PlotPoints};

use crate::analysis::AttentionMaps;
use crate::types::train::{Positions, Task, TrainReport, TrainSettings};
use crate::ui::widgets::{heatmap_ui, texture, thumbnail_ui, HeatmapMarks};
use crate::ui::Notify;
use crate::viz::{heatmap, Colormap, ValueRange};
use crate::worker::train::{RunState, TrainEvent, TrainRequest, TrainSnapshot, TrainWorker};

/// The learning rates offered.
const LEARNING_RATES: [f64; 4] = [1e-3, 3e-3, 1e-2, 3e-2];
/// Side of a head's thumbnail in the grid.
const THUMBNAIL: f32 = 56.0;

/// What the Train view remembers between sessions.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainViewSettings {
    /// What to train next.
    pub settings: TrainSettings,
    /// The head shown large (layer, head).
    pub head: (usize, usize),
}

/// Textures of one attention snapshot: every layer × head, and the run and step they show.
struct Pictures {
    key: (u64, usize),
    heads: Vec<TextureHandle>,
}

/// The Train view's state.
#[derive(Default)]
pub struct TrainState {
    /// The run the UI follows (snapshots of other runs are dropped).
    run: u64,
    /// The newest snapshot of that run.
    pub snapshot: Option<TrainSnapshot>,
    /// The report of the last finished run.
    pub report: Option<TrainReport>,
    pictures: Option<Pictures>,
    /// The loss curve's points, rebuilt when a snapshot comes.
    loss_points: Vec<PlotPoint>,
    eval_loss_points: Vec<PlotPoint>,
    accuracy_points: Vec<PlotPoint>,
    score_points: Vec<PlotPoint>,
    /// Where the model was last saved.
    pub saved: Option<PathBuf>,
    /// A saved model the app should open in the Attention view.
    open_request: Option<PathBuf>,
    /// Open in the Attention view once this save is done.
    open_after_save: Option<PathBuf>,
    /// The UI's language at the last [`Self::poll`] (for messages made away from a frame).
    lang: crate::ui::i18n::Lang,
}

fn task_label(ui: &egui::Ui, t: Task) -> String {
    match t {
        Task::Reverse => crate::tr!(ui, "train-task-reverse"),
        Task::Copy => crate::tr!(ui, "train-task-copy"),
        Task::Sort => crate::tr!(ui, "train-task-sort"),
        Task::Induction => crate::tr!(ui, "train-task-induction"),
        Task::Sentences => crate::tr!(ui, "train-task-sentences"),
    }
}

fn task_hint(ui: &egui::Ui, t: Task) -> String {
    match t {
        Task::Reverse => crate::tr!(ui, "train-hint-reverse"),
        Task::Copy => crate::tr!(ui, "train-hint-copy"),
        Task::Sort => crate::tr!(ui, "train-hint-sort"),
        Task::Induction => crate::tr!(ui, "train-hint-induction"),
        Task::Sentences => crate::tr!(ui, "train-hint-sentences"),
    }
}

fn positions_label(ui: &egui::Ui, p: Positions) -> String {
    match p {
        Positions::Learned => crate::tr!(ui, "train-pos-learned"),
        Positions::Sinusoidal => crate::tr!(ui, "train-pos-sinusoidal"),
        Positions::Rope => crate::tr!(ui, "train-pos-rope"),
    }
}

impl TrainState {
    /// Where the run stands, if there is one.
    pub fn state(&self) -> Option<RunState> {
        self.snapshot.as_ref().map(|s| s.state)
    }

    /// Steps per second of the running model, for the status bar.
    pub fn speed(&self) -> Option<f32> {
        self.snapshot
            .as_ref()
            .filter(|s| s.state == RunState::Running)
            .map(|s| s.progress.steps_per_second)
    }

    /// A saved model to open in the Attention view, once.
    pub fn take_open_request(&mut self) -> Option<PathBuf> {
        self.open_request.take()
    }

    /// Takes the worker's snapshot and events.
    pub fn poll(&mut self, ctx: &egui::Context, worker: &TrainWorker, notify: Notify<'_>) {
        self.lang = crate::ui::i18n::lang(ctx);
        if let Some(s) = worker
            .take_snapshot()
            .filter(|s| s.run == self.run && self.run > 0)
        {
            self.apply(ctx, s);
        }
        while let Some(e) = worker.try_recv() {
            match e {
                TrainEvent::Finished { run, report } if run == self.run => {
                    let accuracy = format!("{:.3}", report.accuracy);
                    notify(Ok(crate::tr_ctx!(
                        ctx,
                        "train-finished",
                        steps = report.steps,
                        accuracy = accuracy,
                        seconds = format!("{:.1}", report.seconds)
                    )));
                    self.report = Some(report);
                }
                TrainEvent::Finished { .. } => {}
                TrainEvent::Saved(dir) => {
                    let path = dir.display().to_string();
                    notify(Ok(crate::tr_ctx!(ctx, "train-saved", path = path)));
                    if self.open_after_save.as_ref() == Some(&dir) {
                        self.open_after_save = None;
                        self.open_request = Some(dir.clone());
                    }
                    self.saved = Some(dir);
                }
                TrainEvent::Failed(problem) => {
                    let message = crate::ui::problems::problem_text(self.lang, &problem);
                    self.open_after_save = None;
                    notify(Err(crate::tr_ctx!(ctx, "train-failed", message = message)));
                }
            }
        }
    }

    fn apply(&mut self, ctx: &egui::Context, s: TrainSnapshot) {
        let p = &s.progress;
        // Every point up to 2000; beyond that every k-th, so a frame draws at most ~2000.
        let stride = (p.losses.len() / 2000).max(1);
        self.loss_points = p
            .losses
            .iter()
            .enumerate()
            .step_by(stride)
            .map(|(i, l)| PlotPoint::new((i + 1) as f64, f64::from(*l)))
            .collect();
        self.eval_loss_points = p
            .evals
            .iter()
            .map(|e| PlotPoint::new(e.step as f64, f64::from(e.loss)))
            .collect();
        self.accuracy_points = p
            .evals
            .iter()
            .map(|e| PlotPoint::new(e.step as f64, f64::from(e.accuracy)))
            .collect();
        self.score_points = p
            .evals
            .iter()
            .filter_map(|e| {
                e.attention_score
                    .map(|a| PlotPoint::new(e.step as f64, f64::from(a)))
            })
            .collect();
        let step_of_attention = p.evals.last().map_or(0, |e| e.step);
        let key = (s.run, step_of_attention);
        if let Some(maps) = &p.attention {
            if self.pictures.as_ref().is_none_or(|pic| pic.key != key) {
                self.pictures = Some(Pictures {
                    key,
                    heads: pictures(ctx, maps),
                });
            }
        }
        self.snapshot = Some(s);
    }

    fn send(
        worker: &TrainWorker,
        r: TrainRequest,
        lang: crate::ui::i18n::Lang,
        notify: Notify<'_>,
    ) {
        if let Err(e) = worker.send(r) {
            notify(Err(crate::ui::segment::send_error_text(lang, &e)));
        }
    }

    /// Starts a fresh run with `settings`.
    pub fn start(&mut self, worker: &TrainWorker, settings: &TrainSettings, notify: Notify<'_>) {
        self.reset_view(); // bad settings come back from the worker as a failure
        self.run += 1;
        let r = TrainRequest::Start {
            run: self.run,
            settings: settings.clone(),
        };
        Self::send(worker, r, self.lang, notify);
    }

    fn reset_view(&mut self) {
        self.snapshot = None;
        self.report = None;
        self.pictures = None;
        self.loss_points.clear();
        self.eval_loss_points.clear();
        self.accuracy_points.clear();
        self.score_points.clear();
    }

    /// Draws the view.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        worker: &TrainWorker,
        v: &mut TrainViewSettings,
        save_dir: Option<PathBuf>,
        notify: Notify<'_>,
    ) {
        egui::Panel::left("train-controls")
            .default_size(280.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.controls_ui(ui, worker, v, save_dir, notify);
                });
            });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.progress_ui(ui, v));
        });
    }

    fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        worker: &TrainWorker,
        v: &mut TrainViewSettings,
        save_dir: Option<PathBuf>,
        notify: Notify<'_>,
    ) {
        let s = &mut v.settings;
        ui.heading(crate::tr!(ui, "train-heading"));
        ui.label(crate::tr!(ui, "train-intro"));
        ui.add_space(6.0);
        egui::ComboBox::from_label(crate::tr!(ui, "train-task"))
            .selected_text(task_label(ui, s.task))
            .show_ui(ui, |ui| {
                for t in Task::ALL {
                    let label = task_label(ui, t);
                    ui.selectable_value(&mut s.task, t, label);
                }
            });
        ui.label(egui::RichText::new(task_hint(ui, s.task)).italics());
        ui.add_space(6.0);
        ui.add(egui::Slider::new(&mut s.layers, 1..=4).text(crate::tr!(ui, "train-layers")));
        ui.add(egui::Slider::new(&mut s.heads, 1..=4).text(crate::tr!(ui, "train-heads")));
        s.snap_width();
        egui::ComboBox::from_label(crate::tr!(ui, "train-width"))
            .selected_text(s.dim.to_string())
            .show_ui(ui, |ui| {
                for w in TrainSettings::widths_for(s.heads) {
                    ui.selectable_value(&mut s.dim, w, w.to_string());
                }
            });
        egui::ComboBox::from_label(crate::tr!(ui, "train-positions"))
            .selected_text(positions_label(ui, s.positions))
            .show_ui(ui, |ui| {
                for p in Positions::ALL {
                    let label = positions_label(ui, p);
                    ui.selectable_value(&mut s.positions, p, label);
                }
            });
        egui::ComboBox::from_label(crate::tr!(ui, "train-lr"))
            .selected_text(format!("{:e}", s.lr))
            .show_ui(ui, |ui| {
                for lr in LEARNING_RATES {
                    ui.selectable_value(&mut s.lr, lr, format!("{lr:e}"));
                }
            });
        ui.horizontal(|ui| {
            ui.label(crate::tr!(ui, "train-steps"));
            ui.add(
                egui::DragValue::new(&mut s.steps)
                    .range(10..=50_000)
                    .speed(50),
            );
        });
        ui.horizontal(|ui| {
            ui.label(crate::tr!(ui, "train-seed"));
            ui.add(egui::DragValue::new(&mut s.seed).range(0..=u32::MAX as u64));
        });
        ui.add_space(8.0);
        let state = self.state();
        ui.horizontal_wrapped(|ui| {
            if ui.button(crate::tr!(ui, "train-start")).clicked() {
                self.start(worker, &v.settings, notify);
                v.head = (0, 0);
            }
            match state {
                Some(RunState::Running) if ui.button(crate::tr!(ui, "train-pause")).clicked() => {
                    Self::send(worker, TrainRequest::Pause, self.lang, notify);
                }
                Some(RunState::Paused) => {
                    if ui.button(crate::tr!(ui, "train-resume")).clicked() {
                        Self::send(worker, TrainRequest::Resume, self.lang, notify);
                    }
                    if ui.button(crate::tr!(ui, "train-step")).clicked() {
                        Self::send(worker, TrainRequest::StepOnce, self.lang, notify);
                    }
                }
                _ => {}
            }
            if state.is_some() && ui.button(crate::tr!(ui, "train-reset")).clicked() {
                Self::send(worker, TrainRequest::Reset, self.lang, notify);
                self.run += 1; // whatever the old run still publishes is dropped
                self.reset_view();
            }
        });
        if state.is_some() {
            ui.add_space(6.0);
            ui.horizontal_wrapped(|ui| {
                if ui.button(crate::tr!(ui, "train-save")).clicked() {
                    if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                        Self::send(worker, TrainRequest::Save(dir), self.lang, notify);
                    }
                }
                if let Some(dir) = save_dir {
                    let open = ui
                        .button(crate::tr!(ui, "train-open-attention"))
                        .on_hover_text(crate::tr!(ui, "train-open-attention-hover"));
                    if open.clicked() {
                        let name = format!(
                            "{}-{}x{}-{}",
                            v.settings.task.as_str(),
                            v.settings.layers,
                            v.settings.heads,
                            v.settings.dim
                        );
                        let dir = dir.join(name);
                        self.open_after_save = Some(dir.clone());
                        Self::send(worker, TrainRequest::Save(dir), self.lang, notify);
                    }
                }
            });
        }
    }

    fn progress_ui(&mut self, ui: &mut egui::Ui, v: &mut TrainViewSettings) {
        let Some(snap) = &self.snapshot else {
            ui.label(crate::tr!(ui, "train-empty"));
            return;
        };
        let p = &snap.progress;
        let last = p.evals.last();
        let state = match snap.state {
            RunState::Running => crate::tr!(ui, "train-state-running"),
            RunState::Paused => crate::tr!(ui, "train-state-paused"),
            RunState::Finished => crate::tr!(ui, "train-state-finished"),
        };
        let total = v.settings.steps.max(p.step);
        ui.horizontal_wrapped(|ui| {
            ui.strong(state);
            ui.label(crate::tr!(
                ui,
                "train-step-of",
                step = p.step,
                total = total
            ));
            if let Some(e) = last {
                let accuracy = format!("{:.3}", e.accuracy);
                ui.label(crate::tr!(ui, "train-accuracy", accuracy = accuracy));
                if let (Some(score), Some((l, h))) = (e.attention_score, e.best_head) {
                    let score = format!("{score:.3}");
                    ui.label(crate::tr!(
                        ui,
                        "train-score",
                        score = score,
                        layer = l,
                        head = h
                    ));
                }
            }
            let seconds = format!("{:.1}", p.seconds);
            ui.label(crate::tr!(ui, "train-seconds", seconds = seconds));
        });
        ui.add(egui::ProgressBar::new(p.step as f32 / total.max(1) as f32).desired_height(6.0));
        ui.add_space(4.0);
        let half = (ui.available_width() / 2.0 - 8.0).max(120.0);
        ui.horizontal(|ui| {
            let loss = crate::tr!(ui, "train-loss");
            let held = crate::tr!(ui, "train-held-out-loss");
            Plot::new("train-loss")
                .width(half)
                .height(180.0)
                .legend(Legend::default())
                .show(ui, |plot| {
                    plot.line(Line::new(loss, PlotPoints::Borrowed(&self.loss_points)));
                    plot.line(Line::new(
                        held,
                        PlotPoints::Borrowed(&self.eval_loss_points),
                    ));
                });
            let accuracy = crate::tr!(ui, "train-accuracy-curve");
            let score = crate::tr!(ui, "train-score-curve");
            Plot::new("train-accuracy")
                .width(half)
                .height(180.0)
                .include_y(0.0)
                .include_y(1.0)
                .legend(Legend::default())
                .show(ui, |plot| {
                    plot.line(Line::new(
                        accuracy,
                        PlotPoints::Borrowed(&self.accuracy_points),
                    ));
                    if !self.score_points.is_empty() {
                        plot.line(Line::new(score, PlotPoints::Borrowed(&self.score_points)));
                    }
                });
        });
        let (Some(maps), Some(pics)) = (&p.attention, &self.pictures) else {
            return;
        };
        ui.add_space(6.0);
        ui.label(crate::tr!(ui, "train-grid-caption", step = pics.key.1));
        let (mut layer, mut head) = v.head;
        if layer >= maps.layers || head >= maps.heads {
            (layer, head) = (0, 0);
        }
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                for l in 0..maps.layers {
                    ui.horizontal(|ui| {
                        ui.spacing_mut().item_spacing = Vec2::splat(3.0);
                        for h in 0..maps.heads {
                            let texture = pics.heads.get(l * maps.heads + h);
                            let label = crate::tr!(ui, "grid-cell", layer = l, head = h);
                            let selected = (l, h) == (layer, head);
                            if thumbnail_ui(ui, texture, THUMBNAIL, selected, &label).clicked() {
                                (layer, head) = (l, h);
                            }
                        }
                    });
                }
            });
            if let Some(t) = pics.heads.get(layer * maps.heads + head) {
                ui.vertical(|ui| {
                    ui.label(crate::tr!(
                        ui,
                        "train-head-caption",
                        layer = layer,
                        head = head
                    ));
                    let (looks, looked) =
                        (crate::tr!(ui, "axis-query"), crate::tr!(ui, "axis-key"));
                    let map = maps.head(layer, head);
                    let n = maps.n;
                    heatmap_ui(
                        ui,
                        t,
                        (n, n),
                        &maps.tokens,
                        &maps.tokens,
                        (ui.available_width() - 170.0).clamp(120.0, 320.0),
                        HeatmapMarks {
                            axis_titles: Some((&looks, &looked)),
                            scale: Some((Colormap::Viridis, 0.0, 1.0)),
                            ..HeatmapMarks::default()
                        },
                        |r, c| {
                            format!(
                                "{} → {}: {:.3}",
                                maps.tokens[r],
                                maps.tokens[c],
                                map[r * n + c]
                            )
                        },
                    );
                });
            }
        });
        v.head = (layer, head);
    }
}

/// One texture per layer × head of `maps` (probabilities on `[0, 1]`, viridis).
fn pictures(ctx: &egui::Context, maps: &AttentionMaps) -> Vec<TextureHandle> {
    let n = maps.n;
    let mut out = Vec::with_capacity(maps.layers * maps.heads);
    for l in 0..maps.layers {
        for h in 0..maps.heads {
            let raster = heatmap(
                maps.head(l, h),
                n,
                n,
                ValueRange::Fixed(0.0, 1.0),
                Colormap::Viridis,
                |r, c| maps.causal && c > r,
            );
            out.push(texture(ctx, &format!("train-{l}-{h}"), &raster, true));
        }
    }
    out
}
