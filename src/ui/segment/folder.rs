//! The Segment view's folder: its images in a list with their done marks, next / previous,
//! and every image's objects saved to the folder's COCO file
//! ([`crate::annotate::folder::ANNOTATION_FILE`]) after each change, on a job, atomically.
//!
//! The current image's objects live in the view as masks; the others as RLE in
//! [`FolderAnnotations`]. A change of the current image's objects (kept, removed, relabelled,
//! edited) is noticed by comparing a fingerprint each frame, so no action can forget to save.
//! Until the save job has run-length encoded the new masks they wait in `pending`, and every
//! save writes them too: the file always holds the newest state, and saves never overtake each
//! other (each carries a sequence number; an older one that comes late writes nothing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::annotate::folder::{FolderAnnotations, ImageRecord, StoredObject};
use crate::jobs::{Jobs, Slot};
use crate::tr_lang;
use crate::types::problem::{Problem, SkippedAnnotation};
use crate::types::Mask;
use crate::ui::i18n::Lang;

/// A label and a mask.
pub type LabeledMask = (String, Arc<Mask>);

/// What reading a folder found (from the scan job).
pub struct FolderScan {
    /// The folder.
    pub dir: PathBuf,
    /// Its images, in natural order.
    pub images: Vec<String>,
    /// Its annotation file's content.
    pub annotations: FolderAnnotations,
    /// What could not be read, one line each.
    pub notices: Vec<String>,
}

impl FolderScan {
    /// Lists `dir`'s images and reads its annotation file; one that cannot be read is moved
    /// aside (said in the notices, in `lang`), never overwritten.
    pub fn read(dir: PathBuf, lang: Lang) -> anyhow::Result<Self> {
        // One spelling of the folder, so that files opened or dropped from it are known.
        let dir = dir.canonicalize().unwrap_or(dir);
        let images = crate::annotate::folder::list_images(&dir)?;
        if images.is_empty() {
            let dir = dir.display().to_string();
            anyhow::bail!(tr_lang!(lang, "folder-no-image", dir = dir));
        }
        let (annotations, mut notices) = match FolderAnnotations::load(&dir) {
            Ok((found, skipped)) => {
                let notices = skipped.iter().map(|s| skipped_text(lang, s)).collect();
                (found, notices)
            }
            Err(e) => {
                let moved = crate::annotate::folder::set_aside(&dir)?
                    .display()
                    .to_string();
                let why = crate::ui::problems::error_text(lang, &e);
                let notice = tr_lang!(lang, "folder-set-aside", why = why, path = moved);
                (FolderAnnotations::default(), vec![notice])
            }
        };
        let n = notices.len();
        if n > 3 {
            notices.truncate(3);
            notices.push(tr_lang!(lang, "folder-more-notices", n = n - 3));
        }
        Ok(Self {
            dir,
            images,
            annotations,
            notices,
        })
    }
}

/// An annotation left out of the folder's file, in `lang`.
fn skipped_text(lang: Lang, s: &SkippedAnnotation) -> String {
    match &s.image {
        None => tr_lang!(lang, "folder-skipped-no-image", n = s.index),
        Some(image) => tr_lang!(
            lang,
            "folder-skipped",
            n = s.index,
            image = image.as_str(),
            why = s.why.as_str()
        ),
    }
}

/// What a save job did.
struct Saved {
    /// The masks it encoded: image, generation, objects.
    encoded: Vec<(String, u64, Vec<StoredObject>)>,
    /// Written, or why not.
    outcome: Result<(), Problem>,
}

/// An image's objects not yet encoded: the generation of the change, its masks, and objects
/// kept in the file that the view could not show.
type Pending = (u64, Vec<LabeledMask>, Vec<StoredObject>);

/// An open folder.
pub struct FolderState {
    /// The folder.
    pub dir: PathBuf,
    /// Its images, in natural order.
    pub images: Vec<String>,
    /// Every image's objects and marks (the current image's as of its last save).
    pub annotations: FolderAnnotations,
    /// The image on screen, when it is one of the folder's.
    pub current: Option<usize>,
    pending: BTreeMap<String, Pending>,
    generation: u64,
    saves: Slot<Saved>,
    /// The sequence number of the newest save written.
    written: Arc<Mutex<u64>>,
    sequence: u64,
    /// Objects of the current image the view could not show (kept in the file).
    pub hidden: Vec<StoredObject>,
    /// The current image's objects as last saved: label and mask identity.
    fingerprint: Vec<(String, usize)>,
    /// Why the last save failed, until one succeeds.
    pub save_error: Option<Problem>,
    /// Saves submitted and not yet done.
    pub saving: bool,
}

/// The identity of a set of objects: labels and mask allocations (an edit makes a new mask).
pub fn fingerprint<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a Arc<Mask>)>,
) -> Vec<(String, usize)> {
    objects
        .into_iter()
        .map(|(l, m)| (l.to_owned(), Arc::as_ptr(m) as usize))
        .collect()
}

