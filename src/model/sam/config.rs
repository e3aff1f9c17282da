//! SAM architectures, detected from a checkpoint's tensor names and shapes, and the full list of
//! official state-dict entries each architecture has (used to synthesise detweights).

use anyhow::{bail, Result};
use serde::Serialize;

use crate::weights::Scope;

/// Side of the square network input (`ImageEncoderViT.img_size`, TinyViT `img_size`).
pub const IMG_SIZE: usize = 1024;
/// Side of the image-embedding grid (1024 / 16).
pub const EMBED_GRID: usize = 64;
/// Channels of the image embedding and of every prompt token (`prompt_embed_dim`).
pub const PROMPT_EMBED_DIM: usize = 256;
/// Heads of the mask decoder's two-way transformer: fixed by the official builders
/// (`TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)`), not visible in
/// the tensor shapes.
pub const DECODER_HEADS: usize = 8;
/// Channels inside the prompt encoder's mask downscaler (`mask_in_chans=16`).
pub const MASK_IN_CHANS: usize = 16;
/// Classes of TinyViT's (unused) classification head in the MobileSAM checkpoint.
pub const TINY_VIT_CLASSES: usize = 1000;

/// The plain ViT image encoder of SAM (ViT-B/L/H or any other size).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VitConfig {
    /// Token width.
    pub embed_dim: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads per block.
    pub num_heads: usize,
    /// Blocks with global (not windowed) attention.
    pub global_attn_indexes: Vec<usize>,
    /// Window side of the windowed blocks (14 in every official model).
    pub window_size: usize,
    /// Hidden width of the MLPs.
    pub mlp_dim: usize,
    /// Patch side (16).
    pub patch_size: usize,
}

impl VitConfig {
    /// SAM ViT-B (`sam_vit_b_01ec64.pth`).
    pub fn vit_b() -> Self {
        Self::official(768, 12, 12, vec![2, 5, 8, 11])
    }
    /// SAM ViT-L.
    pub fn vit_l() -> Self {
        Self::official(1024, 24, 16, vec![5, 11, 17, 23])
    }
    /// SAM ViT-H.
    pub fn vit_h() -> Self {
        Self::official(1280, 32, 16, vec![7, 15, 23, 31])
    }

    /// An official-style ViT of any size (window 14, patch 16, MLP ratio 4).
    pub fn official(embed_dim: usize, depth: usize, num_heads: usize, global: Vec<usize>) -> Self {
        Self {
            embed_dim,
            depth,
            num_heads,
            global_attn_indexes: global,
            window_size: 14,
            mlp_dim: embed_dim * 4,
            patch_size: 16,
        }
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    /// Window side of block `i`, 0 for global attention.
    pub fn block_window(&self, i: usize) -> usize {
        if self.global_attn_indexes.contains(&i) {
            0
        } else {
            self.window_size
        }
    }
}

/// TinyViT, MobileSAM's image encoder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TinyVitConfig {
    /// Channels of each of the 4 stages.
    pub embed_dims: Vec<usize>,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Heads per stage (stage 0 is convolutional; its entry is unused).
    pub num_heads: Vec<usize>,
    /// Attention window side per stage (stage 0 unused).
    pub window_sizes: Vec<usize>,
    /// MLP hidden width / channels.
    pub mlp_ratio: usize,
    /// MBConv hidden width / channels.
    pub mbconv_expand_ratio: usize,
    /// Depthwise "local" convolution size.
    pub local_conv_size: usize,
}

impl TinyVitConfig {
    /// MobileSAM's TinyViT-5M (`build_sam_vit_t`). Stage 0 is convolutional: the official
    /// builder's 2 heads and window 7 for it are never used and are recorded here as 0, as
    /// detection from the tensors finds them.
    pub fn mobile_sam() -> Self {
        Self {
            embed_dims: vec![64, 128, 160, 320],
            depths: vec![2, 2, 6, 2],
            num_heads: vec![0, 4, 5, 10],
            window_sizes: vec![0, 7, 14, 7],
            mlp_ratio: 4,
            mbconv_expand_ratio: 4,
            local_conv_size: 3,
        }
    }

    /// Stride of the depthwise conv in stage `i`'s PatchMerging (official rule: 1 into 320, 448
    /// or 576 channels, else 2).
    pub fn merge_stride(&self, i: usize) -> usize {
        match self.embed_dims.get(i + 1) {
            Some(320 | 448 | 576) => 1,
            _ => 2,
        }
    }
}

