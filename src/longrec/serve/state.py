"""What one request needs, bundled immutably: the model, item titles, text vectors and the
retrieval index. The service swaps whole `ServingState` objects (one reference assignment),
so a request that started on the old model finishes on it while new requests see the new one.

New items (POST /items) live in an `Overlay`: a small, exact, copy-on-write block of text
vectors searched next to the (possibly FAISS) index of the model's items.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.errors import LongrecError, ModelError
from longrec.models.base import HistoryBatch
from longrec.serve.retrieval import VectorIndex
from longrec.serve.settings import ServeSettings
from longrec.topk import topk

TITLE_COLUMNS = ("title", "movie_title", "book_title", "product_title", "product_name", "name", "item_name")


def _bare(c) -> str:
    return str(c).split(":", 1)[0]


def title_of(row: dict, item_id) -> str:
    d = {_bare(k): v for k, v in row.items()}
    for c in TITLE_COLUMNS:
        v = d.get(c)
        if v is not None and not (isinstance(v, float) and np.isnan(v)) and str(v).strip():
            return str(v).strip()
    return str(item_id)


def text_of(row: dict) -> str:
    """The text an item is embedded from: `text` if given, else longrec.lm's item_text."""
    t = row.get("text")
    if isinstance(t, str) and t.strip():
        return t.strip()
    try:
        from longrec.lm.text import item_text

        return item_text({k: v for k, v in row.items() if k != "text"})
    except ImportError:  # pragma: no cover - lm is part of the package
        return ". ".join(str(v) for k, v in row.items() if k not in ("item_id", "text"))


class Overlay:
    """Items added or updated through the API (text vectors searched exactly).

    A snapshot: readers keep using the one they took while a writer publishes a new one.
    Snapshots share one growing vector buffer: a write appends rows past the rows any
    existing snapshot reads (an update appends a fresh row too), and the buffer is reallocated
    (doubling, live rows only) when full, so n single-item writes copy O(n) rows in all.
    """

    __slots__ = ("_buf", "_n", "_used", "pos", "titles", "_ids", "_vecs")

    def __init__(self, buf: np.ndarray | None = None, n: int = 0, pos: dict | None = None,
                 titles: dict | None = None, used: list | None = None) -> None:
        self._buf = buf          # (capacity, d); rows < _n are never written again
        self._n = n
        self._used = used if used is not None else [n]  # rows of _buf in use by the newest snapshot
        self.pos = pos if pos is not None else {}       # item id -> row of _buf
        self.titles = titles if titles is not None else {}
        self._ids = None
        self._vecs = None

    def __len__(self) -> int:
        return len(self.pos)

    def __contains__(self, item_id) -> bool:
        return item_id in self.pos

    @property
    def ids(self) -> tuple:
        if self._ids is None:
            self._ids = tuple(self.pos)
        return self._ids

    @property
    def vectors(self) -> np.ndarray:
        """(len(self), d) vectors in `ids` order."""
        if self._vecs is None:
            if self._buf is None:
                self._vecs = np.zeros((0, 0), np.float32)
            elif len(self.pos) == self._n:  # no update left stale rows: the rows are the ids' order
                self._vecs = self._buf[:self._n]
            else:
                self._vecs = self._buf[np.fromiter(self.pos.values(), np.int64, len(self.pos))]
        return self._vecs

    def vector(self, item_id) -> np.ndarray:
        return self._buf[self.pos[item_id]]

    def with_items(self, ids: list, vectors: np.ndarray, titles: dict) -> "Overlay":
        vectors = np.asarray(vectors, np.float32)
        m, d = len(ids), vectors.shape[1]
        pos = dict(self.pos)
        buf, n, used = self._buf, self._n, self._used
        if buf is None or buf.shape[1] != d or used[0] != n or n + m > len(buf):
            # new buffer: first write, or full, or this snapshot is not the newest one
            cap = max(16, 2 * (len(pos) + m))
            new = np.empty((cap, d), np.float32)
            live = np.fromiter(pos.values(), np.int64, len(pos))
            if len(live):
                new[:len(live)] = buf[live]
            pos = {i: r for r, i in enumerate(pos)}
            buf, n, used = new, len(pos), [len(pos)]
        for i, v in zip(ids, vectors):
            buf[n] = v
            pos[i] = n
            n += 1
        used[0] = n
        return Overlay(buf, n, pos, {**self.titles, **titles}, used)


