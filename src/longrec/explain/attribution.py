"""Which history items support a recommendation, and how much.

The weight of history item h for target item t is the exact leave-one-out delta
``score(H, t) - score(H without h, t)``. For EASE (scores x·B) and ItemKNN (scores x·S) the
score is linear in the history, so the delta is exactly ``B[h, t]`` / ``S[h, t]`` and is read
off the learned matrix. Any other model is scored once per deletion, all deletions of one
explanation in one batch through the model's own scoring function.

A model that ignores a known user's history (e.g. BPR scores a known user from their learned
vector) gives all-zero deltas; then the deltas are recomputed for the history alone (the
model's fold-in for new users), and ``method`` says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from longrec.errors import LongrecError

_ROWS = 512  # deletions scored per batch


def user_history(model, user, history=None) -> tuple[int, np.ndarray]:
    """(vocabulary index of the user or -1, the user's history as item indices in order):
    training interactions first, then ``history`` (a list of item ids, a {user: [...]}
    mapping, or a DataFrame user_id,item_id[,timestamp])."""
    if history is not None and not isinstance(history, (pd.DataFrame, dict)):
        history = {user: list(history)}
    _, uidx, hist = model.histories(users=[user], histories=history)
    return int(uidx[0]), hist.row(0).astype(np.int64)


def _batch(rows: list[np.ndarray], n_items: int):
    from longrec.models.base import HistoryBatch

    lens = np.array([len(r) for r in rows], dtype=np.int64)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    idx = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return HistoryBatch(indptr, idx.astype(np.int64), n_items)


def loo_deltas(model, uidx: int, hist: np.ndarray, item: int) -> np.ndarray:
    """Exact leave-one-out deltas of ``item``'s score for each history position, by rescoring
    the history with each item removed (batched)."""
    n = len(hist)
    n_items = len(model.vocab_.items)
    if n == 0:
        return np.zeros(0)
    base = float(model.score_batch(np.array([uidx]), _batch([hist], n_items))[0, item])
    out = np.empty(n)
    keep = ~np.eye(n, dtype=bool)
    for s in range(0, n, _ROWS):
        rows = [hist[keep[j]] for j in range(s, min(n, s + _ROWS))]
        sc = model.score_batch(np.full(len(rows), uidx), _batch(rows, n_items))
        out[s:s + len(rows)] = base - np.asarray(sc)[:, item]
    return out


def history_weights(model, uidx: int, hist: np.ndarray, item: int, method: str = "auto") -> tuple[np.ndarray, str]:
    """Weight of each history item (aligned with ``hist``) for ``item``, and the method used:
    ``"ease-B"``, ``"itemknn-S"``, ``"leave-one-out"`` or ``"leave-one-out (history only)"``."""
    if method not in ("auto", "loo"):
        raise LongrecError(f"attribution method must be 'auto' or 'loo', got {method!r}.")
    if method == "auto":
        B = getattr(model, "B_", None)
        if isinstance(B, np.ndarray) and B.ndim == 2:
            return np.asarray(B[hist, item], dtype=np.float64), "ease-B"
        S = getattr(model, "S_", None)
        if sp.issparse(S):
            return np.asarray(S[hist][:, [item]].toarray()).ravel().astype(np.float64), "itemknn-S"
    w = loo_deltas(model, uidx, hist, item)
    if uidx >= 0 and len(w) and not np.any(w):
        return loo_deltas(model, -1, hist, item), "leave-one-out (history only)"
    return w, "leave-one-out"


def pair_weights(model, users, items, histories=None) -> sp.csr_matrix:
    """Vectorised attribution for many (user, item) pairs of an EASE or ItemKNN model: a
    (pairs x n_items) CSR whose row r holds, at each history item h of user r, the weight
    B[h, item_r] (or S[h, item_r]). For benchmarks; other models: call history_weights."""
    users = np.asarray(list(users), dtype=object)
    t = model.vocab_.items.index(list(items), "item")
    _, first, inv = np.unique(users.astype(str), return_index=True, return_inverse=True)
    _, _, hist = model.histories(users[first], histories)
    H = hist.matrix()[inv].tocsr()
    rows = np.repeat(np.arange(H.shape[0]), np.diff(H.indptr))
    B = getattr(model, "B_", None)
    if isinstance(B, np.ndarray):
        data = B[H.indices, t[rows]]
    elif sp.issparse(getattr(model, "S_", None)):
        S = model.S_.tocsc()
        data = np.asarray(S[H.indices, t[rows]]).ravel()
    else:
        raise LongrecError(f"pair_weights needs an EASE or ItemKNN model, not {type(model).__name__}; "
                             "use history_weights (leave-one-out) instead.")
    return sp.csr_matrix((data.astype(np.float64), H.indices, H.indptr), shape=H.shape)
