#!/usr/bin/env python3
"""Reference vectors for src/embed/tests.rs, computed by an implementation we did not write.

onnxruntime runs models/all-MiniLM-L6-v2/model.onnx on the word pieces of Hugging Face's
`tokenizers` (the same tokenizer.json, cut at 256 pieces, no padding), then mean pooling and
normalisation as sentence-transformers does for this model. paperboy's own path (tract in Rust)
must give the same vectors.

Usage: python3 scripts/embedding-reference.py > tests/fixtures/embedding/reference.json
Needs: pip install onnxruntime==1.32.0 tokenizers==0.23.3 numpy (the versions reference.json was made with)
"""
import json
import os
import sys

import numpy as np
import onnxruntime
import tokenizers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")

LONG = " ".join(
    ["Large language models are trained on web-scale text and then aligned with human preferences."] * 40
)
SENTENCES = [
    "mind reading",
    "Decoding brain activity into text with a language model",
    "Bayesian deep learning",
    "Uncertainty estimates for neural networks through variational inference.",
    "video generation",
    "Génération de vidéos à partir de texte : un modèle de diffusion",
    LONG,
]


def main():
    tok = tokenizers.Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    tok.no_padding()
    session = onnxruntime.InferenceSession(os.path.join(MODEL, "model.onnx"))
    out = []
    for text in SENTENCES:
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        hidden = session.run(None, feed)[0][0]
        vector = hidden.mean(axis=0)
        vector = vector / np.linalg.norm(vector)
        out.append({"text": text, "pieces": int(ids.shape[1]), "vector": [round(float(v), 7) for v in vector]})
    json.dump(
        {
            "generated_by": "scripts/embedding-reference.py",
            "onnxruntime": onnxruntime.__version__,
            "tokenizers": tokenizers.__version__,
            "sentences": out,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
