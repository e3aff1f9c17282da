//! SAM's prompt encoder (`segment_anything/modeling/prompt_encoder.py`): random-Fourier positional
//! encoding of points and box corners, learned per-label embeddings, the padding point, and the
//! dense embedding (no-mask embedding or a downscaled low-res mask).

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::config::{EMBED_GRID, IMG_SIZE, MASK_IN_CHANS, PROMPT_EMBED_DIM};
use crate::analysis::positional::RandomFourierEncoding;
use crate::model::ops::{gelu, LayerNorm2d};
use crate::types::SparseToken;
use crate::weights::Scope;

/// Points and box in the 1024-pixel input frame, ready for the encoder.
#[derive(Debug, Clone, Default)]
pub struct EncodedPrompt {
    /// `(x, y, foreground)` in the input frame.
    pub points: Vec<(f32, f32, bool)>,
    /// `(x0, y0, x1, y1)` in the input frame.
    pub bbox: Option<[f32; 4]>,
    /// A previous low-res mask (`[256, 256]` logits) to refine.
    pub mask_input: Option<Vec<f32>>,
}

/// The prompt encoder.
pub struct PromptEncoder {
    pe: RandomFourierEncoding,
    point_embeddings: Vec<Vec<f32>>,
    not_a_point: Vec<f32>,
    /// `[1, 256, 1, 1]`
    no_mask: Tensor,
    mask_conv0: (Tensor, Tensor),
    mask_norm1: LayerNorm2d,
    mask_conv3: (Tensor, Tensor),
    mask_norm4: LayerNorm2d,
    mask_conv6: (Tensor, Tensor),
    /// `get_dense_pe()`: `[1, 256, 64, 64]`, computed once.
    dense_pe: Tensor,
}

impl PromptEncoder {
    /// Loads `prompt_encoder.*`.
    pub fn load(s: &Scope) -> Result<Self> {
        let d = PROMPT_EMBED_DIM;
        let m = MASK_IN_CHANS;
        let pe = RandomFourierEncoding::new(
            s.get_vec("pe_layer.positional_encoding_gaussian_matrix", &[2, d / 2])?,
        );
        let point_embeddings = (0..4)
            .map(|i| s.get_vec(&format!("point_embeddings.{i}.weight"), &[1, d]))
            .collect::<Result<_, _>>()?;
        let ds = s.pp("mask_downscaling");
        let conv = |i: usize, cin: usize, cout: usize, k: usize| -> Result<(Tensor, Tensor)> {
            Ok((
                ds.get(&format!("{i}.weight"), &[cout, cin, k, k])?,
                ds.get(&format!("{i}.bias"), &[cout])?
                    .reshape((1, cout, 1, 1))?,
            ))
        };
        let g = EMBED_GRID;
        let dense_pe = Tensor::from_vec(pe.grid(g, g), (1, d, g, g), s.device())?;
        Ok(Self {
            point_embeddings,
            not_a_point: s.get_vec("not_a_point_embed.weight", &[1, d])?,
            no_mask: s
                .get("no_mask_embed.weight", &[1, d])?
                .reshape((1, d, 1, 1))?,
            mask_conv0: conv(0, 1, m / 4, 2)?,
            mask_norm1: LayerNorm2d::load(&ds.pp(1), m / 4, 1e-6)?,
            mask_conv3: conv(3, m / 4, m, 2)?,
            mask_norm4: LayerNorm2d::load(&ds.pp(4), m, 1e-6)?,
            mask_conv6: conv(6, m, d, 1)?,
            dense_pe,
            pe,
        })
    }

    /// The random-Fourier encoding layer.
    pub fn positional_encoding(&self) -> &RandomFourierEncoding {
        &self.pe
    }

    /// The dense positional encoding of the image grid, `[1, 256, 64, 64]`.
    pub fn dense_pe(&self) -> &Tensor {
        &self.dense_pe
    }

    fn encode_coords(&self, x: f32, y: f32) -> Vec<f32> {
        // Shift to the pixel centre, then normalise by the input size, as the official code does.
        let size = IMG_SIZE as f32;
        self.pe.encode((x + 0.5) / size, (y + 0.5) / size)
    }

