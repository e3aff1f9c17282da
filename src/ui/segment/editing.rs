//! Editing a kept object's mask ([`crate::annotate::edit`]): add or subtract the chosen
//! candidate, fill holes, remove small parts, keep the largest; each step undoable. The edit
//! runs on a job (tens of milliseconds on a 12-megapixel mask), then the object's overlay is
//! remade on another, the old one shown meanwhile; undo and redo swap masks at once.

use crate::ui::i18n::Lang;
use std::sync::Arc;

use super::objects::mask_texture;
use super::SegmentState;
use crate::annotate::edit::{apply, EditError, EditOp};
use crate::types::Mask;

/// Why an edit step was refused, in `lang`.
fn edit_error_text(lang: Lang, e: &EditError) -> String {
    match *e {
        EditError::NoOther => crate::tr_lang!(lang, "edit-err-no-other"),
        EditError::Size(w, h, ow, oh) => {
            crate::tr_lang!(lang, "edit-err-size", w = w, h = h, ow = ow, oh = oh)
        }
        EditError::Empty => crate::tr_lang!(lang, "edit-err-empty"),
    }
}

/// A remade overlay: the object's id (its index is not stable), its revision, the texture.
pub type ObjectOverlay = (usize, u64, egui::TextureHandle);

/// A finished edit: the object's index, the mask it started from, the step, its result.
pub struct EditDone {
    index: usize,
    from: Arc<Mask>,
    op: EditOp,
    result: Result<Mask, EditError>,
}

impl SegmentState {
    /// Starts applying `op` to object `i` (with the chosen candidate for union and
    /// difference) on a job; the next frame records the step for undo. One edit at a time.
    /// Refused (with the message in `lang`) while another edit runs.
    pub fn edit_object(&mut self, i: usize, op: EditOp, lang: Lang) -> Result<(), String> {
        if self.edit_job.is_pending() {
            return Err(crate::tr_lang!(lang, "edit-busy"));
        }
        let other = self.selected_mask().cloned();
        let Some(o) = self.objects.get(i) else {
            return Ok(()); // the object went away since the click: nothing to do
        };
        let from = o.mask.clone();
        self.edit_job.submit(move |_| {
            let result = apply(&from, op, other.as_deref());
            EditDone {
                index: i,
                from,
                op,
                result,
            }
        });
        Ok(())
    }

    /// True while an edit runs.
    pub fn editing_mask(&self) -> bool {
        self.edit_job.is_pending()
    }

    /// Takes a finished edit: its object's new mask (the old one kept for undo), unless the
    /// mask changed meanwhile (an undo, another image). Once per frame.
    pub(super) fn poll_edit(&mut self, lang: Lang, notify: super::Notify) {
        let Some(done) = self.edit_job.poll() else {
            return;
        };
        let Some(o) = self
            .objects
            .get_mut(done.index)
            .filter(|o| Arc::ptr_eq(&o.mask, &done.from))
        else {
            return; // that mask is gone: the edit no longer applies
        };
        match done.result {
            Ok(edited) if edited == *o.mask => {
                let op = op_label(lang, done.op);
                notify(Err(crate::tr_lang!(lang, "edit-nothing-changed", op = op)));
            }
            Ok(edited) => {
                let before = std::mem::replace(&mut o.mask, Arc::new(edited));
                o.edits.record(before);
                o.revision += 1;
            }
            Err(e) => notify(Err(edit_error_text(lang, &e))),
        }
    }

    /// Undoes the last edit of object `i`; false when there is none.
    pub fn undo_object_edit(&mut self, i: usize) -> bool {
        self.step_object(i, true)
    }

    /// Redoes the last undone edit of object `i`; false when there is none.
    pub fn redo_object_edit(&mut self, i: usize) -> bool {
        self.step_object(i, false)
    }

    fn step_object(&mut self, i: usize, undo: bool) -> bool {
        let Some(o) = self.objects.get_mut(i) else {
            return false;
        };
        let current = o.mask.clone();
        let result = if undo {
            o.edits.undo(current)
        } else {
            o.edits.redo(current)
        };
        match result {
            Ok(m) => {
                o.mask = m;
                o.revision += 1;
                true
            }
            Err(m) => {
                o.mask = m;
                false
            }
        }
    }

