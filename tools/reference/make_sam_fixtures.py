"""Regenerates tests/fixtures/sam/ from the official PyTorch code.

    pip install torch torchvision segment-anything==1.0 mobilesam-mirror==1.0.0 timm \
        scikit-image safetensors numpy pillow
    python tools/reference/make_sam_fixtures.py --out tests/fixtures/sam

Models: MobileSAM (official `build_sam_vit_t`, detweights seed 1) and a small ViT SAM (official
`_build_sam(96, 4, 4, [1, 3])`, seed 2). For each prompt it stores the official predictor's
low-res logits, IoU predictions, masks at the original size and, for some prompts, the mask
decoder's attention probabilities (captured by re-implementing `Attention.forward` so that it
keeps its softmax output; the arithmetic is the official one).
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import detweights  # noqa: E402

PROMPTS = [
    {"id": "p0", "points": [[250.0, 130.0]], "labels": [1], "multimask": True, "attention": True, "mask_logits": False},
    {"id": "p1", "points": [[250.0, 130.0], [425.0, 200.0]], "labels": [1, 0], "multimask": False, "attention": False, "mask_logits": True},
    {"id": "p2", "box": [30.0, 5.0, 395.0, 298.0], "multimask": False, "attention": False, "mask_logits": False},
    {"id": "p3", "box": [30.0, 5.0, 395.0, 298.0], "points": [[262.0, 240.0]], "labels": [1], "multimask": False, "attention": True, "mask_logits": False},
]


def capturing_forward(self, q, k, v):
    """The official decoder `Attention.forward`, also keeping the probabilities."""
    q, k, v = self.q_proj(q), self.k_proj(k), self.v_proj(v)
    q, k, v = (self._separate_heads(x, self.num_heads) for x in (q, k, v))
    c_per_head = q.shape[-1]
    attn = torch.softmax((q @ k.permute(0, 1, 3, 2)) / math.sqrt(c_per_head), dim=-1)
    self.last_probs = attn.detach().clone()
    return self.out_proj(self._recombine_heads(attn @ v))


def build(name):
    if name == "mobilesam_vit_t":
        import mobile_sam
        from mobile_sam.modeling import transformer

        transformer.Attention.forward = capturing_forward
        model = mobile_sam.sam_model_registry["vit_t"](checkpoint=None)
        return model, mobile_sam.SamPredictor, 1
    from segment_anything import SamPredictor
    from segment_anything.build_sam import _build_sam
    from segment_anything.modeling import transformer

    transformer.Attention.forward = capturing_forward
    model = _build_sam(encoder_embed_dim=96, encoder_depth=4, encoder_num_heads=4, encoder_global_attn_indexes=[1, 3])
    return model, SamPredictor, 2


def main():
    from safetensors.numpy import save_file
    from skimage.data import chelsea

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/sam")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    image = chelsea()  # RGB u8, 300 x 451

    for name in ["mobilesam_vit_t", "sam_vit_small"]:
        model, Predictor, seed = build(name)
        model.eval()
        detweights.apply(model, seed)
        model.eval()  # TinyViT caches attention_biases[:, idxs] on eval(): use the new weights
        predictor = Predictor(model)
        predictor.set_image(image)
        resized = predictor.transform.apply_image(image)
        out = {"image_embeddings": predictor.features.numpy().astype(np.float32)}
        for p in PROMPTS:
            pts = np.array(p["points"], dtype=np.float64) if "points" in p else None
            lbl = np.array(p["labels"]) if "points" in p else None
            box = np.array(p["box"], dtype=np.float64) if "box" in p else None
            logits, iou, low = predictor.predict(pts, lbl, box, multimask_output=p["multimask"], return_logits=True)
            pid = p["id"]
            out[f"{pid}.low_res_logits"] = low.astype(np.float32)
            out[f"{pid}.iou_predictions"] = iou.astype(np.float32)
            out[f"{pid}.masks"] = (logits > model.mask_threshold).astype(np.uint8)
            if p["mask_logits"]:
                out[f"{pid}.mask_logits"] = logits.astype(np.float32)
            if p["attention"]:
                t = model.mask_decoder.transformer
                for i, layer in enumerate(t.layers):
                    out[f"{pid}.attn.layer{i}.self_attn"] = layer.self_attn.last_probs[0].numpy().astype(np.float16)
                    out[f"{pid}.attn.layer{i}.token_to_image"] = layer.cross_attn_token_to_image.last_probs[0].numpy().astype(np.float16)
                out[f"{pid}.attn.final.token_to_image"] = t.final_attn_token_to_image.last_probs[0].numpy().astype(np.float16)
        save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, os.path.join(args.out, f"{name}.safetensors"))
        meta = {
            "model": name,
            "seed": seed,
            "original_size_hw": list(image.shape[:2]),
            "input_size_hw": list(resized.shape[:2]),
            "prompts": [
                {
                    "id": p["id"],
                    **({"points": p["points"], "labels": p["labels"]} if "points" in p else {}),
                    **({"box": p["box"]} if "box" in p else {}),
                    "multimask": p["multimask"],
                    "attention_saved": p["attention"],
                    "mask_logits_saved": p["mask_logits"],
                    "num_sparse_tokens": len(p.get("points", [])) + (2 if "box" in p else 1),
                }
                for p in PROMPTS
            ],
            "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(out.items())},
        }
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(meta, f, indent=1)
        if name == "sam_vit_small":
            enc = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("image_encoder.")}
            torch.save(enc, os.path.join(args.out, "sam_vit_small_image_encoder.pth"))
    save_file({"image": np.ascontiguousarray(image), "resized": np.ascontiguousarray(resized)}, os.path.join(args.out, "image.safetensors"))
    print(f"wrote fixtures to {args.out}")


if __name__ == "__main__":
    main()
