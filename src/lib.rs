//! segattn: see inside Segment Anything and small text transformers.
//!
//! - [`model`]: the networks on candle (SAM, MobileSAM), with their official pre/post-processing.
//! - [`weights`]: safe loading of `.safetensors` and PyTorch checkpoints.
//! - [`image_io`]: image decoding with size limits and format conversion.
//! - [`cli`]: the command-line interface.

pub mod cli;
pub mod image_io;
pub mod model;
pub mod weights;
