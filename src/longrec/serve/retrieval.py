"""Top-K inner-product search over unit vectors: exact matmul for small catalogues, FAISS
(HNSW or IVF) above `RetrievalSettings.exact_threshold`.

>>> import numpy as np
>>> idx = VectorIndex.build(np.eye(3, dtype=np.float32))
>>> idx.search(np.array([[0, 1, 0]], dtype=np.float32), 2)[0].tolist()
[[1, 0]]
"""

from __future__ import annotations

import math

import numpy as np

from longrec.serve.settings import RetrievalSettings
from longrec.topk import topk


class VectorIndex:
    """Positions 0..n-1 of `vectors` (float32, (n, d)); `search` returns (positions, scores)."""

    def __init__(self, vectors: np.ndarray, settings: RetrievalSettings, faiss_index=None) -> None:
        self.vectors = vectors
        self.settings = settings
        self._faiss = faiss_index

    @property
    def kind(self) -> str:
        return "exact" if self._faiss is None else self.settings.kind

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def build(cls, vectors: np.ndarray, settings: RetrievalSettings | None = None, force: str | None = None) -> "VectorIndex":
        """force: "exact" / "faiss" overrides the size threshold (benchmarks, tests)."""
        s = settings or RetrievalSettings()
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        use_faiss = force == "faiss" or (force != "exact" and len(v) > s.exact_threshold)
        if not use_faiss or len(v) == 0:
            return cls(v, s)
        import faiss  # lazy: only large catalogues need it

        if s.threads:
            faiss.omp_set_num_threads(s.threads)
        d = v.shape[1]
        if s.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, s.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = s.hnsw_ef_construction
            index.add(v)
            index.hnsw.efSearch = s.hnsw_ef_search
        else:
            nlist = s.ivf_nlist or max(1, min(len(v) // 39, int(math.sqrt(len(v)))))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            train = v if len(v) <= s.ivf_train_size else v[rng.choice(len(v), s.ivf_train_size, replace=False)]
            index.train(train)
            index.add(v)
            index.nprobe = min(s.ivf_nprobe, nlist)
        return cls(v, s, index)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, scores) of shape (m, k'); k' = min(k, n); position -1 pads short FAISS answers."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        kk = int(min(k, len(self.vectors)))
        if kk <= 0:
            return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
        if self._faiss is not None:
            scores, pos = self._faiss.search(q, kk)
            return pos.astype(np.int64), scores.astype(np.float32)
        top, vals = topk(q @ self.vectors.T, kk)  # best first, ties -> lower position
        return top.astype(np.int64), vals.astype(np.float32)

    def memory_bytes(self) -> int:
        """Approximate resident size: vectors plus the FAISS structure (serialised size)."""
        base = self.vectors.nbytes
        if self._faiss is None:
            return base
        import faiss

        return base + int(faiss.serialize_index(self._faiss).nbytes)
