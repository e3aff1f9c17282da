//! Model code (candle only): SAM / MobileSAM, text transformers, shared ops and SIMD kernels,
//! and deterministic test weights. It takes and gives the plain data of [`crate::types`].

pub mod detweights;
pub mod ops;
pub mod sam;
pub mod simd;
pub mod text;
pub mod train;
