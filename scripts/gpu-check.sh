#!/usr/bin/env bash
# The GPU check (issue 15), in two halves.
#
# Here, on the build machine (Rust, network to the registries, no GPU):
#     scripts/gpu-check.sh --prepare
# builds the release binary with `--features cuda` (scripts/cuda-toolkit.sh's toolkit, into
# target-cuda/), strips and xz-compresses it into .gpu/segattn.xz (about 15 MB; the GPU machine
# takes at most 64 MiB of carried files), and puts all-MiniLM-L6-v2's config, tokenizer and
# tensor shapes into .gpu/minilm/ for a text benchmark at its real size (weights generated there).
#
# On the GPU machine (no Rust toolchain, no network; its Python has the CUDA 13 libraries), in
# one call, with .gpu carried (about 17 MB):
#     scripts/gpu-check.sh OUTDIR [--device cuda] [--quick]
# unpacks the binary, points LD_LIBRARY_PATH at the CUDA 13 libraries there, checks with ldd
# that nothing is missing, then runs scripts/gpu_check.py: parity through the CLI on the
# fixtures (SAM small ViT, MobileSAM, SAM 2.1 Hiera-T: f32 on the device against PyTorch, f16
# against f32 on the CPU; the tiny French text models), `bench sam` (MobileSAM, ViT-B, ViT-H,
# SAM 2.1 T/S/B+/L, f16 and f32), `bench text`, `bench everything`, `--device auto`, and
# nvidia-smi. It writes OUTDIR/report.json and OUTDIR/report.md and exits non-zero when a case
# fails. `SEGATTN_BIN=target/release/segattn scripts/gpu-check.sh OUT --device cpu --quick`
# runs the same cases on the CPU (a dry run of the script itself).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  eval "$(scripts/cuda-toolkit.sh)"
  start=$(date +%s)
  CARGO_TARGET_DIR=target-cuda cargo build --release --locked --features cuda --bin segattn
  echo "gpu-check: cuda build $(( $(date +%s) - start )) s" >&2
  mkdir -p .gpu/minilm
  objcopy --strip-all target-cuda/release/segattn .gpu/segattn
  xz -6 -T0 -f .gpu/segattn
  ls -l .gpu/segattn.xz >&2
  scripts/fetch-test-models.sh
  m=.testdata/all-MiniLM-L6-v2
  if [ -f "$m/model.safetensors" ]; then
    cp "$m/config.json" "$m/tokenizer.json" .gpu/minilm/
    python3 - "$m/model.safetensors" .gpu/minilm/keys.json <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
keys = {k: v["shape"] for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"}
json.dump({"weight_keys": keys}, open(sys.argv[2], "w"))
PY
  fi
  du -sh .gpu >&2
  exit 0
fi

out="${1:?usage: scripts/gpu-check.sh --prepare | OUTDIR [--device cuda] [--quick]}"
shift
mkdir -p "$out"
exec > >(tee "$out/console.txt") 2>&1

bin="${SEGATTN_BIN:-}"
if [ -z "$bin" ]; then
  # Unpacked outside the repo: .gpu stays small enough to carry (the binary is ~90 MB).
  [ -f .gpu/segattn.xz ] || { echo "gpu-check: no .gpu/segattn.xz (run --prepare here first)"; exit 1; }
  bin="$(mktemp -d)/segattn"
  python3 -c "import lzma, shutil, os, sys; shutil.copyfileobj(lzma.open('.gpu/segattn.xz'), open(sys.argv[1], 'wb')); os.chmod(sys.argv[1], 0o755)" "$bin"
fi

# The CUDA 13 libraries of the machine's Python packages (nvidia/cu13/lib, or the older
# one-folder-per-library layout), then a system toolkit if there is one.
libs=$(python3 - <<'PY'
import glob, importlib.util, os
paths = []
spec = importlib.util.find_spec("nvidia")
for root in (spec.submodule_search_locations if spec else []):
    paths += sorted(glob.glob(os.path.join(root, "cu13", "lib")))
    paths += sorted(p for p in glob.glob(os.path.join(root, "*", "lib")) if "cu13" not in p)
print(":".join(paths))
PY
)
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && libs="$libs:$d"
done
# The Python on PATH may not be the one with the CUDA wheels: look for them elsewhere too.
if ! LD_LIBRARY_PATH="${libs#:}" ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.13' &&
   ! ls ${libs//:/ } 2>/dev/null | grep -q 'libcublas\.so\.13'; then
  found=$(timeout 30 find / -xdev -maxdepth 8 -type f -name 'libcublas.so.13' 2>/dev/null | head -n 1)
  [ -n "$found" ] && libs="$libs:$(dirname "$found")"
fi
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
if ldd "$bin" | grep -q 'not found'; then
  ldd "$bin"
  echo "gpu-check: libraries missing (above)"
  exit 1
fi
ldd "$bin" | grep -E 'cuda|cublas|curand|nvrtc' || true
nvidia-smi || true
"$bin" --version
python3 scripts/gpu_check.py "$bin" "$out" "$@"
