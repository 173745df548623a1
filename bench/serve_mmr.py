"""Cost of the service's MMR re-ranking: the old per-step loop (every similarity recomputed at
every pick) against `longrec.rerank.core.mmr_order`, for k picks out of 3k candidates, 384-d
unit vectors, one BLAS thread (as served).

    nice python bench/serve_mmr.py        # -> bench/results/serve_mmr.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from _provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def old_mmr(v: np.ndarray, k: int, lam: float = 0.7) -> list[int]:
    """The service's MMR before mmr_order (app._mmr at the parent commit)."""
    rel = 1.0 - np.arange(len(v)) / len(v)
    chosen: list[int] = []
    left = list(range(len(v)))
    while left and len(chosen) < k:
        red = (v[left] @ v[chosen].T).max(axis=1) if chosen else np.zeros(len(left))
        j = left[int(np.argmax(lam * rel[left] - (1 - lam) * red))]
        chosen.append(j)
        left.remove(j)
    return chosen


def main() -> None:
    from threadpoolctl import threadpool_limits

    from longrec.rerank.core import mmr_order

    threadpool_limits(1)
    rng = np.random.default_rng(0)
    rows = []
    for k in (10, 100, 1000):
        v = rng.normal(size=(3 * k, 384)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        row = {"k": k, "candidates": 3 * k, "dim": 384}
        for name, f in (("old_ms", lambda: old_mmr(v, k)), ("new_ms", lambda: mmr_order(v, k, 0.3))):
            ts = []
            for _ in range(3 if k < 1000 else 1):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            row[name] = round(float(np.median(ts)) * 1000, 2)
        rows.append(row)
        print(row, flush=True)
    out = {**provenance(),
           "machine": "shared 2-core machine, other jobs running; medians of 3 (k 1000: one run)", "rows": rows}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "serve_mmr.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
