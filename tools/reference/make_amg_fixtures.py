"""Reference records of the official automatic mask generator (segment_anything 1.0's
`SamAutomaticMaskGenerator`, also used with MobileSAM) on the detweights models, and the
official stability scores of the single-prompt fixtures.

    pip install torch torchvision segment-anything==1.0 mobilesam-mirror==1.0.0 timm \
        safetensors numpy pycocotools opencv-python-headless
    python tools/reference/make_amg_fixtures.py --out tests/fixtures/sam

With random weights the predicted IoUs are near 0, so the default thresholds keep nothing:
the cases relax `pred_iou_thresh` (<= 0 turns the filter off) and `stability_score_thresh`,
and vary the grid, the batch size, crop layers and `min_mask_region_area`.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import detweights  # noqa: E402
from make_sam_fixtures import PROMPTS, build  # noqa: E402

# The detweights logits are small (|logit| < 0.2), so the cases move the stability offset to
# 0.02 for meaningful scores, and raise the NMS thresholds so that more masks survive.
RELAX = {"pred_iou_thresh": -10.0, "stability_score_thresh": 0.0, "stability_score_offset": 0.02}
CASES = {
    "mobilesam_vit_t": [
        {"id": "g3_all", "points_per_side": 3, **RELAX, "box_nms_thresh": 1.0},
        {"id": "g4", "points_per_side": 4, **RELAX, "box_nms_thresh": 0.95},
        {"id": "g6_b7_crop1", "points_per_side": 6, "points_per_batch": 7, **RELAX, "crop_n_layers": 1, "box_nms_thresh": 0.9, "crop_nms_thresh": 0.8},
        {"id": "g5_area60", "points_per_side": 5, **RELAX, "box_nms_thresh": 0.95, "min_mask_region_area": 60},
        {"id": "g8_b16_stab", "points_per_side": 8, "points_per_batch": 16, **RELAX, "stability_score_thresh": 0.5, "box_nms_thresh": 0.98},
        {"id": "g3_defaults_but_iou", "points_per_side": 3, "pred_iou_thresh": -1.0},
    ],
    "sam_vit_small": [
        {"id": "g3_b5_all", "points_per_side": 3, "points_per_batch": 5, **RELAX, "box_nms_thresh": 1.0},
        {"id": "g2_crop1_all", "points_per_side": 2, **RELAX, "crop_n_layers": 1, "box_nms_thresh": 1.0, "crop_nms_thresh": 1.0},
        {"id": "g6_crop1_area100", "points_per_side": 6, **RELAX, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2, "min_mask_region_area": 100, "box_nms_thresh": 0.9, "crop_nms_thresh": 0.9},
    ],
}


def main():
    from safetensors.numpy import load_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/sam")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    # skimage.data.chelsea(), as make_sam_fixtures.py stored it.
    image = load_file(os.path.join(os.path.dirname(__file__), "../../tests/fixtures/sam/image.safetensors"))["image"]
    for name, cases in CASES.items():
        model, Predictor, seed = build(name)
        model.eval()
        detweights.apply(model, seed)
        model.eval()
        if name == "mobilesam_vit_t":
            from mobile_sam import SamAutomaticMaskGenerator
            from mobile_sam.utils.amg import calculate_stability_score
        else:
            from segment_anything import SamAutomaticMaskGenerator
            from segment_anything.utils.amg import calculate_stability_score
        predictor = Predictor(model)
        predictor.set_image(image)
        stability = {}
        for p in PROMPTS:
            pts = np.array(p["points"], dtype=np.float64) if "points" in p else None
            lbl = np.array(p["labels"]) if "points" in p else None
            box = np.array(p["box"], dtype=np.float64) if "box" in p else None
            logits, _, _ = predictor.predict(pts, lbl, box, multimask_output=p["multimask"], return_logits=True)
            for offset in (1.0, 0.02):
                s = calculate_stability_score(torch.as_tensor(logits), model.mask_threshold, offset)
                stability[f"{p['id']}@{offset}"] = [float(v) for v in s]
        out = {"model": name, "seed": seed, "image": "skimage.data.chelsea()", "prompt_stability_scores": stability, "cases": []}
        for case in cases:
            params = {k: v for k, v in case.items() if k != "id"}
            gen = SamAutomaticMaskGenerator(model, output_mode="coco_rle", **params)
            records = gen.generate(image)
            print(name, case["id"], len(records), "records")
            out["cases"].append({"id": case["id"], "params": params, "records": records})
        with open(os.path.join(args.out, f"amg_{name}.json"), "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
