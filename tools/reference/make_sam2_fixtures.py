"""SAM 2.1 image-mode fixtures from the official `sam2` package (`SAM2ImagePredictor`).

    pip install torch torchvision sam2 safetensors numpy scikit-image
    python tools/reference/make_sam2_fixtures.py --config tiny --seed 11 --out tests/fixtures/sam2
    python tools/reference/make_sam2_fixtures.py --config small --seed 5 --pt /tmp/sam2_small.pt

Every floating tensor of the full state dict (video-memory modules included) gets detweights
(`detweights.py`, WEIGHTS_SPEC.md). Writes `<name>.safetensors` and `<name>.json`: the model
input, the image embedding, both high-resolution feature maps, and per prompt the low-res
logits, IoU and masks at the original size. `--pt` also writes the state dict as the official
checkpoints are laid out (`torch.save({"model": state_dict})`), for `segattn segment` checks;
`--debug` adds the trunk's stage outputs and the decoder's output tokens.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detweights  # noqa: E402

CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}

PROMPTS = [
    {"id": "p0", "points": [[225.5, 135.0]], "labels": [1], "multimask": True},
    {"id": "p1", "points": [[157.85, 150.0], [315.7, 90.0]], "labels": [1, 0], "multimask": False},
    {"id": "p2", "box": [67.65, 60.0, 338.25, 255.0], "multimask": False},
    {"id": "p3", "box": [112.75, 30.0, 405.9, 210.0], "points": [[270.6, 120.0]], "labels": [1], "multimask": False},
    {"id": "p4", "points": [[90.2, 240.0], [112.75, 225.0], [360.8, 60.0]], "labels": [1, 1, 0], "multimask": True},
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default=None)
    ap.add_argument("--pt", default=None)
    ap.add_argument("--image", default=None, help="an RGB image file (default: skimage chelsea)")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()

    import torch
    from safetensors.numpy import save_file
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    torch.set_grad_enabled(False)
    model = build_sam2(CONFIGS[args.config], ckpt_path=None, device="cpu", mode="eval")
    detweights.apply(model, args.seed)
    model.eval()
    if args.pt:
        torch.save({"model": model.state_dict()}, args.pt)
        print("wrote", args.pt)
    if args.image:
        from PIL import Image

        image = np.array(Image.open(args.image).convert("RGB"))
    else:
        from skimage.data import chelsea

        image = chelsea()
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(image)
    out = {
        "input_image": predictor._transforms(image)[None].numpy().astype(np.float32),
        "image_embed": predictor._features["image_embed"].numpy(),
        "high_res_feats.0": predictor._features["high_res_feats"][0].numpy(),
        "high_res_feats.1": predictor._features["high_res_feats"][1].numpy(),
    }
    if args.debug:
        x = out["input_image"]
        levels = model.image_encoder.trunk(torch.from_numpy(x))
        for i, lv in enumerate(levels):
            out[f"debug.trunk.{i}"] = lv.numpy()
    for p in PROMPTS:
        pts = np.array(p["points"], dtype=np.float32) if "points" in p else None
        lbl = np.array(p["labels"], dtype=np.int64) if "labels" in p else None
        box = np.array(p["box"], dtype=np.float32) if "box" in p else None
        masks, iou, low = predictor.predict(
            point_coords=pts, point_labels=lbl, box=box, multimask_output=p["multimask"]
        )
        out[f"{p['id']}.masks"] = masks.astype(np.uint8)
        out[f"{p['id']}.iou_predictions"] = iou.astype(np.float32)
        out[f"{p['id']}.low_res_logits"] = low.astype(np.float32)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        name = f"sam2.1_hiera_{args.config}_seed{args.seed}"
        save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, os.path.join(args.out, name + ".safetensors"))
        meta = {
            "model": f"sam2.1_hiera_{args.config}",
            "seed": args.seed,
            "original_size_hw": list(image.shape[:2]),
            "prompts": PROMPTS,
            "versions": {"torch": torch.__version__},
        }
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1)
        print("wrote", name)


if __name__ == "__main__":
    main()
