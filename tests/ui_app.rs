//! The desktop app driven as a person would, headless with egui_kittest: open an image through
//! the dialog's code path, click on it, see a mask; pick candidates; undo and redo; export; pick
//! a layer and head in the attention grid.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::Device;
use egui::{Event, Modifiers, PointerButton, Pos2};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use segattn::app::{AppOptions, SegattnApp};
use segattn::model::sam::SamModel;
use segattn::types::PointLabel;
use segattn::ui::segment::export::ExportKind;
use segattn::ui::segment::{EncodeState, ImageSource};
use segattn::ui::View;

/// The small ViT SAM of the fixtures (detweights seed 2).
fn small_sam() -> SamModel {
    SamModel::detweights(common::small_vit_config(), 2, &Device::Cpu).expect("model")
}

fn app(opts: AppOptions) -> Harness<'static, SegattnApp> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(move |cc| SegattnApp::new(cc, opts).expect("app starts"))
}

/// Steps the app until `cond` holds.
fn wait_until(
    h: &mut Harness<'static, SegattnApp>,
    what: &str,
    cond: impl Fn(&SegattnApp) -> bool,
) {
    common::wait_until_with(h, what, Duration::from_millis(20), cond);
}

/// The app with the small ViT, once the bundled sample is encoded.
fn sample_encoded() -> Harness<'static, SegattnApp> {
    let mut h = app(AppOptions {
        sam_model: Some(small_sam()),
        ..Default::default()
    });
    wait_until(&mut h, "the bundled sample to be encoded", common::encoded);
    h
}

/// A click on the image canvas at image pixel `(x, y)`.
fn click_image(h: &mut Harness<'static, SegattnApp>, x: f32, y: f32, button: PointerButton) {
    let (w, ht) = {
        let img = h.state().segment.image.as_ref().expect("image");
        (img.rgb.width as f32, img.rgb.height as f32)
    };
    let rect = h.get_by_label("Image canvas").rect();
    let pos = Pos2::new(
        rect.min.x + x / w * rect.width(),
        rect.min.y + y / ht * rect.height(),
    );
    h.event(Event::PointerMoved(pos));
    h.step();
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos,
            button,
            pressed,
            modifiers: Modifiers::NONE,
        });
        h.step();
    }
}

fn asset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
}

fn chelsea() -> PathBuf {
    asset("chelsea.png")
}

#[test]
fn click_shows_a_mask_and_undo_redo_export_work() {
    let mut h = app(AppOptions {
        sam_model: Some(small_sam()),
        ..Default::default()
    });
    // Open the image through the same code path as the file dialog.
    let ctx = h.ctx.clone();
    h.state_mut()
        .segment
        .open(ImageSource::File(chelsea()), &ctx);
    wait_until(&mut h, "the image to be encoded", |a| {
        a.segment
            .image
            .as_ref()
            .is_some_and(|i| i.name == "chelsea.png")
            && matches!(a.segment.encode, EncodeState::Ready { .. })
    });
    assert!(h
        .state()
        .status
        .sam_model
        .as_deref()
        .is_some_and(|m| m.contains("ViT")));

    click_image(&mut h, 250.0, 130.0, PointerButton::Primary);
    wait_until(&mut h, "a mask", |a| a.segment.candidates.is_some());
    {
        let s = &h.state().segment;
        assert_eq!(s.prompts().points.len(), 1);
        let p = s.prompts().points[0];
        assert_eq!(p.label, PointLabel::Foreground);
        assert!(
            (p.pos_in_image[0] - 250.0).abs() < 2.0 && (p.pos_in_image[1] - 130.0).abs() < 2.0,
            "{p:?}"
        );
        let c = s.candidates.as_ref().expect("candidates");
        assert_eq!(c.masks.len(), 3, "3 candidates by default");
        assert!(c.masks.iter().all(|m| (m.width, m.height) == (451, 300)));
        assert!(
            s.selected_mask().expect("mask").area() > 0,
            "the chosen mask is not empty"
        );
    }
    // Pick the second candidate by its thumbnail.
    h.get_by_label_contains("Candidate 2").click();
    h.step();
    assert_eq!(h.state().segment.selected, 1);

    // A right click adds a background point.
    click_image(&mut h, 425.0, 200.0, PointerButton::Secondary);
    wait_until(&mut h, "the second prompt's masks", |a| {
        a.segment.prompts().points.len() == 2 && a.segment.awaiting.is_none()
    });
    assert_eq!(
        h.state().segment.prompts().points[1].label,
        PointLabel::Background
    );

    // Undo twice, then redo once.
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert_eq!(h.state().segment.prompts().points.len(), 1);
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.step();
    assert!(h.state().segment.prompts().is_empty());
    assert!(h.state().segment.candidates.is_none(), "no prompt, no mask");
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, egui::Key::Z);
    wait_until(&mut h, "the redone prompt's mask", |a| {
        a.segment.candidates.is_some()
    });
    assert_eq!(h.state().segment.prompts().points.len(), 1);

    // Export the chosen mask and all masks as COCO.
    let dir = tempfile::tempdir().expect("tmp");
    let png = dir.path().join("mask.png");
    let export = |h: &egui_kittest::Harness<'_, segattn::app::SegattnApp>, kind, path: &Path| {
        let a = h.state();
        a.segment.export(kind, &a.settings.segment, path)
    };
    export(&h, ExportKind::MaskPng, &png).expect("png export");
    let img = image::open(&png).expect("valid png").into_luma8();
    assert_eq!(img.dimensions(), (451, 300));
    let area = img.pixels().filter(|p| p.0[0] == 255).count();
    assert_eq!(
        area,
        h.state().segment.selected_mask().expect("mask").area()
    );
    h.get_by_label("Add object").click();
    h.step();
    assert_eq!(h.state().segment.objects.len(), 1);
    let json_path = dir.path().join("coco.json");
    export(&h, ExportKind::Coco, &json_path).expect("coco export");
    let coco: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json"))
            .expect("valid json");
    let ann = &coco["annotations"][0];
    assert_eq!(ann["segmentation"]["size"], serde_json::json!([300, 451]));
    let total: u64 = ann["segmentation"]["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|v| v.as_u64().expect("n"))
        .sum();
    assert_eq!(total, 300 * 451);
    assert_eq!(ann["area"].as_u64(), Some(area as u64));
    let cutout = dir.path().join("cut.png");
    assert!(
        export(&h, ExportKind::CutoutPng, &cutout).is_err(),
        "no current mask after Add object"
    );
}

