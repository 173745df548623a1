"""Exact and FAISS retrieval agree on clustered data."""

from __future__ import annotations

import numpy as np
import pytest

from longrec.serve.retrieval import VectorIndex
from longrec.serve.settings import RetrievalSettings


def clustered(n, d=32, centers=50, seed=0):
    """Unit vectors around shared cluster centres (like text embeddings); `seed` draws new points."""
    c = np.random.default_rng(0).normal(size=(centers, d))
    rng = np.random.default_rng(seed + 1)
    x = c[rng.integers(0, centers, n)] + 0.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_matches_argsort():
    x = clustered(500)
    q = clustered(20, seed=1)
    pos, sc = VectorIndex.build(x).search(q, 10)
    ref = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    assert (pos == ref).all()
    assert np.allclose(sc, np.take_along_axis(q @ x.T, ref, 1), atol=1e-6)
    assert VectorIndex.build(x).search(q, 10_000)[0].shape == (20, 500)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_faiss_recall(kind):
    pytest.importorskip("faiss")
    x = clustered(20_000)
    q = clustered(50, seed=2)
    s = RetrievalSettings(exact_threshold=1000, kind=kind, ivf_nprobe=16)
    idx = VectorIndex.build(x, s)
    assert idx.kind == kind
    pos, _ = idx.search(q, 10)
    ref, _ = VectorIndex.build(x, force="exact").search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(pos, ref)])
    assert recall >= 0.9, recall


def test_threshold_picks_backend():
    x = clustered(300)
    assert VectorIndex.build(x, RetrievalSettings(exact_threshold=1000)).kind == "exact"
    pytest.importorskip("faiss")
    assert VectorIndex.build(x, RetrievalSettings(exact_threshold=100, kind="ivf")).kind == "ivf"


def test_app_with_faiss_index(make_client):
    pytest.importorskip("faiss")
    c = make_client(retrieval=RetrievalSettings(exact_threshold=10, kind="hnsw"))
    assert c.get("/ready").json()["retrieval"] == "hnsw"
    r = c.get("/items/7/similar", params={"k": 3}).json()
    assert len(r["items"]) == 3 and 7 not in [it["item_id"] for it in r["items"]]
