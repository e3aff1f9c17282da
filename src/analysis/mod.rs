//! Pure functions shared by the CLI, the workers and the app, no tensors here: over attention
//! maps (mean / max over heads, attention rollout, subword → word merging, per-head entropy)
//! and, in [`positional`], over positional encodings; [`amg`] holds the automatic mask
//! generator's geometry and run-length encoding.

pub mod amg;
pub mod positional;
pub mod tasks;

use serde::Serialize;

use crate::types::text::{HeadSteps, Token};

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

/// Groups tokens into words for [`merge_groups`]. Returns the group of each token and a label per
/// group (the word's text from `text`, or the special token).
///
/// A token continues the word before it when neither is special, the tokenizer put them in the
/// same pre-tokenized word (when it says), nothing lies between their spans, the token does not
/// open a word itself (SentencePiece `▁`, byte-level BPE `Ġ`), and either it is a WordPiece
/// continuation (`##`), or the word so far is a bare `▁` / `Ġ`, or neither piece is punctuation;
/// pieces that share a character (the bytes of an emoji) always join. So `man ##ge`,
/// `▁pois son`, `Ġm ange` each make one word, while `poisson` and its `.` stay two, as BERT's
/// own pre-tokenizer splits them.
pub fn word_groups(tokens: &[Token], text: &str) -> (Vec<usize>, Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let slice = |s: usize, e: usize| -> String {
        let (s, e) = (s.min(chars.len()), e.min(chars.len()));
        chars[s..e.max(s)]
            .iter()
            .collect::<String>()
            .trim()
            .to_string()
    };
    let is_punct = |t: &Token| {
        let piece = slice(t.span.0, t.span.1);
        !piece.is_empty() && !piece.chars().any(char::is_alphanumeric)
    };
    let bare_marker = |t: &Token| matches!(t.text.as_str(), "\u{2581}" | "\u{120}");
    let mut group = Vec::with_capacity(tokens.len());
    let mut starts: Vec<Option<usize>> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut prev: Option<&Token> = None;
    for t in tokens {
        let continues = prev.is_some_and(|p| {
            let same_word = t.word.is_none() || p.word.is_none() || t.word == p.word;
            // Byte-level pieces of one character (an emoji, an accented letter) share it.
            let shares_a_char = t.span.0 < p.span.1;
            !t.special
                && same_word
                && t.span.0 <= p.span.1
                && (shares_a_char
                    || !t.text.starts_with(['\u{2581}', '\u{120}'])
                        && (t.text.starts_with("##")
                            || bare_marker(p)
                            || !(is_punct(t) || is_punct(p))))
        });
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
        prev = (!t.special).then_some(t);
    }
    (group, labels)
}

/// Where one head's projections come from: the model's queries, keys and values of a layer for
/// every token, `[n × hidden]` each (heads side by side, as the model's linear layers give them).
pub struct LayerProjections<'a> {
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// Tokens.
    pub n: usize,
    /// Heads.
    pub heads: usize,
}

