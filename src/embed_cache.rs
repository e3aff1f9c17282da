//! Image embeddings on disk, so that an image seen before is ready at once, across restarts.
//!
//! An entry is keyed by the image's content (SHA-256 of its size and RGB pixels), the model
//! (SHA-256 of its checkpoint file, or the identity of a model built in memory) and the
//! encoder's device and format (`cpu f32`, `cuda f16`): each of them changes the numbers. An
//! entry is one safetensors file holding `features` `[1, 256, 64, 64]` f32, with the whole key
//! and the image's sizes in its metadata; a file whose metadata, tensor name, dtype or shape
//! is not what the key asks for, or with a value that is not finite, is foreign or corrupt:
//! it is deleted and reported as a miss, never used. The cache is bounded in bytes; beyond
//! that the least recently used entries (by file modification time, refreshed on every hit)
//! go. Plain data and files: no candle, no UI.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::types::Rgb8;

/// The default bound on the cache's size: 4 GB (about a thousand SAM embeddings of 4 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 4_000_000_000;

/// The metadata value that marks our files.
const FORMAT: &str = "segattn-embedding-1";

/// The embedding's shape `[1, 256, 64, 64]`.
pub const SHAPE: [usize; 4] = [1, 256, 64, 64];

/// The shapes of SAM 2.1's high-resolution features (`high_res_s1`, `high_res_s0`).
pub const HIGH_RES_SHAPES: [[usize; 4]; 2] = [[1, 64, 128, 128], [1, 32, 256, 256]];

/// The SHA-256 of an image's content (width, height and RGB bytes), in hex.
pub fn image_digest(rgb: &Rgb8) -> String {
    let mut h = Sha256::new();
    h.update((rgb.width as u64).to_le_bytes());
    h.update((rgb.height as u64).to_le_bytes());
    h.update(&rgb.data);
    hex(&h.finalize())
}

/// The SHA-256 of a file, in hex (read in 1 MiB pieces).
pub fn file_digest(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmbeddingKey {
    /// [`image_digest`] of the image.
    pub image: String,
    /// The model: [`file_digest`] of its checkpoint, or the identity of a model built in
    /// memory.
    pub model: String,
    /// Where and in which format the encoder ran (`cpu f32`).
    pub encoder: String,
}

impl EmbeddingKey {
    /// The entry's file name: a digest of the whole key.
    pub fn file_name(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.image, &self.model, &self.encoder] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        format!("{}.safetensors", &hex(&h.finalize())[..40])
    }
}

/// An embedding as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEmbedding {
    /// `[1, 256, 64, 64]` row-major.
    pub features: Vec<f32>,
    /// SAM 2.1's high-resolution features, [`HIGH_RES_SHAPES`] row-major.
    pub high_res: Option<(Vec<f32>, Vec<f32>)>,
    /// The original image's `(height, width)`.
    pub original_hw: (usize, usize),
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The entry.
    Hit(StoredEmbedding),
    /// No entry.
    Miss,
    /// An entry that could not be trusted (deleted); why.
    Corrupt(String),
}

/// What the cache holds: its entries and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Entries (one image and model each).
    pub entries: usize,
    /// Bytes on disk.
    pub bytes: u64,
}

