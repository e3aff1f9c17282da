//! Plain data exchanged between the models, the workers, the views, the exports and the CLI:
//! no candle, no egui. A view draws these; a worker or the CLI fills them.

pub mod everything;
pub mod image;
pub mod problem;
pub mod sam;
pub mod text;
pub mod train;

pub use everything::{EverythingParams, EverythingProgress, MaskRecord, Rle};
pub use image::{Mask, Rgb8};
pub use problem::{ExportNotice, NoticeKind, Problem};
pub use sam::{
    best_candidate, BoxPrompt, DecoderAttention, DecoderToken, LayerAttention, PointLabel,
    PointPrompt, Prediction, Prompts, SparseToken, LOW_RES,
};
pub use text::{Encoded, HeadSteps, TextModelInfo, TextOutput, Token};