#[test]
fn drag_draws_a_box_prompt() {
    let mut h = sample_encoded();
    let rect = h.get_by_label("Image canvas").rect();
    let (a, b) = (
        rect.min + (rect.size() * 0.2),
        rect.min + (rect.size() * 0.7),
    );
    h.event(Event::PointerMoved(a));
    h.event(Event::PointerButton {
        pos: a,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    for i in 1..=10 {
        h.event(Event::PointerMoved(a + (b - a) * (i as f32 / 10.0)));
        h.step();
    }
    h.event(Event::PointerButton {
        pos: b,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    wait_until(&mut h, "the box's mask", |a| a.segment.candidates.is_some());
    let bbox = h.state().segment.prompts().bbox.expect("a box");
    assert!(h.state().segment.prompts().points.is_empty());
    let [x0, y0, x1, y1] = bbox.corners_in_image;
    assert!(
        (x0 - 0.2 * 451.0).abs() < 3.0 && (y1 - 0.7 * 300.0).abs() < 3.0 && x1 > x0 && y1 > y0,
        "{bbox:?}"
    );
}

#[test]
fn bad_image_keeps_the_previous_state_and_says_why() {
    let mut h = sample_encoded();
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("notes.png");
    std::fs::write(&bad, b"not an image at all").expect("write");
    let ctx = h.ctx.clone();
    h.state_mut().segment.open(ImageSource::File(bad), &ctx);
    wait_until(&mut h, "the error", |a| a.status.last_error().is_some());
    assert!(h
        .state()
        .status
        .last_error()
        .expect("error")
        .contains("not a supported image"));
    assert_eq!(
        h.state().segment.image.as_ref().expect("image kept").name,
        "chelsea.png"
    );
}

/// The Attention view with the real all-MiniLM-L6-v2, subwords merged into words or not.
/// The labels of the heatmap on screen.
fn shown_labels(h: &Harness<'static, SegattnApp>) -> Vec<String> {
    let m = h.state().attention.shown.as_ref().expect("map");
    m.labels.clone()
}

fn attention_app(merge_words: bool) -> Harness<'static, SegattnApp> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testdata/all-MiniLM-L6-v2");
    let mut h = app(AppOptions {
        text_model: Some(dir),
        ..Default::default()
    });
    h.state_mut().settings.view = View::Attention;
    h.state_mut().settings.attention.merge_words = merge_words;
    h
}

#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn attention_grid_picks_layer_2_head_3() {
    let mut h = attention_app(false);
    wait_until(&mut h, "attention for the default text", |a| {
        a.attention.output.is_some() && a.attention.shown.is_some()
    });
    h.get_by_label("Layer 2 head 3").click();
    h.step();
    wait_until(&mut h, "the map of layer 2 head 3", |a| {
        a.attention
            .shown
            .as_ref()
            .is_some_and(|m| (m.key.layer, m.key.head) == (2, 3))
    });
    let s = h.state();
    assert_eq!(
        (s.settings.attention.layer, s.settings.attention.head),
        (2, 3)
    );
    let out = s.attention.output.as_ref().expect("output");
    let shown = s.attention.shown.as_ref().expect("heatmap");
    assert_eq!(
        shown.values,
        out.attentions.head(2, 3),
        "the heatmap shows layer 2 head 3"
    );
    assert_eq!(shown.labels[0], "[CLS]");
    // The PNG and CSV exports carry the same numbers.
    let tmp = tempfile::tempdir().expect("tmp");
    let csv = tmp.path().join("a.csv");
    s.attention.export_csv(&csv).expect("csv");
    let text = std::fs::read_to_string(&csv).expect("read");
    let second: Vec<&str> = text.lines().nth(1).expect("row").split(',').collect();
    assert_eq!(second[1].parse::<f32>().expect("value"), shown.values[0]);
    s.attention
        .export_png(&tmp.path().join("a.png"))
        .expect("png");

    // The head view: hovering the third token on the left selects its row of lines.
    h.get_by_label("head view (lines)").click();
    h.run_steps(2);
    let rect = h.get_by_label("Head view").rect();
    let n = h.state().attention.shown.as_ref().expect("map").n as f32;
    let pos = Pos2::new(rect.min.x + 20.0, rect.min.y + rect.height() * (2.5 / n));
    h.event(Event::PointerMoved(pos));
    h.run_steps(2);
    assert_eq!(h.state().attention.head_view_hover, Some(2));
}

/// The lesson, word by word: the view starts from `chat` in the default sentence, with merged
/// words, and lists what it looks at as `word : value` bars equal to the map's row; a click on
/// another row of the heatmap picks that word, and a bar under the pointer marks its cell.
#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn a_word_is_picked_and_its_attention_listed_as_bars() {
    let mut h = attention_app(true);
    wait_until(&mut h, "the merged map of the default text", |a| {
        a.attention.shown.as_ref().is_some_and(|m| m.key.merge)
    });
    h.run_steps(2);
    let bars = |h: &Harness<'static, SegattnApp>, row: usize| {
        let m = h.state().attention.shown.as_ref().expect("map");
        (0..m.n)
            .map(|c| {
                segattn::ui::attention_lesson::bar_text(
                    segattn::ui::i18n::Lang::En,
                    &m.labels[c],
                    m.values[row * m.n + c],
                    false,
                )
            })
            .collect::<Vec<_>>()
    };
    let labels = shown_labels(&h);
    let at = |w: &str| labels.iter().position(|l| l == w);
    assert!(at("mange").is_some(), "words merged: {labels:?}");
    let chat = at("chat").expect("chat");
    assert!(h.query_by_label_contains("What “chat” looks at").is_some());
    let want = bars(&h, chat);
    // The list lays out the lines in view: the sentence's first words.
    for text in &want[..8] {
        assert!(h.query_all_by_label(text).next().is_some(), "no bar {text}");
    }
    assert!(h
        .query_by_label_contains("each row is a word that looks")
        .is_some());

    // A click on the row of `table` in the heatmap picks it.
    let table = at("table").expect("table");
    let n = labels.len() as f32;
    let rect = h.get_by_label("Attention heatmap").rect();
    // The map: below the column labels and their title (86 px), right of the row labels and
    // their title (106 px), the colour scale after it.
    let side = rect.height() - 86.0;
    let map_min = rect.min + egui::Vec2::new(106.0, 86.0);
    let pos = map_min + egui::Vec2::new(side * 0.5, side * (table as f32 + 0.5) / n);
    h.event(Event::PointerMoved(pos));
    h.step();
    for pressed in [true, false] {
        common::primary_button(&h, pos, pressed);
        h.step();
    }
    h.run_steps(2);
    assert_eq!(h.state().settings.attention.word, Some(table));
    assert!(h.query_by_label_contains("What “table” looks at").is_some());
    let want = bars(&h, table);
    assert!(
        h.query_all_by_label(&want[chat]).next().is_some(),
        "no bar {}",
        want[chat]
    );

    // The bar of `noir` under the pointer outlines its cell in the heatmap.
    let noir = at("noir").expect("noir");
    let bar = h.get_all_by_label(&want[noir]).next().expect("bar").rect();
    h.event(Event::PointerMoved(bar.center()));
    h.run_steps(2);
    assert_eq!(h.state().attention.bar_hover, Some(noir));

    // Its position: a click on it opens the model's learned table on its row.
    let tokens = h
        .state()
        .attention
        .output
        .as_ref()
        .expect("out")
        .attentions
        .tokens
        .clone();
    let position = tokens.iter().position(|t| t == "table").expect("token");
    assert!(position > table, "pieces before it: {tokens:?}");
    // The position is a link (the combo box beside it names it too).
    press(&mut h, &format!("table : position {position}"));
    h.run_steps(3);
    let s = &h.state().settings;
    assert_eq!(s.view, View::Encodings);
    assert_eq!(s.encodings.highlight, Some(position));
    assert_eq!(
        s.encodings.kind,
        segattn::ui::encodings_view::EncodingKind::Learned
    );
    assert!(
        s.encodings.beside_sinusoidal,
        "and the sinusoidal table beside it"
    );
    wait_until(&mut h, "the learned table", |a| {
        a.encodings.current.is_some()
    });
    h.run_steps(2);
    assert!(h
        .query_by_label_contains(&format!("Position {position} outlined"))
        .is_some());
}

/// The Positional-encodings view shows the sinusoids of the formula, value for value.
#[test]
fn encodings_view_draws_sinusoids() {
    let mut h = app(AppOptions::default());
    h.get_by_label("Positional encodings").click();
    wait_until(&mut h, "the encoding", |a| {
        a.settings.view == View::Encodings && a.encodings.current.is_some()
    });
    let m = h
        .state()
        .encodings
        .current
        .as_ref()
        .expect("shown")
        .shown
        .clone();
    assert_eq!((m.rows, m.cols), (128, 128));
    for p in [0usize, 1, 17, 127] {
        for i in [0usize, 3, 63] {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / 128.0);
            let (sin, cos) = (m.data[p * 128 + 2 * i], m.data[p * 128 + 2 * i + 1]);
            assert!(
                (f64::from(sin) - angle.sin()).abs() < 1e-6,
                "sin p={p} i={i}"
            );
            assert!(
                (f64::from(cos) - angle.cos()).abs() < 1e-6,
                "cos p={p} i={i}"
            );
        }
    }
}