    /// Sparse tokens `[1, T, 256]` and what each stands for.
    ///
    /// SAM orders them points, the padding point (points without a box), box corners. SAM 2's
    /// predictor (`sam2_order`) passes the box as two labelled points ahead of the clicks and
    /// no box, so its order is box corners, points, and always the padding point.
    pub fn sparse(
        &self,
        prompt: &EncodedPrompt,
        sam2_order: bool,
        device: &candle_core::Device,
    ) -> Result<(Tensor, Vec<SparseToken>)> {
        let d = PROMPT_EMBED_DIM;
        let mut data: Vec<f32> = Vec::new();
        let mut kinds = Vec::new();
        let add = |data: &mut Vec<f32>, base: Vec<f32>, extra: &[f32]| {
            data.extend(base.iter().zip(extra).map(|(a, b)| a + b));
        };
        let add_box =
            |data: &mut Vec<f32>, kinds: &mut Vec<SparseToken>, [x0, y0, x1, y1]: [f32; 4]| {
                add(data, self.encode_coords(x0, y0), &self.point_embeddings[2]);
                add(data, self.encode_coords(x1, y1), &self.point_embeddings[3]);
                kinds.push(SparseToken::BoxCorner(0));
                kinds.push(SparseToken::BoxCorner(1));
            };
        if sam2_order {
            if let Some(b) = prompt.bbox {
                add_box(&mut data, &mut kinds, b);
            }
        }
        for (index, &(x, y, fg)) in prompt.points.iter().enumerate() {
            let e = self.encode_coords(x, y);
            add(&mut data, e, &self.point_embeddings[usize::from(fg)]);
            kinds.push(SparseToken::Point {
                index,
                foreground: fg,
            });
        }
        let pad = if sam2_order {
            !prompt.points.is_empty() || prompt.bbox.is_some()
        } else {
            !prompt.points.is_empty() && prompt.bbox.is_none()
        };
        if pad {
            // Padding point: its positional encoding is zeroed, then `not_a_point_embed` added.
            data.extend_from_slice(&self.not_a_point);
            kinds.push(SparseToken::PaddingPoint);
        }
        if !sam2_order {
            if let Some(b) = prompt.bbox {
                add_box(&mut data, &mut kinds, b);
            }
        }
        let t = kinds.len();
        Ok((Tensor::from_vec(data, (1, t, d), device)?, kinds))
    }

    /// Sparse tokens `[B, 2, 256]` of `B` single foreground points (in the input frame) and
    /// their padding points, as the automatic mask generator feeds them: its coordinates stay
    /// in f64 until after the shift and normalisation, as in the official code.
    pub fn sparse_foreground_points(
        &self,
        points: &[[f64; 2]],
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        let d = PROMPT_EMBED_DIM;
        let size = IMG_SIZE as f64;
        let mut data = Vec::with_capacity(points.len() * 2 * d);
        for &[x, y] in points {
            let e = self
                .pe
                .encode(((x + 0.5) / size) as f32, ((y + 0.5) / size) as f32);
            data.extend(e.iter().zip(&self.point_embeddings[1]).map(|(a, b)| a + b));
            data.extend_from_slice(&self.not_a_point);
        }
        Ok(Tensor::from_vec(data, (points.len(), 2, d), device)?)
    }

    /// `no_mask_embed`, `[1, 256, 1, 1]`: the dense embedding of a prompt without a mask
    /// input, before its broadcast over the grid.
    pub fn no_mask_embed(&self) -> &Tensor {
        &self.no_mask
    }

    /// Dense embedding `[1, 256, 64, 64]`: the downscaled mask input, or `no_mask_embed`
    /// broadcast over the grid.
    pub fn dense(&self, prompt: &EncodedPrompt, device: &candle_core::Device) -> Result<Tensor> {
        let g = EMBED_GRID;
        match &prompt.mask_input {
            None => Ok(self
                .no_mask
                .broadcast_as((1, PROMPT_EMBED_DIM, g, g))?
                .contiguous()?),
            Some(mask) => {
                let m = Tensor::from_slice(mask, (1, 1, 4 * g, 4 * g), device)?;
                let x = m
                    .conv2d(&self.mask_conv0.0, 0, 2, 1, 1)?
                    .broadcast_add(&self.mask_conv0.1)?;
                let x = gelu(&self.mask_norm1.forward(&x)?)?;
                let x = x
                    .conv2d(&self.mask_conv3.0, 0, 2, 1, 1)?
                    .broadcast_add(&self.mask_conv3.1)?;
                let x = gelu(&self.mask_norm4.forward(&x)?)?;
                Ok(x.conv2d(&self.mask_conv6.0, 0, 1, 1, 1)?
                    .broadcast_add(&self.mask_conv6.1)?)
            }
        }
    }
}
