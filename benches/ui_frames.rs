//! Frame times of the three views under their heaviest settings, and the click as the app runs
//! it, measured headless with egui_kittest: app logic, egui layout and tessellation per frame
//! (the CPU side; no GPU), while the workers and view jobs run on their threads.
//!
//!     scripts/fetch-test-models.sh && cargo bench --bench ui_frames
//!
//! - Segment: a 12-megapixel photo, MobileSAM (deterministic weights), 3 candidates and the
//!   decoder-attention overlay, while the opacity slider is dragged, then while the pointer
//!   moves over the image.
//! - Click: from the pointer event to the mask's overlay ready to draw (the status bar's
//!   "click"), on the bundled cat, against the model's own prompt-to-mask time in the same run
//!   (what `segattn bench sam` times).
//! - Folder: a folder of 16 photos whose embeddings a first app put in the disk cache; a new
//!   app (a restart) on it, D pressed, and a click as soon as the image is on screen: from the
//!   key press to the mask's overlay ready to draw, and where that time went (the image on
//!   screen, the embedding ready). Then clicks on a folder's image while the next one is
//!   encoded ahead, against the same clicks after. `cargo bench --bench ui_frames -- folder`
//!   runs only these (`-- attention`: only the Attention scenarios; `-- train`: only the Train
//!   view's).
//! - Attention (needs `.testdata/all-MiniLM-L6-v2`): 128 and 512 tokens, rollout and merged
//!   words, the layer changing every 20 frames while the pointer sweeps the heatmap; then 512
//!   tokens with the word's bar list and one head's step view open, the head changing.
//! - Encodings: 512 sinusoidal positions with cosine similarity, and SAM's point encoding
//!   (4096 grid cells) with cosine similarity, the pointer over the heatmap.
//! - Train: the Train view while the largest model it offers (4 layers × 4 heads × 128) trains
//!   on the induction task on the training worker, evaluating every 10 steps (a new grid of
//!   heatmaps and curves each time), the pointer over the large head.
//!
//! Prints one table: median and worst frame per scenario, and the click times.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use egui::{Event, Modifiers, PointerButton, Pos2};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use segattn::app::{AppOptions, SegattnApp};
use segattn::model::sam::SamModel;
use segattn::types::{PointLabel, PointPrompt, Prompts};
use segattn::ui::attention_view::AttnMode;
use segattn::ui::encodings_view::EncodingKind;
use segattn::ui::segment::{EncodeState, ImageSource};
use segattn::ui::View;

use common::App;

fn mobile_sam() -> SamModel {
    SamModel::detweights(common::mobile_sam_config(), 1, &Device::Cpu).expect("model")
}

fn app(opts: AppOptions) -> App {
    Harness::builder()
        .with_size([1600.0, 1000.0])
        .build_eframe(move |cc| SegattnApp::new(cc, opts).expect("app starts"))
}

/// Steps the app until `cond` holds (short pauses: the click times are read from it).
fn wait_until(h: &mut App, what: &str, cond: impl Fn(&SegattnApp) -> bool) {
    common::wait_until_with(h, what, Duration::from_micros(200), cond);
}

/// Times `frames` frames, `before(i)` sending each frame's input first.
fn time_frames(h: &mut App, frames: usize, mut before: impl FnMut(&mut App, usize)) -> Vec<f64> {
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        before(h, i);
        let t = Instant::now();
        h.step();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn worst(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// A position along a zig-zag sweep of `rect` at step `i` of `n`.
fn sweep(rect: egui::Rect, i: usize, n: usize) -> Pos2 {
    let t = i as f32 / n as f32;
    Pos2::new(
        rect.min.x + rect.width() * (0.05 + 0.9 * t),
        rect.min.y + rect.height() * (0.05 + 0.9 * ((t * 17.0) % 1.0)),
    )
}

fn click(h: &App, pos: Pos2) {
    h.event(Event::PointerMoved(pos));
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
    }
}

/// A smooth synthetic photo, written as a PNG.
fn big_photo(width: u32, height: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("photo-12mp.png");
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            ((x / 7 + y / 5) % 256) as u8,
        ])
    });
    img.save(&path).expect("write the photo");
    (dir, path)
}

