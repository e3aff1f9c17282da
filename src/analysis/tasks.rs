//! The training tasks' data ([`Task`]): vocabularies, seeded batches of sequences with their
//! targets, and each scored token's expected keys (the attention pattern that solves the task),
//! from which [`attention_score`] measures how much of a model's attention sits where it should.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::analysis::AttentionMaps;
use crate::types::train::{Task, COPY_OFFSET};

/// The unknown token, id 0 of every task's vocabulary.
pub const UNK: &str = "<unk>";
/// Padding after a short sentence (the sentences task).
pub const PAD: &str = "<pad>";
/// The start of a sentence (the sentences task).
pub const BOS: &str = "<s>";

/// Digits the digit tasks draw from.
const DIGITS: usize = 10;
/// Symbols the induction task draws from (`a` to `p`).
const LETTERS: usize = 16;
/// Length of the digit tasks' sequences.
const DIGIT_LEN: usize = 8;
/// Length of the induction task's sequences.
const INDUCTION_LEN: usize = 16;

/// The French lesson's sentences and a few more of the same words, for next-word prediction.
pub const SENTENCES: [&str; 6] = [
    "Le chat noir mange le poisson.",
    "Le chat mange du poisson sur la table.",
    "Le chien noir mange la viande.",
    "La souris mange le fromage sur la table.",
    "Le chat regarde la souris.",
    "Le chien dort sous la table.",
];

/// Splits a sentence into words and punctuation, as the sentences task's tokenizer does
/// (`tokenizers`' `Whitespace` pre-tokenizer: runs of word characters, runs of the rest).
pub fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_word = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let word = c.is_alphanumeric() || c == '_';
        if !cur.is_empty() && word != cur_word {
            out.push(std::mem::take(&mut cur));
        }
        cur_word = word;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A task's tokens: id `i` is entry `i`; id 0 is [`UNK`].
pub fn vocabulary(task: Task) -> Vec<String> {
    let mut v = vec![UNK.to_string()];
    match task {
        Task::Reverse | Task::Copy | Task::Sort => {
            v.extend((0..DIGITS).map(|d| d.to_string()));
        }
        Task::Induction => v.extend((0..LETTERS as u8).map(|i| char::from(b'a' + i).to_string())),
        Task::Sentences => {
            v.extend([PAD.to_string(), BOS.to_string()]);
            for s in SENTENCES {
                for w in split_words(s) {
                    if !v.contains(&w) {
                        v.push(w);
                    }
                }
            }
        }
    }
    v
}

/// The length of a task's sequences (the model's positions).
pub fn seq_len(task: Task) -> usize {
    match task {
        Task::Reverse | Task::Copy | Task::Sort => DIGIT_LEN,
        Task::Induction => INDUCTION_LEN,
        Task::Sentences => {
            1 + SENTENCES
                .iter()
                .map(|s| split_words(s).len())
                .max()
                .unwrap_or(0)
        }
    }
}

/// Sequences of one task with their targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Sequences.
    pub size: usize,
    /// Tokens per sequence.
    pub n: usize,
    /// Input ids `[size, n]`.
    pub ids: Vec<u32>,
    /// Target ids `[size, n]` (0 where not scored).
    pub targets: Vec<u32>,
    /// 1 where the token is scored, 0 elsewhere `[size, n]`.
    pub weights: Vec<f32>,
    /// For each scored token `[size, n]`, the key positions the task's solution attends to
    /// (empty where not scored, and for tasks without a pattern).
    pub expected: Vec<Vec<usize>>,
}

impl Batch {
    fn new(size: usize, n: usize) -> Self {
        Self {
            size,
            n,
            ids: vec![0; size * n],
            targets: vec![0; size * n],
            weights: vec![0.0; size * n],
            expected: vec![Vec::new(); size * n],
        }
    }

    /// Scored tokens.
    pub fn scored(&self) -> usize {
        self.weights.iter().filter(|&&w| w > 0.0).count()
    }
}

