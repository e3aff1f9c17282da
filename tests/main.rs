//! Every integration test in one binary: one link of the app's dependency stack instead of one
//! per file, which keeps the test build (and CI) several minutes shorter on 2 cores. Each file
//! is a module named as before: `cargo test --test integration ui_app::` runs the UI tests.

mod common;

mod cli_export;
mod cli_segment;
mod cli_text;
mod download;
mod robustness;
mod sam_everything;
mod sam_parity;
mod text_parity;
mod ui_app;
