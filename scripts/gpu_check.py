#!/usr/bin/env python3
"""The GPU check's cases, run by scripts/gpu-check.sh: parity through the CLI on the fixtures,
benchmarks, and a JSON + markdown report. Standard library only (the GPU machine's Python may
lack numpy): safetensors are read by hand.

    gpu_check.py BIN OUTDIR [--device cuda] [--quick]

Parity (every case runs `segattn segment` / `attend` on the fixtures' deterministic weights):
- f32 on the device against the official PyTorch outputs: low-res logits within 1e-4 of max|ref|
  (SAM's own bar), IoU predictions within 1e-4, masks differing in at most 0.2% of pixels;
  attentions of the French models within 1e-5.
- f16 image encoder on the device against f32 on the CPU: every mask IoU >= 0.99.
"""

import argparse
import array
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
CHELSEA = os.path.join(ROOT, "assets", "chelsea.png")

# model id -> (detweights arch, seed, fixture json/safetensors stem)
SAM_MODELS = {
    "mobilesam_vit_t": ("mobile-sam", 1, "sam/mobilesam_vit_t"),
    "sam_vit_small": ("sam-vit-small", 2, "sam/sam_vit_small"),
    "sam2.1_hiera_t": ("sam2-tiny", 11, "sam2/sam2.1_hiera_t"),
}
FRENCH = ["camembert_tiny", "xlm_roberta_tiny", "roberta_tiny", "bert_sentencepiece_tiny"]
DTYPES = {"F32": ("f", 4), "U8": ("B", 1), "U32": ("I", 4), "I64": ("q", 8), "F16": ("e", 2)}


