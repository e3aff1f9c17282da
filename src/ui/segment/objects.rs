//! SAM's candidate masks for the current prompt, the objects the user keeps, and their
//! overlays: one white-on-transparent texture per mask at display size, made once on a job and
//! drawn tinted with the object's colour and the opacity (so the opacity slider costs nothing).

use std::sync::Arc;

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use crate::annotate::edit::EditHistory;
use crate::jobs::Slot;
use crate::types::{DecoderAttention, Mask, Prediction};

/// The overlays made for the candidates answering one prompt: the prompt's id and one texture
/// per mask.
pub type Overlays = (u64, Vec<TextureHandle>);

/// The candidate masks answering one prompt.
pub struct Candidates {
    /// The prompt they answer.
    pub request_id: u64,
    /// Masks at the original size.
    pub masks: Vec<Arc<Mask>>,
    /// Predicted IoU per mask.
    pub iou: Vec<f32>,
    /// Stability score per mask.
    pub stability: Vec<f32>,
    /// Low-res logits per mask (refinement input).
    pub low_res: Vec<Vec<f32>>,
    /// Decoder attention for this prompt.
    pub attention: DecoderAttention,
    /// One overlay per mask, once the job has made them.
    pub overlays: Option<Vec<TextureHandle>>,
}

impl Candidates {
    /// SAM's answer to prompt `request_id`, its overlays (named `name i`, at the display
    /// `size`) started on `slot`'s job; `overlays` is filled when the job is done.
    pub fn start(
        slot: &mut Slot<Overlays>,
        ctx: &egui::Context,
        request_id: u64,
        p: Prediction,
        size: (usize, usize),
        name: &'static str,
    ) -> Self {
        let masks: Vec<Arc<Mask>> = p.masks.into_iter().map(Arc::new).collect();
        let (jobs_masks, ctx) = (masks.clone(), ctx.clone());
        slot.submit(move |stale| {
            let mut textures = Vec::with_capacity(jobs_masks.len());
            for (i, m) in jobs_masks.iter().enumerate() {
                if stale() {
                    break;
                }
                textures.push(mask_texture(&ctx, &format!("{name} {i}"), m, size));
            }
            (request_id, textures)
        });
        Self {
            request_id,
            masks,
            iou: p.iou_predictions,
            stability: p.stability_scores,
            low_res: p.low_res_logits,
            attention: p.decoder_attention,
            overlays: None,
        }
    }
}

/// A kept object.
pub struct SegObject {
    /// Its label (category), one of the view's labels.
    pub label: String,
    /// Overlay colour.
    pub color: [u8; 3],
    /// The mask.
    pub mask: Arc<Mask>,
    /// Shown on the image.
    pub visible: bool,
    /// Its overlay (the candidate's, reused; remade on a job after an edit).
    pub overlay: Option<TextureHandle>,
    /// Its editing steps, for undo and redo.
    pub edits: EditHistory<Arc<Mask>>,
    /// Bumped by every edit of the mask.
    pub revision: u64,
    /// The revision `overlay` shows.
    pub overlay_revision: u64,
}

impl SegObject {
    /// A new object labelled `label` with its overlay (if made).
    pub fn new(
        label: String,
        color: [u8; 3],
        mask: Arc<Mask>,
        overlay: Option<TextureHandle>,
    ) -> Self {
        Self {
            label,
            color,
            mask,
            visible: true,
            overlay,
            edits: EditHistory::default(),
            revision: 0,
            overlay_revision: 0,
        }
    }
}

/// The colour to draw a white overlay texture with: `color` at `opacity` (premultiplied, as
/// egui multiplies the texture by the tint).
pub fn tint(color: [u8; 3], opacity: f32) -> Color32 {
    let alpha = (opacity.clamp(0.0, 1.0) * 255.0).round() as u8;
    Color32::from_rgba_unmultiplied(color[0], color[1], color[2], alpha)
}

/// The overlay texture of `mask` at `size` (nearest pixel when it differs from the mask's
/// size): white inside, transparent outside. For a job thread: a 12-megapixel mask at
/// 2048 px takes a few milliseconds.
pub fn mask_texture(
    ctx: &egui::Context,
    name: &str,
    mask: &Mask,
    size: (usize, usize),
) -> TextureHandle {
    ctx.load_texture(
        name,
        ColorImage::new([size.0, size.1], overlay_pixels(mask, size)),
        TextureOptions::LINEAR,
    )
}

/// The pixels of [`mask_texture`].
fn overlay_pixels(mask: &Mask, (width, height): (usize, usize)) -> Vec<Color32> {
    let mut pixels = vec![Color32::TRANSPARENT; width * height];
    let xs: Vec<usize> = (0..width).map(|x| x * mask.width / width.max(1)).collect();
    for (y, row) in pixels.chunks_exact_mut(width.max(1)).enumerate() {
        let my = y * mask.height / height.max(1);
        let src = &mask.data[my * mask.width..][..mask.width];
        for (px, &mx) in row.iter_mut().zip(&xs) {
            if src[mx] != 0 {
                *px = Color32::WHITE;
            }
        }
    }
    pixels
}

pub use crate::types::best_candidate as best;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tint_is_the_colour_at_the_opacity() {
        let t = tint([200, 100, 0], 0.5);
        assert_eq!(t.a(), 128);
        assert_eq!(t, Color32::from_rgba_unmultiplied(200, 100, 0, 128));
        assert_eq!(best(&[0.2, 0.9, 0.5]), 1);
    }

    #[test]
    fn overlays_sample_the_mask_at_display_size() {
        // 4 × 2 mask, right half set; shown at 2 × 1 and at full size.
        let m = Mask {
            width: 4,
            height: 2,
            data: vec![0, 0, 1, 1, 0, 0, 1, 1],
        };
        assert_eq!(
            overlay_pixels(&m, (2, 1)),
            [Color32::TRANSPARENT, Color32::WHITE]
        );
        let full = overlay_pixels(&m, (4, 2));
        assert_eq!(full[2], Color32::WHITE);
        assert_eq!(full[4], Color32::TRANSPARENT);
    }
}
