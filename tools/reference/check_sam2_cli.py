"""Random cross-checks of `segattn segment` against the official `sam2` `SAM2ImagePredictor`.

    pip install torch torchvision sam2 safetensors numpy pillow
    python tools/reference/check_sam2_cli.py --binary target/release/segattn \
        --configs tiny small --seeds 3 17 --cases 6 --work /tmp/sam2-xcheck

For each config and seed: the model with detweights (`detweights.py`, WEIGHTS_SPEC.md) saved as
the official checkpoints are laid out (`torch.save({"model": state_dict})`); then `--cases`
random cases, each a random RGB PNG (random size and aspect, smooth shapes and noise; or the
files given with `--images`, in turn) and a random prompt (1-5 points with random labels, a box,
a box with points; one or three masks).
Each case runs the official predictor and `segattn segment --logits-out` on the same PNG, and
compares the low-res logits and the IoU predictions (error relative to max |ref|, limit 1e-4)
and the masks at the image's size (differing pixels, limit 0.2%). Prints one line per case and
exits with 1 when a case is over a limit. Nothing here is used by the tests.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detweights  # noqa: E402
from make_sam2_fixtures import CONFIGS  # noqa: E402

LOGIT_TOL = 1e-4
IOU_TOL = 1e-4
MASK_TOL = 0.002


def random_image(rng):
    """An RGB uint8 image `[H, W, 3]` of random size: a smooth background, ellipses, noise."""
    h = int(rng.integers(48, 1400))
    w = int(rng.integers(48, 1400))
    if rng.random() < 0.2:  # a very wide or tall one
        if rng.random() < 0.5:
            h = int(rng.integers(20, 120))
        else:
            w = int(rng.integers(20, 120))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, p = rng.random(3)
        img[..., c] = 128 + 100 * np.sin(xx / (w * (0.1 + a)) * 6 + p * 6) * np.cos(yy / (h * (0.1 + b)) * 6)
    for _ in range(int(rng.integers(1, 6))):
        cy, cx = rng.random() * h, rng.random() * w
        ry, rx = (0.05 + 0.3 * rng.random()) * h, (0.05 + 0.3 * rng.random()) * w
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        img[inside] = rng.integers(0, 256, 3)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def random_prompt(rng, h, w):
    """Points `[[x, y], ...]` with labels, or a box, or both; and whether to ask for 3 masks."""
    kind = rng.choice(["points", "box", "box+points"])
    p = {"multimask": bool(rng.random() < 0.5)}
    if kind in ("points", "box+points"):
        n = int(rng.integers(1, 6 if kind == "points" else 3))
        p["points"] = [[round(float(rng.random() * w), 2), round(float(rng.random() * h), 2)] for _ in range(n)]
        p["labels"] = [1] + [int(rng.random() < 0.6) for _ in range(n - 1)]
    if kind in ("box", "box+points"):
        x0, x1 = sorted(rng.random(2) * w)
        y0, y1 = sorted(rng.random(2) * h)
        p["box"] = [round(float(v), 2) for v in (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))]
    return p


def run_segattn(binary, pt, png, prompt, out_dir):
    """`segattn segment` on the case; returns its `--logits-out` tensors."""
    from safetensors.numpy import load_file

    logits = os.path.join(out_dir, "logits.safetensors")
    cmd = [binary, "segment", "--weights", pt, "--image", png, "--out", os.path.join(out_dir, "mask.png"),
           "--logits-out", logits, "--device", "cpu"]
    for (x, y), lab in zip(prompt.get("points", []), prompt.get("labels", [])):
        cmd += ["--point", f"{x},{y},{'fg' if lab else 'bg'}"]
    if "box" in prompt:
        cmd += ["--box", ",".join(str(v) for v in prompt["box"])]
    if prompt["multimask"]:
        cmd.append("--multimask")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"segattn failed ({r.returncode}): {r.stderr.strip()}")
    return load_file(logits)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/segattn")
    ap.add_argument("--configs", nargs="+", default=["tiny"], choices=sorted(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[3])
    ap.add_argument("--cases", type=int, default=4, help="cases per config and seed")
    ap.add_argument("--work", default="/tmp/sam2-xcheck")
    ap.add_argument("--images", nargs="*", default=[],
                    help="image files to use in turn instead of random PNGs (any format PIL reads; "
                    "a JPEG's decoders may differ by a level, so only its masks are held to a limit)")
    args = ap.parse_args()

    import torch
    from PIL import Image
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    torch.set_grad_enabled(False)
    os.makedirs(args.work, exist_ok=True)
    failures, rows = 0, []
    for config in args.configs:
        for seed in args.seeds:
            model = build_sam2(CONFIGS[config], ckpt_path=None, device="cpu", mode="eval")
            detweights.apply(model, seed)
            model.eval()
            pt = os.path.join(args.work, f"sam2.1_hiera_{config}_seed{seed}.pt")
            torch.save({"model": model.state_dict()}, pt)
            predictor = SAM2ImagePredictor(model)
            rng = np.random.default_rng(seed * 1000 + len(config))
            for case in range(args.cases):
                if args.images:
                    png = args.images[case % len(args.images)]
                    lossless = not png.lower().endswith((".jpg", ".jpeg", ".webp"))
                else:
                    png = os.path.join(args.work, f"{config}_{seed}_{case}.png")
                    Image.fromarray(random_image(rng)).save(png)
                    lossless = True
                image = np.array(Image.open(png).convert("RGB"))
                h, w = image.shape[:2]
                prompt = random_prompt(rng, h, w)
                predictor.set_image(image)
                pts = np.array(prompt["points"], np.float32) if "points" in prompt else None
                lbl = np.array(prompt["labels"], np.int64) if "labels" in prompt else None
                box = np.array(prompt["box"], np.float32) if "box" in prompt else None
                masks, iou, low = predictor.predict(
                    point_coords=pts, point_labels=lbl, box=box, multimask_output=prompt["multimask"]
                )
                ours = run_segattn(args.binary, pt, png, prompt, args.work)
                o_low = ours["low_res_masks"].reshape(low.shape)
                o_iou = ours["iou_predictions"].reshape(iou.shape)
                o_masks = ours["masks"].reshape(masks.shape).astype(bool)
                e_low = float(np.abs(o_low - low).max() / max(np.abs(low).max(), 1e-12))
                e_iou = float(np.abs(o_iou - iou).max())
                e_mask = float((o_masks != masks.astype(bool)).mean())
                ok = e_mask <= MASK_TOL and (not lossless or (e_low <= LOGIT_TOL and e_iou <= IOU_TOL))
                failures += not ok
                row = {"config": config, "seed": seed, "case": case, "image": os.path.basename(png),
                       "size_hw": [h, w], "prompt": prompt,
                       "low_res_rel": e_low, "iou_abs": e_iou, "mask_frac": e_mask, "ok": ok}
                rows.append(row)
                print(json.dumps(row), flush=True)
    worst = {k: max(r[k] for r in rows) for k in ("low_res_rel", "iou_abs", "mask_frac")}
    print(f"{len(rows)} cases, {failures} over a limit; worst: {json.dumps(worst)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
