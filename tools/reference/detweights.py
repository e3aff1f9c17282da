"""Deterministic random weights ("detweights"), the Python twin of src/model/detweights.rs.

Every floating-point tensor of a state dict is a pure function of (seed, key, shape); the spec is
tests/fixtures/WEIGHTS_SPEC.md. Integer buffers (`num_batches_tracked`, `attention_bias_idxs`)
and tied aliases keep their values.
"""

import math

import numpy as np

MASK64 = (1 << 64) - 1


def fnv1a64(key: str) -> int:
    h = 0xCBF29CE484222325
    for b in key.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def _splitmix64(state: np.ndarray, n: int) -> np.ndarray:
    """The first n outputs of splitmix64 from `state` (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        s = state + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = s
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _c(x: float) -> np.float32:
    return np.float32(x)


def generate(seed: int, key: str, shape) -> np.ndarray:
    numel = int(np.prod(shape)) if len(shape) else 1
    last = key.rsplit(".", 1)[-1]
    if last == "pos_embed":
        kind, c = 0, _c(0.02)
    elif last == "positional_encoding_gaussian_matrix":
        kind, c = 0, _c(1.0)
    elif last in ("rel_pos_h", "rel_pos_w", "attention_biases", "running_mean"):
        kind, c = 0, _c(0.1)
    elif last == "running_var":
        kind, c = 2, _c(0.5)
    elif len(shape) >= 2:
        fan_in = numel // shape[0]
        kind, c = 0, np.float32(1.0 / math.sqrt(fan_in))
    elif last == "weight":
        kind, c = 1, _c(0.1)
    else:
        kind, c = 0, _c(0.02)
    state = np.uint64((seed ^ fnv1a64(key)) & MASK64)
    r = _splitmix64(state, numel)
    k = (r >> np.uint64(40)).astype(np.int64)
    u = ((k - 8388608).astype(np.float32) / np.float32(8388608.0)).astype(np.float32)
    if kind == 0:
        v = u * c
    elif kind == 1:
        v = np.float32(1.0) + (u * c).astype(np.float32)
    else:
        v = np.float32(1.0) + (np.abs(u) * c).astype(np.float32)
    return v.astype(np.float32).reshape(shape)


def apply(model, seed: int, skip=()) -> None:
    """Overwrites every floating-point entry of model.state_dict() in place."""
    import torch

    sd = model.state_dict()
    for key in sorted(sd):
        t = sd[key]
        if not t.is_floating_point() or key in skip:
            continue
        t.copy_(torch.from_numpy(generate(seed, key, list(t.shape))))


if __name__ == "__main__":
    # The spec's test vectors.
    assert fnv1a64("a") == 0xAF63DC4C8601EC8C
    v = generate(0, "a", [4])
    assert [hex(x) for x in v.view(np.uint32)] == ["0xbba81ff6", "0x3ca33986", "0x3ca140e2", "0x3bf3b766"], v
    v = generate(1, "image_encoder.patch_embed.seq.0.bn.running_var", [32])[:4]
    assert [hex(x) for x in v.view(np.uint32)] == ["0x3fb0c0dc", "0x3fb259e8", "0x3f838b5a", "0x3fa228e1"], v
    print("detweights: spec test vectors pass")