struct Row {
    scenario: String,
    frames: Vec<f64>,
}

fn segment_frames(rows: &mut Vec<Row>) {
    let (_dir, photo) = big_photo(4000, 3000);
    let mut h = app(AppOptions {
        sam_model: Some(mobile_sam()),
        image: Some(photo),
        ..Default::default()
    });
    wait_until(&mut h, "the 12-megapixel photo to be encoded", |a| {
        a.segment
            .image
            .as_ref()
            .is_some_and(|i| i.rgb.width == 4000)
            && common::encoded(a)
    });
    let canvas = h.get_by_label("Image canvas").rect();
    click(&h, canvas.center());
    wait_until(&mut h, "3 candidates with overlays", |a| {
        a.segment
            .candidates
            .as_ref()
            .is_some_and(|c| c.masks.len() == 3 && c.overlays.is_some())
    });
    h.state_mut().segment.show_attention = true;
    h.run_steps(3);
    // Drag the opacity slider back and forth.
    let at = common::along_slider(&h);
    h.event(Event::PointerMoved(at(0.5)));
    common::primary_button(&h, at(0.5), true);
    let opacity_before = h.state().settings.segment.opacity;
    let frames = time_frames(&mut h, 300, |h, i| {
        let t = 0.5 + 0.45 * ((i as f32) * 0.05).sin();
        h.event(Event::PointerMoved(at(t)));
    });
    common::primary_button(&h, at(0.5), false);
    assert_ne!(
        h.state().settings.segment.opacity,
        opacity_before,
        "the drag moved the slider"
    );
    rows.push(Row {
        scenario: "Segment, 12 MP photo, 3 candidates + attention overlay, opacity slider dragged"
            .into(),
        frames,
    });
    let frames = time_frames(&mut h, 300, |h, i| {
        h.event(Event::PointerMoved(sweep(canvas, i, 300)));
    });
    rows.push(Row {
        scenario: "Segment, 12 MP photo, same, pointer moving over the image".into(),
        frames,
    });
}

