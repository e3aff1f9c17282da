//! The desktop views (egui only): Segment, Attention, Positional encodings and Train, the status bar,
//! the first-run panel and shared widgets. Models are reached through the workers, never
//! directly (only the tokenizer comparison loads tokenizers, plain Rust without tensors, on a
//! view job); heavy view work runs as [`crate::jobs`].

pub mod attention_lesson;
pub mod attention_steps;
pub mod attention_tokenizers;
pub mod attention_view;
pub mod encodings_view;
pub mod first_run;
pub mod i18n;
pub mod problems;
pub mod segment;
pub mod status_bar;
pub mod train_view;
pub mod widgets;

use std::time::Instant;

/// Messages for the status bar: `Ok` informs, `Err` is an error.
pub type Notify<'a> = &'a mut dyn FnMut(Result<String, String>);

/// The four views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum View {
    /// SAM: click, see the mask.
    #[default]
    Segment,
    /// Text attention heatmaps.
    Attention,
    /// Positional encodings.
    Encodings,
    /// Train a tiny transformer and watch its attention form.
    Train,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 4] = [View::Segment, View::Attention, View::Encodings, View::Train];

    /// Tab label, in the language of `ctx`.
    pub fn label(self, ctx: &egui::Context) -> String {
        match self {
            Self::Segment => crate::tr_ctx!(ctx, "view-segment"),
            Self::Attention => crate::tr_ctx!(ctx, "view-attention"),
            Self::Encodings => crate::tr_ctx!(ctx, "view-encodings"),
            Self::Train => crate::tr_ctx!(ctx, "view-train"),
        }
    }
}

/// What the app knows of one worker's model: the one in use, and what is happening to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelStatus {
    /// The loaded model's name; it stays in use while another one loads or fails to.
    pub loaded: Option<String>,
    /// What is going on.
    pub activity: ModelActivity,
}

/// What is happening to a worker's model.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ModelActivity {
    /// Nothing.
    #[default]
    Idle,
    /// Looking on disk for a model to load (at start-up).
    Searching,
    /// Loading `label` (a file or folder name) since `since`.
    Loading {
        /// What is loading.
        label: String,
        /// When it started.
        since: Instant,
    },
    /// The last attempt failed, for this reason.
    Failed(String),
}

/// The app's fonts: egui's, with its monospace Hack also behind the proportional Ubuntu, so the
/// characters tokenizers write and Ubuntu lacks (SentencePiece's `▁`, block and box symbols)
/// are drawn instead of empty boxes.
pub fn install_fonts(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    if let Some(family) = fonts.families.get_mut(&egui::FontFamily::Proportional) {
        let at = family.len().min(1);
        family.insert(at, "Hack".to_owned());
    }
    ctx.set_fonts(fonts);
}
