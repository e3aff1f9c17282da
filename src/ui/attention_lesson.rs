//! The lesson, word by word: one word's attention to every word of the sentence as labelled
//! bars with their numbers (`le : 0.21`, `chat : 0.68`, …), the seed lesson's own
//! presentation, and the one-line captions that say what a map shows.

use egui::{Pos2, Rect, Sense, Vec2};

use super::attention_view::AttnMode;
use super::i18n::Lang;
use crate::tr_lang;

/// Height of one bar's line.
const BAR_LINE: f32 = 17.0;
/// Width kept for a bar's `word : value` text.
const BAR_TEXT: f32 = 120.0;

/// The row a view starts from when no word was picked: `chat`, the lesson's example, when the
/// sentence has it, else the first row that is not a special token.
pub fn default_word(labels: &[String]) -> usize {
    let clean = |l: &str| {
        l.trim_start_matches(['▁', 'Ġ', '#'])
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
    };
    labels
        .iter()
        .position(|l| clean(l) == "chat")
        .or_else(|| {
            labels
                .iter()
                .position(|l| !l.starts_with('[') && !l.starts_with('<'))
        })
        .unwrap_or(0)
}

/// The text of one bar: `word : 0.21`, or `word : masked` (in `lang`) for a later word a
/// causal model cannot see.
pub fn bar_text(lang: Lang, label: &str, value: f32, masked: bool) -> String {
    if masked {
        tr_lang!(lang, "bar-masked", word = label)
    } else {
        format!("{label} : {value:.2}")
    }
}

/// Draws what row `row` (the word that looks) gives each column (`values` is the map's row,
/// one value per label) as one bar per word, longest for the largest, and returns the column
/// whose bar is under the pointer. Only the lines in view are laid out (512 tokens stay cheap).
pub fn word_bars_ui(
    ui: &mut egui::Ui,
    labels: &[String],
    row: usize,
    values: &[f32],
    causal: bool,
    max_height: f32,
) -> Option<usize> {
    let looker = labels.get(row).map_or("", String::as_str);
    let lang = super::i18n::lang(ui.ctx());
    ui.label(egui::RichText::new(tr_lang!(lang, "bars-title", word = looker)).strong());
    let largest = super::attention_view::largest(values);
    let width = ui
        .available_width()
        .clamp(BAR_TEXT + 60.0, BAR_TEXT + 320.0);
    let (text_color, bar_color) = (ui.visuals().text_color(), ui.visuals().selection.bg_fill);
    let font = egui::FontId::proportional(13.0);
    let mut hovered = None;
    egui::ScrollArea::vertical()
        .id_salt("word bars")
        .max_height(max_height)
        .show_rows(ui, BAR_LINE, labels.len().min(values.len()), |ui, rows| {
            for c in rows {
                let (label, v) = (&labels[c], values[c]);
                let masked = causal && c > row;
                let text = bar_text(lang, label, v, masked);
                let (resp, painter) =
                    ui.allocate_painter(Vec2::new(width, BAR_LINE), Sense::hover());
                let rect = resp.rect;
                painter.text(
                    Pos2::new(rect.min.x, rect.center().y),
                    egui::Align2::LEFT_CENTER,
                    &text,
                    font.clone(),
                    text_color,
                );
                if !masked {
                    let bar = Rect::from_min_size(
                        Pos2::new(rect.min.x + BAR_TEXT, rect.min.y + 3.0),
                        Vec2::new((rect.width() - BAR_TEXT) * v / largest, BAR_LINE - 6.0),
                    );
                    painter.rect_filled(bar, 2.0, bar_color);
                }
                resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &text));
                if resp.hovered() {
                    hovered = Some(c);
                }
                if !masked {
                    let value = format!("{v:.4}");
                    let hover = tr_lang!(
                        lang,
                        "cell-value",
                        from = looker,
                        to = label.as_str(),
                        value = value
                    );
                    resp.on_hover_text(hover);
                }
            }
        });
    hovered
}

/// The one-line caption of a map in `lang`: what it is, and how to read it.
pub fn caption(
    lang: Lang,
    mode: AttnMode,
    layer: usize,
    head: usize,
    merged: bool,
    causal: bool,
) -> String {
    let what = match mode {
        AttnMode::Head => tr_lang!(lang, "caption-head", layer = layer, head = head),
        AttnMode::Mean => tr_lang!(lang, "caption-mean", layer = layer),
        AttnMode::Max => tr_lang!(lang, "caption-max", layer = layer),
        AttnMode::Rollout => tr_lang!(lang, "caption-rollout", layer = layer),
    };
    let mut text = if merged {
        tr_lang!(lang, "caption-words", what = what)
    } else {
        tr_lang!(lang, "caption-tokens", what = what)
    };
    if mode != AttnMode::Max {
        text += &tr_lang!(lang, "caption-sums");
    }
    if causal {
        text += &tr_lang!(lang, "caption-causal");
    }
    text + "."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lesson_starts_from_chat_and_bars_read_like_the_lesson() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(default_word(&words(&["[CLS]", "le", "chat", "noir"])), 2);
        assert_eq!(default_word(&words(&["Le", "Ġchat"])), 1);
        assert_eq!(default_word(&words(&["[CLS]", "the", "cat"])), 1);
        assert_eq!(default_word(&[]), 0);
        assert_eq!(bar_text(Lang::En, "Le", 0.2149, false), "Le : 0.21");
        assert_eq!(bar_text(Lang::En, "table", 0.5, true), "table : masked");
        assert_eq!(bar_text(Lang::Fr, "table", 0.5, true), "table : masqué");
        assert_eq!(
            caption(Lang::En, AttnMode::Rollout, 3, 0, true, false),
            "Rollout up to layer 3: each row is a word that looks, each column a word it looks \
             at (each row sums to 1)."
        );
        assert!(caption(Lang::En, AttnMode::Head, 0, 1, false, true).contains("masked triangle"));
        assert_eq!(
            caption(Lang::Fr, AttnMode::Head, 0, 1, true, true),
            "Couche 0, tête 1 : chaque ligne est un mot qui regarde, chaque colonne un mot qu'il \
             regarde (chaque ligne somme à 1) ; un modèle causal ne voit aucun mot suivant (le \
             triangle masqué)."
        );
    }
}