def read_safetensors(path):
    """{name: (shape, flat list)} of a .safetensors file (F32, F16, U8, U32, I64)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        code, size = DTYPES[meta["dtype"]]
        a, b = meta["data_offsets"]
        raw = data[a:b]
        if code == "e":
            values = list(struct.unpack(f"<{len(raw) // 2}e", raw))
        else:
            values = array.array(code)
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
        out[name] = (meta["shape"], values)
    return out


def rel_err(ours, ref):
    """max |ours - ref| / max |ref|."""
    peak = max((abs(v) for v in ref), default=0.0) or 1.0
    return max((abs(a - b) for a, b in zip(ours, ref)), default=0.0) / peak


def mask_iou(a, b):
    inter = sum(1 for x, y in zip(a, b) if x and y)
    union = sum(1 for x, y in zip(a, b) if x or y)
    return 1.0 if union == 0 else inter / union


class Check:
    def __init__(self, binary, out, device):
        self.bin, self.out, self.device = binary, out, device
        self.cases, self.benches, self.log = [], [], []
        # One call on the GPU machine may run 10 minutes: stop starting cases before that, so
        # that the report is always written.
        self.deadline = time.time() + float(os.environ.get("GPU_CHECK_SECONDS", "480"))
        self.work = tempfile.mkdtemp(prefix="gpu-check-")

    def run(self, args, timeout=600):
        t = time.time()
        timeout = max(10.0, min(timeout, self.deadline + 60 - t))
        p = subprocess.run([self.bin] + args, capture_output=True, text=True, timeout=timeout)
        line = {"cmd": " ".join(["segattn"] + args), "rc": p.returncode,
                "s": round(time.time() - t, 2), "stderr": p.stderr[-2000:]}
        self.log.append(line)
        if p.returncode != 0:
            raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-600:]}")
        return p.stdout

    def case(self, name, fn):
        t = time.time()
        if t > self.deadline:
            result = {"ok": False, "error": "skipped: past the check's deadline", "name": name}
            self.cases.append(result)
            print(f"SKIP {name}", flush=True)
            return
        try:
            result = fn()
            result.setdefault("ok", True)
        except Exception as e:  # one failed case must not stop the others
            result = {"ok": False, "error": str(e)}
        result.update(name=name, s=round(time.time() - t, 1))
        self.cases.append(result)
        print(f"{'ok  ' if result['ok'] else 'FAIL'} {name} {json.dumps(result)[:300]}", flush=True)

    def weights(self, arch, seed):
        path = os.path.join(self.work, f"{arch}-{seed}.safetensors")
        if not os.path.exists(path):
            self.run(["detweights", "--arch", arch, "--seed", str(seed), "--out", path])
        return path

    def segment(self, weights, prompt, device, dtype, tag):
        out = os.path.join(self.work, f"{tag}.png")
        logits = os.path.join(self.work, f"{tag}.safetensors")
        args = ["segment", "--weights", weights, "--image", CHELSEA, "--out", out,
                "--logits-out", logits, "--device", device, "--dtype", dtype, "--json"]
        for (x, y), label in zip(prompt.get("points", []), prompt.get("labels", [])):
            args += ["--point", f"{x},{y},{'fg' if label == 1 else 'bg'}"]
        if "box" in prompt:
            args += ["--box", ",".join(str(v) for v in prompt["box"])]
        if prompt["multimask"]:
            args.append("--multimask")
        summary = json.loads(self.run(args))
        return read_safetensors(logits), summary["timings_ms"]

    def sam_parity(self, model):
        arch, seed, stem = SAM_MODELS[model]
        meta = json.load(open(os.path.join(FIX, stem + ".json")))
        ref = read_safetensors(os.path.join(FIX, stem + ".safetensors"))
        weights = self.weights(arch, seed)
        for p in meta["prompts"]:
            pid = p["id"]

            def f32_case(p=p, pid=pid):
                got, timings = self.segment(weights, p, self.device, "f32", f"{model}-{pid}-f32")
                logits = rel_err(got["low_res_masks"][1], ref[f"{pid}.low_res_logits"][1])
                iou = max(abs(a - b) for a, b in zip(got["iou_predictions"][1],
                                                      ref[f"{pid}.iou_predictions"][1]))
                ours, theirs = got["masks"][1], ref[f"{pid}.masks"][1]
                differ = sum(1 for a, b in zip(ours, theirs) if a != b) / len(theirs)
                return {"logits_rel_err": logits, "iou_abs_err": iou, "mask_pixels_differ": differ,
                        "timings_ms": timings,
                        "ok": logits <= 1e-4 and iou <= 1e-4 and differ <= 0.002}

            self.case(f"{model} {pid} f32 {self.device} vs PyTorch", f32_case)

            def f16_case(p=p, pid=pid):
                cpu, _ = self.segment(weights, p, "cpu", "f32", f"{model}-{pid}-cpu")
                got, timings = self.segment(weights, p, self.device, "f16", f"{model}-{pid}-f16")
                (n, h, w), a = cpu["masks"]
                b = got["masks"][1]
                ious = [mask_iou(a[i * h * w:(i + 1) * h * w], b[i * h * w:(i + 1) * h * w])
                        for i in range(n)]
                logits = rel_err(got["low_res_masks"][1], cpu["low_res_masks"][1])
                return {"mask_iou_min": min(ious), "logits_rel_err_vs_cpu": logits,
                        "timings_ms": timings, "ok": min(ious) >= 0.99}

            self.case(f"{model} {pid} f16 {self.device} vs f32 cpu", f16_case)

    def text_parity(self, model):
        meta = json.load(open(os.path.join(FIX, "text", "french", model + ".json")))
        ref = read_safetensors(os.path.join(FIX, "text", "french", model + ".safetensors"))
        folder = os.path.join(self.work, model)
        os.makedirs(folder, exist_ok=True)
        for name in ("config.json", "tokenizer.json"):
            shutil.copy(os.path.join(FIX, "text", "french", model, name), folder)
        self.run(["detweights", "--keys", os.path.join(FIX, "text", "french", model + ".json"),
                  "--seed", str(meta["seed"]), "--out", os.path.join(folder, "model.safetensors")])
        for s in meta["sentences"]:
            sid = s["id"]

            def attend_case(s=s, sid=sid):
                out = os.path.join(self.work, f"{model}-{sid}.safetensors")
                self.run(["attend", "--model", folder, "--text", s["text"], "--out", out,
                          "--device", self.device])
                got = read_safetensors(out)
                ids = list(got["input_ids"][1])
                same_ids = ids == list(ref[f"{sid}.input_ids"][1])
                err = max(abs(a - b) for a, b in zip(got["attentions"][1],
                                                     ref[f"{sid}.attentions"][1]))
                return {"ids_equal": same_ids, "attention_abs_err": err, "tokens": len(ids),
                        "ok": same_ids and err <= 1e-5}

            self.case(f"{model} {sid} attentions {self.device} vs transformers", attend_case)

    def bench(self, target, extra, label):
        def fn():
            out = json.loads(self.run(["bench", target, "--json", "--device", self.device] + extra,
                                      timeout=900))
            self.benches.append({"label": label, **out})
            return {"result": out}

        self.case(f"bench {label}", fn)

    def benches_all(self, quick):
        archs = ["mobile-sam", "sam2-tiny"] if quick else [
            "mobile-sam", "vit-b", "vit-h", "sam2-tiny", "sam2-small", "sam2-base-plus", "sam2-large"]
        for arch in archs:
            for dtype in ("f16", "f32"):
                self.bench("sam", ["--arch", arch, "--dtype", dtype, "--runs", "5",
                                   "--clicks", "20"], f"sam {arch} {dtype}")
        minilm = os.path.join(ROOT, ".gpu", "minilm")
        if os.path.exists(os.path.join(minilm, "keys.json")):
            folder = os.path.join(self.work, "minilm")
            os.makedirs(folder, exist_ok=True)
            for name in ("config.json", "tokenizer.json"):
                shutil.copy(os.path.join(minilm, name), folder)
            try:
                self.run(["detweights", "--keys", os.path.join(minilm, "keys.json"), "--seed", "0",
                          "--out", os.path.join(folder, "model.safetensors")])
                self.bench("text", ["--model", folder, "--tokens", "16,128,512"],
                           "text MiniLM-L6 shapes")
            except Exception as e:
                self.cases.append({"name": "bench text", "ok": False, "error": str(e)})
        camembert = os.path.join(self.work, "camembert_tiny")
        if os.path.exists(os.path.join(camembert, "model.safetensors")):
            self.bench("text", ["--model", camembert, "--tokens", "16,128"],
                       "text camembert_tiny")
        if not quick:
            self.bench("everything", ["--arch", "mobile-sam", "--dtype", "f16"],
                       "everything mobile-sam f16")

    def auto_device(self):
        def fn():
            out = json.loads(self.run(["bench", "sam", "--json", "--device", "auto", "--arch",
                                       "mobile-sam", "--runs", "5", "--clicks", "20"]))
            return {"device": out.get("device"), "ok": out.get("device", "cpu") != "cpu"
                    or self.device == "cpu"}

        self.case("--device auto picks the GPU", fn)


def nvidia_smi():
    if not shutil.which("nvidia-smi"):
        return "nvidia-smi not found"
    p = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total",
                        "--format=csv"], capture_output=True, text=True)
    return (p.stdout + p.stderr).strip()


def markdown(report):
    lines = [f"# GPU check ({report['date']})", "", f"- binary: `{report['binary']}`",
             f"- device: `{report['device']}`", f"- host: {report['host']}", "", "```",
             report["nvidia_smi"], "```", "",
             f"{report['passed']} of {report['total']} cases passed.", "",
             "| case | ok | figures |", "| --- | --- | --- |"]
    for c in report["cases"]:
        figures = {k: v for k, v in c.items() if k not in ("name", "ok", "result")}
        if "result" in c:
            figures = {k: v for k, v in c["result"].items() if k.endswith("_ms") or k in
                       ("device", "dtype", "model")}
        text = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in figures.items())
        lines.append(f"| {c['name']} | {'yes' if c['ok'] else '**no**'} | {text} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("outdir")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="fewer benches, for a dry run")
    ap.add_argument("--parts", default="sam,text,bench",
                    help="comma-separated: sam (SAM parity), text (text parity), bench")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    check = Check(os.path.abspath(args.binary), args.outdir, args.device)
    parts = set(args.parts.split(","))
    check.auto_device()
    if "sam" in parts:
        for model in SAM_MODELS:
            check.sam_parity(model)
    if "text" in parts:
        for model in FRENCH:
            check.text_parity(model)
    if "bench" in parts:
        check.benches_all(args.quick)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "binary": args.binary,
        "device": args.device,
        "host": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "nvidia_smi": nvidia_smi(),
        "passed": sum(1 for c in check.cases if c["ok"]),
        "total": len(check.cases),
        "cases": check.cases,
        "benches": check.benches,
        "commands": check.log,
    }
    with open(os.path.join(args.outdir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.outdir, "report.md"), "w") as f:
        f.write(markdown(report))
    print(f"{report['passed']} of {report['total']} cases passed; report in {args.outdir}")
    shutil.rmtree(check.work, ignore_errors=True)
    return 0 if report["passed"] == report["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
