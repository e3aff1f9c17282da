//! One head, step by step: for the chosen word and head, the query, each token's key, the dot
//! products, the scaling by √d, the softmax (the heatmap's row) and the weighted sum of the
//! values, from the model's own projections ([`HeadSteps`], computed once per selection by the
//! text worker).

use egui::{Pos2, Rect, Sense, Vec2};

use crate::tr;
use crate::types::HeadSteps;

/// Height of one token's line in the table.
const LINE: f32 = 18.0;
/// Numbers of a vector shown inline (all of them on hover).
const SHOWN: usize = 6;

/// `[0.12, −0.30, …]`: the first six numbers of `v`.
pub fn vector_text(v: &[f32]) -> String {
    let mut parts: Vec<String> = v.iter().take(SHOWN).map(|x| format!("{x:.2}")).collect();
    if v.len() > SHOWN {
        parts.push("…".into());
    }
    format!("[{}]", parts.join(", "))
}

/// Every number of `v`, for a tooltip.
fn all_numbers(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Draws the steps; `gap` is the largest difference between the softmax and the heatmap's row
/// (the model's own attention), shown as the check the student can read.
pub fn steps_ui(ui: &mut egui::Ui, st: &HeadSteps, gap: Option<f32>, max_height: f32) {
    let name = st.tokens.get(st.token).map_or("", String::as_str);
    let d = st.head_dim;
    let (layer, head, position) = (st.layer, st.head, st.token);
    let title = tr!(
        ui,
        "steps-title",
        layer = layer,
        head = head,
        token = name,
        position = position
    );
    ui.label(egui::RichText::new(title).strong());
    let vector = vector_text(&st.query);
    ui.label(tr!(
        ui,
        "steps-query",
        token = name,
        dim = d,
        vector = vector
    ))
    .on_hover_text(all_numbers(&st.query));
    let root = format!("{:.2}", 1.0 / st.scale);
    let mut explain = tr!(ui, "steps-explain", dim = d, root = root);
    if st.masked.iter().any(|&m| m) {
        explain += &tr!(ui, "steps-explain-masked");
    }
    ui.label(explain + ".");
    let widths = [90.0, 150.0, 60.0, 60.0];
    let header = [
        tr!(ui, "steps-col-token"),
        tr!(ui, "steps-col-key"),
        "q·k".to_string(),
        "÷ √d".to_string(),
    ];
    ui.horizontal(|ui| {
        for (w, h) in widths.iter().zip(header) {
            ui.add_sized([*w, LINE], egui::Label::new(egui::RichText::new(h).weak()));
        }
        ui.label(egui::RichText::new(tr!(ui, "steps-col-softmax")).weak());
    });
    let n = st.tokens.len();
    let largest = st.probs.iter().copied().fold(1e-6f32, f32::max);
    let bar_color = ui.visuals().selection.bg_fill;
    egui::ScrollArea::vertical()
        .id_salt("head steps")
        // Room left for the output and the check below the table.
        .max_height(
            max_height
                .min(ui.available_height() - 3.0 * LINE)
                .max(3.0 * LINE),
        )
        .show_rows(ui, LINE, n, |ui, rows| {
            for j in rows {
                ui.horizontal(|ui| {
                    let key = &st.keys[j * d..(j + 1) * d];
                    ui.add_sized(
                        [widths[0], LINE],
                        egui::Label::new(&st.tokens[j]).truncate(),
                    );
                    ui.add_sized(
                        [widths[1], LINE],
                        egui::Label::new(vector_text(&key[..key.len().min(3)])).truncate(),
                    )
                    .on_hover_text(all_numbers(key));
                    let (dot, scaled) = if st.masked[j] {
                        (tr!(ui, "steps-masked"), "−∞".to_string())
                    } else {
                        (format!("{:.3}", st.dots[j]), format!("{:.3}", st.scaled[j]))
                    };
                    ui.add_sized([widths[2], LINE], egui::Label::new(dot));
                    ui.add_sized([widths[3], LINE], egui::Label::new(scaled));
                    let p = st.probs[j];
                    let text = format!("{} : {p:.3}", st.tokens[j]);
                    let (resp, painter) =
                        ui.allocate_painter(Vec2::new(160.0, LINE), Sense::hover());
                    let r = resp.rect;
                    let bar = Rect::from_min_size(
                        Pos2::new(r.min.x + 60.0, r.min.y + 4.0),
                        Vec2::new(100.0 * p / largest, LINE - 8.0),
                    );
                    painter.rect_filled(bar, 2.0, bar_color);
                    painter.text(
                        Pos2::new(r.min.x, r.center().y),
                        egui::Align2::LEFT_CENTER,
                        format!("{p:.3}"),
                        egui::FontId::proportional(13.0),
                        ui.visuals().text_color(),
                    );
                    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &text));
                });
            }
        });
    let vector = vector_text(&st.output);
    ui.label(tr!(ui, "steps-output", vector = vector))
        .on_hover_text(all_numbers(&st.output));
    if let Some(gap) = gap {
        let gap = format!("{gap:.1e}");
        let check = tr!(ui, "steps-check", token = name, head = head, gap = gap);
        ui.label(egui::RichText::new(check).weak());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_show_their_first_numbers() {
        assert_eq!(vector_text(&[0.5, -1.0]), "[0.50, -1.00]");
        assert_eq!(
            vector_text(&[1.0; 8]),
            "[1.00, 1.00, 1.00, 1.00, 1.00, 1.00, …]"
        );
    }
}
