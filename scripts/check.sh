#!/usr/bin/env bash
# The checks every commit passes: formatting, lints, docs, tests. CI runs this too (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-test-models.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
cargo test --locked