/// Hiera, SAM 2.1's hierarchical image encoder (`sam2/modeling/backbones/hieradet.py`): four
/// stages, each halving the grid (query pooling in its first block) and doubling the width and
/// the heads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HieraConfig {
    /// Width of the first stage.
    pub embed_dim: usize,
    /// Heads of the first stage.
    pub num_heads: usize,
    /// Blocks per stage.
    pub stages: Vec<usize>,
    /// Blocks with global attention (all others attend within windows).
    pub global_att_blocks: Vec<usize>,
    /// Window side per stage (`window_spec`).
    pub window_spec: Vec<usize>,
    /// `(h, w)` of the background position embedding, interpolated to the token grid
    /// (`window_pos_embed_bkg_spatial_size`).
    pub pos_embed_bkg: (usize, usize),
}

/// One Hiera block's shape, from the official builder's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HieraBlockSpec {
    /// Input width.
    pub dim: usize,
    /// Output width (twice `dim` in a stage's first block, from the second stage on).
    pub dim_out: usize,
    /// Attention heads.
    pub heads: usize,
    /// Window side, 0 for global attention.
    pub window: usize,
    /// Whether the queries (and the shortcut) are max-pooled 2×2: a stage's first block.
    pub pool: bool,
}

/// Side of Hiera's token grid after the stride-4 patch embedding (1024 / 4).
pub const HIERA_GRID: usize = 256;

impl HieraConfig {
    /// `sam2.1_hiera_t`.
    pub fn tiny() -> Self {
        Self::official(96, &[1, 2, 7, 2]).expect("official layout")
    }
    /// `sam2.1_hiera_s`.
    pub fn small() -> Self {
        Self::official(96, &[1, 2, 11, 2]).expect("official layout")
    }
    /// `sam2.1_hiera_b+`.
    pub fn base_plus() -> Self {
        Self::official(112, &[2, 3, 16, 3]).expect("official layout")
    }
    /// `sam2.1_hiera_l`.
    pub fn large() -> Self {
        Self::official(144, &[2, 6, 36, 4]).expect("official layout")
    }

    /// The official configuration (`configs/sam2.1/*.yaml`) with this first-stage width and
    /// these stage depths: the heads, global-attention blocks and windows are not visible in
    /// the tensors, so they come from the config the layout belongs to.
    pub fn official(embed_dim: usize, stages: &[usize]) -> Option<Self> {
        let (num_heads, global, window, bkg): (usize, &[usize], [usize; 4], usize) =
            match (embed_dim, stages) {
                (96, [1, 2, 7, 2]) => (1, &[5, 7, 9], [8, 4, 14, 7], 7),
                (96, [1, 2, 11, 2]) => (1, &[7, 10, 13], [8, 4, 14, 7], 7),
                (112, [2, 3, 16, 3]) => (2, &[12, 16, 20], [8, 4, 14, 7], 14),
                (144, [2, 6, 36, 4]) => (2, &[23, 33, 43], [8, 4, 16, 8], 7),
                _ => return None,
            };
        Some(Self {
            embed_dim,
            num_heads,
            stages: stages.to_vec(),
            global_att_blocks: global.to_vec(),
            window_spec: window.to_vec(),
            pos_embed_bkg: (bkg, bkg),
        })
    }

    /// Total blocks.
    pub fn depth(&self) -> usize {
        self.stages.iter().sum()
    }

    /// The last block of each stage (`stage_ends`): where the FPN reads the features.
    pub fn stage_ends(&self) -> Vec<usize> {
        self.stages
            .iter()
            .scan(0, |sum, &n| {
                *sum += n;
                Some(*sum - 1)
            })
            .collect()
    }

    /// Width of each stage.
    pub fn stage_dims(&self) -> Vec<usize> {
        (0..self.stages.len())
            .map(|i| self.embed_dim << i)
            .collect()
    }

    /// Every block's shape, as the official `Hiera.__init__` builds them: a block takes the
    /// window of the stage it starts in (the first block of a stage keeps the previous stage's
    /// window), global blocks have none, and the first block of each later stage doubles the
    /// width and heads and pools the queries.
    pub fn blocks(&self) -> Vec<HieraBlockSpec> {
        let ends = self.stage_ends();
        let mut stage = 0;
        let (mut dim, mut heads) = (self.embed_dim, self.num_heads);
        (0..self.depth())
            .map(|i| {
                let mut window = self.window_spec[stage];
                if self.global_att_blocks.contains(&i) {
                    window = 0;
                }
                let starts_stage = i > 0 && ends.contains(&(i - 1));
                let dim_out = if starts_stage { dim * 2 } else { dim };
                if starts_stage {
                    heads *= 2;
                    stage += 1;
                }
                let spec = HieraBlockSpec {
                    dim,
                    dim_out,
                    heads,
                    window,
                    pool: starts_stage,
                };
                dim = dim_out;
                spec
            })
            .collect()
    }