#[test]
fn scroll_zooms_around_the_pointer_and_clicks_follow() {
    let mut h = sample_encoded();
    let rect = h.get_by_label("Image canvas").rect();
    // Zoom in around the image centre.
    h.event(Event::PointerMoved(rect.center()));
    h.step();
    for _ in 0..5 {
        h.event(Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, 120.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: Modifiers::NONE,
        });
        h.step();
    }
    h.run_steps(10);
    let view = h.state().segment.view;
    assert!(view.zoom > 1.2, "zoomed in: {view:?}");
    assert!(
        (view.center[0] - 0.5).abs() < 0.01 && (view.center[1] - 0.5).abs() < 0.01,
        "{view:?}"
    );
    // A click at the canvas centre still lands at the image centre.
    h.event(Event::PointerButton {
        pos: rect.center(),
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    h.event(Event::PointerButton {
        pos: rect.center(),
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    let p = h
        .state()
        .segment
        .prompts()
        .points
        .first()
        .expect("a point")
        .pos_in_image;
    assert!(
        (p[0] - 225.5).abs() < 2.0 && (p[1] - 150.0).abs() < 2.0,
        "{p:?}"
    );
    // And off-centre: a quarter of the way in, at zoom z the image point is 0.5 − 0.25/z.
    let z = h.state().segment.view.zoom;
    let pos = rect.min + rect.size() * 0.25;
    h.event(Event::PointerMoved(pos));
    h.step();
    h.event(Event::PointerButton {
        pos,
        button: PointerButton::Secondary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    h.event(Event::PointerButton {
        pos,
        button: PointerButton::Secondary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    let q = h
        .state()
        .segment
        .prompts()
        .points
        .get(1)
        .expect("a second point")
        .pos_in_image;
    let expect_x = (0.5 - 0.25 / z) * 451.0;
    assert!((q[0] - expect_x).abs() < 2.0, "{q:?} vs {expect_x}");
}

#[test]
fn model_download_without_network_says_what_to_do() {
    let cache = tempfile::tempdir().expect("tempdir");
    let mut h = app(AppOptions {
        downloads: segattn::download::DownloadOptions {
            endpoint: Some("http://127.0.0.1:9".into()), // nothing listens there
            cache_dir: Some(cache.path().to_path_buf()),
        },
        ..Default::default()
    });
    h.get_by_label("Models…").click();
    // A click is a pointer's move, press and release over frames: wait for the window's lists
    // to settle first, or the rows found by a late scan (on a loaded machine) move another
    // model's button under the pointer.
    wait_until(&mut h, "the scan of the model folders", |a| !a.scanning());
    h.run_steps(2);
    h.get_by_label("Download all-MiniLM-L6-v2").click();
    h.run_steps(1);
    // (The SAM worker also reports that no SAM model is loaded; wait for the download's error.)
    wait_until(&mut h, "the download to fail", |a| {
        !a.downloading()
            && a.status
                .last_error()
                .is_some_and(|e| e.contains("download"))
    });
    let err = h.state().status.last_error().expect("error").to_string();
    assert!(
        err.contains("all-MiniLM-L6-v2") && err.contains("weights/README.md"),
        "{err}"
    );
    // The app goes on: the buttons are back.
    h.run_steps(2);
    h.get_by_label("Download GPT-2");
}

/// The Models window says how much the embedding cache holds, and its button empties it.
#[test]
fn the_models_window_measures_and_clears_the_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let mut h = app(AppOptions {
        sam_model: Some(small_sam()),
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    });
    wait_until(&mut h, "the encoded sample", common::encoded);
    let stored = segattn::embed_cache::EmbeddingCache::new(cache.path().to_path_buf(), u64::MAX);
    wait_until(&mut h, "the embedding on disk", |_| {
        stored.usage().entries == 1
    });
    h.get_by_label("Models…").click();
    wait_until(&mut h, "the measured cache", |a| a.cache_usage.is_some());
    let usage = h.state().cache_usage.expect("measured");
    assert_eq!(usage, stored.usage());
    assert!(
        usage.bytes > 1_000_000,
        "{usage:?}: a 256 × 64 × 64 f32 embedding"
    );
    wait_until(&mut h, "the scan of the model folders", |a| !a.scanning());
    h.run_steps(2);
    assert!(h.query_by_label_contains("1 embedding kept").is_some());
    h.get_by_label("Clear the cache").click();
    wait_until(&mut h, "the emptied cache", |a| {
        a.cache_usage
            .is_some_and(|u| u == segattn::embed_cache::CacheUsage::default())
    });
    assert_eq!(stored.usage().entries, 0, "the files are gone");
    h.step();
    assert!(h.query_by_label_contains("0 embeddings kept").is_some());
}

/// The status bar says where the models run and in which format, as the user chose.
#[test]
fn status_bar_names_device_and_dtype() {
    let mut h = app(AppOptions {
        device: segattn::runtime::DeviceChoice::Cpu,
        dtype: segattn::runtime::DTypeChoice::F16,
        ..Default::default()
    });
    h.run_steps(2);
    h.get_by_label("cpu · SAM encoder f16, rest f32");
    let mut h = app(AppOptions::default());
    h.run_steps(2);
    // `auto` on a machine without a GPU: the CPU, in f32.
    h.get_by_label("cpu · f32");
}

/// Every symbol the views draw has a glyph in egui's fonts (a missing one is drawn as a box;
/// the test harness panics on it). egui's fonts have no arrows: the views say "to".
#[test]
fn the_symbols_the_views_use_have_glyphs() {
    for symbol in ["·", "×", "Δ", "–", "…", "²"] {
        let mut h = Harness::new_ui(move |ui| {
            ui.label(format!("q·k{symbol}"));
        });
        h.run();
    }
}

/// Every status message shown while stepping until `cond` holds.
fn messages_until(
    h: &mut Harness<'static, SegattnApp>,
    what: &str,
    cond: impl Fn(&SegattnApp) -> bool,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let start = Instant::now();
    loop {
        h.step();
        if let Some((m, _)) = &h.state().status.message {
            let m = match m {
                Ok(s) => s.clone(),
                Err(e) => format!("Error: {e}"),
            };
            if seen.last() != Some(&m) {
                seen.push(m);
            }
        }
        if cond(h.state()) {
            return seen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}; messages: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mobile_sam() -> SamModel {
    SamModel::detweights(common::mobile_sam_config(), 1, &Device::Cpu).expect("model")
}

/// With no model the views say what to do in a panel (one-click download, a file dialog), and
/// nothing is reported as an error.
#[test]
fn first_run_without_models_shows_what_to_do() {
    let mut h = app(AppOptions::default());
    let seen = messages_until(&mut h, "the sample image", |a| a.segment.image.is_some());
    h.run_steps(3);
    assert!(h.state().status.last_error().is_none(), "{seen:?}");
    assert_eq!(h.state().segment.encode, EncodeState::NeedsModel);
    h.get_by_label("Segment Anything needs a model");
    h.get_by_label("Download MobileSAM (40 MB)");
    h.get_by_label("Open a SAM checkpoint…");
    h.get_by_label("Attention").click();
    h.run_steps(3);
    h.get_by_label("The Attention view needs a text model");
    h.get_by_label("Download all-MiniLM-L6-v2 (91 MB)");
    assert!(h.state().status.last_error().is_none());
}

/// A model that arrives while the first image opens encodes it once: nothing says
/// "cancelled", and a click segments.
#[test]
fn a_model_loading_at_start_cancels_nothing() {
    let mut h = app(AppOptions {
        sam_model: Some(small_sam()),
        ..Default::default()
    });
    let seen = messages_until(&mut h, "the encoded sample", common::encoded);
    assert!(
        seen.iter()
            .all(|m| !m.contains("cancel") && !m.starts_with("Error")),
        "{seen:?}"
    );
    h.run_steps(5);
    assert!(matches!(
        h.state().segment.encode,
        EncodeState::Ready { .. }
    ));
}

/// The user's Cancel stops the encoder and says so; Encode starts it again.
#[test]
fn cancel_stops_the_encoding_and_says_so() {
    let mut h = app(AppOptions {
        sam_model: Some(mobile_sam()),
        ..Default::default()
    });
    wait_until(&mut h, "the encoding to start", |a| {
        matches!(a.segment.encode, EncodeState::Encoding { .. })
    });
    h.get_by_label("Cancel").click();
    let seen = messages_until(&mut h, "the cancellation", |a| {
        a.segment.encode == EncodeState::Cancelled
    });
    assert!(seen.iter().any(|m| m == "encoding cancelled"), "{seen:?}");
    h.get_by_label("Encode").click();
    wait_until(&mut h, "the encoding", common::encoded);
}

/// An image that finishes decoding after a newer one was opened never replaces it.
#[test]
fn a_late_image_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let big = dir.path().join("big.png");
    image::RgbImage::from_fn(3000, 2000, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
    })
    .save(&big)
    .expect("write");
    let mut h = app(AppOptions::default());
    wait_until(&mut h, "the first sample", |a| a.segment.image.is_some());
    let ctx = h.ctx.clone();
    h.state_mut().segment.open(ImageSource::File(big), &ctx);
    let (name, bytes) = segattn::ui::segment::SAMPLES[2];
    h.state_mut()
        .segment
        .open(ImageSource::Sample(name, bytes), &ctx);
    wait_until(&mut h, "the newest image", |a| {
        a.segment.loading().is_none() && a.segment.image.as_ref().is_some_and(|i| i.name == name)
    });
    // Long enough for the large PNG to have finished decoding too.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.state().segment.image.as_ref().expect("image").name, name);
}

/// Dragging the opacity slider re-tints the overlays: no mask texture is made again.
#[test]
fn opacity_retints_without_rebuilding_overlays() {
    let mut h = sample_encoded();
    click_image(&mut h, 250.0, 130.0, PointerButton::Primary);
    wait_until(&mut h, "the candidates' overlays", |a| {
        a.segment
            .candidates
            .as_ref()
            .is_some_and(|c| c.overlays.is_some())
    });
    let ids = |a: &SegattnApp| -> Vec<egui::TextureId> {
        let c = a.segment.candidates.as_ref().expect("candidates");
        c.overlays.iter().flatten().map(|t| t.id()).collect()
    };
    let before = ids(h.state());
    let at = common::along_slider(&h);
    h.event(Event::PointerMoved(at(0.5)));
    common::primary_button(&h, at(0.5), true);
    for i in 0..20 {
        h.event(Event::PointerMoved(at(0.5 + i as f32 * 0.02)));
        h.step();
    }
    common::primary_button(&h, at(0.9), false);
    h.run_steps(3);
    assert!(
        h.state().settings.segment.opacity > 0.6,
        "the slider moved: {}",
        h.state().settings.segment.opacity
    );
    assert_eq!(ids(h.state()), before, "the same textures, re-tinted");
}

/// The learned-position view shows the model's own table, value for value.
#[test]
#[cfg_attr(
    not(has_minilm),
    ignore = "needs .testdata/all-MiniLM-L6-v2 (scripts/fetch-test-models.sh)"
)]
fn learned_encodings_show_the_weights() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testdata/all-MiniLM-L6-v2");
    let mut h = app(AppOptions {
        text_model: Some(dir),
        ..Default::default()
    });
    wait_until(&mut h, "the text model", |a| a.text_model.loaded.is_some());
    {
        let s = &mut h.state_mut().settings;
        s.view = View::Encodings;
        s.encodings.kind = segattn::ui::encodings_view::EncodingKind::Learned;
        s.encodings.positions = 64;
    }
    wait_until(&mut h, "the learned table", |a| {
        a.encodings
            .current
            .as_ref()
            .is_some_and(|c| c.base.rows == 64)
    });
    let shown = h
        .state()
        .encodings
        .current
        .as_ref()
        .expect("shown")
        .base
        .clone();
    let reference = common::load_tensors("text/minilm.safetensors");
    assert_eq!(shown.cols, 384);
    assert_eq!(
        shown.data,
        common::f32s(&reference, "position_embeddings_0_64"),
        "rows 0..64 of position_embeddings.weight"
    );
}

/// The canvas position of image pixel `(x, y)`.
fn image_pos(h: &Harness<'static, SegattnApp>, x: f32, y: f32) -> Pos2 {
    let img = h.state().segment.image.as_ref().expect("image");
    let (w, ht) = (img.rgb.width as f32, img.rgb.height as f32);
    let rect = h.get_by_label("Image canvas").rect();
    Pos2::new(
        rect.min.x + x / w * rect.width(),
        rect.min.y + y / ht * rect.height(),
    )
}

/// Rests the pointer on image pixel `(x, y)` until its hover preview is on screen; returns
/// the pointer's position.
fn rest_pointer_on(h: &mut Harness<'static, SegattnApp>, x: f32, y: f32) -> Pos2 {
    let pos = image_pos(h, x, y);
    h.event(Event::PointerMoved(pos));
    wait_until(h, "the hover preview", |a| {
        a.segment
            .hover
            .preview
            .as_ref()
            .is_some_and(|p| p.candidates.overlays.is_some())
    });
    pos
}

fn open_chelsea_encoded() -> Harness<'static, SegattnApp> {
    open_chelsea_encoded_with(small_sam())
}

/// The app with `model`, once chelsea is open and encoded.
fn open_chelsea_encoded_with(model: SamModel) -> Harness<'static, SegattnApp> {
    let mut h = app(AppOptions {
        sam_model: Some(model),
        ..Default::default()
    });
    let ctx = h.ctx.clone();
    h.state_mut()
        .segment
        .open(ImageSource::File(chelsea()), &ctx);
    wait_until(&mut h, "the image to be encoded", common::encoded);
    h
}

/// Resting the pointer shows the mask a click there would give; the click then takes that
/// answer at once (no new request); H turns the preview off.
#[test]
fn hover_previews_the_mask_and_a_click_commits_it() {
    let mut h = open_chelsea_encoded();
    let pos = rest_pointer_on(&mut h, 250.0, 130.0);
    let preview_id = {
        let s = &h.state().segment;
        assert!(s.prompts().is_empty(), "hovering places no prompt");
        assert!(s.candidates.is_none());
        let p = s.hover.preview.as_ref().expect("preview");
        assert_eq!(p.prompts.points.len(), 1);
        let [x, y] = p.prompts.points[0].pos_in_image;
        assert!(
            (x - 250.0).abs() < 2.0 && (y - 130.0).abs() < 2.0,
            "{x}, {y}"
        );
        assert_eq!(p.prompts.points[0].label, PointLabel::Foreground);
        p.candidates.request_id
    };
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
        h.step();
    }
    {
        let s = &h.state().segment;
        assert_eq!(s.prompts().points.len(), 1, "the click placed the point");
        let c = s
            .candidates
            .as_ref()
            .expect("the preview became the candidates");
        assert_eq!(c.request_id, preview_id);
        assert!(s.awaiting.is_none(), "no request was needed");
        assert_eq!(c.stability.len(), c.masks.len(), "stability per candidate");
    }
    h.step();
    assert_eq!(
        h.get_all_by_label_contains(", stability ").count(),
        3,
        "each candidate shows its stability"
    );
    // H turns the preview off: moving elsewhere asks nothing.
    h.event(Event::Key {
        key: egui::Key::H,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    assert!(!h.state().segment.hover_enabled);
    assert!(!h.state().settings.segment.hover_preview);
    let elsewhere = image_pos(&h, 100.0, 200.0);
    h.event(Event::PointerMoved(elsewhere));
    for _ in 0..20 {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.state().segment.hover.preview.is_none());
}

/// How many masks the automatic generator finds on chelsea with `model`, on its own
/// embedding of the image (as the view's).
fn generated_on_chelsea(model: &SamModel, params: &segattn::types::EverythingParams) -> usize {
    let img = segattn::image_io::load_rgb8(chelsea()).expect("image");
    let emb = model.embed(&img).expect("embeds");
    segattn::model::sam::automatic::generate(model, &img, params, Some(&emb), &mut |_| {}, &|| {
        false
    })
    .expect("generates")
    .len()
}

/// With a SAM 2.1 model (Hiera-T, detweights): the hover preview shows the candidates a
/// click would give, everything mode's parameters move to the official SAM 2 defaults when
/// the model loads (the user had not changed them), and "Segment everything" finds the masks
/// of `SAM2AutomaticMaskGenerator`'s steps on the view's embedding.
#[test]
fn sam2_model_previews_and_segments_everything() {
    let sam2 = || {
        let config = segattn::model::sam::config::SamConfig::with_encoder(
            segattn::model::sam::config::EncoderConfig::Hiera(
                segattn::model::sam::config::HieraConfig::tiny(),
            ),
        );
        SamModel::detweights(config, 11, &Device::Cpu).expect("model")
    };
    let mut h = open_chelsea_encoded_with(sam2());
    assert!(h.state().segment.sam2_model);
    assert_eq!(
        h.state().segment.attention_pick.token,
        2,
        "the overlay's token is the first mask token, after the object-score and IoU tokens"
    );
    assert_eq!(
        h.state().settings.segment.everything,
        segattn::types::EverythingParams::sam2(),
        "SAM 2's official defaults"
    );
    rest_pointer_on(&mut h, 250.0, 130.0);
    assert_eq!(
        h.state()
            .segment
            .hover
            .preview
            .as_ref()
            .expect("preview")
            .candidates
            .masks
            .len(),
        3
    );
    // The detweights model's logits are near 0: relax the filters (as the fixtures do).
    let params = segattn::types::EverythingParams {
        points_per_side: 3,
        pred_iou_thresh: -10.0,
        stability_score_thresh: 0.0,
        stability_score_offset: 0.02,
        box_nms_thresh: 1.0,
        ..segattn::types::EverythingParams::sam2()
    };
    h.state_mut().settings.segment.everything = params;
    h.step();
    h.get_by_label("Segment everything").click();
    h.step();
    wait_until(&mut h, "the masks found", |a| {
        a.segment.everything.running.is_none() && !a.segment.everything.found.is_empty()
    });
    let found = &h.state().segment.everything.found;
    assert_eq!(found.len(), generated_on_chelsea(&sam2(), &params));
    assert_eq!(
        found.len(),
        27,
        "3 masks for each of 9 points, none suppressed"
    );
}

/// Everything mode runs on the worker with progress, its masks come back as objects the user
/// keeps or deletes, and a long run can be cancelled.
#[test]
fn everything_runs_can_be_cancelled_and_its_masks_kept() {
    let mut h = open_chelsea_encoded();
    // The detweights model's IoU predictions are near 0: relax the filters.
    let params = segattn::types::EverythingParams {
        points_per_side: 4,
        pred_iou_thresh: 0.0,
        stability_score_thresh: 0.0,
        stability_score_offset: 0.02,
        box_nms_thresh: 1.0,
        ..Default::default()
    };
    h.state_mut().settings.segment.everything = params;
    h.step();
    h.get_by_label("Segment everything").click();
    h.step();
    assert!(h.state().segment.everything.running.is_some());
    wait_until(&mut h, "the masks found", |a| {
        !a.segment.everything.found.is_empty()
    });
    // The same as the generator on the view's own embedding.
    let expected = generated_on_chelsea(&small_sam(), &params);
    let found = h.state().segment.everything.found.len();
    assert_eq!(found, expected);
    assert_eq!(found, 48, "3 masks for each of 16 points, none suppressed");
    let objects = h.state().segment.objects.len();
    h.get_all_by_label("Keep")
        .next()
        .expect("a Keep button")
        .click();
    h.step();
    assert_eq!(h.state().segment.objects.len(), objects + 1);
    assert_eq!(h.state().segment.everything.found.len(), found - 1);
    h.step(); // the panel's layout settles a frame after a row goes
    h.get_all_by_label("Drop")
        .next()
        .expect("a found mask's Drop")
        .click();
    h.step();
    assert_eq!(h.state().segment.everything.found.len(), found - 2);
    // A long run shows its progress and stops on Cancel; what was found stays.
    h.state_mut().settings.segment.everything.points_per_side = 64;
    h.step();
    h.get_by_label("Segment everything").click();
    wait_until(&mut h, "some points done", |a| {
        a.segment
            .everything
            .running
            .as_ref()
            .is_some_and(|r| r.1.points_done > 0 && r.1.points_total == 4096)
    });
    h.get_by_label("Cancel everything").click();
    wait_until(&mut h, "the run to stop", |a| {
        a.segment.everything.running.is_none()
    });
    let msg = h.state().status.message.as_ref().map(|m| m.0.clone());
    assert_eq!(msg, Some(Ok("everything cancelled".to_string())));
    assert_eq!(h.state().segment.everything.found.len(), found - 2);
    h.step();
    h.get_by_label("Keep all").click();
    h.step();
    assert!(h.state().segment.everything.found.is_empty());
    assert_eq!(h.state().segment.objects.len(), objects + found - 1);
}

/// Every parameter of the generator is in the panel, and "Official defaults" restores them.
#[test]
fn everything_parameters_are_all_reachable() {
    let mut h = app(AppOptions {
        sam_model: Some(small_sam()),
        ..Default::default()
    });
    h.state_mut().settings.segment.everything.points_per_side = 4;
    h.state_mut().settings.segment.everything.crop_n_layers = 2;
    h.step();
    h.get_by_label("More parameters").click();
    h.run_steps(3);
    for label in [
        "points per batch",
        "stability offset",
        "box NMS IoU",
        "crop layers",
        "crop NMS IoU",
        "crop overlap ratio",
        "crop points downscale",
        "min region area (px)",
    ] {
        h.get_by_label(label);
    }
    h.get_by_label("Official defaults").click();
    h.step();
    assert_eq!(
        h.state().settings.segment.everything,
        segattn::types::EverythingParams::default()
    );
}

/// The chosen mask's polygon outline is traced and counted, follows the simplification
/// slider, and the exports write the objects' labels (YOLO class indices in the labels' order).
#[test]
fn polygons_follow_the_tolerance_and_exports_carry_the_labels() {
    let mut h = open_chelsea_encoded();
    h.state_mut().settings.segment.hover_preview = false;
    click_image(&mut h, 250.0, 130.0, PointerButton::Primary);
    wait_until(&mut h, "the mask's outline", |a| {
        a.segment
            .selected_mask()
            .is_some_and(|m| a.segment.outline.of(m).is_some())
    });
    let count = |a: &SegattnApp| {
        let m = a.segment.selected_mask().expect("mask");
        a.segment.outline.of(m).expect("outline").vertex_count()
    };
    let fine = count(h.state());
    assert!(fine >= 3, "{fine} vertices");
    assert!(h.query_by_label_contains("vertices in").is_some());
    h.state_mut().settings.segment.simplify_px = 0.0;
    h.step();
    wait_until(&mut h, "the outline at tolerance 0", |a| {
        !a.segment.outline.is_pending() && count(a) >= fine
    });
    let exact = count(h.state());
    h.state_mut().settings.segment.simplify_px = 8.0;
    h.step();
    wait_until(&mut h, "the outline at tolerance 8", |a| {
        !a.segment.outline.is_pending() && count(a) < exact
    });

    // A second label, chosen for the next object.
    h.get_by_label("Add label").click();
    h.step();
    assert_eq!(h.state().settings.segment.labels, ["object", "label 2"]);
    assert_eq!(h.state().settings.segment.label, "label 2");
    h.get_by_label("Add object").click();
    h.step();
    assert_eq!(h.state().segment.objects[0].label, "label 2");
    let dir = tempfile::tempdir().expect("tmp");
    let txt = dir.path().join("chelsea.txt");
    let a = h.state();
    a.segment
        .export(ExportKind::Yolo, &a.settings.segment, &txt)
        .expect("yolo export");
    let text = std::fs::read_to_string(&txt).expect("txt");
    assert!(text.lines().all(|l| l.starts_with("1 ")), "{text}");
    let yaml = std::fs::read_to_string(dir.path().join("data.yaml")).expect("yaml");
    assert!(
        yaml.contains("  0: object") && yaml.contains("  1: label 2"),
        "{yaml}"
    );
    let lm = dir.path().join("chelsea.json");
    a.segment
        .export(ExportKind::LabelMe, &a.settings.segment, &lm)
        .expect("labelme export");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lm).expect("json")).expect("valid");
    assert_eq!(json["imagePath"], "chelsea.png");
    assert_eq!(json["shapes"][0]["label"], "label 2");
}