/// One head's computation for token `token`, step by step, as eager attention does it: the
/// query, the keys, the dot products, the scaling by `1/√d`, the causal mask (later tokens for
/// a causal model), the softmax (max subtracted, as `torch.softmax`) and the weighted sum of the
/// values. `tokens` label the rows.
pub fn head_steps(
    p: &LayerProjections,
    (layer, head, token): (usize, usize, usize),
    causal: bool,
    tokens: Vec<String>,
) -> HeadSteps {
    let hd = p.q.len() / (p.n * p.heads).max(1);
    let d = hd * p.heads;
    let slice = |m: &[f32], row: usize| m[row * d + head * hd..row * d + (head + 1) * hd].to_vec();
    let query = slice(p.q, token);
    let keys: Vec<f32> = (0..p.n).flat_map(|j| slice(p.k, j)).collect();
    let values: Vec<f32> = (0..p.n).flat_map(|j| slice(p.v, j)).collect();
    let dots: Vec<f32> = keys
        .chunks(hd)
        .map(|k| query.iter().zip(k).map(|(a, b)| a * b).sum())
        .collect();
    let scale = (hd as f32).powf(-0.5);
    let scaled: Vec<f32> = dots.iter().map(|x| x * scale).collect();
    let masked: Vec<bool> = (0..p.n).map(|j| causal && j > token).collect();
    let top = scaled
        .iter()
        .zip(&masked)
        .filter(|(_, &m)| !m)
        .map(|(x, _)| *x)
        .fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scaled
        .iter()
        .zip(&masked)
        .map(|(x, &m)| if m { 0.0 } else { (x - top).exp() })
        .collect();
    let total: f32 = exps.iter().sum();
    let probs: Vec<f32> = exps.iter().map(|e| e / total).collect();
    let mut output = vec![0f32; hd];
    for (v, &w) in values.chunks(hd).zip(&probs) {
        for (o, x) in output.iter_mut().zip(v) {
            *o += w * x;
        }
    }
    HeadSteps {
        layer,
        head,
        token,
        tokens,
        head_dim: hd,
        query,
        keys,
        values,
        dots,
        scale,
        scaled,
        masked,
        probs,
        output,
    }
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

    /// Tokens from `(text, span)` pairs of `sentence`, `[CLS]`-style specials where the span is
    /// `None`; word ids as a pre-tokenizer that splits on spaces only (SentencePiece) gives them.
    fn tokens(pieces: &[(&str, Option<(usize, usize)>)], sentence: &str) -> Vec<Token> {
        let mut word = 0;
        let mut last_end = 0;
        pieces
            .iter()
            .map(|&(text, span)| {
                let Some(span) = span else {
                    return Token {
                        id: 0,
                        text: text.into(),
                        span: (0, 0),
                        word: None,
                        special: true,
                    };
                };
                let gap = sentence
                    .chars()
                    .skip(last_end)
                    .take(span.0.saturating_sub(last_end));
                if last_end > 0 && (span.0 > last_end || gap.clone().any(char::is_whitespace)) {
                    word += 1;
                }
                last_end = span.1;
                Token {
                    id: 1,
                    text: text.into(),
                    span,
                    word: Some(word),
                    special: false,
                }
            })
            .collect()
    }

    #[test]
    fn words_from_wordpiece_sentencepiece_and_byte_level_pieces() {
        let s = "Le chat mange du poisson.";
        let expect = ["<s>", "Le", "chat", "mange", "du", "poisson", ".", "</s>"];
        // SentencePiece: `▁` opens a word, its span includes the space before it.
        let sp = tokens(
            &[
                ("<s>", None),
                ("\u{2581}Le", Some((0, 2))),
                ("\u{2581}chat", Some((2, 7))),
                ("\u{2581}m", Some((7, 9))),
                ("ange", Some((9, 13))),
                ("\u{2581}", Some((13, 14))),
                ("du", Some((14, 16))),
                ("\u{2581}pois", Some((16, 21))),
                ("son", Some((21, 24))),
                (".", Some((24, 25))),
                ("</s>", None),
            ],
            s,
        );
        let (group, labels) = word_groups(&sp, s);
        assert_eq!(labels, expect);
        assert_eq!(group, [0, 1, 2, 3, 3, 4, 4, 5, 5, 6, 7]);
        // Byte-level BPE: `Ġ` opens a word; spans trimmed of the space.
        let bpe = tokens(
            &[
                ("<s>", None),
                ("Le", Some((0, 2))),
                ("\u{120}chat", Some((3, 7))),
                ("\u{120}m", Some((8, 9))),
                ("ange", Some((9, 13))),
                ("\u{120}du", Some((14, 16))),
                ("\u{120}poisson", Some((17, 24))),
                (".", Some((24, 25))),
                ("</s>", None),
            ],
            s,
        );
        assert_eq!(word_groups(&bpe, s).1, expect);
        // WordPiece: `##` continues, punctuation is its own word.
        let wp = tokens(
            &[
                ("[CLS]", None),
                ("le", Some((0, 2))),
                ("chat", Some((3, 7))),
                ("man", Some((8, 11))),
                ("##ge", Some((11, 13))),
                ("du", Some((14, 16))),
                ("po", Some((17, 19))),
                ("##isson", Some((19, 24))),
                (".", Some((24, 25))),
                ("[SEP]", None),
            ],
            s,
        );
        let (_, labels) = word_groups(&wp, s);
        assert_eq!(labels[1..7], expect[1..7]);
        // An apostrophe splits `l'attention` into three words, whatever the tokenizer.
        let a = "l'attention";
        let sp = tokens(
            &[
                ("\u{2581}l", Some((0, 1))),
                ("'", Some((1, 2))),
                ("att", Some((2, 5))),
                ("ention", Some((5, 11))),
            ],
            a,
        );
        assert_eq!(word_groups(&sp, a).1, ["l", "'", "attention"]);
    }

    #[test]
    fn head_steps_follow_scaled_dot_product_attention() {
        // 3 tokens, 2 heads of width 2: head 1 of token 1.
        let q = [0., 0., 9., 9., 0., 0., 1., 2., 0., 0., 9., 9.];
        let k = [0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 1., 1.];
        let v = [0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 2., 2.];
        let p = LayerProjections {
            q: &q,
            k: &k,
            v: &v,
            n: 3,
            heads: 2,
        };
        let labels = vec!["a".to_string(), "b".into(), "c".into()];
        let s = head_steps(&p, (0, 1, 1), false, labels.clone());
        assert_eq!(s.query, [1., 2.]);
        assert_eq!(s.dots, [1., 2., 3.]);
        let scaled: Vec<f32> = [1f32, 2., 3.].iter().map(|x| x / 2f32.sqrt()).collect();
        for (ours, want) in s.scaled.iter().zip(&scaled) {
            assert!((ours - want).abs() < 1e-6);
        }
        let e: Vec<f32> = scaled.iter().map(|x| x.exp()).collect();
        let sum: f32 = e.iter().sum();
        for (p, e) in s.probs.iter().zip(&e) {
            assert!((p - e / sum).abs() < 1e-6);
        }
        let out0 = s.probs[0] + 2.0 * s.probs[2];
        assert!((s.output[0] - out0).abs() < 1e-6);
        // Causal: token 2 is masked for token 1, and the rest still sums to 1.
        let c = head_steps(&p, (0, 1, 1), true, labels);
        assert_eq!(c.masked, [false, false, true]);
        assert_eq!(c.probs[2], 0.0);
        assert!((c.probs[0] + c.probs[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn entropy_of_uniform_and_peaked_heads() {
        let m = maps(vec![0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 0.0, 1.0], 1, 2, 2);
        let e = m.entropy();
        assert!((e[0] - std::f32::consts::LN_2).abs() < 1e-6);
        assert_eq!(e[1], 0.0);
    }
}
