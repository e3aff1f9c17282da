//! What the app does with the workers' answers: the models' state, the status bar's messages
//! (in the window's language) and the views that take the results.

use super::SegattnApp;
use crate::tr_lang;
use crate::ui::i18n::Lang;
use crate::ui::{ModelActivity, ModelStatus};
use crate::worker::sam::{SamResponse, SamTask};
use crate::worker::text::{TextResponse, TextTask};

impl SegattnApp {
    /// The language of the window's messages.
    pub(super) fn lang(&self) -> Lang {
        crate::ui::i18n::lang(&self.ctx)
    }

    /// "`task`: `message`" in the window's language (`task` a message key).
    fn task_failed(&self, task: &'static str, message: &str) -> String {
        let what = crate::ui::i18n::message(self.lang(), task, &[]);
        tr_lang!(
            self.lang(),
            "msg-task-failed",
            task = what,
            message = message
        )
    }

    /// Applies a SAM worker response: the model, status-bar messages, then the Segment view.
    pub(super) fn on_sam_response(&mut self, ctx: &egui::Context, r: SamResponse) {
        match &r {
            SamResponse::ModelLoaded {
                name,
                ms,
                point_encoding,
                sam2,
            } => {
                self.sam_model = ModelStatus {
                    loaded: Some(name.clone()),
                    activity: ModelActivity::Idle,
                };
                self.status.sam_model = Some(name.clone());
                let ms_text = format!("{ms:.0}");
                let text = tr_lang!(
                    self.lang(),
                    "msg-loaded-in",
                    model = name.as_str(),
                    ms = ms_text
                );
                self.status.notify(Ok(text));
                if let Some(p) = self.sam_loading.take() {
                    self.settings.sam_weights = Some(p.clone());
                    self.sam_path = Some(p);
                }
                self.encodings.set_sam_encoding(point_encoding.clone());
                let status = &mut self.status;
                self.segment.on_model_loaded(
                    &self.sam,
                    *sam2,
                    &mut self.settings.segment.everything,
                    &mut |m| status.notify(m),
                );
            }
            SamResponse::LoadCancelled => {
                self.sam_model.activity = ModelActivity::Idle;
                self.sam_loading = None;
                let text = tr_lang!(self.lang(), "msg-loading-cancelled");
                self.status.notify(Ok(text));
            }
            SamResponse::Encoded { ms, .. } => self.status.encode_ms = Some(*ms),
            SamResponse::Prediction { ms, .. } => self.status.decode_ms = Some(*ms),
            SamResponse::Failed {
                task: SamTask::LoadModel,
                problem,
            } => {
                let message = &crate::ui::problems::problem_text(self.lang(), problem);
                self.sam_model.activity = ModelActivity::Failed(message.clone());
                if self.sam_loading.take() == self.settings.sam_weights {
                    self.settings.sam_weights = None; // do not try it again next time
                }
                let text = self.task_failed(sam_task_key(SamTask::LoadModel), message);
                self.status.notify(Err(text));
            }
            SamResponse::Failed { task, problem } => {
                let message = &crate::ui::problems::problem_text(self.lang(), problem);
                let text = self.task_failed(sam_task_key(*task), message);
                self.status.notify(Err(text));
            }
            SamResponse::Crashed { task, message } => {
                self.sam_model.loaded = None;
                self.status.sam_model = None;
                let what = crate::ui::i18n::message(self.lang(), sam_task_key(*task), &[]);
                let text = tr_lang!(
                    self.lang(),
                    "msg-sam-crashed",
                    task = what,
                    message = message.as_str()
                );
                self.status.notify(Err(text));
                match (self.sam_path.clone(), task) {
                    (Some(path), SamTask::Encode | SamTask::Predict | SamTask::Everything) => {
                        self.load_sam(path)
                    }
                    _ => {
                        let what = crate::ui::i18n::message(self.lang(), sam_task_key(*task), &[]);
                        let text = tr_lang!(self.lang(), "msg-internal-error", task = what);
                        self.sam_model.activity = ModelActivity::Failed(text)
                    }
                }
            }
            SamResponse::Everything { records, ms, .. } => {
                let seconds = format!("{:.1}", ms / 1e3);
                let masks = records.len();
                let text = tr_lang!(
                    self.lang(),
                    "msg-everything",
                    masks = masks,
                    seconds = seconds
                );
                self.status.notify(Ok(text));
            }
            SamResponse::Encoding { .. }
            | SamResponse::Preencoding { .. }
            | SamResponse::Preencoded { .. }
            | SamResponse::Cancelled { .. }
            | SamResponse::EverythingProgress { .. }
            | SamResponse::EverythingCancelled { .. } => {}
        }
        let status = &mut self.status;
        self.segment.on_response(ctx, r, &mut |m| status.notify(m));
    }