/// Clicks the widget labelled `label` as a person would: scrolled into view first (the side
/// panel is taller than the window), the scroll's animation over.
fn press(h: &mut Harness<'static, SegattnApp>, label: &str) {
    h.get_by_label(label).scroll_to_me();
    for _ in 0..30 {
        h.step(); // the scroll is animated
    }
    h.get_by_label(label).click();
    h.step();
}

/// A kept object's mask is edited with the chosen candidate and the tools, each step undone
/// and redone, its overlay remade.
#[test]
fn object_masks_are_edited_and_each_step_undone() {
    let mut h = open_chelsea_encoded();
    h.state_mut().settings.segment.hover_preview = false;
    click_image(&mut h, 250.0, 130.0, PointerButton::Primary);
    wait_until(&mut h, "a mask", |a| a.segment.selected_mask().is_some());
    press(&mut h, "Add object");
    let first = h.state().segment.objects[0].mask.clone();
    click_image(&mut h, 60.0, 250.0, PointerButton::Primary);
    wait_until(&mut h, "a second mask", |a| {
        a.segment.selected_mask().is_some()
    });
    let other = h.state().segment.selected_mask().expect("mask").clone();
    press(&mut h, "Edit");
    h.step();
    assert_eq!(h.state().segment.editing, Some(0));
    press(&mut h, "Add the chosen mask");
    // The edit runs on a job: the buttons wait for it.
    wait_until(&mut h, "the union", |a| a.segment.objects[0].revision == 1);
    assert!(!h.state().segment.editing_mask());
    let union = h.state().segment.objects[0].mask.clone();
    let expected = first
        .data
        .iter()
        .zip(&other.data)
        .filter(|(a, b)| **a != 0 || **b != 0)
        .count();
    assert_eq!(union.area(), expected);
    assert_eq!(h.state().segment.objects[0].revision, 1);
    wait_until(&mut h, "the edited overlay", |a| {
        a.segment.objects[0].overlay_revision == 1
    });
    press(&mut h, "Keep the largest part");
    wait_until(&mut h, "the largest part", |a| !a.segment.editing_mask());
    h.step();
    press(&mut h, "Undo edit");
    if h.state().segment.objects[0].edits.can_undo() {
        press(&mut h, "Undo edit");
    }
    assert_eq!(
        *h.state().segment.objects[0].mask,
        *first,
        "back to the first mask"
    );
    press(&mut h, "Redo edit");
    assert_eq!(*h.state().segment.objects[0].mask, *union);
}

