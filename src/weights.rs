//! Weight files: `.safetensors` (memory-mapped) and PyTorch `.pth` / `.pt` / `.bin` (zip + pickle,
//! read without executing anything), behind one [`Weights`] type that names the tensor and the
//! file in every error.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Device, Tensor};

/// Why a weights file could not be used. Every variant names the file, last.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be opened or read.
    #[error("cannot read weights ({source}): {path}")]
    Io {
        /// Underlying error.
        source: std::io::Error,
        /// The file.
        path: PathBuf,
    },
    /// The file is not a checkpoint of a kind we read (or is truncated).
    #[error("not a usable checkpoint ({reason}): {path}")]
    NotACheckpoint {
        /// What is wrong.
        reason: String,
        /// The file.
        path: PathBuf,
    },
    /// The pickle references something other than tensor storage; nothing was executed.
    #[error("refusing to load: the pickle references `{what}`, which is not tensor data: {path}")]
    Unsafe {
        /// The referenced Python global, e.g. `posix.system`.
        what: String,
        /// The file.
        path: PathBuf,
    },
    /// A tensor the model needs is absent.
    #[error("tensor `{name}` is missing from {path}")]
    Missing {
        /// Full tensor name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}, in {path}")]
    Shape {
        /// Full tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape in the file.
        got: Vec<usize>,
        /// The file.
        path: PathBuf,
    },
    /// Reading was stopped on request (see [`Weights::with_cancel`]).
    #[error("loading cancelled: {path}")]
    Cancelled {
        /// The file.
        path: PathBuf,
    },
    /// A tensor's data could not be read (truncated storage, unsupported dtype, ...).
    #[error("tensor `{name}` is unreadable ({reason}) in {path}")]
    Corrupt {
        /// Full tensor name.
        name: String,
        /// What is wrong.
        reason: String,
        /// The file.
        path: PathBuf,
    },
}

/// One tensor of a `.safetensors` file: dtype, shape, byte range in the data section.
struct StEntry {
    dtype: DType,
    shape: Vec<usize>,
    range: (usize, usize),
}

enum Backend {
    /// A memory-mapped `.safetensors` file; `data_start` is where the data section begins.
    Safetensors {
        mmap: memmap2::Mmap,
        data_start: usize,
        entries: HashMap<String, StEntry>,
    },
    Pth {
        zip: Mutex<zip::ZipArchive<BufReader<File>>>,
        infos: HashMap<String, TensorInfo>,
    },
    Memory(HashMap<String, Tensor>),
    /// Tensors made on request by a generator (shape known up front), so generated weights
    /// are resident once, in the model, as a file's are.
    Generated {
        shapes: HashMap<String, Vec<usize>>,
        generate: Box<Generator>,
    },
}

/// Makes the f32 values of tensor `name` of shape `shape`, row-major.
pub type Generator = dyn Fn(&str, &[usize]) -> Vec<f32> + Send + Sync;

/// Answers true when a long read should stop (the user pressed Cancel).
pub type CancelCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// A set of named tensors from one source, loaded lazily and converted to f32 on request.
pub struct Weights {
    path: PathBuf,
    backend: Backend,
    cancel: Option<CancelCheck>,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weights")
            .field("path", &self.path)
            .field("tensors", &self.len())
            .finish()
    }
}

/// Python globals a `torch.save` state dict may reference. Anything else is refused.
fn is_allowed_global(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor_v2" | "_rebuild_parameter" | "_rebuild_tensor"
        ),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch" => name.ends_with("Storage") || name == "Tensor",
        "torch.nn.parameter" => name == "Parameter",
        _ => false,
    }
}

/// Walks a pickle object tree and returns the first global that is not allowed.
fn find_disallowed_global(obj: &Object) -> Option<String> {
    match obj {
        Object::Class {
            module_name,
            class_name,
        } => (!is_allowed_global(module_name, class_name))
            .then(|| format!("{module_name}.{class_name}")),
        Object::Tuple(items) | Object::List(items) => items.iter().find_map(find_disallowed_global),
        Object::Dict(items) => items
            .iter()
            .find_map(|(k, v)| find_disallowed_global(k).or_else(|| find_disallowed_global(v))),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            find_disallowed_global(callable).or_else(|| find_disallowed_global(args))
        }
        Object::PersistentLoad(inner) => find_disallowed_global(inner),
        _ => None,
    }
}

