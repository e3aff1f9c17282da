//! Downloads against a local stand-in for the Hugging Face Hub (the same HTTP exchange: a
//! `Range: bytes=0-0` probe answered with `etag`, `x-repo-commit` and `Content-Range`, then a
//! ranged GET), so the real hf-hub client, progress, cancellation and resume are exercised
//! without a network.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use segattn::download::{Download, DownloadEvent, DownloadOptions, DownloadSpec, ModelKind};

/// Deterministic file contents.
fn content(name: &str, len: usize) -> Vec<u8> {
    let seed = name.bytes().map(usize::from).sum::<usize>();
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

const FILES: [(&str, usize); 3] = [
    ("config.json", 700),
    ("tokenizer.json", 20_000),
    ("model.safetensors", 600_000),
];

/// What a stand-in served: per file, the first byte of each body it sent (probes of one byte
/// left out) and the body bytes sent.
type Served = Arc<Mutex<HashMap<String, (Vec<usize>, usize)>>>;

/// Serves `FILES` of repo `test/model`; `slow` sends bodies in small pieces with pauses.
fn serve(slow: bool) -> String {
    serve_counting(slow).0
}

/// [`serve`], also counting what it sends.
fn serve_counting(slow: bool) -> (String, Served) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served: Served = Arc::default();
    let counts = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counts = counts.clone();
            std::thread::spawn(move || answer(stream, slow, &counts));
        }
    });
    (format!("http://{addr}"), served)
}

fn answer(mut stream: TcpStream, slow: bool, served: &Served) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut range = None; // (start, Some(end) | None for open-ended)
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(r) = lower.strip_prefix("range: bytes=") {
            let (a, b) = r.trim().split_once('-').unwrap_or((r.trim(), ""));
            range = a
                .parse::<usize>()
                .ok()
                .map(|a| (a, b.parse::<usize>().ok()));
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let file = path.strip_prefix("/test/model/resolve/main/");
    let Some(&(name, len)) = file.and_then(|f| FILES.iter().find(|(n, _)| *n == f)) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let body = content(name, len);
    let (start, end) = match range {
        Some((s, Some(e))) => (s, e.min(len - 1)), // hf-hub's probe: bytes=0-0
        Some((s, None)) => (s, len - 1),
        None => (0, len - 1),
    };
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{len}\r\netag: \"etag-{name}\"\r\nx-repo-commit: 0123456789abcdef\r\nConnection: close\r\n\r\n",
        end + 1 - start
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let probe = range == Some((0, Some(0)));
    if !probe {
        if let Ok(mut s) = served.lock() {
            s.entry(name.to_string()).or_default().0.push(start);
        }
    }
    for chunk in body[start..=end].chunks(if slow { 4096 } else { 1 << 20 }) {
        if stream.write_all(chunk).is_err() {
            return;
        }
        if !probe {
            if let Ok(mut s) = served.lock() {
                s.entry(name.to_string()).or_default().1 += chunk.len();
            }
        }
        if slow {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn spec() -> DownloadSpec {
    DownloadSpec {
        label: "test".into(),
        repo: "test/model".into(),
        files: FILES.iter().map(|(n, _)| (*n).to_string()).collect(),
        kind: ModelKind::Text,
        approx_mb: 1,
    }
}

/// Runs a download to its end; `on_progress(download, file index, bytes done, total)`.
fn run(
    endpoint: &str,
    cache: &Path,
    on_progress: impl Fn(&Download, usize, u64, u64),
) -> (DownloadEvent, usize) {
    let options = DownloadOptions {
        endpoint: Some(endpoint.to_string()),
        cache_dir: Some(cache.to_path_buf()),
    };
    let d = Download::start(spec(), options, Arc::new(|| {})).expect("thread");
    let mut progress = 0;
    loop {
        match d.recv().expect("an event") {
            DownloadEvent::Progress {
                index, done, total, ..
            } => {
                assert!(done <= total, "{done} > {total}");
                progress += 1;
                on_progress(&d, index, done, total);
            }
            end => return (end, progress),
        }
    }
}

#[test]
fn downloads_a_model_folder_into_the_cache() {
    let endpoint = serve(false);
    let cache = tempfile::tempdir().expect("tempdir");
    let (end, progress) = run(&endpoint, cache.path(), |_, _, _, _| {});
    let DownloadEvent::Finished(folder) = end else {
        panic!("expected Finished, got {end:?}");
    };
    assert!(progress >= 3, "progress events: {progress}");
    for (name, len) in FILES {
        let got = std::fs::read(folder.join(name)).expect("downloaded file");
        assert_eq!(got, content(name, len), "{name}");
    }
    // The model is where the app looks for text models in the Hugging Face cache.
    assert!(folder.starts_with(cache.path().join("models--test--model/snapshots")));
    // A second run finds everything in the cache and fetches nothing.
    let (again, progress) = run("http://127.0.0.1:9", cache.path(), |_, _, _, _| {});
    assert_eq!(again, DownloadEvent::Finished(folder));
    assert_eq!(progress, 0);
}

#[test]
fn cancel_stops_and_a_second_run_resumes() {
    let slow = serve(true);
    let cache = tempfile::tempdir().expect("tempdir");
    // Cancel in the middle of the weights file.
    let (end, _) = run(&slow, cache.path(), |d, index, done, total| {
        if index == 2 && done > 0 && done < total {
            d.cancel();
        }
    });
    assert_eq!(end, DownloadEvent::Cancelled);
    let snapshot = cache
        .path()
        .join("models--test--model/snapshots/0123456789abcdef");
    assert!(snapshot.join("config.json").exists());
    assert!(!snapshot.join("model.safetensors").exists());
    // The partial blob is kept for the next run to resume from.
    let blobs = cache.path().join("models--test--model/blobs");
    let part = std::fs::read_dir(&blobs)
        .expect("blobs")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "part"))
        .expect("a .part file");
    let kept = part.metadata().expect("meta").len() as usize;
    assert!(
        kept > 0 && kept < FILES[2].1,
        "partial file of {kept} bytes"
    );
    let (endpoint, served) = serve_counting(false);
    let (end, _) = run(&endpoint, cache.path(), |_, _, _, _| {});
    let DownloadEvent::Finished(folder) = end else {
        panic!("expected Finished, got {end:?}");
    };
    let (name, len) = FILES[2];
    assert_eq!(
        std::fs::read(folder.join(name)).expect("file"),
        content(name, len)
    );
    // The bytes already on disk were not fetched again: one ranged request from where the
    // partial file ended, for the rest only; the files already complete were not requested.
    let served = served.lock().expect("counts");
    assert_eq!(
        served.get(name),
        Some(&(vec![kept], len - kept)),
        "{served:?}"
    );
    assert!(!served.contains_key("config.json"), "{served:?}");
}

#[test]
fn unreachable_hub_fails_with_a_message() {
    let cache = tempfile::tempdir().expect("tempdir");
    let (end, _) = run("http://127.0.0.1:9", cache.path(), |_, _, _, _| {});
    let DownloadEvent::Failed(message) = end else {
        panic!("expected Failed, got {end:?}");
    };
    assert!(message.contains("config.json"), "{message}");
}