/// Steps until the open folder shows image `i` encoded, with no save in flight.
/// A folder of copies of images (`img1.png`, `img2.png`, …) with an embedding cache of its
/// own, both removed when dropped.
struct Folder {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Folder {
    fn new(images: &[PathBuf]) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        for (i, src) in images.iter().enumerate() {
            std::fs::copy(src, dir.path().join(format!("img{}.png", i + 1))).expect("copy");
        }
        let cache = tempfile::tempdir().expect("tmp");
        Self { dir, cache }
    }

    /// A new app on the folder, as `segattn --image DIR` starts, once its first image is
    /// encoded.
    fn open(&self) -> Harness<'static, SegattnApp> {
        let mut h = app(AppOptions {
            sam_model: Some(small_sam()),
            image: Some(self.dir.path().to_path_buf()),
            cache_dir: Some(self.cache.path().to_path_buf()),
            ..Default::default()
        });
        wait_for_folder_image(&mut h, 0);
        h
    }

    /// [`Self::open`], then until `img2.png` is encoded ahead into the disk cache.
    fn open_encoding_ahead(&self) -> Harness<'static, SegattnApp> {
        let mut h = self.open();
        wait_until(&mut h, "img2 encoded ahead", |a| {
            a.segment
                .encoded_ahead
                .iter()
                .any(|p| p.ends_with("img2.png"))
        });
        h
    }
}