    /// A short name ("Hiera-T", "Hiera-B+", or the layout).
    pub fn size_name(&self) -> String {
        match (self.embed_dim, self.stages.as_slice()) {
            (96, [1, 2, 7, 2]) => "Hiera-T".into(),
            (96, [1, 2, 11, 2]) => "Hiera-S".into(),
            (112, [2, 3, 16, 3]) => "Hiera-B+".into(),
            (144, [2, 6, 36, 4]) => "Hiera-L".into(),
            (d, s) => format!("Hiera {d} {s:?}"),
        }
    }
}

/// Which image encoder a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EncoderConfig {
    /// SAM's plain ViT.
    Vit(VitConfig),
    /// MobileSAM's TinyViT.
    TinyVit(TinyVitConfig),
    /// SAM 2.1's Hiera with its FPN neck: the whole model is SAM 2.1's (its prompt encoder
    /// and mask decoder under `sam_prompt_encoder` / `sam_mask_decoder`).
    Hiera(HieraConfig),
}

/// A whole SAM model (image encoder, prompt encoder, mask decoder).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SamConfig {
    /// Image encoder.
    pub encoder: EncoderConfig,
    /// Two-way transformer blocks in the mask decoder (2).
    pub decoder_depth: usize,
    /// MLP width in the two-way transformer (2048).
    pub decoder_mlp_dim: usize,
    /// Mask tokens (4 = 1 single-mask + 3 multimask outputs).
    pub num_mask_tokens: usize,
}

impl SamConfig {
    /// A model with the official prompt encoder and mask decoder around `encoder`.
    pub fn with_encoder(encoder: EncoderConfig) -> Self {
        Self {
            encoder,
            decoder_depth: 2,
            decoder_mlp_dim: 2048,
            num_mask_tokens: 4,
        }
    }

    /// Whether this is SAM 2.1 (Hiera encoder, SAM 2's decoder and transforms).
    pub fn is_sam2(&self) -> bool {
        matches!(self.encoder, EncoderConfig::Hiera(_))
    }

