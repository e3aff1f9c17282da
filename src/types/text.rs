//! Text as the views and the CLI see it: tokens with their spans, a model's output for one
//! text, and what the app shows of a loaded text model.

use serde::Serialize;

use crate::analysis::AttentionMaps;

/// One token of an encoded text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Token {
    /// Vocabulary id.
    pub id: u32,
    /// The token as the vocabulary spells it (`##ge`, `Ġchat`, `[CLS]`).
    pub text: String,
    /// Character span `[start, end)` in the input text; `(0, 0)` for added special tokens.
    pub span: (usize, usize),
    /// Index of the word this token belongs to, `None` for special tokens.
    pub word: Option<usize>,
    /// True for tokens the tokenizer added (`[CLS]`, `[SEP]`).
    pub special: bool,
}

/// An encoded text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Encoded {
    /// The tokens in order.
    pub tokens: Vec<Token>,
    /// Set when the text was cut to fit the model: how many tokens it would have had.
    pub truncated_from: Option<usize>,
}

impl Encoded {
    /// Token ids.
    pub fn ids(&self) -> Vec<u32> {
        self.tokens.iter().map(|t| t.id).collect()
    }

    /// A notice for the user when the text was truncated.
    pub fn notice(&self) -> Option<String> {
        self.truncated_from.map(|n| {
            format!(
                "the text was truncated to {} of its {n} tokens (the model's maximum)",
                self.tokens.len()
            )
        })
    }
}

/// Everything the views and the CLI show for one text.
#[derive(Debug, Clone)]
pub struct TextOutput {
    /// The text that was run (the tokens' character spans index into it).
    pub text: String,
    /// The tokens (and a truncation notice, if any).
    pub encoded: Encoded,
    /// Every layer's attention.
    pub attentions: AttentionMaps,
    /// Embedding output then each layer's output, `[n × hidden]` each.
    pub hidden_states: Vec<Vec<f32>>,
    /// `[n × vocab]` for language models.
    pub logits: Option<Vec<f32>>,
}

/// What the app shows of a loaded text model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextModelInfo {
    /// The folder's or Hub repository's name ("all-MiniLM-L6-v2").
    pub name: String,
    /// `config.json`'s `model_type` ("bert", "roberta", "xlm-roberta", "camembert", "gpt2").
    pub model_type: &'static str,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// The longest input in tokens.
    pub max_positions: usize,
    /// True for models that only look back (GPT-2).
    pub causal: bool,
    /// First rows of the learned position table that no token reads (RoBERTa family:
    /// `padding_idx + 1`), left out of the table the app shows; 0 for BERT and GPT-2.
    pub skipped_position_rows: usize,
    /// How the model encodes positions: learned for every Hugging Face family we run; a tiny
    /// model trained in the app may use the sinusoidal table or rotary positions.
    pub positions: crate::types::train::Positions,
}

/// One head's computation for one token, step by step, from the model's own projections
/// (the Attention view's step view). Vectors are the head's slice (`head_dim` numbers).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadSteps {
    /// Layer of the head.
    pub layer: usize,
    /// The head.
    pub head: usize,
    /// The token that looks (the query's row).
    pub token: usize,
    /// The tokens' texts.
    pub tokens: Vec<String>,
    /// Width of the head.
    pub head_dim: usize,
    /// The token's query `[head_dim]`.
    pub query: Vec<f32>,
    /// Every token's key `[n × head_dim]`.
    pub keys: Vec<f32>,
    /// Every token's value `[n × head_dim]`.
    pub values: Vec<f32>,
    /// `q · kⱼ` for every token `j` `[n]`.
    pub dots: Vec<f32>,
    /// The scale `1 / √head_dim`.
    pub scale: f32,
    /// `q · kⱼ / √head_dim` `[n]`.
    pub scaled: Vec<f32>,
    /// Tokens the query may not see (later tokens of a causal model) `[n]`.
    pub masked: Vec<bool>,
    /// The softmax of the scaled scores over the visible tokens, 0 where masked `[n]`: the
    /// token's row of the head's attention map.
    pub probs: Vec<f32>,
    /// `Σⱼ probsⱼ · vⱼ` `[head_dim]`: what the head hands on for this token.
    pub output: Vec<f32>,
}
