#!/usr/bin/env bash
# The CUDA toolkit that `--features cuda` needs, from PyPI's CUDA 13.0 wheels only (no NVIDIA
# installer, no system CUDA), installed into a folder outside the repo. Prints the environment to
# build with as `export NAME=value` lines on stdout; everything else goes to stderr, so
#
#     eval "$(scripts/cuda-toolkit.sh)"
#     CARGO_TARGET_DIR=target-cuda cargo build --release --locked --features cuda
#
# works on a fresh machine (CPU only is fine: the driver library is replaced at link time by a
# stub, see below). Options:
#   --compile-only   only the compiler and headers (what `cargo check --features cuda` needs;
#                    about 90 MB of wheels instead of about 650 MB: no cuBLAS, cuRAND, NVRTC)
#   --dir DIR        where to install (default $SEGATTN_CUDA_DIR, else ~/.cache/segattn-cuda13)
#   --arch CC        compute capability to build kernels for (default $CUDA_COMPUTE_CAP, else 90:
#                    H100 / H200; candle-kernels turns 90 into sm_90a)
#
# Why 13.0.x: the GPU machines' driver is CUDA 13.0 (R580); a newer nvcc writes PTX that driver
# refuses, and cudarc accepts nvcc 11.4-13.4 only. The cu12 / cu11 nvcc wheels have no `nvcc`.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${SEGATTN_CUDA_DIR:-$HOME/.cache/segattn-cuda13}"
arch="${CUDA_COMPUTE_CAP:-90}"
compile_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --compile-only) compile_only=1 ;;
    --dir) dir="$2"; shift ;;
    --arch) arch="$2"; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "cuda-toolkit.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
log() { echo "cuda-toolkit.sh: $*" >&2; }

# One pip call per set: a second `pip install --target` into the same folder silently skips the
# shared `nvidia/` package folder, so each set lives in its own folder and the full set is a
# superset of the compile-only one.
compiler=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96)
libraries=(nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35)
if [ "$compile_only" = 1 ]; then
  set_name=compile
  wheels=("${compiler[@]}")
else
  set_name=full
  wheels=("${compiler[@]}" "${libraries[@]}")
fi
prefix="$dir/$set_name"
cuda="$prefix/nvidia/cu13"
stamp="$prefix/.installed"
want="${wheels[*]}"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing ${#wheels[@]} CUDA 13.0 wheels from PyPI into $prefix"
  rm -rf "$prefix"
  mkdir -p "$prefix"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$prefix" \
    "${wheels[@]}" >&2
  [ -x "$cuda/bin/nvcc" ] || { log "no nvcc under $cuda/bin after the install"; exit 1; }
  # Unversioned names for the linker (the wheels ship only the sonames).
  (
    cd "$cuda/lib"
    for l in cudart nvrtc cublas cublasLt; do
      if [ -e "lib$l.so.13" ]; then ln -sf "lib$l.so.13" "lib$l.so"; fi
    done
    if [ -e libcurand.so.10 ]; then ln -sf libcurand.so.10 libcurand.so; fi
  )
  echo "$want" > "$stamp"
fi

# A link-time stand-in for the driver library (`libcuda.so`), which no wheel ships: one entry
# per driver function that cudarc binds, each returning CUDA_ERROR_STUB_LIBRARY (34). At run
# time the real driver's libcuda.so.1 is used; with only the stub, `--device cuda` fails cleanly
# and `--device auto` falls back to the CPU.
stubs="$cuda/lib/stubs"
if [ ! -e "$stubs/libcuda.so" ]; then
  cudarc_version=$(awk '/^name = "cudarc"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  [ -n "$cudarc_version" ] || { log "cudarc is not in Cargo.lock"; exit 1; }
  cargo fetch --locked --quiet >&2
  bindings=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path \
    "*/cudarc-$cudarc_version/src/driver/sys/mod.rs" | head -n 1)
  [ -n "$bindings" ] || { log "cudarc $cudarc_version's driver bindings not found"; exit 1; }
  mkdir -p "$stubs"
  grep -ohE '^\s+fn cu[A-Za-z0-9_]+\(' "$bindings" | sed -E 's/^\s+fn //; s/\($//' | sort -u \
    | sed 's/.*/int &(void) { return 34; }/' > "$stubs/stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/stub.c"
  ln -sf libcuda.so "$stubs/libcuda.so.1"
  log "driver stub with $(wc -l < "$stubs/stub.c") entries in $stubs"
fi

log "$("$cuda/bin/nvcc" --version | tail -n 2 | head -n 1)"
threads=$(nproc 2>/dev/null || echo 2)
echo "export CUDA_HOME='$cuda'"
echo "export PATH='$cuda/bin':\"\$PATH\""
echo "export CUDA_COMPUTE_CAP='$arch'"
echo "export CUDAFORGE_THREADS='$threads'"
# Binaries built here need the wheels' libraries, and the stub only where no driver is installed
# (it would shadow a real libcuda.so.1).
ld="$cuda/lib"
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then ld="$ld:$stubs"; fi
echo "export LD_LIBRARY_PATH='$ld'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
