//! Every integration test in one binary: one link of the app's dependency stack instead of one
//! per file (nine before). Measured together with `debug = "line-tables-only"` (Cargo.toml),
//! which landed in the same commit: CI's whole run went from 2280 s to 1353 s on 2 cores; this
//! crate alone builds in about 28 s there. Each file is a module named as before:
//! `cargo test --test integration ui_app::` runs the UI tests.

mod common;

mod cli_export;
mod cli_segment;
mod cli_text;
mod download;
mod robustness;
mod sam2_parity;
mod sam_everything;
mod sam_parity;
mod text_french;
mod text_parity;
mod train;
mod ui_app;
