//! SAM's prompt encoder (`segment_anything/modeling/prompt_encoder.py`): random-Fourier positional
//! encoding of points and box corners, learned per-label embeddings, the padding point, and the
//! dense embedding (no-mask embedding or a downscaled low-res mask).

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::config::{EMBED_GRID, IMG_SIZE, MASK_IN_CHANS, PROMPT_EMBED_DIM};
use crate::model::ops::{gelu, LayerNorm2d};
use crate::weights::Scope;

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

/// SAM's `PositionEmbeddingRandom`: maps `[0,1]²` coordinates to 256 sin/cos features.
#[derive(Debug, Clone)]
pub struct RandomFourierEncoding {
    /// `[2, 128]`
    gaussian: Vec<f32>,
}

impl RandomFourierEncoding {
    /// From `positional_encoding_gaussian_matrix` `[2, F]`, row-major.
    pub fn new(gaussian: Vec<f32>) -> Self {
        Self { gaussian }
    }

    /// Number of frequencies F (output has 2F features).
    pub fn num_freqs(&self) -> usize {
        self.gaussian.len() / 2
    }

    /// Encodes a point with coordinates normalised to `[0, 1]`: `[sin(2π·p), cos(2π·p)]` with
    /// `p = (2c − 1) · G`.
    pub fn encode(&self, x01: f32, y01: f32) -> Vec<f32> {
        let f = self.num_freqs();
        let (cx, cy) = (2.0 * x01 - 1.0, 2.0 * y01 - 1.0);
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        let mut out = vec![0f32; 2 * f];
        for j in 0..f {
            let p = two_pi * (cx * self.gaussian[j] + cy * self.gaussian[f + j]);
            out[j] = p.sin();
            out[f + j] = p.cos();
        }
        out
    }

    /// The encoding of every cell centre of an `h × w` grid, channel-major `[2F, h, w]`.
    pub fn grid(&self, h: usize, w: usize) -> Vec<f32> {
        let c = 2 * self.num_freqs();
        let mut out = vec![0f32; c * h * w];
        for y in 0..h {
            for x in 0..w {
                let e = self.encode((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
                for (ch, v) in e.into_iter().enumerate() {
                    out[ch * h * w + y * w + x] = v;
                }
            }
        }
        out
    }
}

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
    pub fn sparse(
        &self,
        prompt: &EncodedPrompt,
        device: &candle_core::Device,
    ) -> Result<(Tensor, Vec<SparseToken>)> {
        let d = PROMPT_EMBED_DIM;
        let mut data: Vec<f32> = Vec::new();
        let mut kinds = Vec::new();
        let add = |data: &mut Vec<f32>, base: Vec<f32>, extra: &[f32]| {
            data.extend(base.iter().zip(extra).map(|(a, b)| a + b));
        };
        for (index, &(x, y, fg)) in prompt.points.iter().enumerate() {
            let e = self.encode_coords(x, y);
            add(&mut data, e, &self.point_embeddings[usize::from(fg)]);
            kinds.push(SparseToken::Point {
                index,
                foreground: fg,
            });
        }
        if !prompt.points.is_empty() && prompt.bbox.is_none() {
            // Padding point: its positional encoding is zeroed, then `not_a_point_embed` added.
            data.extend_from_slice(&self.not_a_point);
            kinds.push(SparseToken::PaddingPoint);
        }
        if let Some([x0, y0, x1, y1]) = prompt.bbox {
            add(
                &mut data,
                self.encode_coords(x0, y0),
                &self.point_embeddings[2],
            );
            add(
                &mut data,
                self.encode_coords(x1, y1),
                &self.point_embeddings[3],
            );
            kinds.push(SparseToken::BoxCorner(0));
            kinds.push(SparseToken::BoxCorner(1));
        }
        let t = kinds.len();
        Ok((Tensor::from_vec(data, (1, t, d), device)?, kinds))
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
