//! Frame times of the Attention view while the pointer moves over a 128 × 128 heatmap (the
//! issue's "no frame over 16 ms while hovering" check), measured headless with egui_kittest:
//! app logic, egui layout and tessellation per frame, no GPU.
//!
//!     scripts/fetch-test-models.sh && cargo bench --bench ui_frames
//!
//! Needs `.testdata/all-MiniLM-L6-v2`; prints a table (median, 99th percentile, worst).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui::{Event, Pos2};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use segattn::app::{AppOptions, SegattnApp};
use segattn::ui::View;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testdata/all-MiniLM-L6-v2");
    if !dir.join("config.json").is_file() {
        eprintln!("needs {} (scripts/fetch-test-models.sh)", dir.display());
        return;
    }
    let mut h = Harness::builder()
        .with_size([1600.0, 1000.0])
        .build_eframe(move |cc| {
            SegattnApp::new(
                cc,
                AppOptions {
                    text_model: Some(dir),
                    ..Default::default()
                },
            )
            .expect("app starts")
        });
    h.state_mut().settings.view = View::Attention;
    // 126 words plus [CLS] and [SEP]: a 128 × 128 map.
    h.state_mut().settings.attention.text = vec!["cat"; 126].join(" ");
    let start = Instant::now();
    loop {
        h.step();
        let n = h.state().attention.shown.as_ref().map(|m| m.n);
        if n == Some(128) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no 128-token map: {n:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(3);
    let rect = h.get_by_label("Attention heatmap").rect();
    let mut times = Vec::new();
    for i in 0..600 {
        // Sweep the cells (the map fills the bottom-right of the widget, past the labels).
        let t = i as f32 / 600.0;
        let pos = Pos2::new(
            rect.min.x + 100.0 + (rect.width() - 110.0) * t,
            rect.min.y + 80.0 + (rect.height() - 90.0) * ((t * 17.0) % 1.0),
        );
        h.event(Event::PointerMoved(pos));
        let t0 = Instant::now();
        h.step();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!("| frames | median (ms) | p99 (ms) | worst (ms) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| {} | {:.2} | {:.2} | {:.2} |",
        times.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    println!("(Attention view, 128 x 128 heatmap, pointer moving over it; CPU side of each frame)");
}
