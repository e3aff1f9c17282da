//! The Segment view's folder section: where the folder's work stands, next / previous, the
//! done mark, and the list of its images; and the list of keyboard and mouse shortcuts.

use super::{Notify, SegmentSettings, SegmentState};
use crate::annotate::folder::FolderExport;

/// The list's height before it scrolls.
const LIST_HEIGHT: f32 = 220.0;

/// Every shortcut of the Segment view: keys, then what they do.
pub const SHORTCUTS: [(&str, &str); 12] = [
    ("Left click", "foreground point"),
    ("Right click", "background point"),
    ("Drag", "box"),
    ("Scroll", "zoom around the pointer"),
    ("Middle drag", "pan"),
    ("Enter", "keep the mask as an object"),
    ("Ctrl+Z", "undo the last prompt"),
    ("Ctrl+Shift+Z", "redo"),
    ("H", "hover preview on / off"),
    ("D", "next image of the folder"),
    ("A", "previous image of the folder"),
    ("Space", "mark the image done / not done"),
];

/// The shortcuts, in a section that opens.
pub fn shortcuts_ui(ui: &mut egui::Ui) {
    egui::CollapsingHeader::new("Keyboard and mouse")
        .id_salt("segment-shortcuts")
        .show(ui, |ui| {
            egui::Grid::new("segment-shortcut-grid")
                .num_columns(2)
                .show(ui, |ui| {
                    for (keys, what) in SHORTCUTS {
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
        ui.heading(format!("Folder: {}", f.name()));
        let saved = if let Some(e) = &f.save_error {
            ui.colored_label(ui.visuals().error_fg_color, format!("not saved: {e}"));
            None
        } else if f.unsaved() {
            Some("saving…")
        } else {
            Some("saved")
        };
        if let Some(saved) = saved {
            ui.label(format!(
                "{} of {} images done · {saved} in {}",
                f.done_count(),
                f.images.len(),
                crate::annotate::folder::ANNOTATION_FILE
            ))
            .on_hover_text(f.dir.display().to_string());
        }
        if let Some(p) = self.encoding_ahead() {
            let name = p
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            ui.weak(format!("encoding {name} ahead…")).on_hover_text(
                "The next image's embedding goes to the disk cache in the background, \
                 so opening it is instant; clicks here come first",
            );
        }
        let current = f.current;
        let mut go = None;
        let mut close = false;
        let mut export = None;
        ui.horizontal_wrapped(|ui| {
            if ui.button("Previous (A)").clicked() {
                go = Some(Go::Step(-1));
            }
            if ui.button("Next (D)").clicked() {
                go = Some(Go::Step(1));
            }
            if ui
                .button("Next not done")
                .on_hover_text("The next image without a done mark")
                .clicked()
            {
                go = f.next_not_done(current).map(Go::To);
                if go.is_none() {
                    notify(Ok("every image of the folder is done".into()));
                }
            }
            if ui.button("Close folder").clicked() {
                close = true;
            }
        });
        if let Some(i) = current {
            let mut done = f.is_done(i);
            if ui
                .checkbox(&mut done, "This image is done")
                .on_hover_text("Space. Keeping the first object marks it done.")
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
                        let mut text = format!(
                            "{} · {n} object{}",
                            f.images[i],
                            if n == 1 { "" } else { "s" }
                        );
                        if f.is_done(i) {
                            text.push_str(" · done");
                        }
                        if ui.selectable_label(current == Some(i), text).clicked() {
                            go = Some(Go::To(i));
                        }
                    }
                },
            );
        ui.horizontal_wrapped(|ui| {
            ui.label("Export the folder:");
            let busy = self.exporting();
            let targets = [
                (
                    "COCO…",
                    "One COCO instances file, shaped as the COCO export's menu says",
                ),
                (
                    "YOLO…",
                    "A label file per image and data.yaml, in a folder you pick",
                ),
                ("LabelMe", "A LabelMe JSON beside each image"),
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
            self.export_folder(to, settings);
        }
        match go {
            Some(Go::To(i)) => self.go_to(i, ui.ctx()),
            Some(Go::Step(d)) => self.step_image(d, ui.ctx()),
            None => {}
        }
        if close {
            self.close_folder(settings, notify);
        }
    }

    /// Writes the whole folder's annotations as `to` says, on a job (the status bar says what
    /// was written).
    pub fn export_folder(&mut self, to: FolderExport, settings: &SegmentSettings) {
        let Some(f) = &self.folder else { return };
        let newest = f.newest(&settings.labels);
        let (dir, labels, tolerance) =
            (f.dir.clone(), settings.labels.clone(), settings.simplify_px);
        self.exports.submit(move |_| {
            newest()
                .export(&dir, &to, &labels, tolerance)
                .map(|notices| notices.join("; "))
                .map_err(|e| crate::error::one_line(&e))
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
