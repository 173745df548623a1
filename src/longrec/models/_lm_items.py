"""Frozen text embeddings of a model's items (and users), shared by the language-model
recommenders (lm-seq, lm-twotower).

`encoder` is a `longrec.lm.get_encoder` spec ("default" = the process-wide default encoder,
the packaged all-MiniLM-L6-v2) wrapped in the on-disk embedding cache, or "hash": a
hashed bag of words (no language model, no torch; for tests and machines without the
`lm` extra). Models store the resulting matrix in their safetensors, so a loaded model
never needs the encoder for the items it knows.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
from pydantic import Field

from longrec.errors import ConfigError
from longrec.models.config import ModelConfig

HASH_DIM = 256


class ItemTextConfig(ModelConfig):
    """The config fields of every model that embeds item texts: which encoder, and how an
    item's row becomes its text."""

    encoder: str = Field("default", description="longrec.lm encoder spec for the texts, or 'hash'")
    item_text_template: str | None = Field(None, description="str.format template over item columns")
    item_text_columns: list[str] | None = Field(None, description="item columns that make an item's text, in "
                                                "order, e.g. ['title', 'author'] (None = every text column)")
    encode_workers: int = Field(1, ge=1, description="encode the item texts on this many Ray Data workers "
                                "(texts not yet in the embedding cache only); 1 = in this process")


def item_texts_for(item_ids: np.ndarray, items: pd.DataFrame | None, template: str | None = None,
                   columns: list[str] | None = None) -> list[str]:
    """The text of every vocabulary item, in vocabulary order; an item without a row in the
    item table is described by its id (better than nothing, and never a crash). ``columns``:
    the item columns to describe items with, in order (None = every text column)."""
    from longrec.lm.text import item_texts

    texts = [f"Item {i}" for i in item_ids]
    if columns is not None and items is not None:
        from longrec.lm.text import _resolve_columns

        _resolve_columns(columns, items.columns)  # unknown names: a ConfigError, also when no row matches
    if items is None or "item_id" not in items.columns or len(items) == 0:
        return texts
    tab = items.drop_duplicates("item_id", keep="last")
    pos = pd.Index(tab["item_id"].astype(str)).get_indexer(pd.Series(item_ids, dtype=object).astype(str))
    have = np.flatnonzero(pos >= 0)
    if len(have):
        all_texts = item_texts(tab, template=template, columns=columns)  # one list separator per column
        for j, t in zip(have, (all_texts[p] for p in pos[have])):
            texts[j] = t or texts[j]
    return texts


def hash_embed(texts: list[str], dim: int = HASH_DIM) -> np.ndarray:
    """Signed hashed bag of words, L2-normalised: deterministic and dependency-free."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for r, t in enumerate(texts):
        out[r, 0] = 1e-3  # never a zero vector
        for w in re.findall(r"\w+", t.lower()):
            h = int.from_bytes(hashlib.md5(w.encode()).digest()[:4], "little")
            out[r, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def embed_texts(texts: list[str], encoder: str = "default", workers: int = 1,
                ray_address: str | None = None) -> np.ndarray:
    """(len(texts), d) float32 L2-normalised embeddings of `texts` with `encoder`; with
    `workers` > 1 the texts missing from the embedding cache are encoded on Ray Data
    (`longrec.lm.ray_encode.RayEncoder`; `ray_address`: an existing cluster)."""
    if encoder == "hash":
        return hash_embed(texts)
    try:
        from longrec.lm import CachedEncoder, default_encoder, get_encoder
        base = default_encoder() if encoder == "default" else get_encoder(encoder)
        if workers > 1:
            from longrec.lm.ray_encode import RayEncoder
            base = RayEncoder(base, workers=workers, address=ray_address)
        enc = CachedEncoder(base)
        return np.asarray(enc.encode(texts), dtype=np.float32)
    except ImportError as e:
        raise ConfigError(f"the text encoder {encoder!r} needs the language-model extra ({e}); install "
                          "longrec[lm] or set the model option encoder='hash' (no language model).") from None


def item_text_matrix(item_ids: np.ndarray, items: pd.DataFrame | None, encoder: str = "default",
                     template: str | None = None, columns: list[str] | None = None, workers: int = 1,
                     ray_address: str | None = None) -> np.ndarray:
    return embed_texts(item_texts_for(item_ids, items, template, columns), encoder, workers, ray_address)


def model_item_text(model) -> np.ndarray:
    """The (n_items, d) text embeddings of a model's vocabulary items (model.vocab_, model.items_),
    made as its ItemTextConfig says."""
    cfg = model.config
    return item_text_matrix(model.vocab_.items.ids, model.items_, cfg.encoder, cfg.item_text_template,
                            cfg.item_text_columns, cfg.encode_workers, getattr(cfg, "ray_address", None))
