//! Model downloads from the Hugging Face Hub (`hf-hub`), on a thread of their own, with progress
//! and cancellation, into the standard Hugging Face cache where [`crate::weights`] finds them.
//!
//! No egui here: the app polls [`Download::try_recv`] and draws the progress.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use crate::weights::{HUB_SAM2_REPOS, HUB_SAM_REPO, HUB_TEXT_REPOS, SAM_FILE_NAMES};
use crate::worker::Repaint;

/// What a download is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A SAM checkpoint (one file).
    Sam,
    /// A text model folder (config, tokenizer, weights).
    Text,
}

/// One model to fetch: a Hub repository and the files it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadSpec {
    /// What the user sees.
    pub label: String,
    /// `owner/name` on the Hub.
    pub repo: String,
    /// Files to fetch, in order; for [`ModelKind::Sam`] the first is the checkpoint.
    pub files: Vec<String>,
    /// What the files are.
    pub kind: ModelKind,
    /// Approximate total size, for the button.
    pub approx_mb: u32,
}

fn spec(label: &str, repo: &str, files: &[&str], kind: ModelKind, approx_mb: u32) -> DownloadSpec {
    DownloadSpec {
        label: label.into(),
        repo: repo.into(),
        files: files.iter().map(|f| (*f).to_string()).collect(),
        kind,
        approx_mb,
    }
}

/// The files of a text model folder.
const TEXT_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

fn mobile_sam() -> DownloadSpec {
    spec(
        "MobileSAM",
        HUB_SAM_REPO,
        &[SAM_FILE_NAMES[0]],
        ModelKind::Sam,
        40,
    )
}

fn minilm() -> DownloadSpec {
    spec(
        "all-MiniLM-L6-v2",
        HUB_TEXT_REPOS[0],
        &TEXT_FILES,
        ModelKind::Text,
        91,
    )
}

/// The models the Models window offers.
pub fn defaults() -> Vec<DownloadSpec> {
    let sam2 = ["tiny", "small", "base+", "large"]
        .iter()
        .zip(HUB_SAM2_REPOS)
        .map(|(size, (repo, file, mb))| {
            spec(
                &format!("SAM 2.1 {size}"),
                repo,
                &[file],
                ModelKind::Sam,
                mb,
            )
        });
    let mut all = vec![
        mobile_sam(),
        spec(
            "SAM ViT-B",
            HUB_SAM_REPO,
            &[SAM_FILE_NAMES[2]],
            ModelKind::Sam,
            375,
        ),
        minilm(),
        spec(
            "GPT-2",
            HUB_TEXT_REPOS[1],
            &TEXT_FILES,
            ModelKind::Text,
            550,
        ),
        // French-capable: CamemBERT distilled to 6 layers (French only, SentencePiece), and the
        // multilingual MiniLM (a BERT with XLM-R's SentencePiece vocabulary of 250k pieces).
        spec(
            "DistilCamemBERT (French)",
            HUB_TEXT_REPOS[2],
            &TEXT_FILES,
            ModelKind::Text,
            275,
        ),
        spec(
            "multilingual MiniLM-L12 (50+ languages)",
            HUB_TEXT_REPOS[3],
            &TEXT_FILES,
            ModelKind::Text,
            480,
        ),
    ];
    all.splice(2..2, sam2);
    all
}

/// The model a view offers to download with one click when it has none: MobileSAM for SAM,
/// all-MiniLM-L6-v2 for text.
pub fn default_for(kind: ModelKind) -> DownloadSpec {
    match kind {
        ModelKind::Sam => mobile_sam(),
        ModelKind::Text => minilm(),
    }
}

/// What a running download reports.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadEvent {
    /// Bytes of `file` (the `index`-th of the spec's files) received so far, of `total`.
    Progress {
        /// File name.
        file: String,
        /// Position in the spec's file list.
        index: usize,
        /// Bytes received (including a resumed part).
        done: u64,
        /// File size in bytes.
        total: u64,
    },
    /// Everything is in the cache: the checkpoint file (SAM) or the model folder (text).
    Finished(PathBuf),
    /// The download failed; the message says why (no network, unknown file, disk full…).
    Failed(String),
    /// Stopped by [`Download::cancel`]; a partial file is kept and resumed next time.
    Cancelled,
}

/// Where and from where downloads go.
#[derive(Debug, Clone, Default)]
pub struct DownloadOptions {
    /// Hub address (default `https://huggingface.co`, or `HF_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Cache folder (default: the Hugging Face hub cache, see
    /// [`crate::weights::hf_hub_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
}

/// A download running on its own thread.
pub struct Download {
    /// What is being fetched.
    pub spec: DownloadSpec,
    rx: Receiver<DownloadEvent>,
    cancel: Arc<AtomicBool>,
}

/// Unwound through hf-hub's read loop when the user cancels (its progress callback cannot
/// return an error); caught at the top of the download thread.
struct CancelToken;