    /// The prompt encoder's scope in the checkpoint.
    pub fn prompt_encoder_prefix(&self) -> &'static str {
        if self.is_sam2() {
            "sam_prompt_encoder"
        } else {
            "prompt_encoder"
        }
    }

    /// The mask decoder's scope in the checkpoint.
    pub fn mask_decoder_prefix(&self) -> &'static str {
        if self.is_sam2() {
            "sam_mask_decoder"
        } else {
            "mask_decoder"
        }
    }

    /// The two-way blocks' MLP layers (`mlp.lin1` / `lin2` in SAM, `mlp.layers.0` / `1` in
    /// SAM 2).
    pub fn decoder_mlp_names(&self) -> (&'static str, &'static str) {
        if self.is_sam2() {
            ("mlp.layers.0", "mlp.layers.1")
        } else {
            ("mlp.lin1", "mlp.lin2")
        }
    }

    /// Tokens before the mask tokens in the decoder: the IoU token, and SAM 2's object-score
    /// token ahead of it.
    pub fn decoder_lead_tokens(&self) -> usize {
        if self.is_sam2() {
            2
        } else {
            1
        }
    }

    /// A short human name ("MobileSAM (TinyViT)", "SAM ViT-B", "SAM ViT 96x4", "SAM 2.1
    /// Hiera-T").
    pub fn name(&self) -> String {
        match &self.encoder {
            EncoderConfig::Hiera(h) => format!("SAM 2.1 {}", h.size_name()),
            EncoderConfig::TinyVit(_) => "MobileSAM (TinyViT)".into(),
            EncoderConfig::Vit(v) => match (v.embed_dim, v.depth) {
                (768, 12) => "SAM ViT-B".into(),
                (1024, 24) => "SAM ViT-L".into(),
                (1280, 32) => "SAM ViT-H".into(),
                (d, n) => format!("SAM ViT {d}x{n}"),
            },
        }
    }

    /// `(kind, embed_dim, depth, heads)` for reports: TinyViT gives its last stage's width and
    /// heads and its total depth.
    pub fn summary(&self) -> (&'static str, usize, usize, usize) {
        match &self.encoder {
            EncoderConfig::Vit(v) => ("vit", v.embed_dim, v.depth, v.num_heads),
            EncoderConfig::TinyVit(t) => (
                "tiny_vit",
                t.embed_dims.last().copied().unwrap_or(0),
                t.depths.iter().sum(),
                t.num_heads.last().copied().unwrap_or(0),
            ),
            EncoderConfig::Hiera(h) => (
                "hiera",
                h.stage_dims().last().copied().unwrap_or(0),
                h.depth(),
                h.num_heads << (h.stages.len().saturating_sub(1)),
            ),
        }
    }

    /// Detects the architecture from the tensors under `root` (the checkpoint root).
    pub fn detect(root: &Scope) -> Result<Self> {
        let enc = root.pp("image_encoder");
        let encoder = if enc.contains("trunk.patch_embed.proj.weight") {
            EncoderConfig::Hiera(detect_hiera(&enc)?)
        } else if enc.contains("patch_embed.proj.weight") {
            EncoderConfig::Vit(detect_vit(&enc)?)
        } else if enc.contains("patch_embed.seq.0.c.weight") {
            EncoderConfig::TinyVit(detect_tiny_vit(&enc)?)
        } else {
            bail!(
                "not a SAM checkpoint: none of `image_encoder.patch_embed.proj.weight` (SAM ViT), \
                 `image_encoder.patch_embed.seq.0.c.weight` (MobileSAM's TinyViT) and \
                 `image_encoder.trunk.patch_embed.proj.weight` (SAM 2.1's Hiera) is present"
            );
        };
        let mut config = Self::with_encoder(encoder);
        let dec = root.pp(config.mask_decoder_prefix());
        let decoder_depth = count_indexed(&dec.pp("transformer.layers"), "norm1.weight");
        if decoder_depth == 0 {
            bail!(
                "not a SAM checkpoint: `{}` is missing",
                dec.key("transformer.layers.0.norm1.weight")
            );
        }
        let mlp = dims(
            &dec,
            &format!(
                "transformer.layers.0.{}.weight",
                config.decoder_mlp_names().0
            ),
            &[0, PROMPT_EMBED_DIM],
        )?;
        let tokens = dims(&dec, "mask_tokens.weight", &[0, PROMPT_EMBED_DIM])?;
        if tokens[0] < 2 {
            // One single-mask token and at least one multimask token.
            bail!(dec.shape_error("mask_tokens.weight", vec![4, PROMPT_EMBED_DIM], tokens));
        }
        config.decoder_depth = decoder_depth;
        config.decoder_mlp_dim = mlp[0];
        config.num_mask_tokens = tokens[0];
        Ok(config)
    }

    /// Every floating-point entry of the official `state_dict` with its shape, in sorted order.
    pub fn state_dict_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let mut add = |k: String, s: &[usize]| out.push((k, s.to_vec()));
        match &self.encoder {
            EncoderConfig::Vit(v) => vit_shapes(v, &mut add),
            EncoderConfig::TinyVit(t) => tiny_vit_shapes(t, &mut add),
            EncoderConfig::Hiera(h) => hiera_shapes(h, &mut add),
        }
        prompt_encoder_shapes(self.prompt_encoder_prefix(), &mut add);
        mask_decoder_shapes(self, &mut add);
        out.sort();
        out
    }
}

/// The largest size of any axis detection accepts (SAM's widest is ViT-H's 5120-wide MLP).
const MAX_DIM: usize = 1 << 16;

/// The shape of `name`, checked before detection reads it: `pattern`'s rank, each axis in
/// `1..=MAX_DIM`, and equal to `pattern` where `pattern` is not 0 (0 = any size). The error
/// names the tensor, the shape expected and the one found.
fn dims(scope: &Scope, name: &str, pattern: &[usize]) -> Result<Vec<usize>> {
    let shape = scope.require_shape(name)?;
    let fits = shape.len() == pattern.len()
        && shape
            .iter()
            .zip(pattern)
            .all(|(&d, &p)| (1..=MAX_DIM).contains(&d) && (p == 0 || d == p));
    if !fits {
        bail!(scope.shape_error(name, pattern.to_vec(), shape));
    }
    Ok(shape)
}

/// Number of consecutive `prefix.{i}.leaf` entries starting at 0.
pub fn count_indexed(scope: &Scope, leaf: &str) -> usize {
    (0..)
        .take_while(|i| scope.contains(&format!("{i}.{leaf}")))
        .count()
}