fn wait_for_folder_image(h: &mut Harness<'static, SegattnApp>, i: usize) {
    wait_until(h, &format!("folder image {i}, encoded and saved"), |a| {
        let s = &a.segment;
        s.folder
            .as_ref()
            .is_some_and(|f| f.current == Some(i) && !f.unsaved())
            && s.loading().is_none()
            && matches!(s.encode, EncodeState::Ready { .. })
    });
}

/// A folder opened from the command line: an object kept on its first image is saved to the
/// folder's COCO file at once (the image marked done), D and A move between images and bring
/// the objects back, Space marks an image done, and a new app on the same folder — as after a
/// crash: nothing is flushed at exit here — shows them again.
#[test]
fn a_folder_is_annotated_saved_and_reloaded() {
    use segattn::annotate::folder::{annotation_path, FolderAnnotations};
    let folder = Folder::new(&[chelsea(), asset("astronaut.png")]);
    let dir = &folder.dir;
    std::fs::write(dir.path().join("notes.txt"), "not an image").expect("write");
    // While img1 is annotated, img2 is encoded ahead into the disk cache.
    let mut h = folder.open_encoding_ahead();
    assert_eq!(
        h.state().segment.folder.as_ref().expect("folder").images,
        ["img1.png", "img2.png"]
    );
    assert!(h.query_by_label_contains("0 of 2 images done").is_some());
    assert!(h.query_by_label_contains("img2.png · 0 objects").is_some());
    h.state_mut().settings.segment.hover_preview = false;
    click_image(&mut h, 250.0, 130.0, PointerButton::Primary);
    wait_until(&mut h, "a mask", |a| a.segment.selected_mask().is_some());
    h.key_press(egui::Key::Enter);
    h.step();
    assert_eq!(h.state().segment.objects.len(), 1, "Enter keeps the mask");
    let kept = h.state().segment.objects[0].mask.clone();
    wait_for_folder_image(&mut h, 0);
    let (on_disk, _) = FolderAnnotations::load(dir.path()).expect("the file is written");
    let first = &on_disk.images["img1.png"];
    assert!(first.done, "the first object marks the image done");
    assert_eq!(first.objects.len(), 1);
    assert_eq!(first.objects[0].label, "object");
    assert_eq!(first.objects[0].mask(), *kept);
    assert!(h.query_by_label_contains("1 of 2 images done").is_some());

    h.key_press(egui::Key::D);
    wait_for_folder_image(&mut h, 1);
    assert!(h.state().segment.objects.is_empty());
    assert!(
        matches!(
            h.state().segment.encode,
            EncodeState::Ready { cached: true, .. }
        ),
        "img2's embedding comes from the disk: {:?}",
        h.state().segment.encode
    );
    h.key_press(egui::Key::Space);
    h.step();
    wait_for_folder_image(&mut h, 1);
    let (on_disk, _) = FolderAnnotations::load(dir.path()).expect("file");
    assert!(on_disk.images["img2.png"].done, "Space marks it done");
    assert!(on_disk.images["img2.png"].objects.is_empty());

    h.key_press(egui::Key::A);
    wait_for_folder_image(&mut h, 0);
    wait_until(&mut h, "the object back with its overlay", |a| {
        a.segment.objects.len() == 1 && a.segment.objects[0].overlay.is_some()
    });
    assert_eq!(*h.state().segment.objects[0].mask, *kept);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(annotation_path(dir.path())).expect("file"))
            .expect("json");
    assert_eq!(json["images"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["annotations"].as_array().map(Vec::len), Some(1));
    drop(h);

    // Reopened: every image is done, so the first one shows, with its object.
    let mut h = folder.open();
    wait_until(&mut h, "the stored object", |a| {
        a.segment.objects.len() == 1
    });
    assert_eq!(*h.state().segment.objects[0].mask, *kept);
    assert!(h.query_by_label_contains("2 of 2 images done").is_some());
    if let Some(python) = common::python_with_pycocotools() {
        // pycocotools reads the file and decodes the object to the very same pixels.
        let script = "import sys, numpy as np\nfrom pycocotools.coco import COCO\n\
            c = COCO(sys.argv[1]); m = c.annToMask(c.loadAnns([1])[0]).astype(np.int64)\n\
            i = np.arange(m.size).reshape(m.shape)\nprint(m.sum(), (m * i).sum())";
        let out = std::process::Command::new(python)
            .args(["-c", script])
            .arg(annotation_path(dir.path()))
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let index_sum: usize = kept
            .data
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0)
            .map(|(i, _)| i)
            .sum();
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default();
        assert_eq!(last, format!("{} {index_sum}", kept.area()), "{text}");
    }
}

/// The image encoded ahead is shown from the pixels decoded for it, unless its file changed
/// since: then the new file is what shows (and what SAM sees).
#[test]
fn an_image_changed_after_encoding_ahead_is_read_again() {
    let folder = Folder::new(&[chelsea(), chelsea()]);
    let dir = &folder.dir;
    let mut h = folder.open_encoding_ahead();
    // Another picture under the same name (another size, so another stamp).
    std::fs::copy(asset("astronaut.png"), dir.path().join("img2.png")).expect("copy");
    let want = image::open(dir.path().join("img2.png"))
        .expect("decodes")
        .to_rgb8();
    h.key_press(egui::Key::D);
    wait_for_folder_image(&mut h, 1);
    let shown = &h.state().segment.image.as_ref().expect("image").rgb;
    assert_eq!(
        (shown.width, shown.height),
        (want.width() as usize, want.height() as usize)
    );
    assert_eq!(shown.data, want.into_raw(), "the new file's pixels");
    assert!(
        matches!(
            h.state().segment.encode,
            EncodeState::Ready { cached: false, .. }
        ),
        "and encoded anew: {:?}",
        h.state().segment.encode
    );
}