#[cfg(feature = "download")]
struct ChannelProgress {
    tx: SyncSender<DownloadEvent>,
    cancel: Arc<AtomicBool>,
    repaint: Repaint,
    file: String,
    index: usize,
    done: u64,
    total: u64,
    last_sent: u64,
}

#[cfg(feature = "download")]
impl hf_hub::api::Progress for ChannelProgress {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        self.done = 0;
        self.last_sent = 0;
    }

    fn update(&mut self, size: usize) {
        if self.cancel.load(Ordering::Relaxed) {
            std::panic::resume_unwind(Box::new(CancelToken));
        }
        self.done += size as u64;
        // About 200 updates per file at most; a full channel drops an update (the next one
        // carries the total so far).
        if self.done - self.last_sent >= (self.total / 200).max(1) || self.done == self.total {
            self.last_sent = self.done;
            let event = DownloadEvent::Progress {
                file: self.file.clone(),
                index: self.index,
                done: self.done,
                total: self.total,
            };
            if !matches!(
                self.tx.try_send(event),
                Err(std::sync::mpsc::TrySendError::Full(_))
            ) {
                (self.repaint)();
            }
        }
    }

    fn finish(&mut self) {}
}

impl Download {
    /// Starts fetching `spec` on a new thread; files already in the cache are not fetched again.
    pub fn start(
        spec: DownloadSpec,
        options: DownloadOptions,
        repaint: Repaint,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(crate::worker::CHANNEL_CAPACITY);
        let cancel = Arc::new(AtomicBool::new(false));
        let (thread_spec, thread_cancel) = (spec.clone(), cancel.clone());
        std::thread::Builder::new()
            .name(format!("download {}", spec.repo))
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| {
                    fetch(&thread_spec, &options, &tx, &thread_cancel, &repaint)
                });
                let event = match std::panic::catch_unwind(run) {
                    Ok(Ok(path)) => DownloadEvent::Finished(path),
                    Ok(Err(message)) => DownloadEvent::Failed(message),
                    Err(payload) if payload.is::<CancelToken>() => DownloadEvent::Cancelled,
                    Err(_) => DownloadEvent::Failed("the download stopped unexpectedly".into()),
                };
                // The receiver may be gone (window closed): nothing left to tell.
                let _ = tx.send(event);
                repaint();
            })?;
        Ok(Self { spec, rx, cancel })
    }

    /// Asks the download to stop; a [`DownloadEvent::Cancelled`] follows.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The next event, if any (never blocks).
    pub fn try_recv(&self) -> Option<DownloadEvent> {
        self.rx.try_recv().ok()
    }

    /// The next event, waiting for it (tests and the CLI).
    pub fn recv(&self) -> Option<DownloadEvent> {
        self.rx.recv().ok()
    }
}

/// Without the `download` feature: the same events, ending in a failure that says why.
#[cfg(not(feature = "download"))]
fn fetch(
    spec: &DownloadSpec,
    _options: &DownloadOptions,
    _tx: &SyncSender<DownloadEvent>,
    _cancel: &Arc<AtomicBool>,
    _repaint: &Repaint,
) -> Result<PathBuf, String> {
    Err(format!(
        "{}: this build of segattn has no downloader (built without the `download` feature); \
         fetch the files yourself and open them",
        spec.repo
    ))
}

#[cfg(feature = "download")]
fn fetch(
    spec: &DownloadSpec,
    options: &DownloadOptions,
    tx: &SyncSender<DownloadEvent>,
    cancel: &Arc<AtomicBool>,
    repaint: &Repaint,
) -> Result<PathBuf, String> {
    let cache_dir = options
        .cache_dir
        .clone()
        .or_else(crate::weights::hf_hub_cache_dir)
        .ok_or("no cache folder: set HF_HOME")?;
    let mut builder = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(false)
        .with_cache_dir(cache_dir.clone());
    if let Some(e) = options
        .endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
    {
        builder = builder.with_endpoint(e);
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.model(spec.repo.clone());
    let cached = hf_hub::Cache::new(cache_dir).model(spec.repo.clone());
    let mut paths = Vec::with_capacity(spec.files.len());
    for (index, file) in spec.files.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            std::panic::resume_unwind(Box::new(CancelToken));
        }
        let path = match cached.get(file) {
            Some(p) => p,
            None => {
                let progress = ChannelProgress {
                    tx: tx.clone(),
                    cancel: cancel.clone(),
                    repaint: repaint.clone(),
                    file: file.clone(),
                    index,
                    done: 0,
                    total: 0,
                    last_sent: 0,
                };
                repo.download_with_progress(file, progress)
                    .map_err(|e| format!("{} from {}: {e}", file, spec.repo))?
            }
        };
        paths.push(path);
    }
    let first = paths.first().ok_or("nothing to download")?;
    Ok(match spec.kind {
        ModelKind::Sam => first.clone(),
        ModelKind::Text => first
            .parent()
            .ok_or("the downloaded file has no folder")?
            .to_path_buf(),
    })
}
