//! Segment Anything (SAM ViT-B/L/H and any other ViT size) and MobileSAM (TinyViT) on candle.
//!
//! [`SamModel::embed`] runs the heavy image encoder once per image; [`SamModel::predict`] then
//! turns each prompt into masks, IoU predictions and the decoder's attention maps in
//! milliseconds. Numbers follow Meta's official PyTorch code (see `tests/sam_parity.rs`).

pub mod automatic;
pub mod config;
pub mod hiera;
pub mod image_encoder;
pub mod mask_decoder;
pub mod prompt_encoder;
pub mod tiny_vit;
pub mod transforms;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::model::detweights;
use crate::model::ops::to_vec_f32;
use crate::runtime::Precision;
use crate::types::{
    DecoderAttention, DecoderToken, LayerAttention, Mask, PointLabel, Prediction, Prompts, Rgb8,
    LOW_RES,
};
use crate::weights::{Scope, Weights};
use config::{EncoderConfig, SamConfig, EMBED_GRID, IMG_SIZE};
use hiera::HieraEncoder;
use image_encoder::ImageEncoderVit;
use mask_decoder::{BatchTokens, DecoderImageCache, HighResFeatures, MaskDecoder};
use prompt_encoder::{EncodedPrompt, PromptEncoder};
use tiny_vit::TinyVit;

/// SAM's mask threshold on the logits (`Sam.mask_threshold`).
pub const MASK_THRESHOLD: f32 = 0.0;
/// The official offset of the stability score (`stability_score_offset`).
pub const STABILITY_OFFSET: f32 = 1.0;
/// SAM 2's `dynamic_multimask_stability_delta`: the single-mask output's stability is measured
/// between the logits above ±0.05.
pub const SAM2_STABILITY_DELTA: f32 = 0.05;
/// SAM 2's `dynamic_multimask_stability_thresh`: a single-mask output less stable than this
/// is replaced by the best of the multimask outputs.
pub const SAM2_STABILITY_THRESH: f32 = 0.98;
/// SAM 2's predictor clamps the low-res logits it returns to ±32.
pub const SAM2_LOGIT_CLAMP: f32 = 32.0;

/// The image encoder was stopped on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("encoding cancelled")]
pub struct Cancelled;

// The low-res logits are the mask decoder's 4× upscale of the embedding grid.
const _: () = assert!(LOW_RES == 4 * EMBED_GRID);

/// An image encoded once, ready for any number of prompts.
pub struct ImageEmbedding {
    /// `[1, 256, 64, 64]`
    pub features: Tensor,
    /// Original image `(height, width)`.
    pub original_hw: (usize, usize),
    /// Resized image inside the 1024 frame `(height, width)`.
    pub input_hw: (usize, usize),
    /// Prompt-independent decoder work for this image.
    decoder_cache: DecoderImageCache,
    /// SAM 2: the high-resolution features `[1, 64, 128, 128]` and `[1, 32, 256, 256]` as
    /// the encoder gave them, and as the decoder's upscaling reads them.
    high_res: Option<(Tensor, Tensor, HighResFeatures)>,
}

impl ImageEmbedding {
    /// The features as plain `[256, 64, 64]` data.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(to_vec_f32(&self.features)?)
    }

    /// SAM 2's high-resolution features as plain data: `[64, 128, 128]` and `[32, 256, 256]`
    /// (`None` for SAM 1 models).
    pub fn high_res_to_vec(&self) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        match &self.high_res {
            Some((s1, s0, _)) => Ok(Some((to_vec_f32(s1)?, to_vec_f32(s0)?))),
            None => Ok(None),
        }
    }
}

enum Encoder {
    Vit(ImageEncoderVit),
    TinyVit(TinyVit),
    Hiera(HieraEncoder),
}

/// Sizes of SAM 2's high-resolution features: `(channels, side)` of `feat_s1` and `feat_s0`.
pub const SAM2_HIGH_RES: [(usize, usize); 2] = [(64, 128), (32, 256)];

