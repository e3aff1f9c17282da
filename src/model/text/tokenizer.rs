//! Tokenization with the `tokenizers` crate from a model's `tokenizer.json`, keeping each token's
//! text and character span, with truncation to the model's positions reported to the caller.

use std::path::Path;

use crate::types::text::{Encoded, Token};
use anyhow::{anyhow, bail, Result};

/// Why a text model folder or a text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextModelError {
    /// The path is not a folder.
    #[error("not a model folder: {0}")]
    NotAFolder(String),
    /// A file the model needs is absent.
    #[error("the model folder lacks {name}: {dir}")]
    MissingFile {
        /// The file's name.
        name: String,
        /// The folder.
        dir: String,
    },
    /// `config.json` names a `model_type` we do not run.
    #[error("unsupported model_type `{name}`; supported: {supported}")]
    UnsupportedModelType {
        /// Its `model_type`.
        name: String,
        /// Those we run, comma-separated.
        supported: String,
    },
    /// `config.json` has no `model_type`.
    #[error("no `model_type`; supported: {0}")]
    NoModelType(String),
    /// Only spaces.
    #[error("the text is empty: type a sentence")]
    EmptyText,
    /// No token of the vocabulary.
    #[error("the text has no tokens this model knows")]
    NoKnownTokens,
}

/// A tokenizer with padding disabled and our own truncation.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`. The file's own padding (all-MiniLM ships `Fixed(128)`) and
    /// truncation are turned off: the views show the real tokens.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("cannot load tokenizer ({e}): {}", path.display()))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| anyhow!("cannot configure tokenizer: {e}"))?;
        Ok(Self { inner })
    }

    /// Encodes `text` with the model's special tokens, keeping at most `max_tokens`.
    pub fn encode(&self, text: &str, max_tokens: usize) -> Result<Encoded> {
        if text.trim().is_empty() {
            bail!(TextModelError::EmptyText);
        }
        let enc = self
            .inner
            .encode_char_offsets(text, true)
            .map_err(|e| anyhow!("cannot tokenize: {e}"))?;
        let total = enc.len();
        if total == 0 {
            bail!(TextModelError::NoKnownTokens);
        }
        let specials = enc.get_special_tokens_mask();
        let mut tokens: Vec<Token> = (0..total)
            .map(|i| Token {
                id: enc.get_ids()[i],
                text: enc.get_tokens()[i].clone(),
                span: enc.get_offsets()[i],
                word: enc.get_word_ids()[i].map(|w| w as usize),
                special: specials[i] == 1,
            })
            .collect();
        if total <= max_tokens {
            return Ok(Encoded {
                tokens,
                truncated_from: None,
            });
        }
        // Keep leading specials and the trailing ones ([SEP]); cut the middle's end.
        let trailing: Vec<Token> = tokens
            .iter()
            .rev()
            .take_while(|t| t.special)
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if trailing.len() >= max_tokens {
            bail!("the model takes at most {max_tokens} tokens");
        }
        tokens.truncate(max_tokens - trailing.len());
        tokens.extend(trailing);
        Ok(Encoded {
            tokens,
            truncated_from: Some(total),
        })
    }

    /// Token text for an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

/// `path` must exist, else an error naming the file and the folder.
pub fn require_file(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!(TextModelError::MissingFile {
            name: name.to_owned(),
            dir: dir.display().to_string(),
        });
    }
    Ok(p)
}
