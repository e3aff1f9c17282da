//! The Models window: the loaded models, opening a checkpoint or model folder, what was found
//! on disk, downloads from the Hub, and the embedding cache's settings.

use super::SegattnApp;
use crate::download::ModelKind;
use crate::ui::first_run::FirstRunAction;
use crate::ui::ModelActivity;

impl SegattnApp {
    pub(super) fn models_window(&mut self, ctx: &egui::Context) {
        let mut open = self.show_models;
        let mut actions = Vec::new();
        let download = self.download_view();
        let mut clear_cache = false;
        egui::Window::new("Models").open(&mut open).show(ctx, |ui| {
            for (kind, heading, status) in [
                (ModelKind::Sam, "Segment Anything", &self.sam_model),
                (ModelKind::Text, "Text model", &self.text_model),
            ] {
                ui.heading(heading);
                ui.label(format!("loaded: {}", status.loaded.as_deref().unwrap_or("none")));
                if let ModelActivity::Loading { label, .. } = &status.activity {
                    ui.horizontal(|ui| {
                        crate::ui::widgets::busy_ui(ui, &format!("loading {label}…"));
                        if ui.button("Cancel loading").clicked() {
                            actions.push((kind, FirstRunAction::CancelLoad));
                        }
                    });
                }
                let (open_label, found) = match kind {
                    ModelKind::Sam => ("Open SAM checkpoint…", &self.catalog.sam),
                    ModelKind::Text => ("Open model folder…", &self.catalog.text),
                };
                if ui.button(open_label).clicked() {
                    actions.push((kind, FirstRunAction::Open));
                }
                if !found.is_empty() {
                    ui.label("Found on this computer:");
                    for p in found {
                        ui.monospace(p.display().to_string());
                    }
                }
                ui.separator();
            }
            ui.label(format!(
                "SAM file names looked for: {}",
                crate::weights::SAM_FILE_NAMES.join(", ")
            ));
            ui.label("A text model is a Hugging Face folder with config.json, tokenizer.json and model.safetensors, e.g. weights/all-MiniLM-L6-v2 or weights/gpt2.");
            ui.label("Looked for, in order:");
            for d in &self.catalog.search_dirs {
                ui.monospace(d.display().to_string());
            }
            ui.separator();
            ui.heading("Download from the Hugging Face Hub");
            match &download {
                Some(d) => {
                    ui.label(&d.label);
                    ui.add(egui::ProgressBar::new(d.fraction).text(&d.text));
                    if ui.button("Cancel download").clicked() {
                        actions.push((d.kind, FirstRunAction::CancelDownload));
                    }
                }
                None => {
                    for spec in crate::download::defaults() {
                        ui.horizontal(|ui| {
                            if ui.button(format!("Download {}", spec.label)).clicked() {
                                actions.push((spec.kind, FirstRunAction::Download(spec.clone())));
                            }
                            ui.label(format!("{}, about {} MB", spec.repo, spec.approx_mb));
                        });
                    }
                }
            }
            ui.label("Files go to the Hugging Face cache (HF_HOME), where segattn also looks. Without a network, weights/README.md says which files to put where.");
            ui.separator();
            ui.heading("Embedding cache");
            match &self.cache_dir {
                Some(dir) => {
                    ui.checkbox(
                        &mut self.settings.embedding_cache,
                        "Keep image embeddings on disk (an image seen before is ready at once)",
                    );
                    let bound = ui.add(
                        egui::Slider::new(&mut self.settings.embedding_cache_gb, 0.1..=64.0)
                            .logarithmic(true)
                            .text("GB at most (least recently used go first)"),
                    );
                    // Sent to the worker once the slider is let go, not at every frame.
                    self.cache_slider_held = bound.dragged();
                    ui.monospace(dir.display().to_string());
                    ui.horizontal(|ui| {
                        let used = match self.cache_usage {
                            Some(u) => format!(
                                "{} embedding{} kept, {:.1} MB used",
                                u.entries,
                                if u.entries == 1 { "" } else { "s" },
                                u.bytes as f64 / 1e6
                            ),
                            None => "measuring…".to_string(),
                        };
                        ui.label(used);
                        let empty = self.cache_usage.is_some_and(|u| u.entries == 0);
                        if ui
                            .add_enabled(!empty, egui::Button::new("Clear the cache"))
                            .on_hover_text("Deletes every kept embedding; images are encoded again when next opened")
                            .clicked()
                        {
                            clear_cache = true;
                        }
                    });
                }
                None => {
                    ui.label("No cache folder (set SEGATTN_CACHE_DIR or HOME).");
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