/// Makes `size` sequences of `task` from `rng`. The sentences task cycles through its
/// sentences in an order drawn from `rng`.
pub fn batch(task: Task, size: usize, rng: &mut StdRng) -> Batch {
    let n = seq_len(task);
    let mut b = Batch::new(size, n);
    let mut sentence_order: Vec<usize> = Vec::new();
    for s in 0..size {
        let row = s * n..(s + 1) * n;
        let (ids, rest) = (&mut b.ids[row.clone()], row.start);
        match task {
            Task::Reverse | Task::Copy | Task::Sort => {
                for id in ids.iter_mut() {
                    *id = 1 + rng.random_range(0..DIGITS as u32);
                }
                let x = ids.to_vec();
                let mut sorted = x.clone();
                sorted.sort_unstable();
                for i in 0..n {
                    let at = rest + i;
                    let (target, keys) = match task {
                        Task::Reverse => (x[n - 1 - i], vec![n - 1 - i]),
                        Task::Copy if i >= COPY_OFFSET => {
                            (x[i - COPY_OFFSET], vec![i - COPY_OFFSET])
                        }
                        Task::Copy => continue,
                        _ => {
                            let keys = (0..n).filter(|&j| x[j] == sorted[i]).collect();
                            (sorted[i], keys)
                        }
                    };
                    b.targets[at] = target;
                    b.weights[at] = 1.0;
                    b.expected[at] = keys;
                }
            }
            Task::Induction => {
                let m = rng.random_range(3..=n / 2);
                let mut symbols: Vec<u32> = (1..=LETTERS as u32).collect();
                symbols.shuffle(rng);
                let (s_part, others) = symbols.split_at(m);
                let r = n - 2 * m;
                for id in ids.iter_mut().take(r) {
                    *id = others[rng.random_range(0..others.len())];
                }
                ids[r..r + m].copy_from_slice(s_part);
                ids[r + m..].copy_from_slice(s_part);
                let x = ids.to_vec();
                // In the second copy, token t's previous occurrence is t − m: the answer is
                // the token after it, t − m + 1.
                for t in r + m..n - 1 {
                    let at = rest + t;
                    b.targets[at] = x[t + 1];
                    b.weights[at] = 1.0;
                    b.expected[at] = vec![t + 1 - m];
                }
            }
            Task::Sentences => {
                if sentence_order.is_empty() {
                    sentence_order = (0..SENTENCES.len()).collect();
                    sentence_order.shuffle(rng);
                }
                let k = sentence_order.pop().unwrap_or(0);
                put_sentence(&mut b, s, k);
            }
        }
    }
    b
}

/// [`PAD`]'s id in the sentences task's vocabulary (after [`UNK`]).
const PAD_ID: u32 = 1;

/// `<s>` and the words of each sentence as the sentences task's ids, made once.
fn sentence_ids() -> &'static [Vec<u32>] {
    static IDS: std::sync::OnceLock<Vec<Vec<u32>>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        let vocab = vocabulary(Task::Sentences);
        let id = |w: &str| vocab.iter().position(|v| v == w).unwrap_or(0) as u32;
        SENTENCES
            .iter()
            .map(|s| {
                std::iter::once(id(BOS))
                    .chain(split_words(s).iter().map(|w| id(w)))
                    .collect()
            })
            .collect()
    })
}

/// Sentence `k` as row `row` of `b`: padded, each word scored on the next.
fn put_sentence(b: &mut Batch, row: usize, k: usize) {
    let x = &sentence_ids()[k];
    let at = row * b.n;
    b.ids[at..at + b.n].fill(PAD_ID);
    b.ids[at..at + x.len()].copy_from_slice(x);
    for t in 0..x.len() - 1 {
        b.targets[at + t] = x[t + 1];
        b.weights[at + t] = 1.0;
    }
}

/// The held-out set of `task` for `seed`: 512 sequences from a generator of its own (the
/// training batches never draw from it), or every sentence once for the sentences task, whose
/// accuracy is therefore measured on what it learns by heart.
pub fn held_out(task: Task, seed: u64) -> Batch {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x005E_ED0F_4E1D_0075);
    if task == Task::Sentences {
        let n = seq_len(task);
        let mut b = Batch::new(SENTENCES.len(), n);
        for k in 0..SENTENCES.len() {
            put_sentence(&mut b, k, k);
        }
        return b;
    }
    batch(task, 512, &mut rng)
}