/// A loaded SAM or MobileSAM model.
pub struct SamModel {
    config: SamConfig,
    encoder: Encoder,
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    /// The dense positional encoding as rows `[4096, 256]`.
    image_pe_rows: Tensor,
    device: Device,
    /// The image encoder's format (everything else runs in f32).
    precision: Precision,
    /// What identifies the weights for the embedding cache (a checkpoint's SHA-256, or how a
    /// model built in memory was made); `None`: not cached.
    identity: Option<String>,
}

impl SamModel {
    /// Loads any SAM / MobileSAM checkpoint, detecting the architecture from its tensors; f32.
    pub fn load(weights: &Weights, device: &Device) -> Result<Self> {
        Self::load_as(weights, device, Precision::F32)
    }

    /// [`Self::load`] with the image encoder in `precision`.
    pub fn load_as(weights: &Weights, device: &Device, precision: Precision) -> Result<Self> {
        let root = Scope::new(weights, device);
        let config = SamConfig::detect(&root)
            .with_context(|| format!("not a SAM checkpoint: {}", weights.path().display()))?;
        Self::load_with_config(weights, config, device, precision)
    }

    /// Loads a checkpoint whose architecture is already known, the image encoder in
    /// `precision`.
    pub fn load_with_config(
        weights: &Weights,
        config: SamConfig,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        if precision == Precision::Bf16 && device.is_cpu() {
            bail!("bf16 runs on a GPU only (candle's CPU matmul has no bf16): use f32 or f16");
        }
        let root = Scope::new(weights, device);
        let enc = root.pp("image_encoder").with_dtype(precision.dtype());
        let decoder = root.pp(config.mask_decoder_prefix());
        let encoder = match &config.encoder {
            EncoderConfig::Vit(c) => Encoder::Vit(ImageEncoderVit::load(&enc, c)?),
            EncoderConfig::TinyVit(c) => Encoder::TinyVit(TinyVit::load(&enc, c)?),
            EncoderConfig::Hiera(c) => {
                Encoder::Hiera(HieraEncoder::load(&enc, &decoder, &root, c)?)
            }
        };
        let prompt_encoder = PromptEncoder::load(&root.pp(config.prompt_encoder_prefix()))?;
        Ok(Self {
            image_pe_rows: mask_decoder::image_pe_rows(prompt_encoder.dense_pe())?,
            prompt_encoder,
            mask_decoder: MaskDecoder::load(&decoder, &config)?,
            encoder,
            config,
            device: device.clone(),
            precision,
            identity: None,
        })
    }

    /// A model with deterministic random weights ("detweights", `seed`) at `config`'s shapes.
    pub fn detweights(config: SamConfig, seed: u64, device: &Device) -> Result<Self> {
        let weights = detweights_sam(&config, seed)?;
        let identity = format!("detweights seed {seed} {config:?}");
        Ok(
            Self::load_with_config(&weights, config, device, Precision::F32)?
                .with_identity(identity),
        )
    }

    /// The model with `identity` naming its weights for the embedding cache.
    pub fn with_identity(mut self, identity: String) -> Self {
        self.identity = Some(identity);
        self
    }

