"""One top-k for every ranking in longrec (models, serving, retrieval, re-ranking, the simulator).

`topk(scores, k)` returns the positions of the k largest scores per row, best first, with exact
ties broken toward the lower position — the same list as a stable descending sort, in
O(n + k log k) per row instead of O(n log n). `-inf` marks an item that may not be ranked;
callers drop the `-inf` entries a row may end with.
"""

from __future__ import annotations

import numpy as np


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, scores) of the k best entries of each row of `scores` (1-D or 2-D).

    Ties are broken toward the lower position; k larger than a row is clamped to its length.
    NaN scores are treated as -inf.
    """
    s = np.asarray(scores)
    one = s.ndim == 1
    s2 = s[None, :] if one else s
    if s2.ndim != 2:
        raise ValueError(f"topk needs a 1-D or 2-D array, got shape {s.shape}")
    if s2.dtype.kind == "f" and np.isnan(s2).any():
        s2 = np.where(np.isnan(s2), -np.inf, s2)
    n = s2.shape[1]
    kk = max(0, min(int(k), n))
    if kk == 0 or len(s2) == 0:
        top = np.empty((len(s2), kk), dtype=np.int64)
    elif kk == n or n <= 64:
        top = np.argsort(-s2, axis=1, kind="stable")[:, :kk]
    else:
        part = np.argpartition(-s2, kk - 1, axis=1)[:, :kk]
        vals = np.take_along_axis(s2, part, 1)
        top = np.take_along_axis(part, np.lexsort((part, -vals), axis=1), 1)
        # rows where items outside the partition tie with the k-th score: redo those exactly
        thresh = np.take_along_axis(s2, top[:, -1:], 1)
        tied = (s2 >= thresh).sum(1) > kk
        for r in np.flatnonzero(tied):
            cand = np.flatnonzero(s2[r] >= thresh[r, 0])
            top[r] = cand[np.lexsort((cand, -s2[r, cand]))][:kk]
    vals = np.take_along_axis(s2, top, 1)
    return (top[0], vals[0]) if one else (top, vals)
