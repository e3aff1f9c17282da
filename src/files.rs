//! Writing files atomically: into a temporary file beside the target, renamed over it once
//! complete and flushed, so an error or a crash half-way never leaves a half-written file nor
//! destroys the one that was there.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The context of every failed write: which file (the cause follows in the error's chain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write {}", .0.display())]
pub struct WriteError(pub PathBuf);

/// Writes `path` with `write`, atomically (see the module doc).
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let tmp = temporary_beside(path);
    let result = (|| -> Result<()> {
        let file = File::create(&tmp).with_context(|| WriteError(path.to_path_buf()))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| WriteError(path.to_path_buf()))?;
        file.sync_all()
            .with_context(|| WriteError(path.to_path_buf()))?;
        std::fs::rename(&tmp, path).with_context(|| WriteError(path.to_path_buf()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(bytes)
            .with_context(|| WriteError(path.to_path_buf()))
    })
}

/// A hidden temporary name in `path`'s folder, unique to this process and call.
fn temporary_beside(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out.json");
        write_bytes_atomic(&path, b"old").expect("first write");
        let err = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            anyhow::bail!("disk full")
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["out.json"]);
        write_bytes_atomic(&path, b"new").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
    }

    #[test]
    fn a_missing_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("no/such/folder/out.png");
        let e = write_bytes_atomic(&path, b"x").expect_err("fails");
        assert!(format!("{e:#}").contains("out.png"), "{e:#}");
    }
}
