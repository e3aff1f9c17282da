//! segattn: see inside Segment Anything and small text transformers.
//!
//! - [`model`]: the networks on candle (SAM, MobileSAM, BERT, GPT-2), positional encodings.
//! - [`analysis`]: pure functions over attention maps (rollout, head statistics, word merging).
//! - [`viz`]: colormaps and heatmap rasters shared by the CLI and the app.
//! - [`weights`]: safe loading of `.safetensors` and PyTorch checkpoints; [`download`]: fetching
//!   them from the Hugging Face Hub.
//! - [`image_io`]: image decoding with size limits and format conversion.
//! - [`cli`]: the command-line interface; [`alloc`]: allocator tuning for inference.
//! - [`worker`]: threads owning the models; [`app`] and [`ui`]: the desktop app (egui only).

pub mod alloc;
pub mod analysis;
pub mod app;
pub mod cli;
pub mod download;
pub mod error;
pub mod image_io;
pub mod model;
pub mod ui;
pub mod viz;
pub mod weights;
pub mod worker;