impl Weights {
    /// Opens a weights file, choosing the reader from its content (zip → PyTorch, else
    /// safetensors). Nothing in the file is executed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref().to_path_buf();
        let mut magic = [0u8; 9];
        let n = File::open(&path)
            .and_then(|f| f.take(9).read(&mut magic))
            .map_err(|source| WeightsError::Io {
                source,
                path: path.clone(),
            })?;
        let magic = &magic[..n];
        if magic.starts_with(b"PK") {
            Self::open_pth(path)
        } else if magic.len() == 9 && magic[8] == b'{' {
            // safetensors: an 8-byte header length, then the JSON header.
            Self::open_safetensors(path)
        } else if magic.len() >= 2 && magic[0] == 0x80 && (2..=5).contains(&magic[1]) {
            Err(WeightsError::NotACheckpoint {
                reason: "a raw pickle; only the zip layout of torch.save (PyTorch >= 1.6) is read"
                    .into(),
                path,
            })
        } else {
            Err(WeightsError::NotACheckpoint {
                reason: "neither safetensors nor a PyTorch zip checkpoint".into(),
                path,
            })
        }
    }

    fn open_safetensors(path: PathBuf) -> Result<Self, WeightsError> {
        let file = File::open(&path).map_err(|source| WeightsError::Io {
            source,
            path: path.clone(),
        })?;
        // SAFETY: the file is mapped read-only; like every mmap it must not be modified while
        // the app runs, which weights files are not.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| WeightsError::Io {
            source,
            path: path.clone(),
        })?;
        let not_ckpt = |reason: String| WeightsError::NotACheckpoint {
            reason,
            path: path.clone(),
        };
        let (n, metadata) = safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
            not_ckpt(format!(
                "not a valid safetensors file, truncated or corrupt: {e}"
            ))
        })?;
        let mut entries = HashMap::new();
        for (name, info) in metadata.tensors() {
            use safetensors::Dtype as D;
            let dtype = match info.dtype {
                D::F32 => DType::F32,
                D::F16 => DType::F16,
                D::BF16 => DType::BF16,
                D::F64 => DType::F64,
                D::U8 => DType::U8,
                D::U32 => DType::U32,
                D::I64 => DType::I64,
                // Other dtypes (bool, int8, fp8, …) are never model weights here.
                _ => continue,
            };
            entries.insert(
                name,
                StEntry {
                    dtype,
                    shape: info.shape.clone(),
                    range: info.data_offsets,
                },
            );
        }
        Ok(Self {
            path,
            backend: Backend::Safetensors {
                mmap,
                data_start: 8 + n,
                entries,
            },
            cancel: None,
        })
    }

    fn open_pth(path: PathBuf) -> Result<Self, WeightsError> {
        let not_ckpt = |reason: String| WeightsError::NotACheckpoint {
            reason,
            path: path.clone(),
        };
        let file = File::open(&path).map_err(|source| WeightsError::Io {
            source,
            path: path.clone(),
        })?;
        let mut zip = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| not_ckpt(format!("broken zip archive, truncated? {e}")))?;
        let pkl_name = zip
            .file_names()
            .filter_map(|n| n.ok())
            .find(|n| n.ends_with("data.pkl"))
            .map(|n| n.into_owned())
            .ok_or_else(|| not_ckpt("no data.pkl inside the zip".into()))?;
        let dir_name = PathBuf::from(pkl_name.trim_end_matches(".pkl"));
        let obj = {
            let entry = zip
                .by_name(&pkl_name)
                .map_err(|e| not_ckpt(format!("cannot read {pkl_name}: {e}")))?;
            let mut reader = BufReader::new(entry);
            let mut stack = Stack::empty();
            stack
                .read_loop(&mut reader)
                .map_err(|e| not_ckpt(format!("unreadable pickle: {e}")))?;
            stack
                .finalize()
                .map_err(|e| not_ckpt(format!("unreadable pickle: {e}")))?
        };
        if let Some(what) = find_disallowed_global(&obj) {
            return Err(WeightsError::Unsafe { what, path });
        }
        let state_dict = unwrap_state_dict(obj);
        let mut infos = HashMap::new();
        if let Object::Dict(items) = state_dict {
            for (name, value) in items {
                match value.into_tensor_info(name, &dir_name) {
                    Ok(Some(info)) => {
                        infos.insert(info.name.clone(), info);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(not_ckpt(format!("malformed tensor record: {e}"))),
                }
            }
        }
        if infos.is_empty() {
            return Err(not_ckpt("the pickle holds no tensors".into()));
        }
        Ok(Self {
            path,
            backend: Backend::Pth {
                zip: Mutex::new(zip),
                infos,
            },
            cancel: None,
        })
    }

    /// Wraps tensors already in memory (e.g. generated detweights); `label` stands for the path.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, label: impl Into<PathBuf>) -> Self {
        Self {
            path: label.into(),
            backend: Backend::Memory(tensors),
            cancel: None,
        }
    }

    /// Tensors of the given names and shapes whose values `generate` makes each time one is
    /// read (e.g. detweights); `label` stands for the path.
    pub fn generated(
        shapes: impl IntoIterator<Item = (String, Vec<usize>)>,
        generate: Box<Generator>,
        label: impl Into<PathBuf>,
    ) -> Self {
        Self {
            path: label.into(),
            backend: Backend::Generated {
                shapes: shapes.into_iter().collect(),
                generate,
            },
            cancel: None,
        }
    }

    /// These weights, with every tensor read first asking `cancel`: once it answers true,
    /// reads fail with [`WeightsError::Cancelled`] (a model being loaded stops at its next
    /// tensor).
    pub fn with_cancel(self, cancel: CancelCheck) -> Self {
        Self {
            cancel: Some(cancel),
            ..self
        }
    }

    /// The file (or label) these weights come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        match &self.backend {
            Backend::Safetensors { entries, .. } => entries.len(),
            Backend::Pth { infos, .. } => infos.len(),
            Backend::Memory(m) => m.len(),
            Backend::Generated { shapes, .. } => shapes.len(),
        }
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.backend {
            Backend::Safetensors { entries, .. } => entries.keys().cloned().collect(),
            Backend::Pth { infos, .. } => infos.keys().cloned().collect(),
            Backend::Memory(m) => m.keys().cloned().collect(),
            Backend::Generated { shapes, .. } => shapes.keys().cloned().collect(),
        };
        names.sort();
        names
    }

    /// The shape of tensor `name` without reading its data.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match &self.backend {
            Backend::Safetensors { entries, .. } => entries.get(name).map(|e| e.shape.clone()),
            Backend::Pth { infos, .. } => infos.get(name).map(|i| i.layout.dims().to_vec()),
            Backend::Memory(m) => m.get(name).map(|t| t.dims().to_vec()),
            Backend::Generated { shapes, .. } => shapes.get(name).cloned(),
        }
    }

    /// True when tensor `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.shape(name).is_some()
    }

    /// Tensor `name` as f32 on `device`, checked against `expected` shape.
    pub fn get(
        &self,
        name: &str,
        expected: &[usize],
        device: &Device,
    ) -> Result<Tensor, WeightsError> {
        let got = self.shape(name).ok_or_else(|| WeightsError::Missing {
            name: name.to_string(),
            path: self.path.clone(),
        })?;
        if got != expected {
            return Err(WeightsError::Shape {
                name: name.to_string(),
                expected: expected.to_vec(),
                got,
                path: self.path.clone(),
            });
        }
        self.load_any(name, device)
    }

    /// Tensor `name` as f32 on `device`, whatever its shape.
    pub fn load_any(&self, name: &str, device: &Device) -> Result<Tensor, WeightsError> {
        if self.cancel.as_ref().is_some_and(|c| c()) {
            return Err(WeightsError::Cancelled {
                path: self.path.clone(),
            });
        }
        let corrupt = |reason: String| WeightsError::Corrupt {
            name: name.to_string(),
            reason,
            path: self.path.clone(),
        };
        let missing = || WeightsError::Missing {
            name: name.to_string(),
            path: self.path.clone(),
        };
        let t = match &self.backend {
            Backend::Safetensors {
                mmap,
                data_start,
                entries,
            } => {
                let e = entries.get(name).ok_or_else(missing)?;
                let (start, end) = (data_start + e.range.0, data_start + e.range.1);
                let t = Tensor::from_raw_buffer(&mmap[start..end], e.dtype, &e.shape, &Device::Cpu)
                    .map_err(|err| corrupt(err.to_string()))?;
                // The bytes are copied: let the kernel drop the mapped pages, so a large
                // checkpoint is not resident twice while the model loads.
                // SAFETY: the mapping is a read-only view of the file; dropped pages are read
                // again from the file if touched.
                let _ = unsafe {
                    mmap.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
                t
            }
            Backend::Memory(m) => m.get(name).cloned().ok_or_else(missing)?,
            Backend::Generated { shapes, generate } => {
                let shape = shapes.get(name).ok_or_else(missing)?;
                Tensor::from_vec(generate(name, shape), shape.as_slice(), &Device::Cpu)
                    .map_err(|err| corrupt(err.to_string()))?
            }
            Backend::Pth { zip, infos } => {
                let info = infos.get(name).ok_or_else(missing)?;
                read_pth_tensor(zip, info).map_err(corrupt)?
            }
        };
        let t = if t.dtype() == DType::F32 {
            t
        } else {
            t.to_dtype(DType::F32).map_err(|e| corrupt(e.to_string()))?
        };
        t.to_device(device).map_err(|e| corrupt(e.to_string()))
    }
}