    /// Applies a text worker response: the model, status-bar messages, then the views.
    pub(super) fn on_text_response(&mut self, r: TextResponse) {
        match &r {
            TextResponse::ModelLoaded { info, positions } => {
                self.text_model = ModelStatus {
                    loaded: Some(info.name.clone()),
                    activity: ModelActivity::Idle,
                };
                self.status.text_model = Some(format!("{} ({})", info.name, info.model_type));
                let text = tr_lang!(self.lang(), "msg-loaded", model = info.name.as_str());
                self.status.notify(Ok(text));
                if let Some(p) = self.text_loading.take() {
                    if !self.attention.opened.contains(&p) {
                        self.attention.opened.push(p.clone());
                    }
                    self.settings.text_model = Some(p.clone());
                    self.text_path = Some(p);
                }
                self.encodings.set_learned(
                    info.name.clone(),
                    positions.clone(),
                    (info.skipped_position_rows, info.positions),
                );
            }
            TextResponse::LoadCancelled => {
                self.text_model.activity = ModelActivity::Idle;
                self.text_loading = None;
                let text = tr_lang!(self.lang(), "msg-loading-cancelled");
                self.status.notify(Ok(text));
            }
            TextResponse::Output { ms, .. } => self.status.forward_ms = Some(*ms),
            TextResponse::Steps { .. } => {}
            TextResponse::Failed {
                task: TextTask::LoadModel,
                problem,
            } => {
                let message = &crate::ui::problems::problem_text(self.lang(), problem);
                self.text_model.activity = ModelActivity::Failed(message.clone());
                if self.text_loading.take() == self.settings.text_model {
                    self.settings.text_model = None;
                }
                let text = self.task_failed(text_task_key(TextTask::LoadModel), message);
                self.status.notify(Err(text));
            }
            TextResponse::Failed { task, problem } => {
                let message = &crate::ui::problems::problem_text(self.lang(), problem);
                let text = self.task_failed(text_task_key(*task), message);
                self.status.notify(Err(text));
            }
            TextResponse::Crashed { task, message } => {
                self.text_model.loaded = None;
                self.status.text_model = None;
                let what = crate::ui::i18n::message(self.lang(), text_task_key(*task), &[]);
                let text = tr_lang!(
                    self.lang(),
                    "msg-text-crashed",
                    task = what,
                    message = message.as_str()
                );
                self.status.notify(Err(text));
                match (self.text_path.clone(), task) {
                    (Some(dir), TextTask::Run) => self.load_text(dir),
                    _ => {
                        let what = crate::ui::i18n::message(self.lang(), text_task_key(*task), &[]);
                        let text = tr_lang!(self.lang(), "msg-internal-error", task = what);
                        self.text_model.activity = ModelActivity::Failed(text)
                    }
                }
            }
        }
        // Last: the view takes ownership of the (possibly large) output, no copy.
        self.attention.on_response(r);
    }
}

/// The message key of what a SAM task is doing ("encoding the image").
fn sam_task_key(task: SamTask) -> &'static str {
    match task {
        SamTask::LoadModel => "task-load-sam",
        SamTask::Encode => "task-encode",
        SamTask::Predict => "task-predict",
        SamTask::Everything => "task-everything",
        SamTask::Preencode => "task-preencode",
    }
}

/// The message key of what a text task is doing.
fn text_task_key(task: TextTask) -> &'static str {
    match task {
        TextTask::LoadModel => "task-load-text",
        TextTask::Run => "task-run-text",
        TextTask::Steps => "task-steps",
    }
}
