//! Opening images: where they come from, decoding them and making the display texture on a
//! background job (the newest image opened wins: one that finishes decoding late never replaces
//! it), and the image on screen.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{ColorImage, TextureHandle, TextureOptions};

use super::folder::{LabeledMask, StoredObjects};
use crate::annotate::folder::StoredObject;
use crate::jobs::{Jobs, Slot};
use crate::types::{Mask, Rgb8};

/// Longest side of display textures (the model still sees and returns full resolution).
pub const MAX_DISPLAY_SIDE: usize = 2048;

/// Sample images bundled in the binary (see `assets/README.md` for their licences).
pub const SAMPLES: [(&str, &[u8]); 3] = [
    ("chelsea.png", include_bytes!("../../../assets/chelsea.png")),
    (
        "astronaut.png",
        include_bytes!("../../../assets/astronaut.png"),
    ),
    ("rocket.jpg", include_bytes!("../../../assets/rocket.jpg")),
];

/// Where an image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// A file on disk (dialog, drag and drop, last session).
    File(PathBuf),
    /// A bundled sample.
    Sample(&'static str, &'static [u8]),
}

impl ImageSource {
    /// The file name.
    pub fn name(&self) -> String {
        match self {
            Self::File(p) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            Self::Sample(n, _) => (*n).to_string(),
        }
    }

    /// The file, when the image comes from disk.
    pub fn path(&self) -> Option<&PathBuf> {
        match self {
            Self::File(p) => Some(p),
            Self::Sample(..) => None,
        }
    }
}

/// Decodes an image (the same code path for the dialog, drag and drop and samples).
pub fn decode_image(src: &ImageSource) -> anyhow::Result<Rgb8> {
    match src {
        ImageSource::File(p) => Ok(crate::image_io::load_rgb8(p)?),
        ImageSource::Sample(name, bytes) => Ok(crate::image_io::decode_rgb8(bytes, name)?),
    }
}

/// The image on screen.
pub struct LoadedImage {
    /// Identifies the image in worker messages.
    pub id: u64,
    /// File name.
    pub name: String,
    /// The file, when it came from disk.
    pub path: Option<PathBuf>,
    /// Full-resolution pixels.
    pub rgb: Arc<Rgb8>,
    /// The picture on screen (downscaled when larger than [`MAX_DISPLAY_SIDE`]).
    pub texture: TextureHandle,
    /// The texture's size `(width, height)`: the size of the mask overlays too.
    pub display_size: (usize, usize),
}

/// A file's size and modification time: a file decoded earlier whose stamp is unchanged is
/// not decoded again.
pub type FileStamp = (u64, std::time::SystemTime);