/// A checkpoint may be the state dict itself or a dict holding it under `model` / `state_dict`.
fn unwrap_state_dict(obj: Object) -> Object {
    let Object::Dict(items) = obj else {
        return obj;
    };
    let holds_tensors = items
        .iter()
        .any(|(_, v)| matches!(v, Object::Reduce { .. }));
    if holds_tensors {
        return Object::Dict(items);
    }
    for (k, v) in &items {
        if let Object::Unicode(key) = k {
            if (key == "model" || key == "state_dict") && matches!(v, Object::Dict(_)) {
                return v.clone();
            }
        }
    }
    Object::Dict(items)
}

/// Reads one tensor's storage from the zip, checking that the storage holds the whole view.
fn read_pth_tensor(
    zip: &Mutex<zip::ZipArchive<BufReader<File>>>,
    info: &TensorInfo,
) -> Result<Tensor, String> {
    let mut zip = zip.lock().map_err(|_| "zip reader poisoned".to_string())?;
    let mut entry = zip.by_name(&info.path).map_err(|e| e.to_string())?;
    let elem = info.dtype.size_in_bytes();
    let layout = &info.layout;
    let dims = layout.dims().to_vec();
    let numel: usize = dims.iter().product();
    let start = layout.start_offset(); // in bytes (candle stores offset * elem size)
    let contiguous = layout.is_contiguous();
    let fortran = layout.is_fortran_contiguous() && dims.len() > 1;
    if !contiguous && !fortran && numel > 1 {
        return Err(format!("non-contiguous layout {layout:?}"));
    }
    let needed = start + numel * elem;
    if (entry.size() as usize) < needed {
        return Err(format!(
            "storage holds {} bytes, the tensor needs {needed}",
            entry.size()
        ));
    }
    let mut bytes = vec![0u8; needed];
    entry
        .read_exact(&mut bytes)
        .map_err(|e| format!("truncated storage: {e}"))?;
    let data = &bytes[start..];
    let t = if fortran && !contiguous {
        let rev: Vec<usize> = dims.iter().rev().copied().collect();
        let perm: Vec<usize> = (0..dims.len()).rev().collect();
        Tensor::from_raw_buffer(data, info.dtype, &rev, &Device::Cpu)
            .and_then(|t| t.permute(perm))
            .and_then(|t| t.contiguous())
    } else {
        Tensor::from_raw_buffer(data, info.dtype, &dims, &Device::Cpu)
    };
    t.map_err(|e| e.to_string())
}