fn detect_vit(enc: &Scope) -> Result<VitConfig> {
    // The mask decoder reads a 64 × 64 embedding: 1024-pixel images in 16-pixel patches.
    let patch_size = IMG_SIZE / EMBED_GRID;
    let proj = dims(
        enc,
        "patch_embed.proj.weight",
        &[0, 3, patch_size, patch_size],
    )?;
    let embed_dim = proj[0];
    let blocks = enc.pp("blocks");
    let depth = count_indexed(&blocks, "norm1.weight");
    if depth == 0 {
        bail!("`{}` is missing", blocks.key("0.norm1.weight"));
    }
    let grid = EMBED_GRID;
    let rel0 = dims(&blocks, "0.attn.rel_pos_h", &[0, 0])?;
    let head_dim = rel0[1];
    if embed_dim % head_dim != 0 {
        bail!(blocks.shape_error("0.attn.rel_pos_h", vec![27, 64], rel0));
    }
    let mut global = Vec::new();
    let mut window_size = None;
    for i in 0..depth {
        let name = format!("{i}.attn.rel_pos_h");
        let rel = dims(&blocks, &name, &[0, head_dim])?;
        // 2·size − 1 rows: the grid's (global attention) or a window's.
        let size = rel[0].div_ceil(2);
        if rel[0] % 2 == 0 || size > grid || window_size.is_some_and(|w| w != size && size != grid)
        {
            bail!(blocks.shape_error(
                &name,
                vec![2 * window_size.unwrap_or(14) - 1, head_dim],
                rel
            ));
        }
        if size == grid {
            global.push(i);
        } else {
            window_size = Some(size);
        }
    }
    let mlp = dims(&blocks, "0.mlp.lin1.weight", &[0, embed_dim])?;
    Ok(VitConfig {
        embed_dim,
        depth,
        num_heads: embed_dim / head_dim,
        global_attn_indexes: global,
        window_size: window_size.unwrap_or(14),
        mlp_dim: mlp[0],
        patch_size,
    })
}

fn detect_tiny_vit(enc: &Scope) -> Result<TinyVitConfig> {
    let layers = enc.pp("layers");
    let n_layers = count_indexed(&layers, "blocks.0.conv1.c.weight")
        + (1..)
            .take_while(|i| layers.contains(&format!("{i}.blocks.0.attn.qkv.weight")))
            .count();
    if n_layers < 2 || !layers.contains("0.blocks.0.conv1.c.weight") {
        bail!(
            "TinyViT checkpoint lacks `{}`",
            layers.key("1.blocks.0.attn.qkv.weight")
        );
    }
    let conv1 = dims(&layers, "0.blocks.0.conv1.c.weight", &[0, 0, 1, 1])?;
    if conv1[0] % conv1[1] != 0 {
        bail!(layers.shape_error(
            "0.blocks.0.conv1.c.weight",
            vec![4 * conv1[1], conv1[1], 1, 1],
            conv1
        ));
    }
    let mut embed_dims = vec![conv1[1]];
    let mut depths = vec![count_indexed(&layers.pp("0.blocks"), "conv1.c.weight")];
    let mut num_heads = vec![0];
    let mut window_sizes = vec![0];
    let mut mlp_ratio = 4;
    for i in 1..n_layers {
        let l = layers.pp(i);
        let qkv = dims(&l, "blocks.0.attn.qkv.weight", &[0, 0])?;
        let d = qkv[1];
        if qkv[0] != 3 * d {
            bail!(l.shape_error("blocks.0.attn.qkv.weight", vec![3 * d, d], qkv));
        }
        embed_dims.push(d);
        depths.push(count_indexed(&l.pp("blocks"), "attn.qkv.weight"));
        let ab = dims(&l, "blocks.0.attn.attention_biases", &[0, 0])?;
        let ws = (ab[1] as f64).sqrt().round() as usize;
        if ws * ws != ab[1] || d % ab[0] != 0 {
            bail!(l.shape_error("blocks.0.attn.attention_biases", vec![ab[0], 49], ab));
        }
        num_heads.push(ab[0]);
        window_sizes.push(ws);
        let fc1 = dims(&l, "blocks.0.mlp.fc1.weight", &[0, d])?;
        if fc1[0] % d != 0 {
            bail!(l.shape_error("blocks.0.mlp.fc1.weight", vec![4 * d, d], fc1));
        }
        mlp_ratio = fc1[0] / d;
    }
    let local = dims(
        &layers,
        "1.blocks.0.local_conv.c.weight",
        &[embed_dims[1], 1, 0, 0],
    )?;
    if local[2] != local[3] || local[2] % 2 == 0 {
        bail!(layers.shape_error(
            "1.blocks.0.local_conv.c.weight",
            vec![embed_dims[1], 1, 3, 3],
            local
        ));
    }
    Ok(TinyVitConfig {
        embed_dims,
        depths,
        num_heads,
        window_sizes,
        mlp_ratio,
        mbconv_expand_ratio: conv1[0] / conv1[1],
        local_conv_size: local[2],
    })
}

