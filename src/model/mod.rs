//! Model code (candle only): SAM / MobileSAM, text transformers, positional encodings, shared
//! ops and deterministic test weights.

pub mod detweights;
pub mod ops;
pub mod positional;
pub mod sam;
pub mod simd;
pub mod text;