/// "Refine each click with the previous mask": the second click sends the chosen candidate's
/// low-res logits as `mask_input` and shows the model's answer to exactly those prompts;
/// undo brings back the first prompts, with no input.
#[test]
fn refinement_feeds_the_previous_mask_to_the_next_click() {
    let mut h = open_chelsea_encoded();
    h.state_mut().settings.segment.hover_preview = false;
    h.get_by_label("Refine each click with the previous mask")
        .click();
    h.step();
    assert!(h.state().segment.refine);
    click_image(&mut h, 250.0, 130.0, PointerButton::Primary);
    wait_until(&mut h, "a mask", |a| {
        a.segment.selected_mask().is_some() && a.segment.awaiting.is_none()
    });
    assert!(
        h.state().segment.prompts().mask_input.is_none(),
        "the first click has nothing to refine"
    );
    let (first_id, first_low) = {
        let s = &h.state().segment;
        let c = s.candidates.as_ref().expect("candidates");
        (c.request_id, c.low_res[s.selected].clone())
    };
    click_image(&mut h, 300.0, 160.0, PointerButton::Primary);
    wait_until(&mut h, "the refined mask", |a| {
        a.segment
            .candidates
            .as_ref()
            .is_some_and(|c| c.request_id != first_id)
            && a.segment.awaiting.is_none()
    });
    let prompts = h.state().segment.prompts().clone();
    assert_eq!(prompts.points.len(), 2);
    assert_eq!(prompts.mask_input.as_ref(), Some(&first_low));
    let model = small_sam();
    let emb = model
        .embed(&segattn::image_io::load_rgb8(chelsea()).expect("cat"))
        .expect("embedding");
    let multimask = h.state().segment.multimask;
    let want = model.predict(&emb, &prompts, multimask).expect("predicts");
    let shown = h.state().segment.candidates.as_ref().expect("candidates");
    let got: Vec<f32> = shown.low_res.concat();
    assert!(
        common::rel_err(&got, &want.low_res_logits.concat()) < 1e-5,
        "the answer to the refined prompts"
    );
    let plain = model
        .predict(
            &emb,
            &segattn::types::Prompts {
                mask_input: None,
                ..prompts.clone()
            },
            multimask,
        )
        .expect("predicts");
    assert!(
        common::rel_err(&got, &plain.low_res_logits.concat()) > 1e-3,
        "the input changes the answer"
    );
    h.get_by_label("Undo").click();
    h.step();
    assert_eq!(h.state().segment.prompts().points.len(), 1);
    assert!(h.state().segment.prompts().mask_input.is_none());
}

/// A French model (the tiny CamemBERT of the fixtures): its SentencePiece pieces merge into
/// the lesson's words, and the step view shows one head's computation for `chat` whose softmax
/// is the model's attention row; another head is followed when picked. Its learned positions
/// say which rows no token reads.
#[test]
fn the_step_view_follows_one_head_of_a_french_model() {
    let mut h = app(AppOptions {
        text_model: Some(common::french_model_dir("camembert_tiny")),
        ..Default::default()
    });
    h.state_mut().settings.view = View::Attention;
    wait_until(&mut h, "the merged map of the default text", |a| {
        a.attention.shown.as_ref().is_some_and(|m| m.key.merge)
    });
    let labels = shown_labels(&h);
    for w in ["Le", "chat", "noir", "mange", "poisson", "table"] {
        assert!(labels.iter().any(|l| l == w), "no word {w}: {labels:?}");
    }
    assert!(h.query_by_label_contains("What “chat” looks at").is_some());
    press(&mut h, "step by step");
    wait_until(&mut h, "the steps of chat", |a| a.attention.steps.is_some());
    h.run_steps(2);
    let check = |h: &Harness<'static, SegattnApp>, head: usize| {
        let a = &h.state().attention;
        let st = a.steps.as_ref().expect("steps");
        let out = a.output.as_ref().expect("output");
        let token = out
            .attentions
            .tokens
            .iter()
            .position(|t| t == "▁cha")
            .expect("the first piece of chat");
        assert_eq!((st.layer, st.head, st.token), (0, head, token));
        let n = out.attentions.n;
        let row = &out.attentions.head(0, head)[token * n..(token + 1) * n];
        for (p, r) in st.probs.iter().zip(row) {
            assert!((p - r).abs() <= 1e-6, "softmax {p} vs heatmap {r}");
        }
        assert!(a.steps_gap.is_some_and(|g| g <= 1e-6));
        (st.probs.clone(), st.tokens.clone(), token)
    };
    let (probs, tokens, token) = check(&h, 0);
    assert!(h
        .query_by_label_contains(&format!(
            "One head, step by step: layer 0, head 0, token “▁cha” (position {token})"
        ))
        .is_some());
    assert!(h.query_by_label_contains("Divided by √16 = 4.00").is_some());
    let bar = format!("{} : {:.3}", tokens[1], probs[1]);
    assert!(
        h.query_all_by_label(&bar).next().is_some(),
        "no softmax {bar}"
    );
    h.state_mut().settings.attention.head = 2;
    wait_until(&mut h, "the steps of head 2", |a| {
        a.attention.steps.as_ref().is_some_and(|s| s.head == 2)
    });
    check(&h, 2);

    // The sentence as three tokenizers cut it, with their counts.
    let others = ["roberta_tiny", "bert_sentencepiece_tiny"].map(common::french_model_dir);
    h.state_mut()
        .attention
        .opened
        .extend(others.iter().cloned());
    press(&mut h, "Tokenizers side by side");
    wait_until(&mut h, "three tokenizers", |a| {
        a.attention
            .tokenizers
            .shown
            .as_ref()
            .is_some_and(|c| c.cuts.len() >= 3)
    });
    h.run_steps(2);
    let text = h.state().settings.attention.text.clone();
    for (name, dir) in [
        ("camembert_tiny", common::french_model_dir("camembert_tiny")),
        ("roberta_tiny", others[0].clone()),
    ] {
        let tok = segattn::model::text::TextTokenizer::from_file(&dir.join("tokenizer.json"))
            .expect("tokenizer");
        let want = tok.encode(&text, usize::MAX).expect("encodes").tokens;
        let comparison = h.state().attention.tokenizers.shown.as_ref().expect("cuts");
        let cut = comparison
            .cuts
            .iter()
            .find(|c| c.model == name)
            .expect(name);
        assert_eq!(cut.tokens.as_ref().expect("tokens"), &want, "{name}");
        let count = want.iter().filter(|t| !t.special).count();
        assert!(
            h.query_by_label(&format!("{name}: {count} tokens"))
                .is_some(),
            "no count for {name}"
        );
    }
    assert!(h.query_all_by_label("Ġpoisson").next().is_some());

    h.state_mut().settings.view = View::Encodings;
    h.state_mut().settings.encodings.kind = segattn::ui::encodings_view::EncodingKind::Learned;
    wait_until(&mut h, "the learned table", |a| {
        a.encodings.current.is_some()
    });
    h.run_steps(2);
    assert!(h
        .query_by_label_contains("Rows 0–1 of the model's table are never used")
        .is_some());
    let shown = &h.state().encodings.current.as_ref().expect("shown").base;
    assert_eq!(shown.cols, 64);
    // Beside the formula's table of the same size, the chosen row outlined in both.
    h.state_mut().settings.encodings.beside_sinusoidal = true;
    h.state_mut().settings.encodings.highlight = Some(2);
    wait_until(&mut h, "the two tables", |a| {
        a.encodings
            .current
            .as_ref()
            .is_some_and(|c| c.beside.is_some())
    });
    h.run_steps(2);
    let c = h.state().encodings.current.as_ref().expect("shown");
    let (sin, _) = c.beside.as_ref().expect("beside");
    let want = segattn::analysis::positional::sinusoidal(c.base.rows, 64, 10000.0);
    assert_eq!((sin.rows, sin.cols), (c.base.rows, 64));
    assert_eq!(sin.data, want.data);
    assert!(h.query_by_label("Sinusoidal heatmap").is_some());
    assert!(h.query_by_label("Encoding heatmap").is_some());
}

