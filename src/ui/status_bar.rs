//! The status bar: device and dtype, loaded models, last timings, the last message.

use std::time::Instant;

/// What the status bar shows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Device name ("cpu", "cuda:0").
    pub device: String,
    /// The SAM image encoder's format ("f32", "f16"); everything else runs in f32.
    pub precision: String,
    /// Loaded SAM model.
    pub sam_model: Option<String>,
    /// Loaded text model.
    pub text_model: Option<String>,
    /// Last image encode time.
    pub encode_ms: Option<f64>,
    /// Last prompt decode time in SAM's worker.
    pub decode_ms: Option<f64>,
    /// Last click as the user sees it: from the pointer event to the mask on screen.
    pub click_ms: Option<f64>,
    /// Last text forward time.
    pub forward_ms: Option<f64>,
    /// The last message: `Ok` informs, `Err` is an error.
    pub message: Option<(Result<String, String>, Instant)>,
}

impl Status {
    /// Records a message.
    pub fn notify(&mut self, m: Result<String, String>) {
        self.message = Some((m, Instant::now()));
    }

    /// The last error, if the last message was one.
    pub fn last_error(&self) -> Option<&str> {
        match &self.message {
            Some((Err(e), _)) => Some(e),
            _ => None,
        }
    }

    /// Draws the bar.
    pub fn ui(&self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            let formats = if self.precision.is_empty() || self.precision == "f32" {
                "f32".to_string()
            } else {
                format!("SAM encoder {}, rest f32", self.precision)
            };
            ui.label(format!("{} · {formats}", self.device))
                .on_hover_text("where the models run, and in which floating-point format");
            ui.separator();
            ui.label(format!(
                "SAM: {}",
                self.sam_model.as_deref().unwrap_or("none")
            ));
            ui.separator();
            ui.label(format!(
                "text: {}",
                self.text_model.as_deref().unwrap_or("none")
            ));
            let fmt = |v: Option<f64>| v.map_or("–".to_string(), |ms| format!("{ms:.0} ms"));
            let fmt1 = |v: Option<f64>| v.map_or("–".to_string(), |ms| format!("{ms:.1} ms"));
            ui.separator();
            ui.label(format!(
                "encode {} · click {} · forward {}",
                fmt(self.encode_ms),
                fmt1(self.click_ms.or(self.decode_ms)),
                fmt(self.forward_ms)
            ))
            .on_hover_text(format!(
                "click: from the pointer event to the mask on screen; SAM's prompt encoder and \
                 mask decoder took {} of it",
                fmt1(self.decode_ms)
            ));
            if let Some((m, _)) = &self.message {
                ui.separator();
                match m {
                    Ok(info) => ui.label(info),
                    Err(e) => ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}")),
                };
            }
        });
    }
}
