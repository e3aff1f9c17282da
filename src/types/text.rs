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
    /// `config.json`'s `model_type` ("bert", "gpt2").
    pub model_type: &'static str,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// The longest input in tokens.
    pub max_positions: usize,
    /// True for models that only look back (GPT-2).
    pub causal: bool,
}
