//! The desktop views (egui only): Segment, Attention and Positional encodings, the status bar
//! and shared widgets. Models are reached through the workers, never directly.

pub mod attention_view;
pub mod encodings_view;
pub mod segment_view;
pub mod status_bar;
pub mod widgets;

/// The three views.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum View {
    /// SAM: click, see the mask.
    #[default]
    Segment,
    /// Text attention heatmaps.
    Attention,
    /// Positional encodings.
    Encodings,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 3] = [View::Segment, View::Attention, View::Encodings];

    /// Tab label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Segment => "Segment",
            Self::Attention => "Attention",
            Self::Encodings => "Positional encodings",
        }
    }
}
