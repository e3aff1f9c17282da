//! The Models window: the loaded models, opening a checkpoint or model folder, what was found
//! on disk, downloads from the Hub, and the embedding cache's settings.

use super::SegattnApp;
use crate::download::ModelKind;
use crate::ui::first_run::FirstRunAction;
use crate::ui::ModelActivity;
use crate::{tr, tr_ctx};

impl SegattnApp {
    pub(super) fn models_window(&mut self, ctx: &egui::Context) {
        let mut open = self.show_models;
        let mut actions = Vec::new();
        let download = self.download_view();
        let mut clear_cache = false;
        let title = tr_ctx!(ctx, "models-title");
        let window = egui::Window::new(title).id(egui::Id::unique("models window"));
        window.open(&mut open).show(ctx, |ui| {
            for (kind, heading, status) in [
                (ModelKind::Sam, tr!(ui, "models-sam"), &self.sam_model),
                (ModelKind::Text, tr!(ui, "models-text"), &self.text_model),
            ] {
                ui.heading(heading);
                let none = tr!(ui, "model-none");
                let loaded = status.loaded.as_deref().unwrap_or(&none);
                ui.label(tr!(ui, "models-loaded", model = loaded));
                if let ModelActivity::Loading { label, .. } = &status.activity {
                    ui.horizontal(|ui| {
                        let text = tr!(ui, "models-loading", model = label.as_str());
                        crate::ui::widgets::busy_ui(ui, &text);
                        if ui.button(tr!(ui, "models-cancel-loading")).clicked() {
                            actions.push((kind, FirstRunAction::CancelLoad));
                        }
                    });
                }
                let (open_label, found) = match kind {
                    ModelKind::Sam => (tr!(ui, "models-open-sam"), &self.catalog.sam),
                    ModelKind::Text => (tr!(ui, "models-open-text"), &self.catalog.text),
                };
                if ui.button(open_label).clicked() {
                    actions.push((kind, FirstRunAction::Open));
                }
                if !found.is_empty() {
                    ui.label(tr!(ui, "models-found"));
                    for p in found {
                        ui.monospace(p.display().to_string());
                    }
                }
                ui.separator();
            }
            let names = crate::weights::SAM_FILE_NAMES.join(", ");
            ui.label(tr!(ui, "models-sam-names", names = names));
            ui.label(tr!(ui, "models-text-folder"));
            ui.label(tr!(ui, "models-looked-for"));
            for d in &self.catalog.search_dirs {
                ui.monospace(d.display().to_string());
            }
            ui.separator();
            ui.heading(tr!(ui, "models-download-title"));
            match &download {
                Some(d) => {
                    ui.label(&d.label);
                    ui.add(egui::ProgressBar::new(d.fraction).text(&d.text));
                    if ui.button(tr!(ui, "cancel-download")).clicked() {
                        actions.push((d.kind, FirstRunAction::CancelDownload));
                    }
                }
                None => {
                    for spec in crate::download::defaults() {
                        ui.horizontal(|ui| {
                            let label = tr!(ui, "models-download", model = spec.label.as_str());
                            if ui.button(label).clicked() {
                                actions.push((spec.kind, FirstRunAction::Download(spec.clone())));
                            }
                            let (repo, mb) = (spec.repo.as_str(), spec.approx_mb);
                            ui.label(tr!(ui, "models-download-about", repo = repo, mb = mb));
                        });
                    }
                }
            }
            ui.label(tr!(ui, "models-files-go"));
            ui.separator();
            ui.heading(tr!(ui, "cache-title"));
            match &self.cache_dir {
                Some(dir) => {
                    let keep = tr!(ui, "cache-keep");
                    ui.checkbox(&mut self.settings.embedding_cache, keep);
                    let bound_text = tr!(ui, "cache-bound");
                    let bound = ui.add(
                        egui::Slider::new(&mut self.settings.embedding_cache_gb, 0.1..=64.0)
                            .logarithmic(true)
                            .text(bound_text),
                    );
                    // Sent to the worker once the slider is let go, not at every frame.
                    self.cache_slider_held = bound.dragged();
                    ui.monospace(dir.display().to_string());
                    ui.horizontal(|ui| {
                        let used = match self.cache_usage {
                            Some(u) => {
                                let mb = format!("{:.1}", u.bytes as f64 / 1e6);
                                tr!(ui, "cache-usage", entries = u.entries, mb = mb)
                            }
                            None => tr!(ui, "cache-measuring"),
                        };
                        ui.label(used);
                        let empty = self.cache_usage.is_some_and(|u| u.entries == 0);
                        if ui
                            .add_enabled(!empty, egui::Button::new(tr!(ui, "cache-clear")))
                            .on_hover_text(tr!(ui, "cache-clear-hover"))
                            .clicked()
                        {
                            clear_cache = true;
                        }
                    });
                }
                None => {
                    ui.label(tr!(ui, "cache-none"));
                }
            }
        });
        if open && !self.show_models {
            self.rescan(); // just opened: look again
            self.measure_cache(false);
        }
        if clear_cache {
            self.cache_usage = None;
            self.measure_cache(true);
        }
        self.show_models = open;
        for (kind, action) in actions {
            self.act(kind, action);
        }
    }
}
