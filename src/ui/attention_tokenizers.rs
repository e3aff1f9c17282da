//! Tokenizers side by side: the sentence as each available text model cuts it (MiniLM's
//! WordPiece, GPT-2's byte-level BPE, a French SentencePiece model, …), with token counts, so
//! the lesson can say why `poisson` became `po ##isson`. Tokenizers load once per folder and
//! tokenize on a view job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::jobs::{Jobs, Slot};
use crate::model::text::TextTokenizer;
use crate::types::Token;

/// One model's cut of the sentence.
#[derive(Debug, Clone)]
pub struct Cut {
    /// The model folder's name.
    pub model: String,
    /// Its tokens, or why the tokenizer could not be used.
    pub tokens: Result<Vec<Token>, crate::types::Problem>,
}

/// The cuts of one text by a list of folders.
pub struct Comparison {
    key: (String, Vec<PathBuf>),
    /// One cut per folder, in the list's order.
    pub cuts: Vec<Cut>,
}

type Cache = Arc<Mutex<HashMap<PathBuf, Result<Arc<TextTokenizer>, crate::types::Problem>>>>;

/// The comparison's state: loaded tokenizers, the cuts on screen, the job computing new ones.
pub struct TokenizerComparison {
    cache: Cache,
    /// The cuts on screen.
    pub shown: Option<Comparison>,
    slot: Slot<Comparison>,
    requested: Option<(String, Vec<PathBuf>)>,
}

/// `dir`'s tokenizer, loaded once.
fn tokenizer(cache: &Cache, dir: &Path) -> Result<Arc<TextTokenizer>, crate::types::Problem> {
    if let Some(t) = cache.lock().ok().and_then(|c| c.get(dir).cloned()) {
        return t;
    }
    let loaded = crate::model::text::tokenizer::require_file(dir, "tokenizer.json")
        .and_then(|p| TextTokenizer::from_file(&p))
        .map(Arc::new)
        .map_err(|e| crate::error::problem(&e));
    if let Ok(mut c) = cache.lock() {
        c.insert(dir.to_path_buf(), loaded.clone());
    }
    loaded
}

impl TokenizerComparison {
    /// Nothing loaded yet; jobs run on `jobs`.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            cache: Arc::default(),
            shown: None,
            slot: Slot::new(jobs),
            requested: None,
        }
    }

    /// Takes finished cuts and asks for those of `text` by `dirs` when they changed.
    pub fn sync(&mut self, text: &str, dirs: &[PathBuf]) {
        if let Some(c) = self.slot.poll() {
            self.shown = Some(c);
        }
        // Compared in place: nothing is allocated on the frames where nothing changed.
        let same = |k: &(String, Vec<PathBuf>)| k.0 == text && k.1 == dirs;
        if self.shown.as_ref().is_some_and(|c| same(&c.key))
            || self.requested.as_ref().is_some_and(same)
        {
            return;
        }
        let key = (text.to_string(), dirs.to_vec());
        self.requested = Some(key.clone());
        let cache = self.cache.clone();
        self.slot.submit(move |stale| {
            let mut cuts = Vec::with_capacity(key.1.len());
            for dir in &key.1 {
                if stale() {
                    break;
                }
                let tokens = tokenizer(&cache, dir).and_then(|t| {
                    t.encode(&key.0, usize::MAX)
                        .map(|e| e.tokens)
                        .map_err(|e| crate::error::problem(&e))
                });
                cuts.push(Cut {
                    model: crate::weights::model_folder_label(dir),
                    tokens,
                });
            }
            Comparison { key, cuts }
        });
    }

    /// True while new cuts are being computed.
    pub fn is_computing(&self) -> bool {
        self.slot.is_pending()
    }

    /// Draws each model's tokens as chips, with their count.
    pub fn ui(&self, ui: &mut egui::Ui) {
        ui.label(egui::RichText::new(crate::tr!(ui, "tokenizers-explain")).weak());
        let Some(c) = &self.shown else {
            super::widgets::busy_ui(ui, &crate::tr!(ui, "tokenizers-busy"));
            return;
        };
        if c.cuts.is_empty() {
            ui.label(crate::tr!(ui, "tokenizers-none"));
        }
        for cut in &c.cuts {
            ui.horizontal_wrapped(|ui| match &cut.tokens {
                Ok(tokens) => {
                    let count = tokens.iter().filter(|t| !t.special).count();
                    let model = cut.model.as_str();
                    let title = crate::tr!(ui, "tokenizers-count", model = model, count = count);
                    ui.label(egui::RichText::new(title).strong());
                    for t in tokens {
                        let text = egui::RichText::new(&t.text).monospace();
                        let text = if t.special { text.weak() } else { text };
                        egui::Frame::new()
                            .fill(ui.visuals().faint_bg_color)
                            .inner_margin(egui::Margin::symmetric(3, 0))
                            .corner_radius(3.0)
                            .show(ui, |ui| ui.label(text));
                    }
                }
                Err(e) => {
                    ui.label(egui::RichText::new(format!("{}:", cut.model)).strong());
                    let why = crate::ui::problems::problem_text(crate::ui::i18n::lang(ui.ctx()), e);
                    ui.colored_label(ui.visuals().warn_fg_color, why);
                }
            });
        }
    }
}
