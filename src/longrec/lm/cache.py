"""Persistent embedding cache: SQLite (WAL), keyed by (encoder identity, exact text).

Vectors are stored as raw little-endian float32 blobs (no pickle). The key is the
encoder's `identity` (backend + model path/name + weight-file size and mtime), so a changed
or different model never sees another model's vectors, plus the sha256 of the exact text.

>>> enc = CachedEncoder(get_encoder("onnx"))            # doctest: +SKIP
>>> v1 = enc.encode(texts); v2 = enc.encode(texts)      # doctest: +SKIP  (2nd: from disk)
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from longrec.lm.encoders import Encoder, check_texts, get_encoder
from longrec.lm.errors import LMError
from longrec.lm.paths import default_embedding_cache_path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,
    dim INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    model_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
"""
_CHUNK = 500  # SQLite host-parameter batches


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """An SQLite file of vectors. Safe for many concurrent readers and one writer at a time
    (WAL mode, busy timeout); each thread gets its own connection."""

    def __init__(self, path: str | Path | None = None, timeout: float = 30.0):
        self.path = Path(path).expanduser() if path is not None else default_embedding_cache_path()
        self.timeout = timeout
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._con()
            with con:
                con.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise LMError(f"cannot open the embedding cache {str(self.path)!r}: {e}. "
                          f"Set LONGREC_CACHE_DIR to a writable folder.") from e

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None,
                                  check_same_thread=False)
            con.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a network file system
                con.execute("PRAGMA journal_mode=DELETE")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def _model_id(self, identity: str, dim: int | None, create: bool) -> tuple[int, int] | None:
        con = self._con()
        row = con.execute("SELECT id, dim FROM models WHERE identity=?", (identity,)).fetchone()
        if row is None and create and dim:
            with con:
                con.execute("INSERT OR IGNORE INTO models(identity, dim, created) VALUES (?,?,?)",
                            (identity, int(dim), time.time()))
            row = con.execute("SELECT id, dim FROM models WHERE identity=?", (identity,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def get(self, identity: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors found for `texts` under `identity` (a dict text -> float32 vector)."""
        found: dict[str, np.ndarray] = {}
        mid = self._model_id(identity, None, create=False)
        if mid is None or not texts:
            return found
        model_id, dim = mid
        by_key = {text_key(t): t for t in texts}
        keys = list(by_key)
        con = self._con()
        for s in range(0, len(keys), _CHUNK):
            part = keys[s:s + _CHUNK]
            q = f"SELECT key, vec FROM vectors WHERE model_id=? AND key IN ({','.join('?' * len(part))})"
            for key, blob in con.execute(q, (model_id, *part)):
                if len(blob) == 4 * dim:  # anything else is damage: treat as a miss
                    found[by_key[bytes(key)]] = np.frombuffer(blob, dtype="<f4")
        return found

    def put(self, identity: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if len(texts) == 0:
            return
        model_id, dim = self._model_id(identity, vectors.shape[1], create=True)
        if dim != vectors.shape[1]:
            raise LMError(f"embedding cache: model {identity!r} was stored with dim {dim}, "
                          f"got vectors of dim {vectors.shape[1]}")
        rows = [(model_id, text_key(t), vectors[i].tobytes()) for i, t in enumerate(texts)]
        con = self._con()
        with con:
            con.executemany("INSERT OR REPLACE INTO vectors(model_id, key, vec) VALUES (?,?,?)", rows)

    def stats(self) -> dict:
        con = self._con()
        out = {}
        for ident, n in con.execute(
                "SELECT m.identity, COUNT(v.key) FROM models m LEFT JOIN vectors v ON v.model_id=m.id "
                "GROUP BY m.id"):
            out[ident] = int(n)
        return {"path": str(self.path), "models": out}

    def clear(self, identity: str | None = None) -> None:
        """Drop all vectors, or those of one encoder identity."""
        con = self._con()
        with con:
            if identity is None:
                con.execute("DELETE FROM vectors")
                con.execute("DELETE FROM models")
            else:
                mid = self._model_id(identity, None, create=False)
                if mid:
                    con.execute("DELETE FROM vectors WHERE model_id=?", (mid[0],))
                    con.execute("DELETE FROM models WHERE id=?", (mid[0],))


class CachedEncoder(Encoder):
    """Wraps an encoder; vectors come from the on-disk cache when the (identity, text) pair
    was seen before, and only the misses are encoded (then stored).

    `path`: the SQLite file (default ``$LONGREC_CACHE_DIR/embeddings.sqlite`` or
    ``~/.cache/longrec/embeddings.sqlite``); an `EmbeddingCache` instance is also accepted.
    """

    def __init__(self, encoder: Encoder | str | None = None, path: str | Path | EmbeddingCache | None = None):
        self.inner = encoder if isinstance(encoder, Encoder) else get_encoder(encoder)
        super().__init__(self.inner.settings)
        self.cache = path if isinstance(path, EmbeddingCache) else EmbeddingCache(path)
        self._identity: str | None = None
        self.last_hits = 0
        self.last_misses = 0

    @property
    def identity(self) -> str:
        if self._identity is None:  # computed once: stat() calls per encode are not needed
            self._identity = self.inner.identity
        return self._identity

    def load(self) -> "CachedEncoder":
        self.inner.load()
        return self

    def encode(self, texts: Sequence[str] | str, show_progress: bool | None = None) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return self.inner.encode([])
        ident = self.identity
        uniq = list(dict.fromkeys(texts))
        found = self.cache.get(ident, uniq)
        todo = [t for t in uniq if t not in found]
        self.last_hits, self.last_misses = len(uniq) - len(todo), len(todo)
        if todo:
            vecs = self.inner.encode(todo, show_progress=show_progress)
            self.cache.put(ident, todo, vecs)
            for t, v in zip(todo, vecs):
                found[t] = v
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"CachedEncoder({self.inner!r}, path={str(self.cache.path)!r})"