/// A view of [`Weights`] under a key prefix, mirroring the checkpoint's module path
/// (`scope.pp("blocks").pp(0).get("norm1.weight", &[768])`).
#[derive(Clone)]
pub struct Scope<'a> {
    weights: &'a Weights,
    prefix: String,
    device: Device,
    /// The dtype [`Scope::get`] returns (f32 unless [`Scope::with_dtype`] says otherwise).
    dtype: DType,
}

impl<'a> Scope<'a> {
    /// The root scope on `device`.
    pub fn new(weights: &'a Weights, device: &Device) -> Self {
        Self {
            weights,
            prefix: String::new(),
            device: device.clone(),
            dtype: DType::F32,
        }
    }

    /// A child scope (`prefix.name`).
    pub fn pp(&self, name: impl fmt::Display) -> Self {
        Self {
            weights: self.weights,
            prefix: self.key(&name.to_string()),
            device: self.device.clone(),
            dtype: self.dtype,
        }
    }

    /// This scope, with [`Scope::get`] converting tensors to `dtype` (e.g. f16 for a
    /// half-precision encoder); [`Scope::get_vec`] still reads f32.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        Self {
            dtype,
            ..self.clone()
        }
    }

    /// The dtype [`Scope::get`] returns.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The full key of `name` in this scope.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The device tensors are loaded to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The shape of `name` in this scope, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.weights.shape(&self.key(name))
    }

    /// True when `name` exists in this scope.
    pub fn contains(&self, name: &str) -> bool {
        self.shape(name).is_some()
    }

    /// The shape of `name`, or a [`WeightsError::Missing`] naming it.
    pub fn require_shape(&self, name: &str) -> Result<Vec<usize>, WeightsError> {
        self.shape(name).ok_or_else(|| WeightsError::Missing {
            name: self.key(name),
            path: self.weights.path.clone(),
        })
    }

    /// Tensor `name` of shape `expected`, in this scope's dtype on its device.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor, WeightsError> {
        let t = self.weights.get(&self.key(name), expected, &self.device)?;
        if self.dtype == DType::F32 {
            Ok(t)
        } else {
            t.to_dtype(self.dtype).map_err(|e| self.error(name, e))
        }
    }

    /// Tensor `name` of shape `expected`, f32 on the CPU as a flat row-major vector.
    pub fn get_vec(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, WeightsError> {
        let key = self.key(name);
        let t = self.weights.get(&key, expected, &Device::Cpu)?;
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| self.error(name, e))
    }

    /// A [`WeightsError::Corrupt`] for `name` (a tensor that loaded but could not be used).
    pub fn error(&self, name: &str, reason: impl fmt::Display) -> WeightsError {
        WeightsError::Corrupt {
            name: self.key(name),
            reason: reason.to_string(),
            path: self.weights.path.clone(),
        }
    }

    /// A wrong-shape error for `name` (for checks that span several tensors).
    pub fn shape_error(&self, name: &str, expected: Vec<usize>, got: Vec<usize>) -> WeightsError {
        WeightsError::Shape {
            name: self.key(name),
            expected,
            got,
            path: self.weights.path.clone(),
        }
    }
}