/// A bounded folder of embeddings.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl EmbeddingCache {
    /// A cache in `dir` (made when first written) of at most `max_bytes`.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self { dir, max_bytes }
    }

    /// Where the app keeps it: `SEGATTN_CACHE_DIR`, else `$XDG_CACHE_HOME/segattn/embeddings`,
    /// else `~/.cache/segattn/embeddings` (`%LOCALAPPDATA%` on Windows).
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("SEGATTN_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("segattn").join("embeddings"))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Changes the bound (evicting at once if it shrank).
    pub fn set_max_bytes(&mut self, max_bytes: u64) {
        self.max_bytes = max_bytes;
        self.evict();
    }

    fn path(&self, key: &EmbeddingKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The entry for `key`; a hit marks it recently used.
    pub fn get(&self, key: &EmbeddingKey) -> Lookup {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Corrupt(format!("cannot read {}: {e}", path.display())),
        };
        match parse(&bytes, key) {
            Ok(found) => {
                // Recently used: eviction goes by modification time.
                let _ = std::fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Lookup::Hit(found)
            }
            Err(why) => {
                let _ = std::fs::remove_file(&path);
                Lookup::Corrupt(format!("{}: {why}; deleted", path.display()))
            }
        }
    }

    /// Stores `emb` for `key` (atomically), then evicts the least recently used entries
    /// beyond the bound.
    pub fn put(&self, key: &EmbeddingKey, emb: &StoredEmbedding) -> Result<()> {
        use safetensors::tensor::TensorView;
        anyhow::ensure!(
            emb.features.len() == SHAPE.iter().product::<usize>(),
            "an embedding of {} values, not {SHAPE:?}",
            emb.features.len()
        );
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot make {}", self.dir.display()))?;
        let le = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let mut parts = vec![("features", le(&emb.features), SHAPE.to_vec())];
        if let Some((s1, s0)) = &emb.high_res {
            for ((name, data), shape) in [("high_res_s1", s1), ("high_res_s0", s0)]
                .into_iter()
                .zip(HIGH_RES_SHAPES)
            {
                anyhow::ensure!(
                    data.len() == shape.iter().product::<usize>(),
                    "{name} has {} values, not {shape:?}",
                    data.len()
                );
                parts.push((name, le(data), shape.to_vec()));
            }
        }
        let views = parts
            .iter()
            .map(|(name, bytes, shape)| {
                Ok((
                    *name,
                    TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = metadata(key, emb.original_hw);
        let file = safetensors::serialize(views, Some(metadata))?;
        let path = self.path(key);
        crate::files::write_bytes_atomic(&path, &file)?;
        // The file system stamps a new file from a coarse clock that can lag the one `get`
        // marks use by milliseconds: without this, an entry just written could look older
        // than one read a moment before, and be evicted first.
        let _ = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        self.evict_keeping(Some(&path));
        Ok(())
    }

    /// The entries' files with their size and modification time.
    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".safetensors") {
                return None; // another tool's file, or a write in progress
            }
            let m = e.metadata().ok()?;
            Some((e.path(), m.len(), m.modified().ok()?))
        })
        .collect()
    }

    /// The bytes the entries take.
    pub fn size(&self) -> u64 {
        self.usage().bytes
    }

    /// How many entries there are and the bytes they take (a walk of the folder: call it off
    /// the UI thread).
    pub fn usage(&self) -> CacheUsage {
        let entries = self.entries();
        CacheUsage {
            entries: entries.len(),
            bytes: entries.iter().map(|e| e.1).sum(),
        }
    }

    /// Deletes the least recently used entries until the cache fits its bound; returns how
    /// many went.
    pub fn evict(&self) -> usize {
        self.evict_keeping(None)
    }

    /// [`Self::evict`], deleting `keep` (the entry just written) only when nothing else is
    /// left to delete.
    fn evict_keeping(&self, keep: Option<&Path>) -> usize {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        // Oldest first; the kept entry last, whatever its time.
        entries.sort_by_key(|e| (Some(e.0.as_path()) == keep, e.2));
        let mut removed = 0;
        for (path, len, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
                removed += 1;
            }
        }
        removed
    }

    /// Whether an entry for `key` is there (not checked: [`Self::get`] checks it).
    pub fn contains(&self, key: &EmbeddingKey) -> bool {
        self.path(key).is_file()
    }

    /// The SHA-256 of checkpoint `path` ([`file_digest`]), remembered in the cache folder's
    /// `checkpoints.json` by file, size and modification time: a checkpoint is read whole
    /// once, not at every start.
    pub fn checkpoint_digest(&self, path: &Path) -> Result<String> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let stamp = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let id = format!("{} {} {stamp}", full.display(), meta.len());
        let memo_path = self.dir.join("checkpoints.json");
        let mut memo: HashMap<String, String> = std::fs::read(&memo_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default(); // none yet, or unreadable: made again
        if let Some(d) = memo.get(&id).filter(|d| d.len() == 64) {
            return Ok(d.clone());
        }
        let digest = file_digest(path)?;
        memo.insert(id, digest.clone());
        if std::fs::create_dir_all(&self.dir).is_ok() {
            let _ = crate::files::write_bytes_atomic(&memo_path, &serde_json::to_vec(&memo)?);
        }
        Ok(digest)
    }

    /// Deletes every entry; returns how many went.
    pub fn clear(&self) -> usize {
        self.entries()
            .into_iter()
            .filter(|(p, ..)| std::fs::remove_file(p).is_ok())
            .count()
    }
}