type Add<'a> = dyn FnMut(String, &[usize]) + 'a;

fn norm_shapes(prefix: &str, dim: usize, add: &mut Add) {
    add(format!("{prefix}.weight"), &[dim]);
    add(format!("{prefix}.bias"), &[dim]);
}

fn linear_shapes(prefix: &str, i: usize, o: usize, add: &mut Add) {
    add(format!("{prefix}.weight"), &[o, i]);
    add(format!("{prefix}.bias"), &[o]);
}

fn neck_shapes(dim: usize, add: &mut Add) {
    let d = PROMPT_EMBED_DIM;
    add("image_encoder.neck.0.weight".into(), &[d, dim, 1, 1]);
    norm_shapes("image_encoder.neck.1", d, add);
    add("image_encoder.neck.2.weight".into(), &[d, d, 3, 3]);
    norm_shapes("image_encoder.neck.3", d, add);
}

fn vit_shapes(v: &VitConfig, add: &mut Add) {
    let (d, p) = (v.embed_dim, v.patch_size);
    let grid = IMG_SIZE / p;
    add(
        "image_encoder.patch_embed.proj.weight".into(),
        &[d, 3, p, p],
    );
    add("image_encoder.patch_embed.proj.bias".into(), &[d]);
    add("image_encoder.pos_embed".into(), &[1, grid, grid, d]);
    for i in 0..v.depth {
        let b = format!("image_encoder.blocks.{i}");
        norm_shapes(&format!("{b}.norm1"), d, add);
        norm_shapes(&format!("{b}.norm2"), d, add);
        linear_shapes(&format!("{b}.attn.qkv"), d, 3 * d, add);
        linear_shapes(&format!("{b}.attn.proj"), d, d, add);
        let size = match v.block_window(i) {
            0 => grid,
            w => w,
        };
        add(format!("{b}.attn.rel_pos_h"), &[2 * size - 1, v.head_dim()]);
        add(format!("{b}.attn.rel_pos_w"), &[2 * size - 1, v.head_dim()]);
        linear_shapes(&format!("{b}.mlp.lin1"), d, v.mlp_dim, add);
        linear_shapes(&format!("{b}.mlp.lin2"), v.mlp_dim, d, add);
    }
    neck_shapes(d, add);
}

fn conv_bn_shapes(prefix: &str, cin_per_group: usize, cout: usize, k: usize, add: &mut Add) {
    add(format!("{prefix}.c.weight"), &[cout, cin_per_group, k, k]);
    for leaf in ["weight", "bias", "running_mean", "running_var"] {
        add(format!("{prefix}.bn.{leaf}"), &[cout]);
    }
}

fn tiny_vit_shapes(t: &TinyVitConfig, add: &mut Add) {
    let e = "image_encoder";
    let d0 = t.embed_dims[0];
    conv_bn_shapes(&format!("{e}.patch_embed.seq.0"), 3, d0 / 2, 3, add);
    conv_bn_shapes(&format!("{e}.patch_embed.seq.2"), d0 / 2, d0, 3, add);
    let n = t.embed_dims.len();
    for (i, &d) in t.embed_dims.iter().enumerate() {
        let l = format!("{e}.layers.{i}");
        for j in 0..t.depths[i] {
            let b = format!("{l}.blocks.{j}");
            if i == 0 {
                let h = d * t.mbconv_expand_ratio;
                conv_bn_shapes(&format!("{b}.conv1"), d, h, 1, add);
                conv_bn_shapes(&format!("{b}.conv2"), 1, h, 3, add);
                conv_bn_shapes(&format!("{b}.conv3"), h, d, 1, add);
            } else {
                let ws = t.window_sizes[i];
                add(
                    format!("{b}.attn.attention_biases"),
                    &[t.num_heads[i], ws * ws],
                );
                norm_shapes(&format!("{b}.attn.norm"), d, add);
                linear_shapes(&format!("{b}.attn.qkv"), d, 3 * d, add);
                linear_shapes(&format!("{b}.attn.proj"), d, d, add);
                norm_shapes(&format!("{b}.mlp.norm"), d, add);
                linear_shapes(&format!("{b}.mlp.fc1"), d, d * t.mlp_ratio, add);
                linear_shapes(&format!("{b}.mlp.fc2"), d * t.mlp_ratio, d, add);
                conv_bn_shapes(&format!("{b}.local_conv"), 1, d, t.local_conv_size, add);
            }
        }
        if i + 1 < n {
            let o = t.embed_dims[i + 1];
            let ds = format!("{l}.downsample");
            conv_bn_shapes(&format!("{ds}.conv1"), d, o, 1, add);
            conv_bn_shapes(&format!("{ds}.conv2"), 1, o, 3, add);
            conv_bn_shapes(&format!("{ds}.conv3"), o, o, 1, add);
        }
    }
    let last = t.embed_dims[n - 1];
    norm_shapes(&format!("{e}.norm_head"), last, add);
    linear_shapes(&format!("{e}.head"), last, TINY_VIT_CLASSES, add);
    neck_shapes(last, add);
}