    /// Starts remaking the overlay of one edited object, takes a finished one. Once per frame.
    pub(super) fn poll_object_overlays(&mut self, ctx: &egui::Context) {
        if let Some((id, revision, tex)) = self.object_overlays.poll() {
            if let Some(o) = self.objects.get_mut(id) {
                if o.revision == revision {
                    o.overlay = Some(tex);
                    o.overlay_revision = revision;
                }
            }
        }
        if self.object_overlays.is_pending() {
            return;
        }
        let Some(size) = self.image.as_ref().map(|i| i.display_size) else {
            return;
        };
        if let Some((i, o)) = self
            .objects
            .iter()
            .enumerate()
            .find(|(_, o)| o.overlay_revision != o.revision)
        {
            let (mask, revision, ctx): (Arc<Mask>, u64, egui::Context) =
                (o.mask.clone(), o.revision, ctx.clone());
            self.object_overlays.submit(move |_| {
                (
                    i,
                    revision,
                    mask_texture(&ctx, &format!("object {i}"), &mask, size),
                )
            });
        }
    }

    /// The editing tools of object `i` (under its row in the Objects list).
    pub(super) fn object_edit_ui(&mut self, ui: &mut egui::Ui, i: usize, notify: super::Notify) {
        let has_other = self.selected_mask().is_some();
        let idle = !self.editing_mask();
        let lang = crate::ui::i18n::lang(ui.ctx());
        let mut op = None;
        ui.horizontal_wrapped(|ui| {
            for o in [EditOp::Union, EditOp::Difference] {
                if ui
                    .add_enabled(has_other && idle, egui::Button::new(op_label(lang, o)))
                    .on_disabled_hover_text(crate::tr!(ui, "edit-need-mask"))
                    .clicked()
                {
                    op = Some(o);
                }
            }
            for o in [EditOp::FillHoles, EditOp::KeepLargest] {
                if ui
                    .add_enabled(idle, egui::Button::new(op_label(lang, o)))
                    .clicked()
                {
                    op = Some(o);
                }
            }
            if !idle {
                ui.weak(crate::tr!(ui, "edit-busy"));
            }
        });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(idle, egui::Button::new(crate::tr!(ui, "edit-remove-under")))
                .clicked()
            {
                op = Some(EditOp::RemoveSmall(self.min_part_px));
            }
            ui.add(
                egui::DragValue::new(&mut self.min_part_px)
                    .range(1..=1_000_000)
                    .suffix(" px"),
            );
        });
        ui.horizontal(|ui| {
            let (can_undo, can_redo) = self
                .objects
                .get(i)
                .map_or((false, false), |o| (o.edits.can_undo(), o.edits.can_redo()));
            if ui
                .add_enabled(
                    can_undo && idle,
                    egui::Button::new(crate::tr!(ui, "edit-undo")),
                )
                .clicked()
            {
                self.undo_object_edit(i);
            }
            if ui
                .add_enabled(
                    can_redo && idle,
                    egui::Button::new(crate::tr!(ui, "edit-redo")),
                )
                .clicked()
            {
                self.redo_object_edit(i);
            }
        });
        if let Some(op) = op {
            if let Err(e) = self.edit_object(i, op, crate::ui::i18n::lang(ui.ctx())) {
                notify(Err(e));
            }
        }
    }
}

/// A mask-editing step's button words in `lang`.
fn op_label(lang: Lang, op: EditOp) -> String {
    match op {
        EditOp::Union => crate::tr_lang!(lang, "edit-union"),
        EditOp::Difference => crate::tr_lang!(lang, "edit-difference"),
        EditOp::FillHoles => crate::tr_lang!(lang, "edit-fill-holes"),
        EditOp::RemoveSmall(px) => crate::tr_lang!(lang, "edit-remove-small", px = px),
        EditOp::KeepLargest => crate::tr_lang!(lang, "edit-keep-largest"),
    }
}