fn metadata(key: &EmbeddingKey, (h, w): (usize, usize)) -> HashMap<String, String> {
    [
        ("format", FORMAT.to_string()),
        ("image", key.image.clone()),
        ("model", key.model.clone()),
        ("encoder", key.encoder.clone()),
        ("original_hw", format!("{h},{w}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The embedding in a file's `bytes`, if the file is ours, for `key`, and whole.
fn parse(bytes: &[u8], key: &EmbeddingKey) -> Result<StoredEmbedding, String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let m = meta.metadata().clone().unwrap_or_default();
    let get = |k: &str| m.get(k).map(String::as_str);
    if get("format") != Some(FORMAT) {
        return Err("not a segattn embedding".into());
    }
    for (field, want) in [
        ("image", &key.image),
        ("model", &key.model),
        ("encoder", &key.encoder),
    ] {
        if get(field) != Some(want.as_str()) {
            return Err(format!("made for another {field}"));
        }
    }
    let original_hw = get("original_hw")
        .and_then(|s| s.split_once(','))
        .and_then(|(h, w)| Some((h.parse().ok()?, w.parse().ok()?)))
        .filter(|&(h, w): &(usize, usize)| h > 0 && w > 0)
        .ok_or("no image size")?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let t = st.tensor(name).map_err(|e| e.to_string())?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
            return Err(format!("{name} are {:?} {:?}", t.dtype(), t.shape()));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err("a value is not finite".into());
        }
        Ok(v)
    };
    let features = read("features", &SHAPE)?;
    let names = st.names();
    let high_res = if names.contains(&"high_res_s1") {
        Some((
            read("high_res_s1", &HIGH_RES_SHAPES[0])?,
            read("high_res_s0", &HIGH_RES_SHAPES[1])?,
        ))
    } else {
        None
    };
    Ok(StoredEmbedding {
        features,
        high_res,
        original_hw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(image: &str) -> EmbeddingKey {
        EmbeddingKey {
            image: image.into(),
            model: "model-a".into(),
            encoder: "cpu f32".into(),
        }
    }

    fn emb(seed: f32) -> StoredEmbedding {
        StoredEmbedding {
            features: (0..SHAPE.iter().product::<usize>())
                .map(|i| seed + i as f32 * 1e-3)
                .collect(),
            high_res: None,
            original_hw: (480, 640),
        }
    }

    #[test]
    fn a_stored_embedding_comes_back_only_for_its_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = EmbeddingCache::new(dir.path().join("emb"), DEFAULT_MAX_BYTES);
        assert_eq!(cache.get(&key("x")), Lookup::Miss);
        cache.put(&key("x"), &emb(1.0)).expect("put");
        assert_eq!(cache.get(&key("x")), Lookup::Hit(emb(1.0)));
        assert_eq!(cache.get(&key("y")), Lookup::Miss);
        let other_model = EmbeddingKey {
            model: "model-b".into(),
            ..key("x")
        };
        let other_dtype = EmbeddingKey {
            encoder: "cuda f16".into(),
            ..key("x")
        };
        assert_eq!(cache.get(&other_model), Lookup::Miss);
        assert_eq!(cache.get(&other_dtype), Lookup::Miss);
    }

    #[test]
    fn corrupt_and_foreign_files_are_deleted_not_trusted() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = EmbeddingCache::new(dir.path().to_path_buf(), DEFAULT_MAX_BYTES);
        let k = key("x");
        let path = dir.path().join(k.file_name());
        // Cut short.
        cache.put(&k, &emb(1.0)).expect("put");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
        assert!(matches!(cache.get(&k), Lookup::Corrupt(_)));
        assert!(!path.exists(), "deleted");
        assert_eq!(cache.get(&k), Lookup::Miss);
        // Another key's file under this key's name (a collision, or a copied file).
        cache.put(&key("y"), &emb(2.0)).expect("put");
        std::fs::copy(dir.path().join(key("y").file_name()), &path).expect("copy");
        assert!(matches!(cache.get(&k), Lookup::Corrupt(w) if w.contains("another image")));
        // Not finite.
        let mut bad = emb(1.0);
        bad.features[7] = f32::NAN;
        cache.put(&k, &bad).expect("put");
        assert!(matches!(cache.get(&k), Lookup::Corrupt(w) if w.contains("finite")));
        // Garbage, and a safetensors file of another tool.
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(cache.get(&k), Lookup::Corrupt(_)));
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4])
                .expect("view");
        let other = safetensors::serialize([("x", view)], None).expect("serialize");
        std::fs::write(&path, other).expect("write");
        assert!(matches!(cache.get(&k), Lookup::Corrupt(w) if w.contains("not a segattn")));
        // Rewritten after all that, it is trusted again.
        cache.put(&k, &emb(3.0)).expect("put");
        assert_eq!(cache.get(&k), Lookup::Hit(emb(3.0)));
    }

    #[test]
    fn the_least_recently_used_entries_go_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cache = EmbeddingCache::new(dir.path().to_path_buf(), DEFAULT_MAX_BYTES);
        let names = ["a", "b", "c"];
        let t0 = SystemTime::now() - std::time::Duration::from_secs(100);
        for (i, n) in names.iter().enumerate() {
            cache.put(&key(n), &emb(i as f32)).expect("put");
            // Distinct times, oldest first, whatever the file system's resolution.
            let f = std::fs::File::options()
                .append(true)
                .open(dir.path().join(key(n).file_name()))
                .expect("open");
            f.set_modified(t0 + std::time::Duration::from_secs(10 * i as u64))
                .expect("mtime");
        }
        let one = cache.size() / 3;
        assert!(one > 4 * 1024 * 1024, "{one}");
        // "a" is used: "b" is now the least recent.
        assert!(matches!(cache.get(&key("a")), Lookup::Hit(_)));
        cache.set_max_bytes(2 * one);
        assert_eq!(cache.get(&key("b")), Lookup::Miss, "evicted");
        assert!(matches!(cache.get(&key("a")), Lookup::Hit(_)));
        assert!(matches!(cache.get(&key("c")), Lookup::Hit(_)));
        // A new entry over the bound pushes out the least recent again.
        cache.put(&key("d"), &emb(4.0)).expect("put");
        assert_eq!(
            cache.usage(),
            CacheUsage {
                entries: 2,
                bytes: 2 * one
            }
        );
        assert!(matches!(cache.get(&key("d")), Lookup::Hit(_)));
        assert_eq!(cache.clear(), 2);
        assert_eq!(cache.usage(), CacheUsage::default());
    }

    #[test]
    fn digests_see_every_pixel_and_the_size() {
        let a = Rgb8 {
            width: 2,
            height: 1,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let mut b = a.clone();
        b.data[5] = 7;
        let c = Rgb8 {
            width: 1,
            height: 2,
            ..a.clone()
        };
        assert_ne!(image_digest(&a), image_digest(&b));
        assert_ne!(image_digest(&a), image_digest(&c));
        assert_eq!(image_digest(&a), image_digest(&a.clone()));
        assert_eq!(image_digest(&a).len(), 64);
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").expect("write");
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(file_digest(&p).expect("digest"), abc, "SHA-256 of \"abc\"");
        let cache = EmbeddingCache::new(dir.path().join("c"), DEFAULT_MAX_BYTES);
        assert_eq!(cache.checkpoint_digest(&p).expect("digest"), abc);
        assert!(
            dir.path().join("c/checkpoints.json").is_file(),
            "remembered"
        );
        assert_eq!(cache.checkpoint_digest(&p).expect("digest"), abc);
        std::fs::write(&p, b"abd").expect("write");
        let f = std::fs::File::options()
            .append(true)
            .open(&p)
            .expect("open");
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .expect("mtime");
        assert_ne!(
            cache.checkpoint_digest(&p).expect("digest"),
            abc,
            "a changed file is read again"
        );
    }
}
