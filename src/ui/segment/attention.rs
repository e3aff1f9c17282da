//! The mask decoder's attention over the image for the current prompt: which map to show
//! (block, head or mean of heads, token), the map itself, and its texture, made once per pick.

use egui::TextureHandle;

use crate::types::{DecoderAttention, DecoderToken, SparseToken};
use crate::viz::{heatmap, Colormap, ValueRange};

/// Which decoder attention map to overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionPick {
    /// Two-way block index, or `layers` for the final token → image attention.
    pub layer: usize,
    /// Head, or `None` for the mean over heads.
    pub head: Option<usize>,
    /// Token row.
    pub token: usize,
}

impl Default for AttentionPick {
    fn default() -> Self {
        Self {
            layer: 2,
            head: None,
            token: Self::first_mask_token(false),
        }
    }
}

impl AttentionPick {
    /// The row of the first mask token: after the IoU token, and for SAM 2.1 (`sam2`) after
    /// the object-score token too.
    pub fn first_mask_token(sam2: bool) -> usize {
        if sam2 {
            2
        } else {
            1
        }
    }
}

/// Opacity of the attention overlay.
const OVERLAY_ALPHA: u8 = 170;

/// The overlay's texture for the prompt `request_id` and a pick, made when either changes.
#[derive(Default)]
pub struct AttentionOverlay {
    texture: Option<((u64, AttentionPick), TextureHandle)>,
}

impl AttentionOverlay {
    /// The texture of `pick` on `a` (the answer to `request_id`): a 64 × 64 heatmap, quick
    /// enough to colour on the UI thread (about 0.1 ms), once per change.
    pub fn texture(
        &mut self,
        ctx: &egui::Context,
        request_id: u64,
        a: &DecoderAttention,
        pick: AttentionPick,
    ) -> &TextureHandle {
        let key = (request_id, pick);
        if self.texture.as_ref().is_some_and(|(k, _)| *k != key) {
            self.texture = None;
        }
        let (_, texture) = self.texture.get_or_insert_with(|| {
            let map = attention_map(a, pick);
            let (gh, gw) = a.grid_hw;
            let mut raster = heatmap(&map, gh, gw, ValueRange::Auto, Colormap::Magma, |_, _| {
                false
            });
            for px in raster.rgba.chunks_mut(4) {
                px[3] = OVERLAY_ALPHA;
            }
            (
                key,
                crate::ui::widgets::texture(ctx, "decoder-attention", &raster, false),
            )
        });
        texture
    }
}

/// The `h·w` token → image map for `pick` (mean over heads when no head is chosen).
pub fn attention_map(a: &DecoderAttention, pick: AttentionPick) -> Vec<f32> {
    let src = if pick.layer >= a.layers.len() {
        &a.final_token_to_image
    } else {
        &a.layers[pick.layer].token_to_image
    };
    let (gh, gw) = a.grid_hw;
    let hw = gh * gw;
    let t = a.tokens.len();
    let row = |h: usize| &src[(h * t + pick.token.min(t.saturating_sub(1))) * hw..][..hw];
    match pick.head {
        Some(h) => row(h.min(a.num_heads.saturating_sub(1))).to_vec(),
        None => {
            let mut out = vec![0f32; hw];
            for h in 0..a.num_heads {
                for (o, v) in out.iter_mut().zip(row(h)) {
                    *o += v / a.num_heads as f32;
                }
            }
            out
        }
    }
}

/// The name of block `l` of `layers` in the picker.
pub fn layer_name(ui: &egui::Ui, l: usize, layers: usize) -> String {
    if l == layers {
        crate::tr!(ui, "seg-layer-final")
    } else {
        crate::tr!(ui, "seg-layer-block", block = l)
    }
}

/// A short name for a decoder token row.
pub fn token_name(ui: &egui::Ui, t: &DecoderToken) -> String {
    match t {
        DecoderToken::ObjectScore => crate::tr!(ui, "seg-token-object"),
        DecoderToken::Iou => crate::tr!(ui, "seg-token-iou"),
        DecoderToken::Mask { index } => crate::tr!(ui, "seg-token-mask", index = *index),
        DecoderToken::Prompt { token } => match token {
            SparseToken::Point {
                index,
                foreground: true,
            } => {
                crate::tr!(ui, "seg-token-point-fg", n = index + 1)
            }
            SparseToken::Point { index, .. } => crate::tr!(ui, "seg-token-point-bg", n = index + 1),
            SparseToken::PaddingPoint => crate::tr!(ui, "seg-token-padding"),
            SparseToken::BoxCorner(i) => crate::tr!(ui, "seg-token-corner", n = i + 1),
        },
    }
}
