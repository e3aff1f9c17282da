"""Reference records of sam2 1.1.0's `SAM2AutomaticMaskGenerator` (everything mode for SAM 2.1)
on the detweights Hiera-T model of `make_sam2_fixtures.py` (seed 11), skimage's chelsea.

    pip install torch torchvision sam2 safetensors numpy pycocotools scikit-image
    python tools/reference/make_sam2_amg_fixtures.py --out tests/fixtures/sam2

With random weights the predicted IoUs (a sigmoid) sit near 0.5 and the logits near 0, so the
default thresholds keep nothing: as `make_amg_fixtures.py`, the cases relax
`pred_iou_thresh` (<= 0 turns the filter off) and `stability_score_thresh`, move the stability
offset to where the scores vary, and vary the grid, the batch size, crop layers and
`min_mask_region_area`.

In sam2 1.1.0, `min_mask_region_area` does not run `postprocess_small_regions` (SAM 1's
clean-up, which `generate` no longer calls): it becomes the predictor's `max_hole_area` and
`max_sprinkle_area`, which fill background components and drop foreground components of at
most that many pixels in each 256 x 256 low-res logit map before the upscale
(`SAM2Transforms.postprocess_masks`). Its connected components come from sam2's CUDA
extension (`sam2._C`); a `pip install sam2`, or any CPU run, has none, and the official code
then warns and skips the step. Here `get_connected_components` is given a CPU twin with the
same contract (8-connectivity; labels > 0 and each pixel's component area on the mask's
pixels), so that the official post-processing runs as it does on a GPU install.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detweights  # noqa: E402
from make_sam2_fixtures import CONFIGS  # noqa: E402

RELAX = {"pred_iou_thresh": -10.0, "stability_score_thresh": 0.0, "stability_score_offset": 0.02}
CASES = [
    {"id": "g3_all", "points_per_side": 3, **RELAX, "box_nms_thresh": 1.0},
    {"id": "g4_b5_nms", "points_per_side": 4, "points_per_batch": 5, **RELAX, "box_nms_thresh": 0.99},
    {"id": "g4_iou_stab", "points_per_side": 4, **RELAX, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.3, "box_nms_thresh": 1.0},
    {"id": "g3_area60", "points_per_side": 3, **RELAX, "box_nms_thresh": 1.0, "min_mask_region_area": 60},
    {"id": "g3_area2000", "points_per_side": 3, **RELAX, "box_nms_thresh": 1.0, "min_mask_region_area": 2000},
    {"id": "g2_crop1", "points_per_side": 2, **RELAX, "crop_n_layers": 1, "box_nms_thresh": 1.0, "crop_nms_thresh": 1.0},
]


def cpu_connected_components(mask):
    """`sam2.utils.misc.get_connected_components` on the CPU: `mask` `(N, 1, H, W)` ->
    (labels, counts), 8-connected, 0 off the mask."""
    import torch
    from skimage.measure import label

    m = mask.cpu().numpy().astype(bool)
    labels = np.zeros(m.shape, dtype=np.int32)
    counts = np.zeros(m.shape, dtype=np.int32)
    for i in range(m.shape[0]):
        lab = label(m[i, 0], connectivity=2)
        sizes = np.bincount(lab.ravel())
        area = sizes[lab]
        area[lab == 0] = 0
        labels[i, 0] = lab
        counts[i, 0] = area
    return torch.from_numpy(labels), torch.from_numpy(counts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/sam2")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import torch
    from safetensors.numpy import load_file
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    import sam2.utils.misc

    sam2.utils.misc.get_connected_components = cpu_connected_components
    torch.set_grad_enabled(False)
    model = build_sam2(CONFIGS["tiny"], ckpt_path=None, device="cpu", mode="eval")
    detweights.apply(model, args.seed)
    model.eval()
    here = os.path.dirname(os.path.abspath(__file__))
    # skimage.data.chelsea(), as make_sam_fixtures.py stored it.
    image = load_file(os.path.join(here, "../../tests/fixtures/sam/image.safetensors"))["image"]
    image = np.ascontiguousarray(image)
    out = {
        "model": "sam2.1_hiera_t",
        "seed": args.seed,
        "image": "skimage.data.chelsea()",
        "generator": "sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator(output_mode='coco_rle', use_m2m=False, multimask_output=True)",
        "connected_components": "sam2.utils.misc.get_connected_components replaced by a CPU twin (skimage.measure.label, connectivity 2)",
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "cases": [],
    }
    try:
        from importlib.metadata import version

        out["versions"]["sam2"] = version("sam2")
    except Exception:  # noqa: BLE001
        pass
    for case in CASES:
        params = {k: v for k, v in case.items() if k != "id"}
        gen = SAM2AutomaticMaskGenerator(model, output_mode="coco_rle", **params)
        records = gen.generate(image)
        print(case["id"], len(records), "records")
        out["cases"].append({"id": case["id"], "params": params, "records": records})
    with open(os.path.join(args.out, "amg_sam2.1_hiera_t.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
