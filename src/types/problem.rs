//! Failures and notices as the UI words them: plain data that a worker, a job or an exporter
//! fills, and that the UI translates (`ui::problems`). The CLI prints the errors' own English
//! lines instead.

/// Why a task failed, with what its message needs. Files are shown as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A file could not be read (`detail`: the system's own words).
    ReadFile {
        /// The file.
        file: String,
        /// What the system said.
        detail: String,
    },
    /// A file could not be written.
    WriteFile {
        /// The file.
        file: String,
        /// What the system said.
        detail: String,
    },
    /// Not a checkpoint of a kind we read, or a truncated one.
    NotACheckpoint {
        /// The file.
        file: String,
        /// What is wrong (the reader's words).
        reason: String,
    },
    /// A pickle that references something other than tensor data (nothing was executed).
    UnsafePickle {
        /// The file.
        file: String,
        /// The Python global it references.
        what: String,
    },
    /// A tensor the model needs is absent.
    MissingTensor {
        /// The file.
        file: String,
        /// The tensor's full name.
        name: String,
    },
    /// A tensor has another shape than the model needs.
    TensorShape {
        /// The file.
        file: String,
        /// The tensor's full name.
        name: String,
        /// The shape the model needs, as `[a, b]`.
        expected: String,
        /// The shape in the file.
        got: String,
    },
    /// A tensor's data is unreadable (truncated storage, unsupported dtype).
    CorruptTensor {
        /// The file.
        file: String,
        /// The tensor's full name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Not an image format we decode.
    ImageFormat {
        /// The file.
        file: String,
    },
    /// The image has no pixels.
    ImageEmpty {
        /// The file.
        file: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The image has more pixels than we open.
    ImageTooLarge {
        /// The file.
        file: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Its size in megapixels.
        megapixels: u64,
        /// The limit in megapixels.
        limit: u64,
    },
    /// The image file ends before the image does.
    ImageTruncated {
        /// The file.
        file: String,
    },
    /// The image's data cannot be decoded.
    ImageDecode {
        /// The file.
        file: String,
        /// What the decoder said.
        reason: String,
    },
    /// A text model path that is not a folder.
    NotAModelFolder {
        /// The path.
        dir: String,
    },
    /// A text model folder without a file the model needs.
    ModelFolderLacks {
        /// The file's name.
        name: String,
        /// The folder.
        dir: String,
    },
    /// A `config.json` whose `model_type` we do not run.
    UnsupportedModelType {
        /// Its `model_type`.
        name: String,
        /// Those we run, comma-separated.
        supported: String,
    },
    /// A `config.json` without `model_type`.
    NoModelType {
        /// Those we run, comma-separated.
        supported: String,
    },
    /// A text of only spaces.
    EmptyText,
    /// A text with no token the vocabulary knows.
    NoKnownTokens,
    /// An annotation file that is not JSON, or not COCO instances.
    AnnotationFile {
        /// What is wrong (the parser's words).
        detail: String,
    },
    /// Nothing can be exported: every object was left out, for the reasons given.
    NothingToExport(Vec<ExportNotice>),
    /// YOLO's `data.yaml` exists but its class names cannot be read.
    DataYaml {
        /// What is wrong.
        detail: String,
    },
    /// An export asked for the current mask, and there is none.
    NoMaskToExport,
    /// A task needs an image, and none is open.
    NoImage,
    /// An earlier save of the folder's annotations stopped with an internal error.
    EarlierSaveFailed,
    /// Stopped on request.
    Cancelled,
    /// A prompt came before the image was encoded.
    NotEncoded,
    /// No SAM model is loaded.
    NoSamModel,
    /// No text model is loaded.
    NoTextModel,
    /// The worker's queue is full.
    WorkerBusy,
    /// The worker has stopped.
    WorkerStopped,
    /// Anything else, in English.
    Other(String),
}

/// Something an export left out or changed, for one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportNotice {
    /// The image's file name.
    pub image: String,
    /// The object's number in the image, from 1.
    pub object: usize,
    /// The object's label.
    pub label: String,
    /// What happened.
    pub kind: NoticeKind,
}

/// What an export did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// Its mask has another size than the image; left out.
    SizeMismatch {
        /// The mask's width and height.
        mask: (usize, usize),
        /// The image's width and height.
        image: (usize, usize),
    },
    /// Its mask is empty; left out.
    Empty,
    /// Too thin for a polygon; left out.
    TooThin,
    /// Some parts too thin for a polygon were left out.
    ThinPartsLost(usize),
    /// Holes that the format's polygons cannot carry were lost.
    HolesLost {
        /// How many.
        holes: usize,
        /// The format ("COCO", "YOLO", "LabelMe").
        format: &'static str,
    },
    /// Several separate parts, written one line each (YOLO).
    SeparateLines(usize),
}

impl std::fmt::Display for ExportNotice {
    /// The English line (the CLI's and the tests').
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = format!("{} object {} ({})", self.image, self.object, self.label);
        match self.kind {
            NoticeKind::SizeMismatch { mask, image } => write!(
                f,
                "{who}: its mask is {}×{}, the image {}×{}; left out",
                mask.0, mask.1, image.0, image.1
            ),
            NoticeKind::Empty => write!(f, "{who}: its mask is empty; left out"),
            NoticeKind::TooThin => write!(f, "{who}: too thin for a polygon; left out"),
            NoticeKind::ThinPartsLost(n) => {
                let parts = if n == 1 { "part" } else { "parts" };
                write!(f, "{who}: {n} {parts} too thin for a polygon left out")
            }
            NoticeKind::HolesLost { holes, format } => {
                let noun = if holes == 1 { "hole" } else { "holes" };
                write!(f, "{who}: {holes} {noun} lost in {format} polygons")
            }
            NoticeKind::SeparateLines(n) => write!(f, "{who}: {n} separate parts, one line each"),
        }
    }
}

/// What a folder export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderWritten {
    /// One COCO instances file.
    Coco {
        /// The file.
        path: String,
        /// Annotations written.
        objects: usize,
        /// Images listed.
        images: usize,
    },
    /// YOLO label files and `data.yaml` in a folder.
    Yolo {
        /// The folder.
        dir: String,
        /// Label files written.
        files: usize,
    },
    /// LabelMe files beside the images.
    LabelMe {
        /// The images' folder.
        dir: String,
        /// Files written.
        files: usize,
    },
}

impl std::fmt::Display for FolderWritten {
    /// The English line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Coco {
                path,
                objects,
                images,
            } => write!(f, "{path}: {objects} objects on {images} images"),
            Self::Yolo { dir, files } => write!(f, "{files} label files and data.yaml in {dir}"),
            Self::LabelMe { dir, files } => {
                write!(f, "{files} LabelMe files beside the images in {dir}")
            }
        }
    }
}

/// An annotation of a folder's annotation file that could not be read: left out, the rest
/// of the file kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedAnnotation {
    /// Its number in the file, from 1.
    pub index: usize,
    /// Its image, or `None` when it names no image the file lists.
    pub image: Option<String>,
    /// Why its mask could not be decoded (the decoder's words), when the image is known.
    pub why: String,
}

impl std::fmt::Display for SkippedAnnotation {
    /// The English line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.image {
            None => write!(f, "annotation {}: no such image; left out", self.index),
            Some(name) => write!(
                f,
                "{name}, annotation {}: {}; left out",
                self.index, self.why
            ),
        }
    }
}
