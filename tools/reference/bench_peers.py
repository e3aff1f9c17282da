"""Times the official PyTorch SAM / MobileSAM and onnxruntime on the same deterministic weights
that `segattn bench sam` synthesises, so the three can be compared in one run
(`scripts/bench-vs-peers.sh` runs both and prints the ratios).

    pip install torch torchvision segment-anything==1.0 mobilesam-mirror==1.0.0 timm \
        onnx onnxscript onnxruntime numpy
    python tools/reference/bench_peers.py --arch mobile-sam --threads 2 --runs 5
    python tools/reference/bench_peers.py --text .testdata/all-MiniLM-L6-v2   # needs transformers

Prints one JSON object: medians in milliseconds of the image encoder (a 1x3x1024x1024 input,
as `SamPredictor.set_image` feeds it) for PyTorch and, for MobileSAM, onnxruntime (the encoder
exported with `torch.onnx.export`, checked against PyTorch's output), and of one click
(`SamPredictor.predict` with one foreground point, 3 masks, upscaled to a 451x300 image: the
prompt encoder, mask decoder and postprocessing). SAM 2.1 (`--arch sam2-tiny` ...): the official
`sam2` package's `SAM2ImagePredictor` (needs `sam2`), encoder = `forward_image`. With `--text DIR`: a `transformers` BertModel
forward with eager attention and `output_attentions=True` at 16 and 128 tokens, the same ids
`segattn bench text` uses.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import detweights  # noqa: E402


SAM2_CONFIGS = {
    "sam2-tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2-small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2-base-plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2-large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def build(arch):
    if arch in SAM2_CONFIGS:
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        return build_sam2(SAM2_CONFIGS[arch], ckpt_path=None, device="cpu", mode="eval"), SAM2ImagePredictor
    if arch == "mobile-sam":
        import mobile_sam

        return mobile_sam.sam_model_registry["vit_t"](checkpoint=None), mobile_sam.SamPredictor
    from segment_anything import SamPredictor, sam_model_registry

    return sam_model_registry[arch.replace("-", "_")](checkpoint=None), SamPredictor


def timed(fn, runs, warmup=1):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out), out


def synthetic_image(width=451, height=300):
    """The same smooth image as `segattn bench`'s synthetic one."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    r = np.broadcast_to(x * 255 // width, (height, width))
    g = np.broadcast_to(y * 255 // height, (height, width))
    b = (x + y) % 256
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def bench_text(folder, threads, runs):
    from transformers import AutoModel

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    vocab = model.config.vocab_size
    result = {"model": os.path.basename(os.path.normpath(folder)), "threads": threads, "torch": torch.__version__}
    for n in (16, 128):
        ids = torch.tensor([[1000 + (i * 7919) % (vocab - 1000) for i in range(n)]])
        mask = torch.ones_like(ids)
        result[f"torch_forward_ms_{n}"], _ = timed(lambda: model(input_ids=ids, attention_mask=mask, output_attentions=True), runs, warmup=3)
    print(json.dumps(result))


def bench_everything(model, args, result):
    """The official generator after the image is encoded (its set_image made a no-op), with
    the default parameters and with every mask kept by the IoU and stability filters."""
    if args.arch == "mobile-sam":
        from mobile_sam import SamAutomaticMaskGenerator
    else:
        from segment_anything import SamAutomaticMaskGenerator
    image = synthetic_image()
    # One run each, no warm-up: a 32 x 32 run takes minutes, far longer than any warm-up effect.
    for key, extra, runs in (("torch_everything_ms", {}, 1), ("torch_everything_all_ms", {"pred_iou_thresh": -10.0, "stability_score_thresh": 0.0}, 1)):
        gen = SamAutomaticMaskGenerator(model, points_per_side=args.points_per_side, **extra)
        gen.predictor.set_image(image)
        gen.predictor.set_image = lambda *a, **k: None
        gen.predictor.reset_image = lambda: None
        n = []
        result[key], _ = timed(lambda: n.append(len(gen.generate(image))), runs, warmup=0)
        result[key.replace("_ms", "_masks")] = n[-1]
    result["points_per_side"] = args.points_per_side
    print(json.dumps(result))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", help="a BERT-family model folder: time the text forward instead")
    ap.add_argument("--arch", default="mobile-sam", choices=["mobile-sam", "vit-b", "vit-l", "vit-h", *SAM2_CONFIGS])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--everything", action="store_true", help="time the official automatic mask generator instead")
    ap.add_argument("--points-per-side", type=int, default=32)
    args = ap.parse_args()
    if args.text:
        return bench_text(args.text, args.threads, max(args.runs, 20))

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model, Predictor = build(args.arch)
    model.eval()
    detweights.apply(model, 1)
    model.eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 1024, 1024)).astype(np.float32))
    result = {"arch": args.arch, "threads": args.threads, "torch": torch.__version__}

    if args.everything:
        return bench_everything(model, args, result)

    # SAM 2: the whole `forward_image` (trunk, FPN neck, conv_s0 / conv_s1), as set_image runs it.
    enc = model.forward_image if args.arch in SAM2_CONFIGS else model.image_encoder
    result["torch_encode_ms"], result["torch_encode_runs_ms"] = timed(lambda: enc(x), args.runs)
    import resource

    result["torch_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    image = synthetic_image()
    predictor = Predictor(model)
    predictor.set_image(image)
    pts = np.array([[image.shape[1] * 0.55, image.shape[0] * 0.43]])
    lbl = np.array([1])
    result["torch_click_ms"], _ = timed(lambda: predictor.predict(pts, lbl, multimask_output=True), args.clicks, warmup=3)

    if not args.no_onnx:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "encoder.onnx")
            torch.onnx.export(enc, (x,), path, input_names=["image"], output_names=["embeddings"], opset_version=17, dynamo=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            feed = {"image": x.numpy()}
            got = sess.run(None, feed)[0]
            ref = enc(x).numpy()
            result["onnx_max_abs_diff_vs_torch"] = float(np.abs(got - ref).max())
            result["onnxruntime"] = ort.__version__
            result["onnx_encode_ms"], result["onnx_encode_runs_ms"] = timed(lambda: sess.run(None, feed), args.runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
