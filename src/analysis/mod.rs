//! Pure functions shared by the CLI, the workers and the app, no tensors here: over attention
//! maps (mean / max over heads, attention rollout, subword → word merging, per-head entropy)
//! and, in [`positional`], over positional encodings; [`amg`] holds the automatic mask
//! generator's geometry and run-length encoding.

pub mod amg;
pub mod positional;

use serde::Serialize;

use crate::types::text::Token;

/// Every layer's and head's softmax attention for one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionMaps {
    /// Token labels, one per row / column.
    pub tokens: Vec<String>,
    /// Number of layers.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Tokens (rows and columns of each map).
    pub n: usize,
    /// `[layers, heads, n, n]`, each row a probability distribution over keys.
    pub probs: Vec<f32>,
    /// True for causal models: entries above the diagonal are masked, not zero-valued data.
    pub causal: bool,
}

impl AttentionMaps {
    /// The `n × n` map of one head.
    pub fn head(&self, layer: usize, head: usize) -> &[f32] {
        let nn = self.n * self.n;
        let start = (layer * self.heads + head) * nn;
        &self.probs[start..start + nn]
    }

    /// Element-wise mean over the heads of `layer` (`n × n`).
    pub fn mean_over_heads(&self, layer: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n * self.n];
        for h in 0..self.heads {
            for (o, v) in out.iter_mut().zip(self.head(layer, h)) {
                *o += v;
            }
        }
        let k = self.heads as f32;
        out.iter_mut().for_each(|v| *v /= k);
        out
    }

    /// Element-wise max over the heads of `layer` (`n × n`).
    pub fn max_over_heads(&self, layer: usize) -> Vec<f32> {
        let mut out = vec![f32::NEG_INFINITY; self.n * self.n];
        for h in 0..self.heads {
            for (o, v) in out.iter_mut().zip(self.head(layer, h)) {
                *o = o.max(*v);
            }
        }
        out
    }

    /// Attention rollout (Abnar & Zuidema 2020): per layer `Â = 0.5·mean_heads(A) + 0.5·I`,
    /// rows renormalised, multiplied through the layers. Entry `l` is the rollout up to and
    /// including layer `l` (`n × n`, rows sum to 1).
    pub fn rollout(&self) -> Vec<Vec<f32>> {
        let n = self.n;
        let mut result: Vec<Vec<f32>> = Vec::with_capacity(self.layers);
        let mut acc: Option<Vec<f32>> = None;
        for l in 0..self.layers {
            let mut a = self.mean_over_heads(l);
            for i in 0..n {
                let row = &mut a[i * n..(i + 1) * n];
                row.iter_mut().for_each(|v| *v *= 0.5);
                row[i] += 0.5;
                let s: f32 = row.iter().sum();
                if s > 0.0 {
                    row.iter_mut().for_each(|v| *v /= s);
                }
            }
            let next = match &acc {
                None => a,
                Some(prev) => matmul(&a, prev, n),
            };
            result.push(next.clone());
            acc = Some(next);
        }
        result
    }

    /// Mean entropy (nats) of each head's rows: `[layers × heads]`. Low = focused heads.
    pub fn entropy(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.layers * self.heads);
        for l in 0..self.layers {
            for h in 0..self.heads {
                let m = self.head(l, h);
                let total: f32 = m
                    .chunks(self.n)
                    .map(|row| {
                        -row.iter()
                            .filter(|&&p| p > 0.0)
                            .map(|&p| p * p.ln())
                            .sum::<f32>()
                    })
                    .sum();
                out.push(total / self.n as f32);
            }
        }
        out
    }
}

/// `a · b` for square row-major `n × n` matrices.
///
/// PERF: on the `gemm` crate (one thread: rollouts run on a view job): 6 layers of 512 tokens
/// take tens of milliseconds instead of seconds with a plain loop.
fn matmul(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    product(a, b, (n, n, n), false)
}