/// `path`'s stamp (`None` when it cannot be read: then it is always decoded again).
pub fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Pixels decoded earlier (the folder's image encoded ahead) with the stamp of their file then.
pub struct Decoded {
    /// The file's stamp when it was decoded.
    pub stamp: Option<FileStamp>,
    /// The pixels.
    pub rgb: Arc<Rgb8>,
}

/// A decoded image and its display texture, from the loader job.
pub struct Opened {
    /// Where it came from.
    pub source: ImageSource,
    /// Full-resolution pixels.
    pub rgb: Arc<Rgb8>,
    /// The display texture.
    pub texture: TextureHandle,
    /// Its size `(width, height)`.
    pub display_size: (usize, usize),
    /// Its stored objects (a folder's image): label, mask, overlay at display size.
    pub objects: Vec<(String, Arc<Mask>, TextureHandle)>,
    /// Stored objects whose size is not the image's (kept in the file, not shown).
    pub hidden: Vec<StoredObject>,
    /// What the user should know about the stored objects, one line each.
    pub notices: Vec<String>,
}

/// Decodes images off the UI thread.
pub struct ImageLoader {
    slot: Slot<anyhow::Result<Opened>>,
    /// The name of the image being decoded.
    pub loading: Option<String>,
    /// Its file, when it comes from disk.
    pub loading_path: Option<PathBuf>,
}

impl ImageLoader {
    /// A loader on `jobs`' threads.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            slot: Slot::new(jobs),
            loading: None,
            loading_path: None,
        }
    }

    /// Starts decoding `src` and the masks of its `stored` objects, making their overlays;
    /// an image still decoding from an earlier call is dropped. `decoded`: its pixels, decoded
    /// before, used when its file has not changed since.
    pub fn open(
        &mut self,
        src: ImageSource,
        stored: StoredObjects,
        decoded: Option<Decoded>,
        ctx: &egui::Context,
    ) {
        self.loading = Some(src.name());
        self.loading_path = src.path().cloned();
        let ctx = ctx.clone();
        self.slot.submit(move |_| {
            let unchanged = |d: &Decoded| {
                d.stamp.is_some() && src.path().and_then(|p| file_stamp(p)) == d.stamp
            };
            let rgb = match decoded.filter(unchanged) {
                Some(d) => d.rgb,
                None => Arc::new(decode_image(&src)?),
            };
            let name = src.name();
            let (texture, display_size) = display_texture(&ctx, &name, &rgb);
            let lang = crate::ui::i18n::lang(&ctx);
            let size = (rgb.width, rgb.height);
            let (masks, hidden, notices) = stored_masks(stored, &name, size, lang);
            let objects = masks
                .into_iter()
                .enumerate()
                .map(|(i, (label, mask))| {
                    let t = super::objects::mask_texture(
                        &ctx,
                        &format!("{name} object {i}"),
                        &mask,
                        display_size,
                    );
                    (label, mask, t)
                })
                .collect();
            Ok(Opened {
                source: src,
                rgb,
                texture,
                display_size,
                objects,
                hidden,
                notices,
            })
        });
    }

    /// The newest image, once it is decoded (or why it could not be).
    pub fn poll(&mut self) -> Option<anyhow::Result<Opened>> {
        let r = self.slot.poll();
        if !self.slot.is_pending() {
            self.loading = None; // done, or the job was lost to a bug: stop saying "decoding"
            self.loading_path = None;
        }
        r
    }
}

/// The masks of an image's stored objects, decoded, and those whose size is not the image's
/// `(width, height)` (with a notice in `lang`: the image file changed since they were made).
fn stored_masks(
    stored: StoredObjects,
    name: &str,
    (width, height): (usize, usize),
    lang: crate::ui::i18n::Lang,
) -> (Vec<LabeledMask>, Vec<StoredObject>, Vec<String>) {
    let mut masks: Vec<LabeledMask> = stored.masks; // made in this session, not yet encoded
    let mut hidden = Vec::new();
    for o in stored.encoded {
        if o.rle.size == [height, width] {
            masks.push((o.label.clone(), Arc::new(o.mask())));
        } else {
            hidden.push(o);
        }
    }
    let notices = if hidden.is_empty() {
        Vec::new()
    } else {
        let [h, w] = hidden[0].rle.size;
        vec![crate::tr_lang!(
            lang,
            "folder-hidden-objects",
            image = name,
            n = hidden.len(),
            w = w,
            h = h,
            width = width,
            height = height
        )]
    };
    (masks, hidden, notices)
}

/// The display size of a `w × h` image: at most [`MAX_DISPLAY_SIDE`] on its longest side.
pub fn display_dims(w: usize, h: usize) -> (usize, usize) {
    let side = w.max(h);
    if side <= MAX_DISPLAY_SIDE {
        (w, h)
    } else {
        let s = MAX_DISPLAY_SIDE as f64 / side as f64;
        (
            ((w as f64 * s) as usize).max(1),
            ((h as f64 * s) as usize).max(1),
        )
    }
}

/// The image's texture at display size (large photos are shrunk for the GPU; masks stay full
/// size) and that size. Runs on a job thread: a 12-megapixel photo takes tens of milliseconds.
fn display_texture(ctx: &egui::Context, name: &str, rgb: &Rgb8) -> (TextureHandle, (usize, usize)) {
    let (w, h) = display_dims(rgb.width, rgb.height);
    let image = if (w, h) == (rgb.width, rgb.height) {
        ColorImage::from_rgb([w, h], &rgb.data)
    } else {
        let small = crate::image_io::resize_rgb8_pillow(rgb, w, h);
        ColorImage::from_rgb([w, h], &small.data)
    };
    let texture = ctx.load_texture(format!("image {name}"), image, TextureOptions::LINEAR);
    (texture, (w, h))
}
