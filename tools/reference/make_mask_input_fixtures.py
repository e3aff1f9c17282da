"""Reference outputs of the official predictor refining a mask with `mask_input`.

    pip install torch torchvision segment-anything==1.0 mobilesam-mirror==1.0.0 timm \
        scikit-image safetensors numpy pillow
    python tools/reference/make_mask_input_fixtures.py --out tests/fixtures/sam

For the small ViT SAM of make_sam_fixtures.py (same detweights seed, same image; `--models`), a chain of clicks as
an annotator makes them, each refined with the previous answer's low-res logits, as the
official `SamPredictor.predict(..., mask_input=low_res_logits[best][None])` takes them:

  s1: a foreground point, 3 masks; best = highest predicted IoU
  s2: s1's point + a second foreground point, mask_input = s1's best, 1 mask
  s3: s2's points + a background point, mask_input = s2's mask, 1 mask
  s4: a box, mask_input = s1's best, 3 masks

Stored per step: the mask_input it was given (`sN.mask_input`, [1, 256, 256]), the low-res
logits, IoU predictions and masks at the original size, in `mask_input_<model>.safetensors`
with the prompts in `mask_input_<model>.json`.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import detweights  # noqa: E402
from make_sam_fixtures import build  # noqa: E402

P1 = [250.0, 130.0]
P2 = [300.0, 160.0]
NEG = [425.0, 200.0]
BOX = [30.0, 5.0, 395.0, 298.0]


def main():
    from safetensors.numpy import save_file
    from skimage.data import chelsea

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/sam")
    # One model is enough: mask_input goes through the prompt encoder and mask decoder, the
    # same code for both; mobilesam_vit_t works too.
    ap.add_argument("--models", nargs="+", default=["sam_vit_small"])
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    image = chelsea()
    for name in args.models:
        model, Predictor, seed = build(name)
        model.eval()
        detweights.apply(model, seed)
        model.eval()
        predictor = Predictor(model)
        predictor.set_image(image)
        out, steps = {}, []

        def step(sid, points, labels, box, mask_input, multimask):
            pts = np.array(points, dtype=np.float64) if points else None
            lbl = np.array(labels) if points else None
            bx = np.array(box, dtype=np.float64) if box else None
            logits, iou, low = predictor.predict(
                pts, lbl, bx, mask_input=mask_input, multimask_output=multimask, return_logits=True
            )
            if mask_input is not None:
                out[f"{sid}.mask_input"] = mask_input.astype(np.float32)
            out[f"{sid}.low_res_logits"] = low.astype(np.float32)
            out[f"{sid}.iou_predictions"] = iou.astype(np.float32)
            out[f"{sid}.masks"] = (logits > model.mask_threshold).astype(np.uint8)
            steps.append(
                {
                    "id": sid,
                    **({"points": points, "labels": labels} if points else {}),
                    **({"box": box} if box else {}),
                    "multimask": multimask,
                    "mask_input": mask_input is not None,
                }
            )
            return low, iou

        low1, iou1 = step("s1", [P1], [1], None, None, True)
        best = int(np.argmax(iou1))
        low2, _ = step("s2", [P1, P2], [1, 1], None, low1[best][None], False)
        step("s3", [P1, P2, NEG], [1, 1, 0], None, low2[0][None], False)
        step("s4", None, None, BOX, low1[best][None], True)
        save_file(
            {k: np.ascontiguousarray(v) for k, v in out.items()},
            os.path.join(args.out, f"mask_input_{name}.safetensors"),
        )
        meta = {
            "model": name,
            "seed": seed,
            "torch": torch.__version__,
            "s1_best": best,
            "steps": steps,
            "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(out.items())},
        }
        with open(os.path.join(args.out, f"mask_input_{name}.json"), "w") as f:
            json.dump(meta, f, indent=1)
    print(f"wrote mask_input fixtures to {args.out}")


if __name__ == "__main__":
    main()
