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

/// Which image encoder a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EncoderConfig {
    /// SAM's plain ViT.
    Vit(VitConfig),
    /// MobileSAM's TinyViT.
    TinyVit(TinyVitConfig),
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

    /// A short human name ("MobileSAM (TinyViT)", "SAM ViT-B", "SAM ViT 96x4").
    pub fn name(&self) -> String {
        match &self.encoder {
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
        }
    }

    /// Detects the architecture from the tensors under `root` (the checkpoint root).
    pub fn detect(root: &Scope) -> Result<Self> {
        let enc = root.pp("image_encoder");
        let encoder = if enc.contains("patch_embed.proj.weight") {
            EncoderConfig::Vit(detect_vit(&enc)?)
        } else if enc.contains("patch_embed.seq.0.c.weight") {
            EncoderConfig::TinyVit(detect_tiny_vit(&enc)?)
        } else {
            bail!(
                "not a SAM checkpoint: neither `image_encoder.patch_embed.proj.weight` (ViT) nor \
                 `image_encoder.patch_embed.seq.0.c.weight` (TinyViT) is present"
            );
        };
        let dec = root.pp("mask_decoder");
        let decoder_depth = count_indexed(&dec.pp("transformer.layers"), "norm1.weight");
        if decoder_depth == 0 {
            bail!(
                "not a SAM checkpoint: `{}` is missing",
                dec.key("transformer.layers.0.norm1.weight")
            );
        }
        let mlp = dims(
            &dec,
            "transformer.layers.0.mlp.lin1.weight",
            &[0, PROMPT_EMBED_DIM],
        )?;
        let tokens = dims(&dec, "mask_tokens.weight", &[0, PROMPT_EMBED_DIM])?;
        if tokens[0] < 2 {
            // One single-mask token and at least one multimask token.
            bail!(dec.shape_error("mask_tokens.weight", vec![4, PROMPT_EMBED_DIM], tokens));
        }
        Ok(Self {
            encoder,
            decoder_depth,
            decoder_mlp_dim: mlp[0],
            num_mask_tokens: tokens[0],
        })
    }

    /// Every floating-point entry of the official `state_dict` with its shape, in sorted order.
    pub fn state_dict_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let mut add = |k: String, s: &[usize]| out.push((k, s.to_vec()));
        match &self.encoder {
            EncoderConfig::Vit(v) => vit_shapes(v, &mut add),
            EncoderConfig::TinyVit(t) => tiny_vit_shapes(t, &mut add),
        }
        prompt_encoder_shapes(&mut add);
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

fn prompt_encoder_shapes(add: &mut Add) {
    let (p, d, m) = ("prompt_encoder", PROMPT_EMBED_DIM, MASK_IN_CHANS);
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
    let (m, d) = ("mask_decoder", PROMPT_EMBED_DIM);
    let t = format!("{m}.transformer");
    for i in 0..cfg.decoder_depth {
        let l = format!("{t}.layers.{i}");
        attention_shapes(&format!("{l}.self_attn"), d, d, add);
        attention_shapes(&format!("{l}.cross_attn_token_to_image"), d, d / 2, add);
        attention_shapes(&format!("{l}.cross_attn_image_to_token"), d, d / 2, add);
        linear_shapes(&format!("{l}.mlp.lin1"), d, cfg.decoder_mlp_dim, add);
        linear_shapes(&format!("{l}.mlp.lin2"), cfg.decoder_mlp_dim, d, add);
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
}