class ServingState:
    """A loaded model plus everything derived from it (built off the request path)."""

    def __init__(self, model_dir: str | Path, settings: ServeSettings, encoder) -> None:
        from longrec.models.base import Recommender

        t0 = time.perf_counter()
        self.model_dir = Path(model_dir)
        self.settings = settings
        self.encoder = encoder
        self.model = Recommender.load(self.model_dir)
        self.item_kind = self.model.vocab_.items.kind
        self.model_ids = self.model.vocab_.items.ids
        items = self.model.items_
        self.titles: dict = {}
        self.base_ids = np.zeros(0, dtype=object)
        vectors = np.zeros((0, 0), np.float32)
        if items is not None and len(items):
            id_col = next((c for c in items.columns if _bare(c) == "item_id"), None)
            if id_col is None:
                raise ModelError(f"{self.model_dir}/items.parquet has no item_id column; re-save the model.")
            from longrec.data.ids import coerce_like

            ids = coerce_like(items[id_col].to_numpy(), self.item_kind)
            keep = ~pd.Series(ids).duplicated().to_numpy()
            items = items[keep]
            ids = ids[keep]
            records = items.to_dict("records")
            self.titles = {i: title_of(r, i) for i, r in zip(ids, records)}
            texts = [text_of({_bare(k): v for k, v in r.items()}) for r in records]
            vectors = np.asarray(encoder.encode(texts, show_progress=False), np.float32)
            self.base_ids = np.asarray(ids, dtype=object)
        self.base_pos = {i: n for n, i in enumerate(self.base_ids)}
        self.index = VectorIndex.build(vectors, settings.retrieval) if len(vectors) else None
        self.dim = int(vectors.shape[1]) if len(vectors) else None
        self.overlay = Overlay()
        #: whether the model answers a user it cannot score (unknown, no usable history) with
        #: the training popularity (the DP models' private cold scores do not)
        self.popularity_fallback = not (getattr(self.model, "_private_cold_scores", False)
                                        and getattr(self.model, "_is_private", False))
        self.loaded_at = time.time()
        self.load_seconds = round(time.perf_counter() - t0, 3)

    # ------------------------------------------------------------------ ids
    def coerce(self, ids) -> list:
        from longrec.data.ids import coerce_like

        return list(coerce_like(list(ids), self.item_kind)) if len(ids) else []

    def in_model(self, ids) -> np.ndarray:
        return self.model.vocab_.items.lookup(np.asarray(ids, dtype=object)) >= 0 if len(ids) else np.zeros(0, bool)

    def title(self, item_id):
        t = self.overlay.titles.get(item_id)
        return t if t is not None else self.titles.get(item_id, str(item_id))

    def known_item(self, item_id) -> bool:
        return item_id in self.base_pos or item_id in self.overlay or bool(self.in_model([item_id])[0])

    # ------------------------------------------------------------------ vectors
    def vectors_for(self, ids: list) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, found mask) of item ids; the overlay wins over the model's item table."""
        ov = self.overlay
        d = self.dim or (ov.vectors.shape[1] if len(ov) else 0)
        out = np.zeros((len(ids), d), np.float32)
        found = np.zeros(len(ids), bool)
        for r, i in enumerate(ids):
            if i in ov.pos:
                out[r] = ov.vector(i)
                found[r] = True
            elif i in self.base_pos:
                out[r] = self.index.vectors[self.base_pos[i]]
                found[r] = True
        return out, found

    def profile(self, history: list) -> np.ndarray | None:
        """Unit mean of the text vectors of the most recent history items (None if none has one)."""
        recent = history[-self.settings.profile_items:]
        vecs, found = self.vectors_for(recent)
        if not found.any():
            return None
        p = vecs[found].mean(axis=0)
        n = float(np.linalg.norm(p))
        return p / n if n > 0 else None

    def text_search(self, q: np.ndarray, k: int, exclude: set, candidates: list | None = None) -> list[tuple]:
        """[(item_id, cosine)] best first over model items with text + overlay items."""
        q = np.asarray(q, np.float32).reshape(1, -1)
        if candidates is not None:
            vecs, found = self.vectors_for(candidates)
            ids = [c for c, f in zip(candidates, found) if f and c not in exclude]
            if not ids:
                return []
            s = (self.vectors_for(ids)[0] @ q[0])
            order = np.lexsort((np.arange(len(ids)), -s))[:k]
            return [(ids[j], float(s[j])) for j in order]
        ov_set = self.overlay.pos
        out: list[tuple] = []
        if self.index is not None:
            fetch = k + len(exclude) + len(ov_set)
            pos, sc = self.index.search(q, fetch)
            for p, s in zip(pos[0], sc[0]):
                if p < 0:
                    continue
                i = self.base_ids[p]
                if i in exclude or i in ov_set:
                    continue
                out.append((i, float(s)))
        if len(self.overlay):
            s = self.overlay.vectors @ q[0]
            out += [(i, float(v)) for i, v in zip(self.overlay.ids, s) if i not in exclude]
        out.sort(key=lambda t: -t[1])
        return out[:k]

    def model_recommend(self, user_id, history: list, k: int, exclude_seen: bool, candidates: list | None) -> list[tuple]:
        """The model's own top-k [(item_id, score)] (model items only), the same list as
        `model.recommend` (ties -> lower item index) without its batch machinery: one user per
        request is the hot path. Unknown users without history get popular items."""
        m = self.model
        uidx, hb = self.history_batch(user_id, history)
        s = np.array(m.score_batch(uidx, hb)[0], dtype=np.float64)
        if candidates is not None:
            allowed = np.zeros(len(s), bool)
            c = m.vocab_.items.lookup(np.asarray(candidates, dtype=object))
            allowed[c[c >= 0]] = True
            s[~allowed] = -np.inf
        if exclude_seen and len(hb.indices):
            s[hb.indices] = -np.inf
        top, vals = topk(s, k)  # ties -> lower item index, as model.recommend
        ok = np.isfinite(vals)
        return list(zip(self.model_ids[top[ok]].tolist(), vals[ok].tolist()))

    def history_batch(self, user_id, history: list) -> tuple[np.ndarray, HistoryBatch]:
        """(user index, HistoryBatch) of one user as `model.histories` builds it (training
        interactions first, then `history`'s model items, first occurrence kept), without its
        DataFrame machinery: ~10 µs instead of ~0.3 ms on the one-user serving path."""
        m = self.model
        u = int(m.vocab_.users.lookup([user_id])[0]) if user_id is not None else -1
        parts = []
        if u >= 0:
            seen = m.seen_
            parts.append(seen.indices[seen.indptr[u]:seen.indptr[u + 1]].astype(np.int64))
        if history:
            iidx = m.vocab_.items.lookup(np.asarray(history, dtype=object))
            parts.append(iidx[iidx >= 0].astype(np.int64))
        idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if len(parts) > 1 and len(idx):
            _, first = np.unique(idx, return_index=True)
            idx = idx[np.sort(first)]
        return np.array([u], np.int64), HistoryBatch(np.array([0, len(idx)], np.int64), idx, len(m.vocab_.items))

    def known_to_model(self, history: list) -> list:
        return [i for i, ok in zip(history, self.in_model(history)) if ok] if history else []


def check_model_dir(model_dir: str | Path) -> None:
    """Raise ModelError with a fix when `model_dir` cannot be served (cheap checks first)."""
    from longrec.models.artifacts import read_model_dir

    d = Path(model_dir)
    if not d.exists():
        raise ModelError(f"model directory {d} does not exist. Train one with `longrec train --model ease ... --out {d}`.")
    try:
        read_model_dir(d)
    except LongrecError:
        raise
    except Exception as e:  # anything unexpected in a foreign directory
        raise ModelError(f"{d} is not a readable longrec model directory ({e.__class__.__name__}: {e}).") from None