    /// What identifies the weights for the embedding cache, if known.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The image encoder's format.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The detected architecture.
    pub fn config(&self) -> &SamConfig {
        &self.config
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The prompt encoder (for its positional encoding).
    pub fn prompt_encoder(&self) -> &PromptEncoder {
        &self.prompt_encoder
    }

    /// Runs the image encoder on an image already resized by [`transforms::resize_longest_side`]
    /// (`original_hw` is the size before resizing).
    pub fn embed_resized(
        &self,
        resized: &Rgb8,
        original_hw: (usize, usize),
    ) -> Result<ImageEmbedding> {
        self.embed_resized_cancellable(resized, original_hw, &|| false)
    }

    /// [`Self::embed_resized`] that stops with [`Cancelled`] when `cancelled()` turns true
    /// (asked between encoder blocks).
    pub fn embed_resized_cancellable(
        &self,
        resized: &Rgb8,
        original_hw: (usize, usize),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ImageEmbedding> {
        if self.config.is_sam2() {
            bail!("SAM 2.1 resizes the original image itself (to 1024 x 1024): use embed");
        }
        if resized.width > IMG_SIZE || resized.height > IMG_SIZE {
            bail!(
                "resized image {}x{} exceeds {IMG_SIZE}",
                resized.width,
                resized.height
            );
        }
        let input = transforms::normalize_and_pad(resized);
        let x = Tensor::from_vec(input, (1, 3, IMG_SIZE, IMG_SIZE), &self.device)?
            .to_dtype(self.precision.dtype())?;
        let features = match &self.encoder {
            Encoder::Vit(e) => e.forward(&x, cancelled),
            Encoder::TinyVit(e) => e.forward(&x, cancelled),
            Encoder::Hiera(_) => unreachable!("SAM 2 returned above"),
        };
        let features = match features {
            Err(_) if cancelled() => return Err(Cancelled.into()),
            f => f?.to_dtype(candle_core::DType::F32)?,
        };
        self.embedding_of(features, None, original_hw, (resized.height, resized.width))
    }

    /// SAM 2: runs the Hiera encoder on a model input `[1, 3, 1024, 1024]` (normalised as
    /// [`transforms::sam2_input`] makes it) of an image of `original_hw`.
    pub fn embed_sam2_input(
        &self,
        input: Vec<f32>,
        original_hw: (usize, usize),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ImageEmbedding> {
        let Encoder::Hiera(e) = &self.encoder else {
            bail!("not a SAM 2.1 model");
        };
        let x = Tensor::from_vec(input, (1, 3, IMG_SIZE, IMG_SIZE), &self.device)?
            .to_dtype(self.precision.dtype())?;
        let f = match e.forward(&x, cancelled) {
            Err(_) if cancelled() => return Err(Cancelled.into()),
            f => f?,
        };
        self.embedding_of(
            f.image_embed,
            Some((f.feat_s1, f.feat_s0)),
            original_hw,
            (IMG_SIZE, IMG_SIZE),
        )
    }

    /// The embedding of an image of `original_hw` whose encoder output `features`
    /// (`[1, 256, 64, 64]` row-major f32) were stored earlier: the prompt-independent decoder
    /// work is redone, the encoder is not run.
    ///
    /// SAM 2 needs `high_res` too, `[64, 128, 128]` and `[32, 256, 256]` row-major f32
    /// ([`ImageEmbedding::high_res_to_vec`]).
    pub fn embedding_from_features(
        &self,
        features: Vec<f32>,
        high_res: Option<(Vec<f32>, Vec<f32>)>,
        original_hw: (usize, usize),
    ) -> Result<ImageEmbedding> {
        let features = Tensor::from_vec(features, (1, 256, 64, 64), &self.device)?;
        let (oh, ow) = original_hw;
        if !self.config.is_sam2() {
            let input_hw = transforms::preprocess_shape(oh, ow, IMG_SIZE);
            return self.embedding_of(features, None, original_hw, input_hw);
        }
        let Some((s1, s0)) = high_res else {
            bail!("SAM 2.1 needs the high-resolution features with the embedding");
        };
        let [(c1, n1), (c0, n0)] = SAM2_HIGH_RES;
        if s1.len() != c1 * n1 * n1 || s0.len() != c0 * n0 * n0 {
            bail!(
                "high-resolution features have {} and {} values, expected {} and {}",
                s1.len(),
                s0.len(),
                c1 * n1 * n1,
                c0 * n0 * n0
            );
        }
        let s1 = Tensor::from_vec(s1, (1, c1, n1, n1), &self.device)?;
        let s0 = Tensor::from_vec(s0, (1, c0, n0, n0), &self.device)?;
        self.embedding_of(features, Some((s1, s0)), original_hw, (IMG_SIZE, IMG_SIZE))
    }

    /// The embedding around the encoder's output `features` `[1, 256, 64, 64]` f32 of an image
    /// of `original_hw`, `input_hw` once resized.
    fn embedding_of(
        &self,
        features: Tensor,
        high_res: Option<(Tensor, Tensor)>,
        original_hw: (usize, usize),
        input_hw: (usize, usize),
    ) -> Result<ImageEmbedding> {
        let decoder_cache = self.mask_decoder.image_cache(
            &features,
            &self.image_pe_rows,
            self.prompt_encoder.no_mask_embed(),
        )?;
        let high_res = match high_res {
            Some((s1, s0)) => {
                let hr = HighResFeatures::new(&s1, &s0)?;
                Some((s1, s0, hr))
            }
            None => None,
        };
        Ok(ImageEmbedding {
            features,
            decoder_cache,
            high_res,
            original_hw,
            input_hw,
        })
    }

    /// Resizes, normalises and encodes `image` (the official `SamPredictor.set_image`).
    pub fn embed(&self, image: &Rgb8) -> Result<ImageEmbedding> {
        self.embed_cancellable(image, &|| false)
    }

    /// [`Self::embed`] that stops with [`Cancelled`] when `cancelled()` turns true.
    pub fn embed_cancellable(
        &self,
        image: &Rgb8,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ImageEmbedding> {
        if image.width == 0 || image.height == 0 {
            bail!("the image is empty (0 pixels)");
        }
        if self.config.is_sam2() {
            let input = transforms::sam2_input(image);
            return self.embed_sam2_input(input, (image.height, image.width), cancelled);
        }
        let resized = transforms::resize_longest_side(image);
        self.embed_resized_cancellable(&resized, (image.height, image.width), cancelled)
    }

    /// Maps prompts from original-image pixels into the model's input frame.
    pub fn encode_prompts(&self, emb: &ImageEmbedding, prompts: &Prompts) -> Result<EncodedPrompt> {
        let (oh, ow) = emb.original_hw;
        let check = |x: f32, y: f32, what: &str| -> Result<()> {
            if !(x.is_finite() && y.is_finite())
                || x < 0.0
                || y < 0.0
                || x > ow as f32
                || y > oh as f32
            {
                bail!("{what} ({x}, {y}) lies outside the {ow}x{oh} image");
            }
            Ok(())
        };
        let sam2 = self.config.is_sam2();
        let to_input = |x: f32, y: f32| {
            if sam2 {
                transforms::sam2_coords((x, y), (oh, ow))
            } else {
                transforms::apply_coords((f64::from(x), f64::from(y)), (oh, ow))
            }
        };
        let mut points = Vec::with_capacity(prompts.points.len());
        for p in &prompts.points {
            let [x, y] = p.pos_in_image;
            check(x, y, "point")?;
            let (ix, iy) = to_input(x, y);
            points.push((ix, iy, p.label == PointLabel::Foreground));
        }
        let bbox = match prompts.bbox {
            Some(b) => {
                let [x0, y0, x1, y1] = b.corners_in_image;
                check(x0, y0, "box corner")?;
                check(x1, y1, "box corner")?;
                if x1 <= x0 || y1 <= y0 {
                    bail!(
                        "box ({x0}, {y0}, {x1}, {y1}) is empty: x1 must exceed x0 and y1 exceed y0"
                    );
                }
                let (a, b0) = to_input(x0, y0);
                let (c, d) = to_input(x1, y1);
                Some([a, b0, c, d])
            }
            None => None,
        };
        if let Some(m) = &prompts.mask_input {
            if m.len() != LOW_RES * LOW_RES {
                bail!(
                    "mask input has {} values, expected {LOW_RES}x{LOW_RES}",
                    m.len()
                );
            }
        }
        Ok(EncodedPrompt {
            points,
            bbox,
            mask_input: prompts.mask_input.clone(),
        })
    }

    /// Runs the prompt encoder and mask decoder (`SamPredictor.predict`): 3 candidate masks when
    /// `multimask`, else one.
    pub fn predict(
        &self,
        emb: &ImageEmbedding,
        prompts: &Prompts,
        multimask: bool,
    ) -> Result<Prediction> {
        let raw = self.predict_low_res(emb, prompts, multimask)?;
        // The masks side by side: each resize alone is too short to keep both threads busy.
        let (masks, stability_scores) = raw
            .low_res_logits
            .par_iter()
            .map(|l| {
                let classes = self.upscale_classes(emb, l, STABILITY_OFFSET);
                let stability = transforms::stability_of_classes(&classes);
                let data = classes
                    .iter()
                    .map(|&c| u8::from(c & transforms::ABOVE_THRESHOLD != 0))
                    .collect();
                let mask = Mask {
                    width: emb.original_hw.1,
                    height: emb.original_hw.0,
                    data,
                };
                (mask, stability)
            })
            .unzip();
        Ok(Prediction {
            masks,
            stability_scores,
            ..raw
        })
    }

    /// One low-res logit map of `emb` upscaled to the original size as the model's official
    /// postprocessing does it (SAM: through the padded 1024 frame, cropped; SAM 2.1: straight
    /// to the image's size), reduced to the classes of [`transforms::upscale_classes`]: above
    /// the mask threshold, and above it ± `offset` for the stability score.
    pub fn upscale_classes(&self, emb: &ImageEmbedding, low_res: &[f32], offset: f32) -> Vec<u8> {
        let hw = (LOW_RES, LOW_RES);
        if self.config.is_sam2() {
            transforms::sam2_upscale_classes(low_res, hw, emb.original_hw, MASK_THRESHOLD, offset)
        } else {
            transforms::upscale_classes(
                low_res,
                hw,
                emb.input_hw,
                emb.original_hw,
                MASK_THRESHOLD,
                offset,
            )
        }
    }

    /// Like [`Self::predict`] without the upscale to the original size (`masks` is empty).
    pub fn predict_low_res(
        &self,
        emb: &ImageEmbedding,
        prompts: &Prompts,
        multimask: bool,
    ) -> Result<Prediction> {
        if prompts.is_empty() {
            bail!("no prompt: add a point or a box");
        }
        let encoded = self.encode_prompts(emb, prompts)?;
        let sam2 = self.config.is_sam2();
        let (sparse, sparse_kinds) = self.prompt_encoder.sparse(&encoded, sam2, &self.device)?;
        // The cached image-side projections assume the no-mask dense embedding (which they
        // include); a mask input needs its own dense embedding and the uncached path.
        let cache = encoded.mask_input.is_none().then_some(&emb.decoder_cache);
        let dense = match cache {
            Some(_) => None,
            None => Some(self.prompt_encoder.dense(&encoded, &self.device)?),
        };
        let out = self.mask_decoder.forward(
            &emb.features,
            &self.image_pe_rows,
            &sparse,
            dense.as_ref(),
            cache,
            emb.high_res.as_ref().map(|(_, _, hr)| hr),
        )?;
        let n = self.config.num_mask_tokens;
        // The logits and the attention maps (1 MB each) copied out side by side: the logits,
        // then each block's self and token → image attention, then the final attention.
        let mut copies = std::iter::once(&out.masks)
            .chain(
                out.blocks
                    .iter()
                    .flat_map(|b| [&b.self_attn, &b.token_to_image]),
            )
            .chain(std::iter::once(&out.final_token_to_image))
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(to_vec_f32)
            .collect::<candle_core::Result<Vec<_>>>()?
            .into_iter();
        let mut next = || copies.next().unwrap_or_default();
        let all_logits = next();
        let all_iou = to_vec_f32(&out.iou)?;
        let plane = LOW_RES * LOW_RES;
        let range = if multimask {
            1..n
        } else if sam2 {
            let i = sam2_single_output(&all_logits[..n * plane], &all_iou[..n], plane);
            i..i + 1
        } else {
            0..1
        };
        let clamp = |v: f32| {
            if sam2 {
                v.clamp(-SAM2_LOGIT_CLAMP, SAM2_LOGIT_CLAMP)
            } else {
                v
            }
        };
        let low_res_logits = range
            .clone()
            .map(|i| {
                all_logits[i * plane..(i + 1) * plane]
                    .iter()
                    .map(|&v| clamp(v))
                    .collect()
            })
            .collect();
        let iou_predictions = range.map(|i| all_iou[i]).collect();
        let mut tokens = Vec::new();
        if sam2 {
            tokens.push(DecoderToken::ObjectScore);
        }
        tokens.push(DecoderToken::Iou);
        tokens.extend((0..n).map(|index| DecoderToken::Mask { index }));
        tokens.extend(
            sparse_kinds
                .into_iter()
                .map(|token| DecoderToken::Prompt { token }),
        );
        let layers = out
            .blocks
            .iter()
            .map(|_| LayerAttention {
                self_attn: next(),
                token_to_image: next(),
            })
            .collect();
        let final_token_to_image = next();
        Ok(Prediction {
            masks: Vec::new(),
            stability_scores: Vec::new(),
            iou_predictions,
            low_res_logits,
            decoder_attention: DecoderAttention {
                num_heads: config::DECODER_HEADS,
                tokens,
                grid_hw: (EMBED_GRID, EMBED_GRID),
                image_extent: [
                    emb.input_hw.1 as f32 / IMG_SIZE as f32,
                    emb.input_hw.0 as f32 / IMG_SIZE as f32,
                ],
                layers,
                final_token_to_image,
            },
        })
    }
}

/// A batch of single-point prompts decoded together on one image (the automatic mask
/// generator's unit of work): the multimask IoU predictions of every prompt, and what their
/// masks need.
pub struct PointBatch {
    tokens: BatchTokens,
    num_mask_tokens: usize,
}

impl PointBatch {
    /// Prompts in the batch.
    pub fn len(&self) -> usize {
        self.tokens.iou.len() / self.num_mask_tokens
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The predicted IoU of the multimask outputs (`num_mask_tokens − 1` of them) of `prompt`.
    pub fn multimask_iou(&self, prompt: usize) -> &[f32] {
        let n = self.num_mask_tokens;
        &self.tokens.iou[prompt * n + 1..(prompt + 1) * n]
    }
}

impl SamModel {
    /// Decodes single foreground points, given in the model's input frame (see
    /// [`transforms::apply_coords`]; SAM 2: [`transforms::sam2_coords`]), as one batch
    /// against the image's cached decoder work (the official `predict_torch`, SAM 2's
    /// `_predict`, with one point per prompt and `multimask_output`).
    pub fn decode_point_batch(
        &self,
        emb: &ImageEmbedding,
        points_input: &[[f64; 2]],
    ) -> Result<PointBatch> {
        if points_input.is_empty() {
            bail!("no points to decode");
        }
        let sparse = self
            .prompt_encoder
            .sparse_foreground_points(points_input, &self.device)?;
        let tokens =
            self.mask_decoder
                .forward_batch(&emb.decoder_cache, &self.image_pe_rows, &sparse)?;
        Ok(PointBatch {
            tokens,
            num_mask_tokens: self.config.num_mask_tokens,
        })
    }

    /// The multimask low-res logits of the batch entries `prompts` (decoded on `emb`):
    /// `[prompts, num_mask_tokens − 1, 256, 256]` row-major, unclamped.
    pub fn point_batch_masks(
        &self,
        emb: &ImageEmbedding,
        batch: &PointBatch,
        prompts: &[usize],
    ) -> Result<Vec<f32>> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let masks = self.mask_decoder.batch_masks(
            &batch.tokens,
            prompts,
            1..batch.num_mask_tokens,
            emb.high_res.as_ref().map(|(_, _, hr)| hr),
        )?;
        Ok(to_vec_f32(&masks)?)
    }
}

/// SAM 2's `_dynamic_multimask_via_stability` for a single-mask request: the single-mask
/// output (token 0) when its stability (the pixels above +δ over those above −δ, 1 when none
/// is) reaches [`SAM2_STABILITY_THRESH`], else the multimask output with the highest
/// predicted IoU (the first on ties, as `argmax`). `logits` holds every token's
/// `plane`-sized low-res map, `iou` every token's IoU.
pub fn sam2_single_output(logits: &[f32], iou: &[f32], plane: usize) -> usize {
    let single = &logits[..plane];
    let inter = single.iter().filter(|&&v| v > SAM2_STABILITY_DELTA).count();
    let union = single
        .iter()
        .filter(|&&v| v > -SAM2_STABILITY_DELTA)
        .count();
    let stability = if union > 0 {
        inter as f32 / union as f32
    } else {
        1.0
    };
    if stability >= SAM2_STABILITY_THRESH {
        return 0;
    }
    let mut best = 1;
    for (i, &v) in iou.iter().enumerate().skip(1) {
        if v > iou[best] {
            best = i;
        }
    }
    best
}

/// Detweights for every tensor of `config`'s official state dict.
pub fn detweights_sam(config: &SamConfig, seed: u64) -> Result<Weights> {
    Ok(Weights::generated(
        config.state_dict_shapes(),
        Box::new(move |key, shape| detweights::generate(seed, key, shape)),
        format!("<detweights seed {seed}>"),
    ))
}
