//! Deterministic random weights ("detweights"): every float tensor of a state dict is a pure
//! function of `(seed, key, shape)`.
//!
//! The reference fixtures under `tests/fixtures/` were produced by the official PyTorch code with
//! these weights, so tests and benchmarks can rebuild any model bit for bit without weight files.
//! The normative spec is `tests/fixtures/WEIGHTS_SPEC.md`.

/// FNV-1a (64 bit) over the UTF-8 bytes of `key`.
pub fn fnv1a64(key: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The splitmix64 generator used for every tensor's stream.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The stream for one tensor: `seed XOR fnv1a64(key)`.
    pub fn for_tensor(seed: u64, key: &str) -> Self {
        Self(seed ^ fnv1a64(key))
    }

    /// Next 64-bit output.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Next value `u` in `[-1, 1)` with step 2^-23 (exact in f32).
    pub fn next_unit(&mut self) -> f32 {
        let k = (self.next() >> 40) as i32;
        (k - 8_388_608) as f32 / 8_388_608.0f32
    }
}

/// How a tensor's `u` values become weights (spec section 4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// `u * c`
    Scale(f32),
    /// `1 + u * c` (norm scales)
    OnePlusScale(f32),
    /// `1 + |u| * c` (BatchNorm running variance)
    OnePlusAbsScale(f32),
}

/// The rule the spec assigns to `key` with `shape` (first matching rule wins).
pub fn rule_for(key: &str, shape: &[usize]) -> Rule {
    let last = key.rsplit('.').next().unwrap_or(key);
    let c = |x: f64| x as f32;
    match last {
        "pos_embed" => Rule::Scale(c(0.02)),
        "positional_encoding_gaussian_matrix" => Rule::Scale(c(1.0)),
        "rel_pos_h" | "rel_pos_w" | "attention_biases" => Rule::Scale(c(0.1)),
        "running_mean" => Rule::Scale(c(0.1)),
        "running_var" => Rule::OnePlusAbsScale(c(0.5)),
        _ if shape.len() >= 2 => {
            let numel: usize = shape.iter().product();
            let fan_in = numel / shape[0].max(1);
            Rule::Scale((1.0f64 / (fan_in as f64).sqrt()) as f32)
        }
        "weight" if shape.len() == 1 => Rule::OnePlusScale(c(0.1)),
        _ => Rule::Scale(c(0.02)),
    }
}

/// Generates the tensor `key` of `shape` (row-major) for `seed`.
pub fn generate(seed: u64, key: &str, shape: &[usize]) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    let rule = rule_for(key, shape);
    let mut rng = SplitMix64::for_tensor(seed, key);
    (0..numel)
        .map(|_| {
            let u = rng.next_unit();
            // Separate statements: one f32 multiply, then one f32 add (no fused multiply-add).
            match rule {
                Rule::Scale(c) => u * c,
                Rule::OnePlusScale(c) => {
                    let p = u * c;
                    1.0f32 + p
                }
                Rule::OnePlusAbsScale(c) => {
                    let p = u.abs() * c;
                    1.0f32 + p
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first4(seed: u64, key: &str, shape: &[usize]) -> Vec<u32> {
        generate(seed, key, shape)[..4]
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Test vectors of the spec, section 5.
    #[test]
    fn spec_test_vectors() {
        assert_eq!(fnv1a64("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(SplitMix64::for_tensor(0, "a").next(), 0x5f29c2aadd9b8527);
        assert_eq!(
            first4(0, "a", &[4]),
            [0xbba81ff6, 0x3ca33986, 0x3ca140e2, 0x3bf3b766]
        );
        assert_eq!(
            first4(1, "image_encoder.neck.0.weight", &[256, 320, 1, 1]),
            [0xbbc0c8d1, 0x3d323cf7, 0x3d3716b0, 0xbc564a61]
        );
        assert_eq!(
            first4(2, "image_encoder.pos_embed", &[1, 64, 64, 96]),
            [0xbc07dae9, 0x3c91831d, 0xbc9151af, 0xbc618580]
        );
        assert_eq!(
            first4(7, "transformer.ln_f.weight", &[64]),
            [0x3f69d635, 0x3f871a6f, 0x3f6b780f, 0x3f8c8c82]
        );
        assert_eq!(
            first4(1, "image_encoder.patch_embed.seq.0.bn.running_var", &[32]),
            [0x3fb0c0dc, 0x3fb259e8, 0x3f838b5a, 0x3fa228e1]
        );
    }
}
