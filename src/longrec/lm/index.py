"""ItemIndex: item ids + L2-normalised vectors, exact (matmul) top-k search.

>>> import numpy as np
>>> idx = ItemIndex([10, 20, 30], np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
>>> ids, scores = idx.search(np.array([1.0, 0.0]), k=2)
>>> ids.tolist(), [round(float(x), 3) for x in scores[0]]
([[10, 30]], [1.0, 0.707])
>>> idx.search(np.array([1.0, 0.0]), k=2, exclude=[10])[0].tolist()
[[30, 20]]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from longrec.errors import ModelError
from longrec.lm.encoders import l2_normalize
from longrec.topk import topk

VECTORS_FILE = "item_vectors.safetensors"
IDS_FILE = "item_ids.parquet"


class ItemIndex:
    """Item ids (int or str, the caller's) with unit-norm float32 vectors of shape (n, d)."""

    def __init__(self, item_ids, vectors: np.ndarray, identity: str = "", normalize: bool = True):
        ids = pd.Series(list(item_ids) if not isinstance(item_ids, (pd.Series, np.ndarray)) else item_ids)
        from longrec.data.ids import normalize_ids

        self.item_ids = normalize_ids(ids).to_numpy()
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != len(self.item_ids):
            raise ValueError(f"ItemIndex: need vectors of shape ({len(self.item_ids)}, d), got {v.shape}")
        if pd.Series(self.item_ids).duplicated().any():
            dup = pd.Series(self.item_ids)[pd.Series(self.item_ids).duplicated()].iloc[0]
            raise ValueError(f"ItemIndex: item id {dup!r} appears more than once")
        self.vectors = l2_normalize(v) if normalize else np.ascontiguousarray(v)
        self.identity = identity
        self._pos = pd.Index(self.item_ids)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_items(cls, items: pd.DataFrame, encoder=None, template: str | None = None,
                   texts: list[str] | None = None, columns: list[str] | None = None) -> "ItemIndex":
        """Encode the item texts (`item_texts`) of an item table with `encoder`
        (default: the cached default encoder)."""
        from longrec.lm.text import item_texts

        enc = _resolve_encoder(encoder)
        if texts is None:
            texts = item_texts(items, template=template, columns=columns)
        vecs = enc.encode(texts)
        return cls(_item_id_column(items), vecs, identity=enc.identity)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def positions(self, ids: Iterable) -> np.ndarray:
        """Row positions of `ids` (-1 for unknown ids)."""
        from longrec.data.ids import coerce_like

        arr = list(ids)
        if not arr:
            return np.zeros(0, dtype=np.int64)
        kind = "int" if self.item_ids.dtype.kind in "iu" else "str"
        return self._pos.get_indexer(pd.Index(coerce_like(arr, kind))).astype(np.int64)

    def vectors_for(self, ids: Iterable) -> np.ndarray:
        pos = self.positions(ids)
        if (pos < 0).any():
            from longrec.errors import UnknownIdError

            raise UnknownIdError(f"{int((pos < 0).sum())} item id(s) are not in the index")
        return self.vectors[pos]

    # ------------------------------------------------------------------ search
    def search(self, query_vecs: np.ndarray, k: int = 10, candidates: Iterable | None = None,
               exclude: Iterable | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items by cosine (dot product of unit vectors) for each query row.

        query_vecs: (d,) or (m, d); normalised here. candidates: restrict to these item ids
        (unknown ids are ignored). exclude: item ids never returned (same for every query).
        Returns (ids, scores), each of shape (m, k') with k' = min(k, allowed items); ties
        are broken by index order. Scores are float32.
        """
        q = np.asarray(query_vecs, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"query vectors must have {self.dim} columns, got shape {q.shape}")
        q = l2_normalize(q)
        allowed = np.ones(len(self), dtype=bool)
        if candidates is not None:
            pos = self.positions(candidates)
            allowed[:] = False
            allowed[pos[pos >= 0]] = True
        if exclude is not None:
            pos = self.positions(exclude)
            allowed[pos[pos >= 0]] = False
        cols = np.flatnonzero(allowed)
        kk = int(min(max(int(k), 0), len(cols)))
        m = q.shape[0]
        if kk == 0:
            return np.empty((m, 0), dtype=self.item_ids.dtype), np.empty((m, 0), dtype=np.float32)
        sub = self.vectors if len(cols) == len(self) else self.vectors[cols]
        scores = q @ sub.T  # (m, n_allowed)
        out_pos = np.empty((m, kk), dtype=np.int64)
        out_sc = np.empty((m, kk), dtype=np.float32)
        top, vals = topk(scores, kk)  # ties -> lower position
        out_pos[:] = cols[top]
        out_sc[:] = vals
        return self.item_ids[out_pos], out_sc

    def search_df(self, query_vecs: np.ndarray, k: int = 10, candidates=None, exclude=None,
                  user_ids=None) -> pd.DataFrame:
        """`search` as a RECS frame: user_id, item_id, rank (1-based), score."""
        ids, sc = self.search(query_vecs, k, candidates, exclude)
        m, kk = ids.shape
        users = [None] * m if user_ids is None else list(user_ids)
        return pd.DataFrame({
            "user_id": np.repeat(np.array(users, dtype=object), kk),
            "item_id": ids.reshape(-1),
            "rank": np.tile(np.arange(1, kk + 1, dtype=np.int64), m),
            "score": sc.reshape(-1).astype(np.float64),
        })

    # ------------------------------------------------------------------ io
    def save(self, directory: str | Path) -> Path:
        """Write ``item_vectors.safetensors`` (+ identity metadata) and ``item_ids.parquet``."""
        from safetensors.numpy import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": np.ascontiguousarray(self.vectors)}, str(d / VECTORS_FILE),
                  metadata={"identity": self.identity, "format": "longrec.ItemIndex/1",
                            "n": str(len(self)), "dim": str(self.dim)})
        pd.DataFrame({"item_id": self.item_ids}).to_parquet(d / IDS_FILE, index=False)
        return d

    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        d = Path(directory)
        return (d / VECTORS_FILE).is_file() and (d / IDS_FILE).is_file()

    @classmethod
    def load(cls, directory: str | Path) -> "ItemIndex":
        from safetensors import safe_open

        d = Path(directory)
        if not cls.exists(d):
            raise ModelError(f"{str(d)!r} holds no item index (expected {VECTORS_FILE} and {IDS_FILE})")
        try:
            with safe_open(str(d / VECTORS_FILE), framework="numpy") as f:
                meta = f.metadata() or {}
                vecs = f.get_tensor("vectors")
            ids = pd.read_parquet(d / IDS_FILE)["item_id"].to_numpy()
        except Exception as e:
            raise ModelError(f"item index in {str(d)!r} is unreadable: {e}") from e
        if len(ids) != len(vecs):
            raise ModelError(f"item index in {str(d)!r} is corrupt: {len(ids)} ids, {len(vecs)} vectors")
        return cls(ids, vecs, identity=meta.get("identity", ""), normalize=False)

    def __repr__(self) -> str:
        return f"ItemIndex({len(self):,} items, dim {self.dim}, identity={json.dumps(self.identity)[:60]})"


def _item_id_column(items: pd.DataFrame) -> pd.Series:
    for c in items.columns:
        if str(c).split(":", 1)[0] == "item_id":
            return items[c]
    from longrec.errors import DataError

    raise DataError(f"the item table has no item_id column (columns: {list(items.columns)})")


def _resolve_encoder(encoder):
    from longrec.lm.cache import CachedEncoder
    from longrec.lm.encoders import Encoder, default_encoder, get_encoder

    if encoder is None:
        return CachedEncoder(default_encoder())
    if isinstance(encoder, Encoder):
        return encoder
    return get_encoder(encoder)
