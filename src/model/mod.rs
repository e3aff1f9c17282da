//! Model code (candle only): SAM / MobileSAM, shared ops and deterministic test weights.

pub mod detweights;
pub mod ops;
pub mod sam;
