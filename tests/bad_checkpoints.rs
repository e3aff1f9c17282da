//! Malformed checkpoints never panic: every tensor whose shape the architecture detection
//! reads is given shapes of the wrong rank, empty, zero-sized or inconsistent, and loading
//! must answer with an error (or a model), never a panic.

use std::collections::HashMap;

use candle_core::Device;
use segattn::model::sam::config::{EncoderConfig, SamConfig, TinyVitConfig, VitConfig};
use segattn::model::sam::SamModel;
use segattn::weights::Weights;

/// The tensors detection reads, per architecture.
const VIT_READ: &[&str] = &[
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.blocks.0.attn.rel_pos_h",
    "image_encoder.blocks.1.attn.rel_pos_h",
    "image_encoder.blocks.0.mlp.lin1.weight",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight",
    "mask_decoder.mask_tokens.weight",
];

const TINY_VIT_READ: &[&str] = &[
    "image_encoder.layers.0.blocks.0.conv1.c.weight",
    "image_encoder.layers.1.blocks.0.attn.qkv.weight",
    "image_encoder.layers.1.blocks.0.attn.attention_biases",
    "image_encoder.layers.1.blocks.0.mlp.fc1.weight",
    "image_encoder.layers.1.blocks.0.local_conv.c.weight",
    "mask_decoder.transformer.layers.0.mlp.lin1.weight",
    "mask_decoder.mask_tokens.weight",
];

/// Wrong shapes for a tensor of shape `good`: other ranks, empty, zeros, off by one, huge.
fn bad_shapes(good: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![
        vec![],
        vec![0],
        vec![7],
        vec![3, 5],
        vec![1, 1, 1, 1, 1],
        good.iter().map(|_| 0).collect(),
        good.iter().map(|_| 1).collect(),
    ];
    for i in 0..good.len() {
        let mut off = good.to_vec();
        off[i] += 1;
        out.push(off);
        let mut big = good.to_vec();
        big[i] = 1 << 40;
        out.push(big);
    }
    out
}

fn check(config: SamConfig, read: &[&str]) {
    let shapes: HashMap<String, Vec<usize>> = config.state_dict_shapes().into_iter().collect();
    for name in read {
        let good = shapes
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is in the state dict"));
        for bad in bad_shapes(good) {
            let mut edited = shapes.clone();
            edited.insert((*name).to_string(), bad.clone());
            let weights = Weights::generated(
                edited,
                // Generated on request: tensors of absurd sizes must be refused before this.
                Box::new(|_, shape| vec![0.01; shape.iter().product()]),
                "<edited checkpoint>",
            );
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SamModel::load(&weights, &Device::Cpu).map(|_| ())
            }));
            match outcome {
                Err(_) => panic!("loading panicked with `{name}` of shape {bad:?}"),
                Ok(Err(e)) => {
                    let msg = format!("{e:#}");
                    assert!(!msg.is_empty(), "{name} {bad:?}: an empty message");
                }
                Ok(Ok(())) => {} // a shape the architecture accepts (e.g. another MLP width)
            }
        }
    }
}

#[test]
fn malformed_vit_checkpoints_are_refused_without_a_panic() {
    check(
        SamConfig::with_encoder(EncoderConfig::Vit(VitConfig::official(96, 2, 4, vec![1]))),
        VIT_READ,
    );
}

#[test]
fn malformed_tiny_vit_checkpoints_are_refused_without_a_panic() {
    check(
        SamConfig::with_encoder(EncoderConfig::TinyVit(TinyVitConfig::mobile_sam())),
        TINY_VIT_READ,
    );
}