/// SAM checkpoints we look for, in order of preference (MobileSAM first: it encodes fastest;
/// the SAM 2.1 files as the official repositories name them, [`HUB_SAM2_REPOS`]).
pub const SAM_FILE_NAMES: [&str; 10] = [
    "mobile_sam-tiny-vitt.safetensors",
    "mobile_sam.pt",
    "sam_vit_b_01ec64.safetensors",
    "sam_vit_b_01ec64.pth",
    "sam_vit_l_0b3195.pth",
    "sam_vit_h_4b8939.pth",
    "sam2.1_hiera_tiny.pt",
    "sam2.1_hiera_small.pt",
    "sam2.1_hiera_base_plus.pt",
    "sam2.1_hiera_large.pt",
];

/// The official SAM 2.1 repositories on the Hugging Face Hub, with their checkpoint and its
/// approximate size in MB: tiny, small, base+, large.
pub const HUB_SAM2_REPOS: [(&str, &str, u32); 4] = [
    ("facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", 156),
    ("facebook/sam2.1-hiera-small", "sam2.1_hiera_small.pt", 184),
    (
        "facebook/sam2.1-hiera-base-plus",
        "sam2.1_hiera_base_plus.pt",
        323,
    ),
    ("facebook/sam2.1-hiera-large", "sam2.1_hiera_large.pt", 898),
];

/// Text model folders we look for, in order of preference.
pub const TEXT_MODEL_NAMES: [&str; 4] = [
    "all-MiniLM-L6-v2",
    "gpt2",
    "distilcamembert-base",
    "paraphrase-multilingual-MiniLM-L12-v2",
];

/// The Hugging Face Hub repository of the SAM safetensors checkpoints (downloads and cache).
pub const HUB_SAM_REPO: &str = "lmz/candle-sam";

/// The Hub repositories of [`TEXT_MODEL_NAMES`], in the same order.
pub const HUB_TEXT_REPOS: [&str; 4] = [
    "sentence-transformers/all-MiniLM-L6-v2",
    "openai-community/gpt2",
    "cmarkea/distilcamembert-base",
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
];

/// Folders searched for weights, in order: `weights/` beside the working directory and beside
/// the executable, the platform data folder (`$XDG_DATA_HOME/segattn` or
/// `~/.local/share/segattn`).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("weights")];
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("weights"));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
    {
        dirs.push(data.join("segattn"));
    }
    dirs
}

/// The Hugging Face hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (where the app's downloads go, as the Python tools do).
pub fn hf_hub_cache_dir() -> Option<PathBuf> {
    std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        })
}

