//! The panel a view shows while it has no model: what the view needs and how to get it (the
//! default model with one click, or a file dialog), the search, load or download in progress
//! with Cancel, or why the last attempt failed. Not an error: what to do.

use crate::download::{DownloadSpec, ModelKind};
use crate::tr;
use crate::ui::widgets::busy_ui;
use crate::ui::{ModelActivity, ModelStatus};

/// What the user asked for in the panel; the app carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstRunAction {
    /// Download this model (and load it when done).
    Download(DownloadSpec),
    /// Open the file dialog for a checkpoint or model folder.
    Open,
    /// Stop loading the model.
    CancelLoad,
    /// Stop the running download.
    CancelDownload,
}

/// A download as the panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadView {
    /// What is being fetched ("MobileSAM").
    pub label: String,
    /// What kind of model.
    pub kind: ModelKind,
    /// Progress, `0..=1`.
    pub fraction: f32,
    /// The file and byte counts.
    pub text: String,
}

/// Draws the panel for a view that needs a `kind` model in `status`; `download` is the running
/// download, if any.
pub fn model_needed_ui(
    ui: &mut egui::Ui,
    kind: ModelKind,
    status: &ModelStatus,
    download: Option<&DownloadView>,
) -> Option<FirstRunAction> {
    let mut action = None;
    let (heading, why, open_label) = match kind {
        ModelKind::Sam => (
            tr!(ui, "need-sam-title"),
            tr!(ui, "need-sam-why"),
            tr!(ui, "need-sam-open"),
        ),
        ModelKind::Text => (
            tr!(ui, "need-text-title"),
            tr!(ui, "need-text-why"),
            tr!(ui, "need-text-open"),
        ),
    };
    egui::Frame::group(ui.style())
        .inner_margin(egui::Margin::same(16))
        .show(ui, |ui| {
            ui.set_max_width(560.0);
            ui.heading(heading);
            ui.label(why);
            ui.add_space(6.0);
            match (&status.activity, download.filter(|d| d.kind == kind)) {
                (_, Some(d)) => {
                    ui.label(tr!(ui, "downloading", model = d.label.as_str()));
                    ui.add(egui::ProgressBar::new(d.fraction).text(&d.text));
                    if ui.button(tr!(ui, "cancel-download")).clicked() {
                        action = Some(FirstRunAction::CancelDownload);
                    }
                }
                (ModelActivity::Searching, None) => {
                    busy_ui(ui, &tr!(ui, "looking-for-models"));
                }
                (ModelActivity::Loading { label, since }, None) => {
                    ui.horizontal(|ui| {
                        let seconds = format!("{:.0}", since.elapsed().as_secs_f32());
                        let text =
                            tr!(ui, "loading-for", model = label.as_str(), seconds = seconds);
                        busy_ui(ui, &text);
                        if ui.button(tr!(ui, "cancel")).clicked() {
                            action = Some(FirstRunAction::CancelLoad);
                        }
                    });
                }
                (activity, None) => {
                    if let ModelActivity::Failed(why) = activity {
                        ui.colored_label(
                            ui.visuals().warn_fg_color,
                            tr!(ui, "last-load-failed", why = why.as_str()),
                        );
                    }
                    let spec = crate::download::default_for(kind);
                    ui.horizontal_wrapped(|ui| {
                        let (model, mb) = (spec.label.as_str(), spec.approx_mb);
                        let download = tr!(ui, "download-size", model = model, mb = mb);
                        let from = tr!(ui, "download-from", repo = spec.repo.as_str());
                        if ui.button(download).on_hover_text(from).clicked() {
                            action = Some(FirstRunAction::Download(spec.clone()));
                        }
                        if ui.button(open_label).clicked() {
                            action = Some(FirstRunAction::Open);
                        }
                    });
                    ui.small(tr!(ui, "offline-hint"));
                }
            }
        });
    action
}
