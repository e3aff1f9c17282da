#!/usr/bin/env bash
# Compile check of the `metal` feature for Apple silicon (aarch64-apple-darwin) from Linux: the
# whole crate, tests and benches included, without linking (no Apple linker or SDK here).
#
# It leaves out the `download` feature: rustls's `ring` compiles C that includes the macOS SDK's
# headers (TargetConditionals.h, assert.h), which only Xcode ships. On a Mac (Xcode's command
# line tools installed) `cargo build --release --features metal` builds everything, downloader
# included; that build has not been run by this project (no Mac), so Metal is compile-checked
# only.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-apple-darwin
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  rustup target add "$target" >&2
fi
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-metal}" \
  cargo clippy --locked --target "$target" --no-default-features --features metal \
  --all-targets -- -D warnings