/// Snapshot folders of a Hugging Face cache repository (`~/.cache/huggingface/hub`).
fn hf_cache_snapshots(repo: &str) -> Vec<PathBuf> {
    let Some(hub) = hf_hub_cache_dir() else {
        return Vec::new();
    };
    let dir = hub
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("snapshots");
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Every SAM checkpoint found in [`search_dirs`] or the Hugging Face cache, in order of
/// preference ([`SAM_FILE_NAMES`]).
pub fn find_sam_checkpoints() -> Vec<PathBuf> {
    let mut dirs = search_dirs();
    dirs.extend(hf_cache_snapshots(HUB_SAM_REPO));
    for (repo, _, _) in HUB_SAM2_REPOS {
        dirs.extend(hf_cache_snapshots(repo));
    }
    SAM_FILE_NAMES
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .filter(|p| p.is_file())
        .collect()
}

/// What a look around the disk found: where segattn looks, and the models there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// [`search_dirs`].
    pub search_dirs: Vec<PathBuf>,
    /// [`find_sam_checkpoints`].
    pub sam: Vec<PathBuf>,
    /// [`find_text_models`].
    pub text: Vec<PathBuf>,
}

impl Catalog {
    /// Looks (a few directory reads: run it off the UI thread).
    pub fn scan() -> Self {
        Self {
            search_dirs: search_dirs(),
            sam: find_sam_checkpoints(),
            text: find_text_models(),
        }
    }
}

/// A model folder's name for display: the folder name, or for a Hugging Face cache snapshot
/// (`models--owner--name/snapshots/<commit>`) the repository name; the whole path when it has
/// no name (`.`).
pub fn model_folder_label(dir: &Path) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let snapshots = dir.parent().filter(|p| name(p) == "snapshots");
    match snapshots.and_then(|p| p.parent()).map(name) {
        Some(repo) => repo.rsplit("--").next().unwrap_or(&repo).to_string(),
        None if name(dir).is_empty() => dir.display().to_string(),
        None => name(dir),
    }
}

/// True when `p` is a text model folder (`config.json` and `tokenizer.json` in it).
fn is_text_model(p: &Path) -> bool {
    p.join("config.json").is_file() && p.join("tokenizer.json").is_file()
}

/// The model folders in `dir` (the Train view's saved models in `<search dir>/trained`), by
/// name.
pub fn models_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| is_text_model(p));
    found.sort();
    found
}

/// Every text model folder found in [`search_dirs`] (`all-MiniLM-L6-v2`, `gpt2`, and the
/// trained ones in their `trained/` folders) and the Hugging Face cache ([`HUB_TEXT_REPOS`]).
pub fn find_text_models() -> Vec<PathBuf> {
    let local = TEXT_MODEL_NAMES
        .iter()
        .flat_map(|name| search_dirs().into_iter().map(move |d| d.join(name)));
    let cached = HUB_TEXT_REPOS.iter().flat_map(|r| hf_cache_snapshots(r));
    let mut found: Vec<PathBuf> = local.chain(cached).filter(|p| is_text_model(p)).collect();
    found.extend(
        search_dirs()
            .iter()
            .flat_map(|d| models_in(&d.join("trained"))),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_models_are_found_by_their_files() {
        let dir = tempfile::tempdir().expect("tmp");
        for (name, files) in [
            ("reverse-2x2-64", &["config.json", "tokenizer.json"][..]),
            (
                "copy-1x2-32",
                &["config.json", "tokenizer.json", "model.safetensors"][..],
            ),
            ("half-written", &["config.json"][..]),
        ] {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).expect("dir");
            for f in files {
                std::fs::write(d.join(f), "{}").expect("file");
            }
        }
        std::fs::write(dir.path().join("notes.txt"), "").expect("file");
        let found: Vec<String> = models_in(dir.path())
            .iter()
            .map(|p| model_folder_label(p))
            .collect();
        assert_eq!(found, ["copy-1x2-32", "reverse-2x2-64"]);
        assert!(models_in(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn model_folders_are_named_by_folder_or_hub_repository() {
        assert_eq!(
            model_folder_label(Path::new("weights/all-MiniLM-L6-v2")),
            "all-MiniLM-L6-v2"
        );
        let snap = Path::new("/c/hub/models--openai-community--gpt2/snapshots/607a30d783df");
        assert_eq!(model_folder_label(snap), "gpt2");
    }
}
