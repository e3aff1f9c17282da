//! What the user says to SAM (points, boxes, a mask to refine) and what SAM answers (masks,
//! predicted IoU, low-res logits and the decoder's attention), as plain data.

use super::image::Mask;

/// Side of SAM's low-resolution mask logits (`256 × 256`: 4 × the 64 × 64 embedding grid).
pub const LOW_RES: usize = 256;

/// A point in original-image pixels (x right, y down) with its label.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PointPrompt {
    /// Position in original-image pixels.
    pub pos_in_image: [f32; 2],
    /// Foreground (part of the object) or background.
    pub label: PointLabel,
}

/// The label of a point prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PointLabel {
    /// Part of the object (label 1).
    Foreground,
    /// Not part of the object (label 0).
    Background,
}

/// A box in original-image pixels: `[x0, y0, x1, y1]`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoxPrompt {
    /// `[x0, y0, x1, y1]` in original-image pixels.
    pub corners_in_image: [f32; 4],
}

/// Everything the user said about one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompts {
    /// Clicked points in order.
    pub points: Vec<PointPrompt>,
    /// An optional box.
    pub bbox: Option<BoxPrompt>,
    /// An optional previous low-res mask (`256 × 256` logits) to refine.
    pub mask_input: Option<Vec<f32>>,
}

impl Prompts {
    /// True when there is neither a point nor a box.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.bbox.is_none()
    }
}

/// What a sparse prompt token stands for, in decoder order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SparseToken {
    /// A clicked point (`index` into the prompt's points), foreground or not.
    Point {
        /// Index among the prompt's points.
        index: usize,
        /// True for foreground (label 1), false for background (label 0).
        foreground: bool,
    },
    /// The padding point (label −1) added when there are points but no box.
    PaddingPoint,
    /// Box corner 0 (top-left) or 1 (bottom-right).
    BoxCorner(usize),
}

/// The decoder's token-side attention for one prompt, as plain data.
#[derive(Debug, Clone)]
pub struct DecoderAttention {
    /// Attention heads (8).
    pub num_heads: usize,
    /// What each of the `T` token rows stands for (`[iou, mask × 4, sparse…]`).
    pub tokens: Vec<DecoderToken>,
    /// Image grid `(h, w)` the token → image maps cover (64 × 64).
    pub grid_hw: (usize, usize),
    /// The part of the grid over the image, `[width, height]` as fractions of the grid: SAM
    /// resizes the image to fit 1024 px and pads it bottom-right, so the rest lies over padding.
    pub image_extent: [f32; 2],
    /// Per two-way block.
    pub layers: Vec<LayerAttention>,
    /// Final token → image attention `[heads, T, h·w]`.
    pub final_token_to_image: Vec<f32>,
}

/// One two-way block's token-side attention.
#[derive(Debug, Clone)]
pub struct LayerAttention {
    /// Token self-attention `[heads, T, T]`.
    pub self_attn: Vec<f32>,
    /// Token → image attention `[heads, T, h·w]`.
    pub token_to_image: Vec<f32>,
}

/// A decoder token row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecoderToken {
    /// SAM 2's object-score token (whether an object is there at all).
    ObjectScore,
    /// The IoU-prediction token.
    Iou,
    /// Mask token `i` (0 = single-mask output, 1..=3 = multimask outputs).
    Mask {
        /// Index among the mask tokens.
        index: usize,
    },
    /// A prompt token.
    Prompt {
        /// What the prompt token is.
        token: SparseToken,
    },
}

/// The result of one prompt.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Masks at the original size, in SAM's output order.
    pub masks: Vec<Mask>,
    /// Predicted IoU of each mask.
    pub iou_predictions: Vec<f32>,
    /// Stability score of each mask (the official `calculate_stability_score` of its logits at
    /// the original size, offset 1); empty when `masks` is.
    pub stability_scores: Vec<f32>,
    /// `256 × 256` logits of each mask.
    pub low_res_logits: Vec<Vec<f32>>,
    /// Decoder attention for this prompt.
    pub decoder_attention: DecoderAttention,
}

/// Index of the best candidate by predicted IoU (the first of equals; 0 when none).
pub fn best_candidate(iou: &[f32]) -> usize {
    iou.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}
