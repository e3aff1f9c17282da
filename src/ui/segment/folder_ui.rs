//! The Segment view's folder section: where the folder's work stands, next / previous, the
//! done mark, and the list of its images; and the list of keyboard and mouse shortcuts.

use super::{Notify, SegmentSettings, SegmentState};
use crate::annotate::folder::FolderExport;
use crate::tr;
use crate::ui::i18n::Lang;
use crate::ui::problems::{error_text, folder_written_text};

/// The list's height before it scrolls.
const LIST_HEIGHT: f32 = 220.0;

/// Every shortcut of the Segment view, in the language of `ui`: keys, then what they do.
pub fn shortcuts(ui: &egui::Ui) -> [(String, String); 12] {
    [
        (tr!(ui, "key-left-click"), tr!(ui, "do-foreground")),
        (tr!(ui, "key-right-click"), tr!(ui, "do-background")),
        (tr!(ui, "key-drag"), tr!(ui, "do-box")),
        (tr!(ui, "key-scroll"), tr!(ui, "do-zoom")),
        (tr!(ui, "key-middle-drag"), tr!(ui, "do-pan")),
        (tr!(ui, "key-enter"), tr!(ui, "do-keep")),
        ("Ctrl+Z".into(), tr!(ui, "do-undo")),
        ("Ctrl+Shift+Z".into(), tr!(ui, "do-redo")),
        ("H".into(), tr!(ui, "do-hover")),
        ("D".into(), tr!(ui, "do-next")),
        ("A".into(), tr!(ui, "do-previous")),
        (tr!(ui, "key-space"), tr!(ui, "do-done")),
    ]
}

/// The shortcuts, in a section that opens.
pub fn shortcuts_ui(ui: &mut egui::Ui) {
    egui::CollapsingHeader::new(tr!(ui, "shortcuts-title"))
        .id_salt("segment-shortcuts")
        .show(ui, |ui| {
            egui::Grid::new("segment-shortcut-grid")
                .num_columns(2)
                .show(ui, |ui| {
                    for (keys, what) in shortcuts(ui) {
                        ui.strong(keys);
                        ui.label(what);
                        ui.end_row();
                    }
                });
        });
}

