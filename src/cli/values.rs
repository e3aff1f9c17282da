//! The command line's names for the app's choices (`--device cpu`, `--view attention`,
//! `--colormap magma`): clap's [`ValueEnum`] for types that live outside the CLI, so clap stays
//! in this module.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::runtime::{DTypeChoice, DeviceChoice};
use crate::types::train::{Positions, Task};
use crate::ui::i18n::Lang;
use crate::ui::View;
use crate::viz::Colormap;

/// Implements [`ValueEnum`] for an enum of the app: each variant with its name on the command
/// line and its help text.
macro_rules! value_enum {
    ($ty:ty { $($variant:ident => $name:literal: $help:literal),+ $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(<$ty>::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $(<$ty>::$variant => PossibleValue::new($name).help($help)),+
                })
            }
        }
    };
}

value_enum!(DeviceChoice {
    Auto => "auto": "CUDA or Metal when compiled in and present, else the CPU",
    Cpu => "cpu": "the CPU",
    Cuda => "cuda": "an NVIDIA GPU (needs the `cuda` feature)",
    Metal => "metal": "an Apple GPU (needs the `metal` feature)",
});

value_enum!(DTypeChoice {
    Auto => "auto": "f16 on a GPU, f32 on the CPU",
    F32 => "f32": "32-bit floats",
    F16 => "f16": "half precision (masks checked equal to f32's)",
    Bf16 => "bf16": "bfloat16 (GPU only; not checked against f32 here)",
});

value_enum!(View {
    Segment => "segment": "SAM: click, see the mask",
    Attention => "attention": "text attention heatmaps",
    Encodings => "encodings": "positional encodings",
    Train => "train": "train a tiny transformer, watch its attention form",
});

value_enum!(Lang {
    En => "en": "English",
    Fr => "fr": "French (français)",
});

value_enum!(Colormap {
    Viridis => "viridis": "sequential, perceptually uniform",
    Magma => "magma": "sequential, dark to light through magenta",
    Inferno => "inferno": "sequential, dark to light through red",
    Cividis => "cividis": "sequential, colour-blind friendly",
    RdBu => "rd-bu": "diverging red-blue for signed values",
});

value_enum!(Task {
    Reverse => "reverse": "reverse 8 digits (encoder; an anti-diagonal)",
    Copy => "copy": "repeat the digit 2 positions back (decoder; a shifted diagonal)",
    Sort => "sort": "sort 8 digits (encoder; each position finds the digit of its rank)",
    Induction => "induction": "continue a repeated random sequence (decoder; an induction head)",
    Sentences => "sentences": "next word of the lesson's French sentences (decoder)",
});

value_enum!(Positions {
    Learned => "learned": "a learned table added to the embedding",
    Sinusoidal => "sinusoidal": "the fixed sinusoidal table added to the embedding",
    Rope => "rope": "rotary: queries and keys rotated by position",
});
