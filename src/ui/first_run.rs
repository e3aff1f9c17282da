//! The panel a view shows while it has no model: what the view needs and how to get it (the
//! default model with one click, or a file dialog), the search, load or download in progress
//! with Cancel, or why the last attempt failed. Not an error: what to do.

use crate::download::{DownloadSpec, ModelKind};
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
            "Segment Anything needs a model",
            "segattn runs SAM on this computer. MobileSAM is small and the fastest; SAM ViT-B, \
             ViT-L and ViT-H are larger and more precise (Models window).",
            "Open a SAM checkpoint…",
        ),
        ModelKind::Text => (
            "The Attention view needs a text model",
            "all-MiniLM-L6-v2 is a small BERT (6 layers × 12 heads); GPT-2 shows a causal model \
             (Models window). Any BERT or GPT-2 folder from the Hugging Face Hub works.",
            "Open a model folder…",
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
                    ui.label(format!("Downloading {}…", d.label));
                    ui.add(egui::ProgressBar::new(d.fraction).text(&d.text));
                    if ui.button("Cancel download").clicked() {
                        action = Some(FirstRunAction::CancelDownload);
                    }
                }
                (ModelActivity::Searching, None) => {
                    busy_ui(ui, "Looking for models on this computer…");
                }
                (ModelActivity::Loading { label, since }, None) => {
                    ui.horizontal(|ui| {
                        busy_ui(
                            ui,
                            &format!("Loading {label}… {:.0} s", since.elapsed().as_secs_f32()),
                        );
                        if ui.button("Cancel").clicked() {
                            action = Some(FirstRunAction::CancelLoad);
                        }
                    });
                }
                (activity, None) => {
                    if let ModelActivity::Failed(why) = activity {
                        ui.colored_label(
                            ui.visuals().warn_fg_color,
                            format!("The last model did not load: {why}"),
                        );
                    }
                    let spec = crate::download::default_for(kind);
                    ui.horizontal_wrapped(|ui| {
                        let download = format!("Download {} ({} MB)", spec.label, spec.approx_mb);
                        if ui
                            .button(download)
                            .on_hover_text(format!(
                                "from the Hugging Face Hub ({}) into its cache",
                                spec.repo
                            ))
                            .clicked()
                        {
                            action = Some(FirstRunAction::Download(spec.clone()));
                        }
                        if ui.button(open_label).clicked() {
                            action = Some(FirstRunAction::Open);
                        }
                    });
                    ui.small(
                        "Without a network, weights/README.md says which files to put where; \
                         the Models window lists where segattn looks.",
                    );
                }
            }
        });
    action
}
