"""Regenerates tests/fixtures/text/french/: tiny French-capable models through transformers.

    pip install torch transformers tokenizers safetensors numpy
    python tools/reference/make_french_fixtures.py --out tests/fixtures/text/french

No French-capable weights ship in a package, so this script builds them: two tokenizers trained
here with the `tokenizers` library on the small French text of `french_corpus.txt`, and four tiny
models of transformers' own classes with the detweights rule (WEIGHTS_SPEC.md):

| name | class | tokenizer | what it stands for |
| --- | --- | --- | --- |
| `camembert_tiny` | `CamembertForMaskedLM` (keys `roberta.*`, `lm_head.*`) | Unigram, `▁` | camembert-base, distilcamembert-base |
| `xlm_roberta_tiny` | `XLMRobertaModel` (with its pooler) | Unigram, `▁` | xlm-roberta-base |
| `roberta_tiny` | `RobertaModel` (no pooler) | byte-level BPE, `Ġ` | roberta-base |
| `bert_sentencepiece_tiny` | `BertModel` | Unigram, `▁` | paraphrase-multilingual-MiniLM-L12-v2 |

Each model folder gets `config.json` and `tokenizer.json` (committed; the tests write the
weights with detweights from the json's `weight_keys`), and `<name>.safetensors` holds, per
sentence, the token ids, every layer's attention (eager) and every hidden state.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import detweights  # noqa: E402

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

SENTENCES = [
    ("s0", "Le chat noir mange le poisson."),
    ("s1", "Le chat mange du poisson sur la table."),
    ("s2", "L'attention, c'est génial ! Élève à l'école, naïve façade… 🐈🍣"),
    (
        "long",
        "Le chat noir mange le poisson. Le chat mange du poisson sur la table. "
        "Dans une phrase, chaque mot reçoit d'abord sa position : « Le » est en position un, "
        "« chat » en position deux, « noir » en position trois. Ensuite, l'attention donne à "
        "chaque mot un poids : le chat regarde surtout le verbe mange et le poisson qu'il mange. "
        "Dans l'auto-attention, chaque mot pèse tous les autres : la table regarde sur et mange. "
        "Voilà pourquoi les transformeurs comprennent l'ordre des mots 🐟.",
    ),
]


def train_tokenizers(corpus_path):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    lines = [l.strip() for l in open(corpus_path, encoding="utf-8") if l.strip()]

    uni = Tokenizer(models.Unigram())
    uni.normalizer = normalizers.NFKC()
    uni.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    uni.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    uni.train_from_iterator(
        lines,
        trainers.UnigramTrainer(vocab_size=700, special_tokens=SPECIALS, unk_token="<unk>", shrinking_factor=0.75),
    )
    uni.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", uni.token_to_id("<s>")), ("</s>", uni.token_to_id("</s>"))],
    )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        lines,
        trainers.BpeTrainer(vocab_size=700, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    bpe.post_processor = processors.RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")), trim_offsets=True, add_prefix_space=False
    )
    for t in (uni, bpe):
        assert [t.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3, 4]
    return uni, bpe


def build_models(uni, bpe):
    from transformers import (
        BertConfig,
        BertModel,
        CamembertConfig,
        CamembertForMaskedLM,
        RobertaConfig,
        RobertaModel,
        XLMRobertaConfig,
        XLMRobertaModel,
    )

    common = dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, attn_implementation="eager")
    out = {}
    cfg = CamembertConfig(
        vocab_size=uni.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=258, type_vocab_size=1, **common,
    )
    out["camembert_tiny"] = (CamembertForMaskedLM(cfg), uni, 21, lambda m: m.roberta)
    cfg = XLMRobertaConfig(
        vocab_size=uni.get_vocab_size(), hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
        intermediate_size=96, max_position_embeddings=258, type_vocab_size=1, layer_norm_eps=1e-5, **common,
    )
    out["xlm_roberta_tiny"] = (XLMRobertaModel(cfg), uni, 22, lambda m: m)
    cfg = RobertaConfig(
        vocab_size=bpe.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=258, type_vocab_size=1, layer_norm_eps=1e-5, **common,
    )
    out["roberta_tiny"] = (RobertaModel(cfg, add_pooling_layer=False), bpe, 23, lambda m: m)
    cfg = BertConfig(
        vocab_size=uni.get_vocab_size(), hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=96, max_position_embeddings=256, type_vocab_size=2, pad_token_id=1,
        attn_implementation="eager",
    )
    out["bert_sentencepiece_tiny"] = (BertModel(cfg), uni, 24, lambda m: m)
    return out


def main():
    import tokenizers
    import transformers
    from safetensors.numpy import save_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/text/french")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    here = os.path.dirname(os.path.abspath(__file__))
    uni, bpe = train_tokenizers(os.path.join(here, "french_corpus.txt"))
    for name, (model, tok, seed, encoder_of) in build_models(uni, bpe).items():
        model.eval()
        detweights.apply(model, seed)
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        cfg = model.config.to_dict()
        cfg.pop("_attn_implementation_autoset", None)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1, sort_keys=True)
        encoder = encoder_of(model)
        tensors, sentences = {}, []
        for sid, text in SENTENCES:
            enc = tok.encode(text)
            ids = torch.tensor([enc.ids])
            r = encoder(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, output_hidden_states=True)
            tensors[f"{sid}.input_ids"] = np.array(enc.ids, dtype=np.int64)
            tensors[f"{sid}.attentions"] = torch.stack([a[0] for a in r.attentions]).numpy()
            tensors[f"{sid}.hidden_states"] = torch.stack([h[0] for h in r.hidden_states]).numpy()
            sentences.append(
                {"id": sid, "text": text, "tokens": enc.tokens, "input_ids": enc.ids, "offsets": enc.offsets,
                 "word_ids": enc.word_ids, "n_tokens": len(enc.ids)}
            )
        assert max(s["n_tokens"] for s in sentences) >= 100, [s["n_tokens"] for s in sentences]
        # A padded case (the roberta family's positions skip padding): s0 padded to 16.
        n = len(sentences[0]["input_ids"])
        padded = sentences[0]["input_ids"] + [1] * (16 - n)
        mask = [1] * n + [0] * (16 - n)
        r = encoder(input_ids=torch.tensor([padded]), attention_mask=torch.tensor([mask]), output_attentions=True)
        tensors["pad.input_ids"] = np.array(padded, dtype=np.int64)
        tensors["pad.attention_mask"] = np.array(mask, dtype=np.int64)
        tensors["pad.attentions"] = torch.stack([a[0] for a in r.attentions]).numpy()
        tensors["pad.last_hidden_state"] = r.last_hidden_state[0].numpy()
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(args.out, f"{name}.safetensors"))
        keys = {k: list(v.shape) for k, v in model.state_dict().items() if v.is_floating_point()}
        meta = {
            "model": f"transformers {type(model).__name__}, detweights (eager attention)",
            "seed": seed,
            "weights": "detweights(seed) over every floating tensor of model.state_dict(), names as listed",
            "weight_keys": keys,
            "sentences": sentences,
            "pad_case": {"sentence": "s0", "n_real": n, "padded_len": 16},
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        }
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)
        print(name, [s["n_tokens"] for s in sentences], "tokens")
    print(f"wrote fixtures to {args.out}")


if __name__ == "__main__":
    main()