fn prompt_encoder_shapes(p: &str, add: &mut Add) {
    let (d, m) = (PROMPT_EMBED_DIM, MASK_IN_CHANS);
    add(
        format!("{p}.pe_layer.positional_encoding_gaussian_matrix"),
        &[2, d / 2],
    );
    for i in 0..4 {
        add(format!("{p}.point_embeddings.{i}.weight"), &[1, d]);
    }
    add(format!("{p}.not_a_point_embed.weight"), &[1, d]);
    add(format!("{p}.no_mask_embed.weight"), &[1, d]);
    add(format!("{p}.mask_downscaling.0.weight"), &[m / 4, 1, 2, 2]);
    add(format!("{p}.mask_downscaling.0.bias"), &[m / 4]);
    norm_shapes(&format!("{p}.mask_downscaling.1"), m / 4, add);
    add(format!("{p}.mask_downscaling.3.weight"), &[m, m / 4, 2, 2]);
    add(format!("{p}.mask_downscaling.3.bias"), &[m]);
    norm_shapes(&format!("{p}.mask_downscaling.4"), m, add);
    add(format!("{p}.mask_downscaling.6.weight"), &[d, m, 1, 1]);
    add(format!("{p}.mask_downscaling.6.bias"), &[d]);
}

fn attention_shapes(prefix: &str, dim: usize, internal: usize, add: &mut Add) {
    for proj in ["q_proj", "k_proj", "v_proj"] {
        linear_shapes(&format!("{prefix}.{proj}"), dim, internal, add);
    }
    linear_shapes(&format!("{prefix}.out_proj"), internal, dim, add);
}

fn mlp_shapes(prefix: &str, dims: &[usize], add: &mut Add) {
    for (j, w) in dims.windows(2).enumerate() {
        linear_shapes(&format!("{prefix}.layers.{j}"), w[0], w[1], add);
    }
}

fn mask_decoder_shapes(cfg: &SamConfig, add: &mut Add) {
    let (m, d) = (cfg.mask_decoder_prefix(), PROMPT_EMBED_DIM);
    let (lin1, lin2) = cfg.decoder_mlp_names();
    let t = format!("{m}.transformer");
    for i in 0..cfg.decoder_depth {
        let l = format!("{t}.layers.{i}");
        attention_shapes(&format!("{l}.self_attn"), d, d, add);
        attention_shapes(&format!("{l}.cross_attn_token_to_image"), d, d / 2, add);
        attention_shapes(&format!("{l}.cross_attn_image_to_token"), d, d / 2, add);
        linear_shapes(&format!("{l}.{lin1}"), d, cfg.decoder_mlp_dim, add);
        linear_shapes(&format!("{l}.{lin2}"), cfg.decoder_mlp_dim, d, add);
        for n in 1..=4 {
            norm_shapes(&format!("{l}.norm{n}"), d, add);
        }
    }
    attention_shapes(&format!("{t}.final_attn_token_to_image"), d, d / 2, add);
    norm_shapes(&format!("{t}.norm_final_attn"), d, add);
    add(format!("{m}.iou_token.weight"), &[1, d]);
    add(format!("{m}.mask_tokens.weight"), &[cfg.num_mask_tokens, d]);
    add(format!("{m}.output_upscaling.0.weight"), &[d, d / 4, 2, 2]);
    add(format!("{m}.output_upscaling.0.bias"), &[d / 4]);
    norm_shapes(&format!("{m}.output_upscaling.1"), d / 4, add);
    add(
        format!("{m}.output_upscaling.3.weight"),
        &[d / 4, d / 8, 2, 2],
    );
    add(format!("{m}.output_upscaling.3.bias"), &[d / 8]);
    for i in 0..cfg.num_mask_tokens {
        mlp_shapes(
            &format!("{m}.output_hypernetworks_mlps.{i}"),
            &[d, d, d, d / 8],
            add,
        );
    }
    mlp_shapes(
        &format!("{m}.iou_prediction_head"),
        &[d, 256, 256, cfg.num_mask_tokens],
        add,
    );
    if cfg.is_sam2() {
        add(format!("{m}.obj_score_token.weight"), &[1, d]);
        mlp_shapes(&format!("{m}.pred_obj_score_head"), &[d, d, d, 1], add);
        add(format!("{m}.conv_s0.weight"), &[d / 8, d, 1, 1]);
        add(format!("{m}.conv_s0.bias"), &[d / 8]);
        add(format!("{m}.conv_s1.weight"), &[d / 4, d, 1, 1]);
        add(format!("{m}.conv_s1.bias"), &[d / 4]);
        add("no_mem_embed".into(), &[1, 1, d]);
    }
}

