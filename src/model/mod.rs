//! Model code (candle only): SAM / MobileSAM, text transformers, positional encodings, shared
//! ops and deterministic test weights.

pub mod detweights;
pub mod ops;
pub mod positional;
pub mod sam;
pub mod simd;
pub mod text;

use candle_core::{DType, Device};

/// The floating-point format SAM's image encoder runs in. The prompt encoder, the mask decoder
/// and the text models always run in f32: they are cheap, and their outputs are what the app
/// shows digit for digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats: the CPU kernels' format and PyTorch's default.
    #[default]
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16: f32's exponent range with 8 bits of mantissa.
    Bf16,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::Bf16 => DType::BF16,
        }
    }

    /// `"f32"`, `"f16"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    /// What `--dtype auto` picks on `device`: f16 on a GPU, the half format whose masks are
    /// checked to equal the f32 ones (IoU ≥ 0.99 on the fixtures, `tests/sam_parity.rs`, with
    /// norms and softmaxes in f32 as PyTorch's autocast runs them); f32 on the CPU, whose fast
    /// kernels are f32 (half-precision products there run through candle's generic ops and are
    /// slower). bf16 is there for GPUs on request but cannot be checked on a CPU.
    pub fn auto_for(device: &Device) -> Self {
        if device.is_cpu() {
            Self::F32
        } else {
            Self::F16
        }
    }
}
