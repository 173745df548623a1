"""Retrieval benchmark: exact top-10 vs FAISS HNSW / IVF on a synthetic 384-d catalogue.

    nice python bench/retrieval.py --n 1000000 --threads 2        # writes bench/results/retrieval.json

Data: unit vectors around 1,000 Gaussian cluster centres (text embeddings are clustered);
queries are fresh points from the same distribution. Recall@10 is measured against exact
inner-product search. Latency is one query per call (as the service issues them) with
`--threads` FAISS threads; build time and the index's extra memory (RSS growth) are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from _provenance import stamp

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from longrec.serve.retrieval import VectorIndex  # noqa: E402
from longrec.serve.settings import RetrievalSettings  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_data(n: int, d: int, n_queries: int, centers: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d)).astype(np.float32)
    x = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):  # chunks keep the peak memory at ~1x the catalogue
        m = min(100_000, n - s)
        block = c[rng.integers(0, centers, m)] + noise * rng.normal(size=(m, d)).astype(np.float32)
        x[s:s + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = c[rng.integers(0, centers, n_queries)] + noise * rng.normal(size=(n_queries, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q.astype(np.float32)


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.zeros((len(q), k), np.int64)
    for s in range(0, len(x), 200_000):
        sc = q @ x[s:s + 200_000].T
        part = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(sc, part, 1)], 1)
        cand_i = np.concatenate([best_i, part + s], 1)
        top = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_i, top, 1)
    return best_i


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(found, truth)]))


def time_queries(index: VectorIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, dict]:
    out, lat = [], []
    for row in q:
        t = time.perf_counter()
        pos, _ = index.search(row[None, :], k)
        lat.append(time.perf_counter() - t)
        out.append(pos[0])
    lat_ms = np.array(lat) * 1000
    return np.array(out), {"mean_ms": round(float(lat_ms.mean()), 3), "p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
                           "p99_ms": round(float(np.percentile(lat_ms, 99)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--centers", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=1.0, help="per-dimension noise around a centre (centres ~ N(0,1))")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kinds", default="ivf,hnsw")
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--hnsw-ef-construction", type=int, default=64)
    ap.add_argument("--hnsw-ef", default="32,64,128,256")
    ap.add_argument("--ivf-nprobe", default="8,16,32,64")
    ap.add_argument("--ivf-nlist", type=int, default=1024)
    ap.add_argument("--ivf-train", type=int, default=50_000, help="k-means training sample")
    ap.add_argument("--exact-queries", type=int, default=30, help="single queries timed on the exact index")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "retrieval.json"))
    a = ap.parse_args()

    import faiss

    faiss.omp_set_num_threads(a.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    res: dict = {"n": a.n, "d": a.d, "queries": a.queries, "k": a.k, "threads": a.threads,
                 "data": f"unit vectors around {a.centers} N(0,1) centres, noise {a.noise}/dim; queries from the same law",
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "faiss": faiss.__version__},
                 "indexes": []}
    t0 = time.perf_counter()
    x, q = make_data(a.n, a.d, a.queries, a.centers, a.noise, seed=0)
    res["data_seconds"] = round(time.perf_counter() - t0, 1)
    res["catalogue_mb"] = round(x.nbytes / 2**20, 1)
    t0 = time.perf_counter()
    truth = exact_topk(x, q, a.k)
    res["ground_truth_seconds"] = round(time.perf_counter() - t0, 1)
    exact = VectorIndex(x, RetrievalSettings())
    _, lat = time_queries(exact, q[: a.exact_queries], a.k)
    res["exact"] = lat
    print(json.dumps(res, indent=1), flush=True)

    for kind in [k for k in a.kinds.split(",") if k]:
        s = RetrievalSettings(exact_threshold=0, kind=kind, hnsw_m=a.hnsw_m, hnsw_ef_construction=a.hnsw_ef_construction,
                              ivf_nlist=a.ivf_nlist, ivf_train_size=a.ivf_train, threads=a.threads)
        before = rss_mb()
        t0 = time.perf_counter()
        idx = VectorIndex.build(x, s, force="faiss")
        build = time.perf_counter() - t0
        entry = {"kind": kind, "build_seconds": round(build, 1), "index_extra_rss_mb": round(rss_mb() - before, 1),
                 "params": s.model_dump(include={"hnsw_m", "hnsw_ef_construction"} if kind == "hnsw" else {"ivf_nlist"}),
                 "sweep": []}
        if kind == "ivf":
            entry["params"]["nlist"] = idx._faiss.nlist
        for v in (a.hnsw_ef if kind == "hnsw" else a.ivf_nprobe).split(","):
            if kind == "hnsw":
                idx._faiss.hnsw.efSearch = int(v)
            else:
                idx._faiss.nprobe = int(v)
            found, lat = time_queries(idx, q, a.k)
            point = {("ef_search" if kind == "hnsw" else "nprobe"): int(v), f"recall@{a.k}": round(recall(found, truth), 4), **lat}
            entry["sweep"].append(point)
            print(kind, point, flush=True)
        ok = [p for p in entry["sweep"] if p[f"recall@{a.k}"] >= 0.95 and p["mean_ms"] < 5]
        entry["meets_target"] = bool(ok)
        entry["best_meeting_target"] = min(ok, key=lambda p: p["mean_ms"]) if ok else None
        res["indexes"].append(entry)
        del idx
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(stamp(res), indent=1))
    Path(a.out).write_text(json.dumps(stamp(res), indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