impl FolderState {
    /// The folder `scan` read, saving on `jobs`.
    pub fn new(scan: FolderScan, jobs: &Jobs) -> Self {
        Self {
            dir: scan.dir,
            images: scan.images,
            annotations: scan.annotations,
            current: None,
            pending: BTreeMap::new(),
            generation: 0,
            saves: Slot::new(jobs),
            written: Arc::new(Mutex::new(0)),
            sequence: 0,
            hidden: Vec::new(),
            fingerprint: Vec::new(),
            save_error: None,
            saving: false,
        }
    }

    /// The folder's name for headings.
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The index of `path` among the folder's images.
    pub fn index_of(&self, path: &Path) -> Option<usize> {
        let parent = path.parent()?;
        if parent != self.dir && parent.canonicalize().ok().as_ref() != Some(&self.dir) {
            return None;
        }
        let name = path.file_name()?.to_string_lossy();
        self.images.iter().position(|n| *n == name)
    }

    /// The path of image `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.images[i])
    }

    /// Whether image `i` is marked done.
    pub fn is_done(&self, i: usize) -> bool {
        self.annotations
            .images
            .get(&self.images[i])
            .is_some_and(|r| r.done)
    }

    /// Objects stored for image `i` (the newest: not yet encoded ones first).
    pub fn object_count(&self, i: usize) -> usize {
        let name = &self.images[i];
        match self.pending.get(name) {
            Some((_, masks, kept)) => masks.len() + kept.len(),
            None => self
                .annotations
                .images
                .get(name)
                .map_or(0, |r| r.objects.len()),
        }
    }

    /// Images marked done.
    pub fn done_count(&self) -> usize {
        self.annotations.done_count(&self.images)
    }

    /// The first image after `from` (wrapping) not marked done.
    pub fn next_not_done(&self, from: Option<usize>) -> Option<usize> {
        let n = self.images.len();
        let start = from.map_or(0, |i| i + 1);
        (0..n).map(|k| (start + k) % n).find(|&i| !self.is_done(i))
    }

    /// What the view should show for image `i`: masks of a change not yet encoded, or the
    /// stored objects.
    pub fn stored(&self, i: usize) -> StoredObjects {
        let name = &self.images[i];
        match self.pending.get(name) {
            Some((_, masks, kept)) => StoredObjects {
                masks: masks.clone(),
                encoded: kept.clone(),
            },
            None => StoredObjects {
                masks: Vec::new(),
                encoded: self
                    .annotations
                    .images
                    .get(name)
                    .map(|r| r.objects.clone())
                    .unwrap_or_default(),
            },
        }
    }

    /// Image `i` is on screen, `width × height`, showing objects of `fingerprint`, with
    /// `hidden` ones it could not show.
    pub fn arrived(
        &mut self,
        i: usize,
        (width, height): (usize, usize),
        fingerprint: Vec<(String, usize)>,
        hidden: Vec<StoredObject>,
    ) {
        self.current = Some(i);
        self.fingerprint = fingerprint;
        self.hidden = hidden;
        let r = self
            .annotations
            .images
            .entry(self.images[i].clone())
            .or_default();
        r.width = width;
        r.height = height;
    }

    /// Records the current image's objects if they changed since the last save, and saves.
    /// The first object kept on an image marks it done. Returns whether it saved.
    pub fn sync(&mut self, objects: &[LabeledMask], labels: &[String]) -> bool {
        let Some(i) = self.current else { return false };
        let now = fingerprint(objects.iter().map(|(l, m)| (l.as_str(), m)));
        if now == self.fingerprint {
            return false;
        }
        let name = self.images[i].clone();
        if self.fingerprint.is_empty() && self.hidden.is_empty() {
            if let Some(r) = self.annotations.images.get_mut(&name) {
                r.done = true;
            }
        }
        self.fingerprint = now;
        self.generation += 1;
        self.pending.insert(
            name,
            (self.generation, objects.to_vec(), self.hidden.clone()),
        );
        self.save(labels);
        true
    }

    /// Marks image `i` done or not, and saves.
    pub fn set_done(&mut self, i: usize, done: bool, labels: &[String]) {
        let r = self
            .annotations
            .images
            .entry(self.images[i].clone())
            .or_default();
        if r.done != done {
            r.done = done;
            self.save(labels);
        }
    }

    /// Renames label `old` to `new` in every image's objects (a label renamed, or removed
    /// and its objects given another), and saves.
    pub fn relabel(&mut self, old: &str, new: &str, labels: &[String]) {
        let rename = |o: &mut String| {
            let hit = o == old;
            if hit {
                *o = new.to_owned();
            }
            hit
        };
        let mut changed = false;
        for r in self.annotations.images.values_mut() {
            for o in &mut r.objects {
                changed |= rename(&mut o.label);
            }
        }
        for o in &mut self.hidden {
            changed |= rename(&mut o.label);
        }
        for (generation, masks, kept) in self.pending.values_mut() {
            let mut hit = false;
            for (l, _) in masks.iter_mut() {
                hit |= rename(l);
            }
            for o in kept.iter_mut() {
                hit |= rename(&mut o.label);
            }
            if hit {
                // A save in flight encoded the old labels: its result must not replace these.
                self.generation += 1;
                *generation = self.generation;
                changed = true;
            }
        }
        self.annotations.categories.retain(|c| c != old);
        if changed {
            self.save(labels);
        }
    }

    /// The annotations to write now: the stored ones with the pending masks, and what was
    /// encoded. Categories: `labels` first.
    fn snapshot(&self, labels: &[String]) -> (FolderAnnotations, BTreeMap<String, Pending>) {
        let mut a = self.annotations.clone();
        a.categories = crate::annotate::formats::categories(
            labels,
            self.annotations.categories.iter().map(String::as_str),
        );
        (a, self.pending.clone())
    }

    /// The whole folder's newest annotations, made on the calling thread (a job: the masks
    /// not yet encoded are encoded there) by the returned closure.
    pub fn newest(&self, labels: &[String]) -> impl FnOnce() -> FolderAnnotations + Send + 'static {
        let (mut annotations, pending) = self.snapshot(labels);
        move || {
            encode_pending(&mut annotations, pending);
            annotations
        }
    }

    /// Saves on a job (the newest state; see the module doc).
    pub fn save(&mut self, labels: &[String]) {
        let (annotations, pending) = self.snapshot(labels);
        self.sequence += 1;
        let (seq, written, dir) = (self.sequence, self.written.clone(), self.dir.clone());
        self.saving = true;
        self.saves
            .submit(move |_| write(&dir, annotations, pending, seq, &written));
    }

    /// Writes the newest state now, on this thread (at exit, or when the folder closes), if a
    /// save is pending.
    pub fn flush(&mut self, labels: &[String]) -> Result<(), Problem> {
        if !self.saving && self.pending.is_empty() {
            return Ok(());
        }
        let (annotations, pending) = self.snapshot(labels);
        self.sequence += 1;
        self.saves.cancel();
        let saved = write(
            &self.dir,
            annotations,
            pending,
            self.sequence,
            &self.written,
        );
        self.saving = false;
        self.apply(saved)
    }

    /// Applies a finished save: encoded masks replace their pending entries (unless changed
    /// since). Returns the save's error, if any, once.
    pub fn poll(&mut self) -> Option<Result<(), Problem>> {
        let saved = self.saves.poll()?;
        self.saving = self.saves.is_pending();
        Some(self.apply(saved))
    }

    fn apply(&mut self, saved: Saved) -> Result<(), Problem> {
        for (name, generation, objects) in saved.encoded {
            if self.pending.get(&name).is_some_and(|p| p.0 == generation) {
                self.pending.remove(&name);
                self.annotations.images.entry(name).or_default().objects = objects;
            }
        }
        match saved.outcome {
            Ok(()) => {
                self.save_error = None;
                Ok(())
            }
            Err(e) => {
                self.save_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// True while changes are not yet on disk.
    pub fn unsaved(&self) -> bool {
        self.saving || !self.pending.is_empty() || self.save_error.is_some()
    }
}

/// Run-length encodes the `pending` masks into `annotations`; returns what was encoded:
/// image, generation, objects.
fn encode_pending(
    annotations: &mut FolderAnnotations,
    pending: BTreeMap<String, Pending>,
) -> Vec<(String, u64, Vec<StoredObject>)> {
    let mut encoded = Vec::new();
    for (name, (generation, masks, kept)) in pending {
        let mut objects: Vec<StoredObject> = masks
            .iter()
            .map(|(label, m)| StoredObject::from_mask(label, m))
            .collect();
        objects.extend(kept);
        let record: &mut ImageRecord = annotations.images.entry(name.clone()).or_default();
        record.objects = objects.clone();
        encoded.push((name, generation, objects));
    }
    encoded
}

/// What the view shows for one image of the folder.
#[derive(Default, Clone)]
pub struct StoredObjects {
    /// Masks of a change not yet encoded.
    pub masks: Vec<LabeledMask>,
    /// Encoded objects.
    pub encoded: Vec<StoredObject>,
}

/// Encodes the pending masks into `annotations` and writes the folder's file, unless a newer
/// save (sequence number over `seq`) was written already.
fn write(
    dir: &Path,
    mut annotations: FolderAnnotations,
    pending: BTreeMap<String, Pending>,
    seq: u64,
    written: &Mutex<u64>,
) -> Saved {
    let encoded = encode_pending(&mut annotations, pending);
    let outcome = match written.lock() {
        Ok(mut newest) if *newest < seq => match annotations.save(dir) {
            Ok(()) => {
                *newest = seq;
                Ok(())
            }
            Err(e) => Err(crate::error::problem(&e)),
        },
        Ok(_) => Ok(()), // a newer state is on disk already
        Err(_) => Err(Problem::EarlierSaveFailed),
    };
    Saved { encoded, outcome }
}
