"""Text encoders for serving: the longrec.lm encoder when available, else a hashed bag of words."""

from __future__ import annotations

import re
import zlib

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+")


class HashEncoder:
    """Signed feature hashing of words and word bigrams into `dim` dims, L2-normalised.

    No model, no downloads, microseconds per text: for tests and as the fallback when the
    `lm` extra is not installed. Similar texts share words, so similarity is lexical only.
    """

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.identity = f"hash-bow/{dim}"

    def encode(self, texts, show_progress: bool | None = None) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            toks = _TOKEN.findall(str(t).lower())
            feats = toks + [a + "_" + b for a, b in zip(toks, toks[1:])]
            for f in feats:
                h = zlib.crc32(f.encode())
                out[r, h % self.dim] += 1.0 if (h >> 20) & 1 else -1.0
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(n, 1e-12)


def make_encoder(spec: str):
    """`auto` (lm default encoder + disk cache, else hash), `hash`, or a longrec.lm spec."""
    if spec == "hash":
        return HashEncoder()
    try:
        from longrec.lm.cache import CachedEncoder
        from longrec.lm.encoders import default_encoder, get_encoder
    except ImportError:
        if spec == "auto":
            return HashEncoder()
        raise
    if spec == "auto":
        import importlib.util

        if importlib.util.find_spec("sentence_transformers") is None and importlib.util.find_spec("onnxruntime") is None:
            return HashEncoder()
        return CachedEncoder(default_encoder())
    return CachedEncoder(get_encoder(spec))
