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
    /// Steps per second of the model training in the Train view, while it trains.
    pub train_speed: Option<f32>,
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
                crate::tr!(ui, "status-formats", dtype = self.precision.as_str())
            };
            ui.label(format!("{} · {formats}", self.device))
                .on_hover_text(crate::tr!(ui, "status-device-hover"));
            ui.separator();
            let none = crate::tr!(ui, "model-none");
            let sam = self.sam_model.as_deref().unwrap_or(&none);
            ui.label(crate::tr!(ui, "status-sam", model = sam));
            ui.separator();
            let text = self.text_model.as_deref().unwrap_or(&none);
            ui.label(crate::tr!(ui, "status-text", model = text));
            let fmt = |v: Option<f64>| v.map_or("–".to_string(), |ms| format!("{ms:.0} ms"));
            let fmt1 = |v: Option<f64>| v.map_or("–".to_string(), |ms| format!("{ms:.1} ms"));
            ui.separator();
            let (encode, click) = (fmt(self.encode_ms), fmt1(self.click_ms.or(self.decode_ms)));
            let forward = fmt(self.forward_ms);
            let times = crate::tr!(
                ui,
                "status-times",
                encode = encode,
                click = click,
                forward = forward
            );
            let hover = crate::tr!(ui, "status-times-hover", decode = fmt1(self.decode_ms));
            ui.label(times).on_hover_text(hover);
            if let Some(speed) = self.train_speed {
                ui.separator();
                let speed = format!("{speed:.0}");
                ui.label(crate::tr!(ui, "status-train", speed = speed));
            }
            if let Some((m, _)) = &self.message {
                ui.separator();
                match m {
                    Ok(info) => ui.label(info),
                    Err(e) => {
                        let text = crate::tr!(ui, "status-error", message = e.as_str());
                        ui.colored_label(ui.visuals().error_fg_color, text)
                    }
                };
            }
        });
    }
}