/// Clicks on the cat as the app runs them, each followed by the same prompt straight through
/// the model, as `segattn bench sam` times a click (pairs, so that the machine's drift hits
/// both alike).
fn clicks() -> (Vec<f64>, Vec<f64>) {
    let model = mobile_sam();
    let (_, rgb) = decode_sample();
    let emb = model.embed(&rgb).expect("embedding");
    let mut h = app(AppOptions {
        sam_model: Some(mobile_sam()),
        ..Default::default()
    });
    wait_until(&mut h, "the cat to be encoded", common::encoded);
    // Clicks alone, as before the hover preview (`hovers` times that).
    h.state_mut().settings.segment.hover_preview = false;
    h.step();
    let canvas = h.get_by_label("Image canvas").rect();
    let (mut app_ms, mut model_ms) = (Vec::new(), Vec::new());
    for i in 0..40 {
        // One foreground point per click, each a new object (3 masks, as `bench sam`).
        let pos = sweep(canvas, i, 40);
        let app_click = app_click(&mut h, pos);
        let s = &h.state().segment;
        let prompts = Prompts {
            points: vec![PointPrompt {
                pos_in_image: s.prompts().points[0].pos_in_image,
                label: PointLabel::Foreground,
            }],
            ..Default::default()
        };
        let t = Instant::now();
        model.predict(&emb, &prompts, true).expect("predicts");
        if i >= 5 {
            app_ms.push(app_click);
            model_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    (app_ms, model_ms)
}

/// One click at `pos` as a new object, as the app runs it: the status bar's click time
/// (pointer event to overlay ready), in ms.
fn app_click(h: &mut App, pos: Pos2) -> f64 {
    let before = h.state().segment.candidates.as_ref().map(|c| c.request_id);
    h.state_mut().segment.history.reset();
    click(h, pos);
    h.step(); // the frame that takes the pointer events
    let start = Instant::now();
    // As eframe runs the app: a frame only when a worker or job asked for one.
    paced_until(h, start, "the overlay", |a| {
        let shown = a.segment.candidates.as_ref().map(|c| c.request_id);
        shown.is_some() && shown != before && a.segment.awaiting.is_none()
    });
    h.state().segment.last_click_ms.expect("timed")
}

/// Clicks on a folder's first image while the worker encodes the next one ahead (only the
/// clicks that ended before it did), then as many once it is done: what the background
/// encoder costs a click.
fn clicks_while_encoding_ahead() -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().expect("tmp");
    let images = dir.path().join("photos");
    write_folder(&images, 3);
    let mut h = app(AppOptions {
        sam_model: Some(mobile_sam()),
        image: Some(images),
        cache_dir: Some(dir.path().join("cache")),
        ..Default::default()
    });
    wait_until(&mut h, "the folder's first image", |a| {
        a.segment.folder.is_some() && common::encoded(a)
    });
    h.state_mut().settings.segment.hover_preview = false;
    wait_until(&mut h, "the next image encoded ahead", |a| {
        a.segment.encoding_ahead().is_some()
    });
    let canvas = h.get_by_label("Image canvas").rect();
    let mut during = Vec::new();
    for i in 0..40 {
        let ms = app_click(&mut h, sweep(canvas, i, 40));
        if h.state().segment.encoding_ahead().is_none() {
            break;
        }
        during.push(ms);
    }
    wait_until(&mut h, "the encoding ahead done", |a| {
        !a.segment.encoded_ahead.is_empty()
    });
    let after = (0..during.len().max(5))
        .map(|i| app_click(&mut h, sweep(canvas, i, 40)))
        .collect();
    (during, after)
}

/// Writes `n` photos of distinct content (so distinct embeddings) to the new folder `dir`:
/// the cat, its colours rotated.
fn write_folder(dir: &std::path::Path, n: u8) {
    std::fs::create_dir(dir).expect("dir");
    let (_, cat) = decode_sample();
    for i in 0..n {
        let img = image::RgbImage::from_fn(cat.width as u32, cat.height as u32, |x, y| {
            let p = (y as usize * cat.width + x as usize) * 3;
            let c = &cat.data[p..p + 3];
            image::Rgb([c[0].wrapping_add(i * 29), c[1].wrapping_add(i * 13), c[2]])
        });
        img.save(dir.join(format!("photo{i}.png"))).expect("write");
    }
}

/// The hover preview as the app runs it: from the pointer coming to rest at a new position to
/// its preview on screen (the rest time included), frames paced as eframe paces them.
fn hovers() -> Vec<f64> {
    let mut h = app(AppOptions {
        sam_model: Some(mobile_sam()),
        ..Default::default()
    });
    wait_until(&mut h, "the cat to be encoded", common::encoded);
    let canvas = h.get_by_label("Image canvas").rect();
    let mut out = Vec::new();
    for i in 0..30 {
        let pos = sweep(canvas, i, 30);
        h.event(Event::PointerMoved(pos));
        let start = Instant::now();
        h.step();
        let target = h.state().segment.hover.pointer;
        loop {
            if h.ctx.has_requested_repaint() {
                h.step();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
            let shown = h
                .state()
                .segment
                .hover
                .preview
                .as_ref()
                .map(|p| p.prompts.points.last().map(|q| q.pos_in_image));
            if shown.flatten() == target && target.is_some() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no preview");
        }
        if i >= 5 {
            out.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    out
}

fn decode_sample() -> (String, segattn::types::Rgb8) {
    let (name, bytes) = segattn::ui::segment::SAMPLES[0];
    let src = ImageSource::Sample(name, bytes);
    (
        name.to_string(),
        segattn::ui::segment::loading::decode_image(&src).expect("decodes"),
    )
}

/// Steps the app as eframe runs it (a frame only when a worker or job asked for one) until
/// `cond` holds.
fn paced_until(h: &mut App, start: Instant, what: &str, cond: impl Fn(&SegattnApp) -> bool) {
    loop {
        if h.ctx.has_requested_repaint() {
            h.step();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
        if cond(h.state()) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no {what}");
    }
}

/// Where one folder step's time went, in ms from the key press.
#[derive(Default)]
struct FolderPhases {
    /// The image on screen (decoded).
    shown: Vec<f64>,
    /// The embedding ready in the worker.
    ready: Vec<f64>,
    /// The worker's own time for the embedding (the cache read, or the encoder).
    worker: Vec<f64>,
    /// The mask's overlay ready to draw (the whole step).
    mask: Vec<f64>,
}

/// Photos in the folder scenario (one step fewer: the first image opens with the folder).
const FOLDER_IMAGES: usize = 16;

/// Key press to first mask on images whose embeddings are in the disk cache (see the module
/// doc), and the same steps with no cache (the encoder runs each time).
fn folder_steps() -> (FolderPhases, FolderPhases) {
    let dir = tempfile::tempdir().expect("tmp");
    let cache = dir.path().join("cache");
    let images = dir.path().join("photos");
    write_folder(&images, FOLDER_IMAGES as u8);
    let open = |with_cache: bool| {
        let mut h = app(AppOptions {
            sam_model: Some(mobile_sam()),
            image: Some(images.clone()),
            cache_dir: with_cache.then(|| cache.clone()),
            ..Default::default()
        });
        wait_until(&mut h, "the folder's first image", |a| {
            a.segment.folder.is_some() && common::encoded(a)
        });
        h.state_mut().settings.segment.hover_preview = false;
        h
    };
    // Put every embedding in the cache.
    let mut h = open(true);
    for i in 1..FOLDER_IMAGES {
        h.key_press(egui::Key::D);
        wait_until(&mut h, "the next image encoded", |a| {
            a.segment.folder.as_ref().and_then(|f| f.current) == Some(i)
                && a.segment.loading().is_none()
                && common::encoded(a)
        });
    }
    drop(h);
    let steps = |with_cache: bool| {
        let mut h = open(with_cache);
        let canvas = h.get_by_label("Image canvas").rect();
        let mut out = FolderPhases::default();
        let since = |start: Instant| start.elapsed().as_secs_f64() * 1e3;
        for i in 1..FOLDER_IMAGES {
            let start = Instant::now();
            h.key_press(egui::Key::D);
            paced_until(&mut h, start, "the image", |a| {
                let s = &a.segment;
                let here = s.folder.as_ref().and_then(|f| f.current) == Some(i);
                here && s.loading().is_none()
            });
            out.shown.push(since(start));
            paced_until(&mut h, start, "the embedding", common::encoded);
            out.ready.push(since(start));
            if let EncodeState::Ready { ms, .. } = h.state().segment.encode {
                out.worker.push(ms);
            }
            if with_cache {
                assert!(
                    matches!(
                        h.state().segment.encode,
                        EncodeState::Ready { cached: true, .. }
                    ),
                    "image {i} from the cache"
                );
            }
            click(&h, sweep(canvas, i, FOLDER_IMAGES));
            h.step();
            paced_until(&mut h, start, "the overlay", |a| {
                a.segment.candidates.is_some() && a.segment.awaiting.is_none()
            });
            out.mask.push(since(start));
            h.state_mut().segment.history.reset();
        }
        out
    };
    (steps(true), steps(false))
}

fn attention_frames(rows: &mut Vec<Row>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testdata/all-MiniLM-L6-v2");
    if !dir.join("config.json").is_file() {
        eprintln!(
            "Attention scenarios skipped: needs {} (scripts/fetch-test-models.sh)",
            dir.display()
        );
        return;
    }
    let mut h = app(AppOptions {
        text_model: Some(dir),
        ..Default::default()
    });
    h.state_mut().settings.view = View::Attention;
    for tokens in [128usize, 512] {
        {
            let s = &mut h.state_mut().settings.attention;
            // 126 or 510 words plus [CLS] and [SEP]; merging joins the two pieces of "mange".
            s.text = vec!["mange"; (tokens - 2) / 2].join(" ");
            s.mode = AttnMode::Rollout;
            s.merge_words = true;
            s.head_view = false;
            s.layer = 0;
        }
        wait_until(&mut h, "the rollout map", |a| {
            a.attention
                .output
                .as_ref()
                .is_some_and(|o| o.attentions.n == tokens)
                && a.attention
                    .shown
                    .as_ref()
                    .is_some_and(|m| m.key.mode == AttnMode::Rollout && m.key.merge)
        });
        h.run_steps(3);
        let rect = h.get_by_label("Attention heatmap").rect();
        let frames = time_frames(&mut h, 400, |h, i| {
            if i % 20 == 0 {
                let s = &mut h.state_mut().settings.attention;
                s.layer = (s.layer + 1) % 6;
            }
            h.event(Event::PointerMoved(sweep(rect, i, 400)));
        });
        rows.push(Row {
            scenario: format!(
                "Attention, {tokens} tokens, rollout + merged words, layer changing, pointer over the map"
            ),
            frames,
        });
    }
    // The lesson's panels: the word's bar list and one head's steps (512 tokens), the head
    // changing every 20 frames (new steps from the worker), the pointer over the map.
    {
        let s = &mut h.state_mut().settings.attention;
        s.mode = AttnMode::Head;
        s.step_view = true;
    }
    wait_until(&mut h, "the head's steps", |a| a.attention.steps.is_some());
    h.run_steps(3);
    let rect = h.get_by_label("Attention heatmap").rect();
    let frames = time_frames(&mut h, 400, |h, i| {
        if i % 20 == 0 {
            let s = &mut h.state_mut().settings.attention;
            s.head = (s.head + 1) % 12;
        }
        h.event(Event::PointerMoved(sweep(rect, i, 400)));
    });
    rows.push(Row {
        scenario: "Attention, 512 tokens, one head, bar list + step view, head changing, pointer over the map".into(),
        frames,
    });
}

fn encodings_frames(rows: &mut Vec<Row>) {
    let mut h = app(AppOptions {
        sam_model: Some(mobile_sam()),
        ..Default::default()
    });
    h.state_mut().settings.view = View::Encodings;
    // The frames below are timed while SAM encodes the sample image it starts with (on
    // every core, below the UI thread's priority) and the view's own jobs run.
    wait_until(&mut h, "the SAM model", |a| a.sam_model.loaded.is_some());
    for (kind, label) in [
        (EncodingKind::Sinusoidal, "512 sinusoidal positions"),
        (EncodingKind::SamPoints, "SAM point encoding (4096 cells)"),
    ] {
        {
            let s = &mut h.state_mut().settings.encodings;
            s.kind = kind;
            s.positions = 512;
            s.dims = 128;
            s.similarity = true;
        }
        wait_until(&mut h, "the similarity", |a| {
            !a.encodings.is_computing()
                && a.encodings
                    .current
                    .as_ref()
                    .is_some_and(|c| c.shown.rows == c.base.rows && c.shown.cols == c.base.rows)
        });
        h.run_steps(3);
        let rect = h.get_by_label("Encoding heatmap").rect();
        let frames = time_frames(&mut h, 300, |h, i| {
            h.event(Event::PointerMoved(sweep(rect, i, 300)));
        });
        rows.push(Row {
            scenario: format!("Encodings, {label}, cosine similarity, pointer over the map"),
            frames,
        });
    }
}

/// The Train view while a model trains on the worker: frames with the curves and the grid
/// redrawn as snapshots come, the pointer over the large head.
fn train_frames(rows: &mut Vec<Row>) {
    let mut h = app(AppOptions::default());
    h.state_mut().settings.view = View::Train;
    {
        let s = &mut h.state_mut().settings.train.settings;
        *s = segattn::types::train::TrainSettings {
            task: segattn::types::train::Task::Induction,
            layers: 4,
            heads: 4,
            dim: 128,
            steps: 100_000,
            eval_every: 10,
            ..Default::default()
        };
    }
    h.run_steps(2);
    h.get_by_label("▶ Train").click();
    wait_until(&mut h, "the first evaluations", |a| {
        a.train
            .snapshot
            .as_ref()
            .is_some_and(|s| s.progress.evals.len() >= 2)
    });
    h.run_steps(3);
    let rect = h.get_by_label("Attention heatmap").rect();
    let frames = time_frames(&mut h, 300, |h, i| {
        h.event(Event::PointerMoved(sweep(rect, i, 300)));
        std::thread::sleep(Duration::from_millis(4)); // let the worker publish between frames
    });
    let steps = h
        .state()
        .train
        .snapshot
        .as_ref()
        .map_or(0, |s| s.progress.step);
    rows.push(Row {
        scenario: format!(
            "Train, induction 4 layers × 4 heads × 128 training ({steps} steps by the end), \
             pointer over the head"
        ),
        frames,
    });
}

fn main() {
    // As the binary does: candle re-reads /proc/cpuinfo on every matmul unless this is set.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    segattn::alloc::tune_for_inference();
    segattn::runtime::init_compute_pool(threads);
    let mut rows = Vec::new();
    if std::env::args().any(|a| a == "train") {
        // `cargo bench --bench ui_frames -- train`: the Train view's scenario only.
        train_frames(&mut rows);
        print_rows(&rows);
        return;
    }
    if std::env::args().any(|a| a == "attention") {
        // `cargo bench --bench ui_frames -- attention`: the Attention view's scenarios only.
        attention_frames(&mut rows);
        print_rows(&rows);
        return;
    }
    let (cached, uncached) = folder_steps();
    let (during, after) = clicks_while_encoding_ahead();
    print_folder(&cached, &uncached, &during, &after);
    if std::env::args().any(|a| a == "folder") {
        return; // `cargo bench --bench ui_frames -- folder`: this scenario only
    }
    segment_frames(&mut rows);
    attention_frames(&mut rows);
    encodings_frames(&mut rows);
    train_frames(&mut rows);
    let (app_ms, model_ms) = clicks();
    let hover_ms = hovers();
    print_rows(&rows);
    println!();
    println!(
        "| click (MobileSAM, the cat, 1 point, 3 masks) | clicks | median (ms) | worst (ms) |"
    );
    println!("| --- | --- | --- | --- |");
    println!(
        "| as the app runs it: pointer event to overlay ready | {} | {:.1} | {:.1} |",
        app_ms.len(),
        median(&app_ms),
        worst(&app_ms)
    );
    println!(
        "| the model alone (`segattn bench sam`'s click) | {} | {:.1} | {:.1} |",
        model_ms.len(),
        median(&model_ms),
        worst(&model_ms)
    );
    println!(
        "| hover: pointer at rest to its preview on screen (40 ms rest included) | {} | {:.1} | {:.1} |",
        hover_ms.len(),
        median(&hover_ms),
        worst(&hover_ms)
    );
    let ratios: Vec<f64> = app_ms.iter().zip(&model_ms).map(|(a, m)| a / m).collect();
    println!(
        "(CPU side of each frame; {} threads; app / model click: {:.2} (ratio of medians), {:.2} (median of the pairs' ratios))",
        rayon::current_num_threads(),
        median(&app_ms) / median(&model_ms),
        median(&ratios)
    );
}

/// The folder scenario's table: the whole step and its phases, with and without the cache.
fn print_folder(cached: &FolderPhases, uncached: &FolderPhases, during: &[f64], after: &[f64]) {
    println!("| folder, D then a click (MobileSAM) | steps | median (ms) | worst (ms) |");
    println!("| --- | --- | --- | --- |");
    for (what, p) in [
        ("embedding in the disk cache (after a restart)", cached),
        ("no cache: the encoder runs", uncached),
    ] {
        for (phase, v) in [
            ("key press to mask", &p.mask),
            ("key press to image on screen", &p.shown),
            ("key press to embedding ready", &p.ready),
            ("the worker's embedding time", &p.worker),
        ] {
            println!(
                "| {what}: {phase} | {} | {:.1} | {:.1} |",
                v.len(),
                median(v),
                worst(v)
            );
        }
    }
    for (what, v) in [
        ("a click while the next image is encoded ahead", during),
        ("the same clicks once it is done", after),
    ] {
        println!(
            "| {what} | {} | {:.1} | {:.1} |",
            v.len(),
            median(v),
            worst(v)
        );
    }
    println!();
}

/// The frame table: median and worst frame per scenario.
fn print_rows(rows: &[Row]) {
    println!("| scenario | frames | median (ms) | worst (ms) |");
    println!("| --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.2} |",
            r.scenario,
            r.frames.len(),
            median(&r.frames),
            worst(&r.frames)
        );
    }
}