/// `a · b` (or `a · bᵀ` when `b_transposed`) for row-major `a [m, k]` and `b [k, n]` (`[n, k]`
/// when transposed), on one thread with the `gemm` crate: the products of the analyses.
pub(crate) fn product(
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    b_transposed: bool,
) -> Vec<f32> {
    assert!(
        a.len() >= m * k && b.len() >= k * n,
        "product: operands too short"
    );
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    // Strides of b read as the k × n right operand: (column, row).
    let (b_cs, b_rs) = if b_transposed {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    // SAFETY: `out` holds m·n values written with strides (1, n); `a` holds m·k read with
    // strides (1, k); `b` holds k·n values read within its k × n (or n × k) layout (lengths
    // checked above); `out` is a unique borrow.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    out
}

/// Merges an `n × n` token attention map into a `g × g` word map, where `group[t]` is token
/// `t`'s word: attention *to* a word sums over its pieces, attention *from* a word is the mean
/// over its pieces' rows, so each row still sums to 1.
pub fn merge_groups(map: &[f32], n: usize, group: &[usize]) -> Vec<f32> {
    let g = group.iter().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![0f32; g * g];
    let mut count = vec![0f32; g];
    for (i, &gi) in group.iter().enumerate().take(n) {
        count[gi] += 1.0;
        for (j, &gj) in group.iter().enumerate().take(n) {
            out[gi * g + gj] += map[i * n + j];
        }
    }
    for (row, &c) in out.chunks_mut(g.max(1)).zip(&count) {
        if c > 0.0 {
            row.iter_mut().for_each(|v| *v /= c);
        }
    }
    out
}

/// Groups tokens into words for [`merge_groups`]: consecutive tokens with the
/// same word id form one group, each special token its own. Returns the group of each token and
/// a label per group (the word's text, or the special token).
pub fn word_groups(tokens: &[Token], text: &str) -> (Vec<usize>, Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let slice = |s: usize, e: usize| -> String {
        let (s, e) = (s.min(chars.len()), e.min(chars.len()));
        chars[s..e.max(s)].iter().collect()
    };
    let mut group = Vec::with_capacity(tokens.len());
    let mut starts: Vec<Option<usize>> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut prev_word: Option<usize> = None;
    for t in tokens {
        let continues = !t.special && t.word.is_some() && t.word == prev_word;
        if let (true, Some(Some(start))) = (continues, starts.last().copied()) {
            let g = labels.len() - 1;
            labels[g] = slice(start, t.span.1);
            group.push(g);
        } else {
            group.push(labels.len());
            if t.special {
                starts.push(None);
                labels.push(t.text.clone());
            } else {
                starts.push(Some(t.span.0));
                labels.push(slice(t.span.0, t.span.1));
            }
        }
        prev_word = if t.special { None } else { t.word };
    }
    (group, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(probs: Vec<f32>, layers: usize, heads: usize, n: usize) -> AttentionMaps {
        AttentionMaps {
            tokens: (0..n).map(|i| i.to_string()).collect(),
            layers,
            heads,
            n,
            probs,
            causal: false,
        }
    }

    #[test]
    fn mean_and_max_over_heads() {
        let m = maps(vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 0.25, 0.75], 1, 2, 2);
        assert_eq!(m.mean_over_heads(0), vec![0.5, 0.5, 0.375, 0.625]);
        assert_eq!(m.max_over_heads(0), vec![1.0, 1.0, 0.5, 0.75]);
    }

    #[test]
    fn rollout_of_identity_attention_is_identity_and_rows_sum_to_one() {
        let id = vec![1.0, 0.0, 0.0, 1.0];
        let m = maps([id.clone(), id.clone()].concat(), 2, 1, 2);
        assert_eq!(m.rollout()[1], id);
        let uniform = maps(vec![0.5; 8], 2, 1, 2);
        let r = uniform.rollout();
        // Layer 0: 0.5·0.5 + 0.5·I → [[0.75, 0.25], [0.25, 0.75]]; squared for layer 1.
        assert_eq!(r[0], vec![0.75, 0.25, 0.25, 0.75]);
        let expect = [0.625, 0.375, 0.375, 0.625];
        for (a, b) in r[1].iter().zip(expect) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn matmul_matches_the_plain_product() {
        let n = 37;
        let a: Vec<f32> = (0..n * n).map(|i| ((i * 7) % 11) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..n * n).map(|i| ((i * 5) % 13) as f32 * 0.1).collect();
        let got = matmul(&a, &b, n);
        for i in 0..n {
            for j in 0..n {
                let want: f64 = (0..n)
                    .map(|k| f64::from(a[i * n + k]) * f64::from(b[k * n + j]))
                    .sum();
                assert!((f64::from(got[i * n + j]) - want).abs() < 1e-4, "[{i},{j}]");
            }
        }
    }

    #[test]
    fn merging_keeps_rows_stochastic() {
        // Tokens: [CLS] man ##ge [SEP] → groups 0, 1, 1, 2.
        let map = vec![
            0.1, 0.2, 0.3, 0.4, //
            0.25, 0.25, 0.25, 0.25, //
            0.0, 0.5, 0.5, 0.0, //
            1.0, 0.0, 0.0, 0.0,
        ];
        let merged = merge_groups(&map, 4, &[0, 1, 1, 2]);
        assert_eq!(merged.len(), 9);
        // Row "mange" = mean of the two piece rows, columns summed over pieces.
        assert_eq!(&merged[3..6], &[0.125, 0.75, 0.125]);
        for row in merged.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn entropy_of_uniform_and_peaked_heads() {
        let m = maps(vec![0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 0.0, 1.0], 1, 2, 2);
        let e = m.entropy();
        assert!((e[0] - std::f32::consts::LN_2).abs() < 1e-6);
        assert_eq!(e[1], 0.0);
    }
}
