#!/usr/bin/env bash
# Times segattn, the official PyTorch code and onnxruntime on the same deterministic weights,
# one after the other in one run, and prints a table with the ratios.
#
#   PYTHON=/path/to/venv/bin/python scripts/bench-vs-peers.sh [mobile-sam|vit-b|vit-l|vit-h|sam2-tiny|sam2-small|sam2-base-plus|sam2-large|text|everything]...
#
# `everything` times MobileSAM's automatic mask generator after the image is encoded
# (POINTS_PER_SIDE, default 32) against the official SamAutomaticMaskGenerator.
# `text` times all-MiniLM-L6-v2 from .testdata/ (scripts/fetch-test-models.sh; TEXT_MODEL to
# change) against transformers' eager BertModel.
# The venv needs the packages listed in tools/reference/bench_peers.py. Threads: 2 (set
# THREADS to change). onnxruntime is timed for MobileSAM only (exporting ViT-B's encoder to
# ONNX takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-2}
ARCHS=("$@")
[ ${#ARCHS[@]} -eq 0 ] && ARCHS=(mobile-sam)
cargo build --release --quiet
out=$(mktemp -d)
TEXT_MODEL=${TEXT_MODEL:-.testdata/all-MiniLM-L6-v2}
for arch in "${ARCHS[@]}"; do
    if [ "$arch" = text ]; then
        RAYON_NUM_THREADS=$THREADS target/release/segattn bench text --model "$TEXT_MODEL" --json >"$out/text.segattn.json"
        "$PYTHON" tools/reference/bench_peers.py --text "$TEXT_MODEL" --threads "$THREADS" 2>/dev/null >"$out/text.peers.json"
        continue
    fi
    if [ "$arch" = everything ]; then
        pps=${POINTS_PER_SIDE:-32}
        RAYON_NUM_THREADS=$THREADS target/release/segattn bench everything --points-per-side "$pps" --json >"$out/everything.segattn.json"
        "$PYTHON" tools/reference/bench_peers.py --everything --points-per-side "$pps" --threads "$THREADS" 2>/dev/null >"$out/everything.peers.json"
        continue
    fi
    onnx=()
    [ "$arch" = mobile-sam ] || onnx=(--no-onnx)
    RAYON_NUM_THREADS=$THREADS target/release/segattn bench sam --arch "$arch" --json >"$out/$arch.segattn.json"
    "$PYTHON" tools/reference/bench_peers.py --arch "$arch" --threads "$THREADS" "${onnx[@]}" \
        2>/dev/null >"$out/$arch.peers.json"
done
python3 - "$out" "${ARCHS[@]}" <<'PY'
import json, sys
out, archs = sys.argv[1], sys.argv[2:]
print("| model | task | segattn | PyTorch | onnxruntime | segattn / PyTorch | segattn / onnxruntime |")
print("| --- | --- | --- | --- | --- | --- | --- |")
fmt = lambda v: "" if v is None else f"{v:.1f} ms"
ratio = lambda a, b: "" if b is None else f"{a / b:.2f}x"
for arch in archs:
    ours = json.load(open(f"{out}/{arch}.segattn.json"))
    peer = json.load(open(f"{out}/{arch}.peers.json"))
    if arch == "text":
        for n in (16, 128):
            s, t = ours[f"forward_ms_{n}"], peer[f"torch_forward_ms_{n}"]
            print(f"| {ours['model']} | forward + attentions, {n} tokens | {s:.2f} ms | {t:.2f} ms | | {ratio(s, t)} | |")
        continue
    if arch == "everything":
        n = ours["points_per_side"]
        for key, what in (("everything", "defaults"), ("everything_all", "every mask kept")):
            s, t = ours[f"{key}_ms"], peer[f"torch_{key}_ms"]
            print(f"| {ours['model']} | everything {n}x{n}, {what} ({ours[key + '_masks']} / {peer['torch_' + key + '_masks']} masks) | {fmt(s)} | {fmt(t)} | | {ratio(s, t)} | |")
        continue
    rows = [("encoder", ours["encode_ms"], peer["torch_encode_ms"], peer.get("onnx_encode_ms")),
            ("click", ours["decode_ms"], peer["torch_click_ms"], None)]
    for task, s, t, o in rows:
        print(f"| {ours['model']} | {task} | {fmt(s)} | {fmt(t)} | {fmt(o)} | {ratio(s, t)} | {ratio(s, o)} |")
    tp = peer.get("torch_peak_rss_mb")
    tps = "" if tp is None else f"{tp:.0f} MiB"
    print(f"| {ours['model']} | peak RSS | {ours['peak_rss_mb']:.0f} MiB | {tps} | | | |")
PY