/// The best head's mean attention on the expected keys over the scored tokens of `batch`:
/// `attention` holds one [`AttentionMaps`] per sequence of the batch. Returns the score and
/// the head's (layer, head), or `None` when no token has expected keys.
pub fn attention_score(
    batch: &Batch,
    attention: &[AttentionMaps],
) -> Option<(f32, (usize, usize))> {
    let first = attention.first()?;
    let mut best: Option<(f32, (usize, usize))> = None;
    for layer in 0..first.layers {
        for head in 0..first.heads {
            let (mut sum, mut count) = (0f64, 0usize);
            for (s, maps) in attention.iter().enumerate() {
                let map = maps.head(layer, head);
                for q in 0..batch.n {
                    let keys = &batch.expected[s * batch.n + q];
                    if keys.is_empty() {
                        continue;
                    }
                    sum += keys
                        .iter()
                        .map(|&k| map[q * maps.n + k] as f64)
                        .sum::<f64>();
                    count += 1;
                }
            }
            if count == 0 {
                return None;
            }
            let score = (sum / count as f64) as f32;
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, (layer, head)));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_makes_consistent_targets_and_expected_keys() {
        let mut rng = StdRng::seed_from_u64(3);
        for task in Task::ALL {
            let b = batch(task, 20, &mut rng);
            let v = vocabulary(task).len() as u32;
            assert!(b.ids.iter().chain(&b.targets).all(|&i| i < v), "{task:?}");
            assert!(b.scored() > 0, "{task:?}");
            for s in 0..b.size {
                for q in 0..b.n {
                    let at = s * b.n + q;
                    for &k in &b.expected[at] {
                        // Attending to an expected key and copying it answers the task.
                        assert_eq!(b.ids[s * b.n + k], b.targets[at], "{task:?} {s} {q}");
                        if task.causal() {
                            assert!(k <= q, "{task:?}: a causal task looks back");
                        }
                    }
                    if b.weights[at] > 0.0 && task.has_pattern() {
                        assert!(!b.expected[at].is_empty(), "{task:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_sentences_task_knows_the_lesson() {
        assert_eq!(
            split_words("Le chat noir mange le poisson."),
            ["Le", "chat", "noir", "mange", "le", "poisson", "."]
        );
        let v = vocabulary(Task::Sentences);
        assert_eq!(&v[..3], [UNK, PAD, BOS]);
        let b = held_out(Task::Sentences, 0);
        assert_eq!(b.size, SENTENCES.len());
        assert_eq!(v[b.ids[1] as usize], "Le");
    }

    #[test]
    fn the_held_out_set_depends_on_the_seed_only() {
        assert_eq!(held_out(Task::Reverse, 7), held_out(Task::Reverse, 7));
        assert_ne!(held_out(Task::Reverse, 7), held_out(Task::Reverse, 8));
    }

    #[test]
    fn the_score_of_the_solution_is_one() {
        let mut rng = StdRng::seed_from_u64(1);
        let b = batch(Task::Reverse, 3, &mut rng);
        let n = b.n;
        let maps: Vec<AttentionMaps> = (0..b.size)
            .map(|s| {
                let mut probs = vec![1.0 / n as f32; 2 * n * n]; // head 0 uniform
                let solved = &mut probs[n * n..];
                solved.fill(0.0);
                for q in 0..n {
                    solved[q * n + b.expected[s * n + q][0]] = 1.0;
                }
                AttentionMaps {
                    tokens: vec![String::new(); n],
                    layers: 1,
                    heads: 2,
                    n,
                    probs,
                    causal: false,
                }
            })
            .collect();
        let (score, head) = attention_score(&b, &maps).expect("a pattern");
        assert_eq!(head, (0, 1));
        assert!((score - 1.0).abs() < 1e-6, "{score}");
    }
}
