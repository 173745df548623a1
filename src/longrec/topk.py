"""One top-k for every ranking in longrec (models, serving, retrieval, re-ranking, the simulator).

`topk(scores, k)` returns the positions of the k largest scores per row, best first, with exact
ties broken toward the lower position — the same list as a stable descending sort, in
O(n + k log k) per row instead of O(n log n). `-inf` marks an item that may not be ranked;
callers drop the `-inf` entries a row may end with.

Large float matrices are selected with `torch.topk` when torch is already imported (the torch
models have imported it to score; nothing imports it for this): one pass over the row instead
of numpy's argpartition, ~10x faster on 1,024 x 100,000 scores. It selects k + 1, and any row
whose k-th and (k+1)-th values tie (or that holds a NaN) is redone exactly, so the result is the
same list, position for position.
"""

from __future__ import annotations

import sys

import numpy as np

#: matrices with at least this many entries go through the segment path (rows of at least
#: SEGMENT_MIN_SEGMENTS x k segments) or else torch.topk (when torch is loaded)
TORCH_MIN_ENTRIES = 1 << 16
#: the segment path: rows cut into segments of SEGMENT entries (see _segment_topk)
SEGMENT = 512
SEGMENT_MIN_SEGMENTS = 4
SEGMENT_MAX_GATHER = 4


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
    torch = sys.modules.get("torch")
    kk = max(0, min(int(k), s2.shape[1]))
    if (0 < kk and s2.shape[1] >= SEGMENT_MIN_SEGMENTS * SEGMENT * kk and s2.size >= TORCH_MIN_ENTRIES
            and s2.dtype in (np.float32, np.float64)):
        top = _segment_topk(s2, kk)
        if top is not None:
            vals = np.take_along_axis(s2, top, 1)
            vals[np.isnan(vals)] = -np.inf
            return (top[0], vals[0]) if one else (top, vals)
    if (torch is not None and 0 < kk < s2.shape[1] and s2.shape[1] > 64 and s2.size >= TORCH_MIN_ENTRIES
            and s2.dtype in (np.float32, np.float64)):
        top = _torch_topk(torch, s2, kk)
        vals = np.take_along_axis(s2, top, 1)
        vals[np.isnan(vals)] = -np.inf
        return (top[0], vals[0]) if one else (top, vals)
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


def _torch_topk(torch, s2: np.ndarray, kk: int) -> np.ndarray:
    """Positions of the kk best entries per row (kk < row length), exactly as `topk`: torch.topk
    picks kk + 1 per row; where the kk-th and (kk+1)-th values differ, the first kk are the top
    set and are ordered by (value desc, position asc); rows with a tie at that edge, or with a
    NaN (torch ranks NaN above everything), are redone exactly in numpy."""
    import warnings

    with warnings.catch_warnings():  # a read-only array: torch warns, and only reads it here
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(np.ascontiguousarray(s2))
    v, i = torch.topk(t, kk + 1, dim=1, largest=True, sorted=True)
    v, i = v.numpy(), i.numpy()
    top, vals = i[:, :kk], v[:, :kk]
    top = np.take_along_axis(top, np.lexsort((top, -vals), axis=1), 1)
    for r in np.flatnonzero((v[:, kk] == v[:, kk - 1]) | np.isnan(v[:, 0])):
        row = s2[r]
        if np.isnan(row).any():
            row = np.where(np.isnan(row), -np.inf, row)
        thresh = np.partition(row, len(row) - kk)[len(row) - kk]
        cand = np.flatnonzero(row >= thresh)
        top[r] = cand[np.lexsort((cand, -row[cand]))][:kk]
    return top


def _segment_topk(s2: np.ndarray, kk: int) -> np.ndarray | None:
    """Positions of the kk best entries per row, exactly as `topk`, for long rows and small kk:
    each row is cut into segments of SEGMENT entries and every segment's maximum taken (one
    vectorised pass, several times cheaper than torch.topk's); the kk-th largest segment
    maximum t is a lower bound of the row's kk-th best score (kk segments hold a score >= t),
    so the kk best are among the entries >= t of the few segments whose maximum is >= t. Those
    candidates are ordered by (score desc, position asc). NaN counts as -inf; a row of fewer
    than kk finite scores gathers every segment. None when ties or -inf leave more than
    SEGMENT_MAX_GATHER x kk candidate segments per row on average (e.g. a matrix of one value):
    the caller then takes another path."""
    n_rows, n = s2.shape
    s2 = np.ascontiguousarray(s2)
    nseg, tail = divmod(n, SEGMENT)
    full = s2[:, :nseg * SEGMENT].reshape(n_rows, nseg, SEGMENT)
    with np.errstate(invalid="ignore"):
        segmax = np.fmax.reduce(full, axis=2)  # fmax: NaN only where a whole segment is NaN
        if tail:
            segmax = np.concatenate([segmax, np.fmax.reduce(s2[:, nseg * SEGMENT:], axis=1)[:, None]], 1)
    segmax = np.where(np.isnan(segmax), -np.inf, segmax)
    t = -np.partition(-segmax, kk - 1, axis=1)[:, kk - 1]  # the kk-th largest segment maximum
    r, g = np.nonzero(segmax >= t[:, None])  # the segments that may hold a top entry
    if len(r) > SEGMENT_MAX_GATHER * kk * n_rows:
        return None
    body = g < nseg
    rb, gb = r[body], g[body]
    blocks = full[rb, gb]  # (n_blocks, SEGMENT): copies of those segments
    i, j = np.nonzero(blocks >= t[rb][:, None])
    rows, cols, vals = rb[i], gb[i] * SEGMENT + j, blocks[i, j]
    if tail and not body.all():
        rt = r[~body]
        part = s2[rt, nseg * SEGMENT:]
        it, jt = np.nonzero(part >= t[rt][:, None])
        rows = np.concatenate([rows, rt[it]])
        cols = np.concatenate([cols, nseg * SEGMENT + jt])
        vals = np.concatenate([vals, part[it, jt]])
    low = np.flatnonzero(t == -np.inf)  # rows of fewer than kk finite scores: NaN entries join as -inf
    if len(low):
        nan_r, nan_c = np.nonzero(np.isnan(s2[low]))
        if len(nan_r):
            rows = np.concatenate([rows, low[nan_r]])
            cols = np.concatenate([cols, nan_c])
            vals = np.concatenate([vals, np.full(len(nan_r), -np.inf, dtype=vals.dtype)])
    order = np.lexsort((cols, -vals, rows))
    rows, cols = rows[order], cols[order]
    start = np.searchsorted(rows, np.arange(n_rows), side="left")
    return cols[start[:, None] + np.arange(kk)[None, :]].astype(np.int64)