/// Hiera's trunk and FPN neck. The video-memory modules of a SAM 2.1 checkpoint are not
/// listed: image mode never reads them.
fn hiera_shapes(h: &HieraConfig, add: &mut Add) {
    let t = "image_encoder.trunk";
    let e = h.embed_dim;
    let (bh, bw) = h.pos_embed_bkg;
    let w0 = h.window_spec[0];
    add(format!("{t}.patch_embed.proj.weight"), &[e, 3, 7, 7]);
    add(format!("{t}.patch_embed.proj.bias"), &[e]);
    add(format!("{t}.pos_embed"), &[1, e, bh, bw]);
    add(format!("{t}.pos_embed_window"), &[1, e, w0, w0]);
    for (i, b) in h.blocks().iter().enumerate() {
        let p = format!("{t}.blocks.{i}");
        norm_shapes(&format!("{p}.norm1"), b.dim, add);
        linear_shapes(&format!("{p}.attn.qkv"), b.dim, 3 * b.dim_out, add);
        linear_shapes(&format!("{p}.attn.proj"), b.dim_out, b.dim_out, add);
        norm_shapes(&format!("{p}.norm2"), b.dim_out, add);
        linear_shapes(&format!("{p}.mlp.layers.0"), b.dim_out, 4 * b.dim_out, add);
        linear_shapes(&format!("{p}.mlp.layers.1"), 4 * b.dim_out, b.dim_out, add);
        if b.dim != b.dim_out {
            linear_shapes(&format!("{p}.proj"), b.dim, b.dim_out, add);
        }
    }
    let d = PROMPT_EMBED_DIM;
    for (j, c) in h.stage_dims().iter().rev().enumerate() {
        add(
            format!("image_encoder.neck.convs.{j}.conv.weight"),
            &[d, *c, 1, 1],
        );
        add(format!("image_encoder.neck.convs.{j}.conv.bias"), &[d]);
    }
}

fn detect_hiera(enc: &Scope) -> Result<HieraConfig> {
    let t = enc.pp("trunk");
    let proj = dims(&t, "patch_embed.proj.weight", &[0, 3, 7, 7])?;
    let embed_dim = proj[0];
    let blocks = t.pp("blocks");
    let depth = count_indexed(&blocks, "norm1.weight");
    if depth == 0 {
        bail!("`{}` is missing", blocks.key("0.norm1.weight"));
    }
    // A stage starts where a block projects its shortcut to the doubled width.
    let mut stages = vec![0usize];
    for i in 0..depth {
        if i > 0 && blocks.contains(&format!("{i}.proj.weight")) {
            stages.push(0);
        }
        *stages.last_mut().expect("one stage") += 1;
    }
    let Some(config) = HieraConfig::official(embed_dim, &stages) else {
        bail!(
            "Hiera trunk of width {embed_dim} with stages {stages:?} is not an official SAM 2.1 \
             size (tiny [1, 2, 7, 2] / small [1, 2, 11, 2] at 96, base+ [2, 3, 16, 3] at 112, \
             large [2, 6, 36, 4] at 144): its heads and global-attention blocks are not in the \
             tensors"
        );
    };
    let pe = dims(&t, "pos_embed", &[1, embed_dim, 0, 0])?;
    if (pe[2], pe[3]) != config.pos_embed_bkg {
        bail!(t.shape_error(
            "pos_embed",
            vec![1, embed_dim, config.pos_embed_bkg.0, config.pos_embed_bkg.1],
            pe
        ));
    }
    let w0 = config.window_spec[0];
    dims(&t, "pos_embed_window", &[1, embed_dim, w0, w0])?;
    for (i, b) in config.blocks().iter().enumerate() {
        dims(
            &blocks,
            &format!("{i}.attn.qkv.weight"),
            &[3 * b.dim_out, b.dim],
        )?;
    }
    for (j, c) in config.stage_dims().iter().rev().enumerate() {
        dims(
            enc,
            &format!("neck.convs.{j}.conv.weight"),
            &[PROMPT_EMBED_DIM, *c, 1, 1],
        )?;
    }
    Ok(config)
}