impl SegmentState {
    /// The open folder: progress, save state, navigation, the done mark and the image list.
    pub(super) fn folder_ui(
        &mut self,
        ui: &mut egui::Ui,
        settings: &mut SegmentSettings,
        notify: Notify,
    ) {
        let Some(f) = &self.folder else { return };
        ui.separator();
        ui.heading(tr!(ui, "folder-title", name = f.name()));
        let saved = if let Some(e) = &f.save_error {
            let message = crate::ui::problems::problem_text(crate::ui::i18n::lang(ui.ctx()), e);
            let text = tr!(ui, "folder-not-saved", message = message);
            ui.colored_label(ui.visuals().error_fg_color, text);
            None
        } else if f.unsaved() {
            Some(tr!(ui, "folder-saving"))
        } else {
            Some(tr!(ui, "folder-saved"))
        };
        if let Some(saved) = saved {
            let (done, total) = (f.done_count(), f.images.len());
            let file = crate::annotate::folder::ANNOTATION_FILE;
            let text = tr!(
                ui,
                "folder-progress",
                done = done,
                total = total,
                saved = saved,
                file = file
            );
            ui.label(text).on_hover_text(f.dir.display().to_string());
        }
        if let Some(p) = self.encoding_ahead() {
            let name = p
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            ui.weak(tr!(ui, "folder-ahead", name = name))
                .on_hover_text(tr!(ui, "folder-ahead-hover"));
        }
        let current = f.current;
        let mut go = None;
        let mut close = false;
        let mut export = None;
        ui.horizontal_wrapped(|ui| {
            if ui.button(tr!(ui, "folder-previous")).clicked() {
                go = Some(Go::Step(-1));
            }
            if ui.button(tr!(ui, "folder-next")).clicked() {
                go = Some(Go::Step(1));
            }
            if ui
                .button(tr!(ui, "folder-next-not-done"))
                .on_hover_text(tr!(ui, "folder-next-not-done-hover"))
                .clicked()
            {
                go = f.next_not_done(current).map(Go::To);
                if go.is_none() {
                    notify(Ok(tr!(ui, "folder-all-done")));
                }
            }
            if ui.button(tr!(ui, "folder-close")).clicked() {
                close = true;
            }
        });
        if let Some(i) = current {
            let mut done = f.is_done(i);
            if ui
                .checkbox(&mut done, tr!(ui, "folder-done"))
                .on_hover_text(tr!(ui, "folder-done-hover"))
                .changed()
            {
                self.set_done(i, done, &settings.labels);
            }
        }
        let f = self.folder.as_ref().expect("checked above");
        egui::ScrollArea::vertical()
            .id_salt("folder-images")
            .max_height(LIST_HEIGHT)
            .show_rows(
                ui,
                ui.spacing().interact_size.y,
                f.images.len(),
                |ui, rows| {
                    for i in rows {
                        let n = f.object_count(i);
                        let image = f.images[i].as_str();
                        let mut text = tr!(ui, "folder-image-row", image = image, objects = n);
                        if f.is_done(i) {
                            text.push_str(&tr!(ui, "folder-image-done"));
                        }
                        if ui.selectable_label(current == Some(i), text).clicked() {
                            go = Some(Go::To(i));
                        }
                    }
                },
            );
        ui.horizontal_wrapped(|ui| {
            ui.label(tr!(ui, "folder-export"));
            let busy = self.exporting();
            let targets = [
                ("COCO…", tr!(ui, "folder-export-coco-hover")),
                ("YOLO…", tr!(ui, "folder-export-yolo-hover")),
                ("LabelMe", tr!(ui, "folder-export-labelme-hover")),
            ];
            for (i, (name, hint)) in targets.into_iter().enumerate() {
                if ui
                    .add_enabled(!busy, egui::Button::new(name))
                    .on_hover_text(hint)
                    .clicked()
                {
                    export = Some(i);
                }
            }
        });
        let to = match export {
            Some(0) => rfd::FileDialog::new()
                .add_filter("COCO JSON", &["json"])
                .set_file_name(format!("{}-coco.json", f.name()))
                .save_file()
                .map(|path| FolderExport::Coco {
                    path,
                    shape: settings.coco_shape,
                }),
            Some(1) => rfd::FileDialog::new()
                .set_directory(&f.dir)
                .pick_folder()
                .map(|dir| FolderExport::Yolo { dir }),
            Some(_) => Some(FolderExport::LabelMe),
            None => None,
        };
        if let Some(to) = to {
            self.export_folder(to, settings, crate::ui::i18n::lang(ui.ctx()));
        }
        match go {
            Some(Go::To(i)) => self.go_to(i, ui.ctx()),
            Some(Go::Step(d)) => self.step_image(d, ui.ctx()),
            None => {}
        }
        if close {
            let lang = crate::ui::i18n::lang(ui.ctx());
            self.close_folder(settings, lang, notify);
        }
    }

    /// Writes the whole folder's annotations as `to` says, on a job (the status bar says what
    /// was written, in `lang`).
    pub fn export_folder(&mut self, to: FolderExport, settings: &SegmentSettings, lang: Lang) {
        let Some(f) = &self.folder else { return };
        let newest = f.newest(&settings.labels);
        let (dir, labels, tolerance) =
            (f.dir.clone(), settings.labels.clone(), settings.simplify_px);
        self.exports.submit(move |_| {
            newest()
                .export(&dir, &to, &labels, tolerance)
                .map(|(written, notices)| folder_written_text(lang, &written, &notices))
                .map_err(|e| error_text(lang, &e))
        });
    }

    /// Marks the folder's image `i` done or not (saved).
    pub fn set_done(&mut self, i: usize, done: bool, labels: &[String]) {
        if let Some(f) = &mut self.folder {
            f.set_done(i, done, labels);
        }
    }

    /// Toggles the current image's done mark (Space).
    pub fn toggle_done(&mut self, labels: &[String]) {
        if let Some(i) = self.folder.as_ref().and_then(|f| f.current) {
            let done = self.folder.as_ref().is_some_and(|f| f.is_done(i));
            self.set_done(i, !done, labels);
        }
    }
}

/// Where the folder list sends the user.
enum Go {
    To(usize),
    Step(isize),
}
