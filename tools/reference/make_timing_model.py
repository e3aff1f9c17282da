"""A model folder with DistilCamemBERT's shapes (cmarkea/distilcamembert-base: 6 layers, width
768, 12 heads, 32005 pieces, 514 positions) and transformers' random initialisation, for timing
`segattn bench text` beside `bench_peers.py --text` when the real weights cannot be fetched.
The numbers it computes mean nothing; only its speed does.

    python tools/reference/make_timing_model.py --out .testdata/distilcamembert-shape
"""

import argparse
import os
import shutil

import torch
from transformers import CamembertConfig, CamembertModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".testdata/distilcamembert-shape")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = CamembertConfig(
        vocab_size=32005, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=5, eos_token_id=6,
    )
    CamembertModel(cfg, add_pooling_layer=False).save_pretrained(args.out, safe_serialization=True)
    # Any tokenizer.json makes it a model folder; the bench runs on token ids.
    here = os.path.dirname(os.path.abspath(__file__))
    shutil.copy(os.path.join(here, "../../tests/fixtures/text/french/camembert_tiny/tokenizer.json"), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
