"""Hugging Face optimum on onnxpy: run as a script (by test_optimum.py), prints JSON results.

onnxpy stands in for onnxruntime before optimum is imported (optimum imports onnxruntime's
InferenceSession, IOBinding and TypeHelper at import time). A tiny BERT is built from a config
(no download), exported by optimum, run through the transformers pipeline, and compared with
PyTorch running the same weights.
"""

from __future__ import annotations

import json
import os
import sys

import onnxpy

onnxpy.install_as_onnxruntime()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from optimum.onnxruntime import (  # noqa: E402
    ORTModelForFeatureExtraction,
    ORTModelForSequenceClassification,
)
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    pipeline,
)

WORDS = "the a movie was great bad good terrible plot actor film and i loved hated it".split()
TEXTS = ["the movie was great", "i hated the plot and the actor", "good film"]


def build(folder: str) -> tuple[BertTokenizerFast, str, str, torch.nn.Module, torch.nn.Module]:
    vocab = os.path.join(folder, "vocab.txt")
    with open(vocab, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))
    tok = BertTokenizerFast(vocab)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.5,
        num_labels=3,
        id2label={0: "NEG", 1: "NEU", 2: "POS"},
        label2id={"NEG": 0, "NEU": 1, "POS": 2},
    )
    torch.manual_seed(0)
    classifier = BertForSequenceClassification(config).eval()
    encoder = BertModel(config).eval()
    paths = []
    for name, m in (("cls", classifier), ("enc", encoder)):
        path = os.path.join(folder, name)
        m.save_pretrained(path)
        tok.save_pretrained(path)
        paths.append(path)
    return tok, paths[0], paths[1], classifier, encoder


def main(folder: str) -> dict:
    import onnxruntime

    tok, cls_dir, enc_dir, classifier, encoder = build(folder)
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    out: dict = {"onnxruntime_is_onnxpy": onnxruntime.InferenceSession is onnxpy.InferenceSession}

    model = ORTModelForSequenceClassification.from_pretrained(cls_dir, export=True)
    out["session_type"] = type(model.session).__module__ + "." + type(model.session).__name__
    out["binding_type"] = type(model._io_binding).__module__
    with torch.no_grad():
        reference = classifier(**enc).logits.numpy()
    out["logits_max_diff"] = float(np.abs(model(**enc).logits.numpy() - reference).max())
    out["pipeline"] = pipeline("text-classification", model=model, tokenizer=tok, top_k=None)(TEXTS)
    torch_pipe = pipeline("text-classification", model=classifier, tokenizer=tok, top_k=None)
    out["pipeline_torch"] = torch_pipe(TEXTS)
    model.use_io_binding = True  # optimum's GPU path: torch buffers bound by address
    logits = model(**enc).logits
    out["io_binding_output_is_torch"] = isinstance(logits, torch.Tensor)
    out["io_binding_logits_max_diff"] = float(np.abs(logits.numpy() - reference).max())

    features = ORTModelForFeatureExtraction.from_pretrained(enc_dir, export=True)
    with torch.no_grad():
        hidden = encoder(**enc).last_hidden_state.numpy()
    got = features(**enc).last_hidden_state.numpy()
    out["hidden_max_diff"] = float(np.abs(got - hidden).max())
    ours = pipeline("feature-extraction", model=features, tokenizer=tok)(TEXTS)
    theirs = pipeline("feature-extraction", model=encoder, tokenizer=tok)(TEXTS)
    out["feature_pipeline_max_diff"] = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(ours, theirs)
    )
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1])))