/// The language menu switches the whole Attention view to French at once (and is remembered);
/// the lesson's bars, caption, step view and tabs read in French.
#[test]
fn the_attention_view_speaks_french() {
    let mut h = app(AppOptions {
        text_model: Some(common::french_model_dir("camembert_tiny")),
        ..Default::default()
    });
    h.state_mut().settings.view = View::Attention;
    h.state_mut().settings.attention.step_view = true;
    wait_until(&mut h, "the steps of chat", |a| a.attention.steps.is_some());
    h.run_steps(2);
    assert!(h.query_by_label_contains("What “chat” looks at").is_some());
    h.get_by_label("Language").click();
    h.run_steps(2);
    h.get_by_label("Français").click();
    h.run_steps(3);
    assert_eq!(
        h.state().settings.language,
        Some(segattn::ui::i18n::Lang::Fr)
    );
    for text in [
        "Ce que « chat » regarde",
        "Encodages de position",
        "Une tête, pas à pas : couche 0, tête 0",
        "Couche 0, tête 0 : chaque ligne est un mot qui regarde",
        "fusionner les sous-mots en mots",
        "Les tokeniseurs côte à côte",
    ] {
        assert!(h.query_by_label_contains(text).is_some(), "no “{text}”");
    }
    assert!(h.query_by_label_contains("What “chat” looks at").is_none());
}

/// The Train view as a student uses it: pick the copy task, press Train, watch steps and the
/// attention grid come, pause (the steps stop), step once, resume, reset; then train to the
/// end and open the model in the Attention view.
#[test]
fn training_starts_pauses_steps_resets_and_opens_in_the_attention_view() {
    use segattn::worker::train::RunState;
    let trained = tempfile::tempdir().expect("tmp");
    let mut h = app(AppOptions {
        trained_dir: Some(trained.path().to_path_buf()),
        ..Default::default()
    });
    h.state_mut().settings.view = View::Train;
    {
        let s = &mut h.state_mut().settings.train.settings;
        s.layers = 1;
        s.dim = 32;
        s.steps = 5000;
        s.eval_every = 10;
    }
    h.run_steps(2);
    h.get_by_label("Task").click();
    h.run_steps(2);
    h.get_by_label("Copy with an offset of 2").click();
    h.run_steps(2);
    assert_eq!(
        h.state().settings.train.settings.task,
        segattn::types::train::Task::Copy
    );
    h.get_by_label("▶ Train").click();
    wait_until(&mut h, "twenty steps", |a| {
        a.train
            .snapshot
            .as_ref()
            .is_some_and(|s| s.progress.step >= 20)
    });
    h.run_steps(2);
    assert!(
        h.query_by_label("Layer 0 head 1").is_some(),
        "the attention grid"
    );
    assert!(
        h.query_by_label_contains("steps/s").is_some(),
        "the speed in the status bar"
    );
    h.get_by_label("⏸ Pause").click();
    wait_until(&mut h, "the pause", |a| {
        a.train.state() == Some(RunState::Paused)
    });
    let paused_at = h.state().train.snapshot.as_ref().map(|s| s.progress.step);
    for _ in 0..20 {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let still = h.state().train.snapshot.as_ref().map(|s| s.progress.step);
    assert_eq!(paused_at, still, "paused: no step");
    h.get_by_label("Step once").click();
    wait_until(&mut h, "one more step", |a| {
        a.train.snapshot.as_ref().map(|s| s.progress.step) == paused_at.map(|p| p + 1)
    });
    h.get_by_label("▶ Resume").click();
    wait_until(&mut h, "running again", |a| {
        a.train.state() == Some(RunState::Running)
            && a.train.snapshot.as_ref().map(|s| s.progress.step) > paused_at.map(|p| p + 1)
    });
    h.get_by_label("Reset").click();
    h.run_steps(3);
    assert!(h.state().train.snapshot.is_none());
    assert!(h.query_by_label("Choose a task and press Train.").is_some());
    // A short run to the end, then the model opens in the Attention view.
    h.state_mut().settings.train.settings.steps = 30;
    h.get_by_label("▶ Train").click();
    wait_until(&mut h, "the end of training", |a| a.train.report.is_some());
    assert_eq!(h.state().train.report.as_ref().map(|r| r.steps), Some(30));
    h.run_steps(2);
    h.get_by_label("Open in the Attention view").click();
    wait_until(&mut h, "the trained model in the Attention view", |a| {
        a.settings.view == View::Attention && a.attention.output.is_some()
    });
    let out = h.state().attention.output.clone().expect("output");
    assert_eq!(out.attentions.layers, 1);
    assert!(out.attentions.causal);
}

/// A tiny model with rotary positions has no table: the Positional-encodings view says so
/// instead of waiting forever; one with the sinusoidal table says the table is not learned.
#[test]
fn the_encodings_view_explains_a_tiny_models_positions() {
    use segattn::types::train::{Positions, Task, TrainSettings};
    use segattn::ui::encodings_view::EncodingKind;
    for (positions, says) in [
        (Positions::Rope, "This model has no position table"),
        (
            Positions::Sinusoidal,
            "This model adds the fixed sinusoidal table",
        ),
    ] {
        let settings = TrainSettings {
            task: Task::Copy,
            layers: 1,
            dim: 16,
            positions,
            ..TrainSettings::default()
        };
        let t = segattn::model::train::Trainer::new(&settings, &Device::Cpu).expect("trainer");
        let dir = tempfile::tempdir().expect("tmp");
        t.save(dir.path()).expect("saved");
        let mut h = app(AppOptions {
            text_model: Some(dir.path().to_path_buf()),
            ..Default::default()
        });
        h.state_mut().settings.view = View::Encodings;
        h.state_mut().settings.encodings.kind = EncodingKind::Learned;
        wait_until(&mut h, "the tiny model", |a| a.text_model.loaded.is_some());
        h.run_steps(5);
        let found = (0..200).any(|_| {
            h.step();
            std::thread::sleep(Duration::from_millis(10));
            h.query_by_label_contains(says).is_some()
        });
        assert!(found, "{positions:?}: no “{says}”");
    }
}

/// Errors from the models, the image decoder and the exports read in French when the UI
/// does, and still name what the user must fix: a checkpoint without one tensor (the tensor
/// and the file), an undecodable image (the file), an export with nothing chosen.
#[test]
fn errors_speak_french() {
    use segattn::ui::i18n::Lang;
    let dir = tempfile::tempdir().expect("tmp");
    let mut tensors =
        candle_core::safetensors::load(common::small_vit_file(), &Device::Cpu).expect("load");
    let dropped = "mask_decoder.iou_token.weight";
    tensors.remove(dropped).expect("the small ViT has it");
    let broken = dir.path().join("broken.safetensors");
    candle_core::safetensors::save(&tensors, &broken).expect("save");
    let mut h = app(AppOptions {
        sam_weights: Some(broken.clone()),
        lang: Some(Lang::Fr),
        ..Default::default()
    });
    wait_until(&mut h, "the load to fail", |a| {
        a.status.last_error().is_some_and(|e| e.contains(dropped))
    });
    let error = h.state().status.last_error().expect("error").to_string();
    let want = format!("le tenseur `{dropped}` manque dans {}", broken.display());
    assert!(error.contains(&want), "{error}");

    let bad = dir.path().join("notes.png");
    std::fs::write(&bad, b"not an image at all").expect("write");
    let ctx = h.ctx.clone();
    h.state_mut().segment.open(ImageSource::File(bad), &ctx);
    wait_until(&mut h, "the image error", |a| {
        a.status
            .last_error()
            .is_some_and(|e| e.contains("notes.png"))
    });
    let error = h.state().status.last_error().expect("error").to_string();
    assert!(
        error.starts_with("format d'image non pris en charge"),
        "{error}"
    );
    h.run_steps(2);
    assert!(h.query_by_label("Image à segmenter").is_some());
    assert!(h.query_by_label("Image canvas").is_none());

    let s = h.state();
    let err = s
        .segment
        .export(
            ExportKind::Coco,
            &s.settings.segment,
            &dir.path().join("x.json"),
        )
        .expect_err("nothing chosen");
    let text = segattn::ui::segment::export::export_error_text(Lang::Fr, &err);
    assert_eq!(
        text,
        "rien à exporter : aucun objet (gardez ou choisissez d'abord un masque)"
    );
}
