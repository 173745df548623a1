"""tifu-knn: Temporal-Item-Frequency-based User-KNN for next-basket recommendation (Hu, Zhu, Chen
& Li, "Modeling Personalized Item Frequency Information for Next-basket Recommendation",
SIGIR 2020).

A user's baskets b_1 .. b_n (0/1 item vectors, oldest first; how rows become baskets:
``longrec.models._baskets``) are cut into consecutive groups. Each group vector is the mean of
its baskets decayed towards the past, g = (1/|G|) Σ_{b∈G} r_b^{age(b)} b, and the user vector
is the mean of the group vectors decayed the same way, u = (1/K) Σ_j r_g^{K-1-j} g_j. The score
blends the user's own vector with the mean vector of the k nearest training users:

    p(u) = α · u + (1 − α) · mean_{v ∈ kNN(u)} v

Grouping: ``group_size`` m (the paper: groups of m baskets, the oldest group holds the
remainder; ``n_groups=0``) or ``n_groups`` (the authors' code: the history cut into that many near-equal
groups, later groups one basket longer). The within-group age is the basket's position from the
end of its group (``within_decay_scope="group"``, the paper) or of the whole history
(``"history"``, the authors' code). Neighbours by Euclidean distance (the authors' code) or
cosine similarity of the user vectors; the user is never its own neighbour.

It ranks items the user bought before highly (that is the point): recommend with
``exclude_seen=False`` (``longrec recommend --keep-seen``) and train on data whose repeat rows
are kept (``duplicates="keep-all"``). History passed at inference time is one extra, newest
basket (a history-only user has just that basket).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from longrec.models._baskets import basket_rows
from longrec.models.base import HistoryBatch, ModelConfig, Recommender


class TIFUKNNConfig(ModelConfig):
    # defaults: the best of a 216-setting grid on the Instacart sample's valid orders (bench/repeat.py --tune)
    n_groups: int = Field(5, ge=0, description="cut every history into this many groups (the authors' code); "
                          "0: groups of group_size baskets (the paper)")
    group_size: int = Field(3, ge=1, description="baskets per group (the paper's m), used when n_groups is 0")
    within_decay: float = Field(0.9, gt=0, le=1, description="r_b: decay of a basket per step back")
    group_decay: float = Field(0.6, gt=0, le=1, description="r_g: decay of a group per step back")
    within_decay_scope: Literal["group", "history"] = "history"
    k: int = Field(300, ge=1, description="nearest users")
    alpha: float = Field(0.8, ge=0, le=1, description="weight of the user's own vector")
    similarity: Literal["euclidean", "cosine"] = "euclidean"


def user_vectors(u: np.ndarray, i: np.ndarray, b: np.ndarray, n_rows: int, n_items: int,
                 cfg: TIFUKNNConfig) -> sp.csr_matrix:
    """TIFU user vectors (n_rows x n_items) from rows (row, item, basket number 0.. per row)."""
    if len(u) == 0:
        return sp.csr_matrix((n_rows, n_items), dtype=np.float32)
    n = np.zeros(n_rows, dtype=np.int64)
    np.maximum.at(n, u, b + 1)  # baskets per user
    nu = n[u]
    if cfg.n_groups > 0:
        G = np.minimum(cfg.n_groups, nu)
        base = nu // G
        extra = nu - base * G                 # the last `extra` groups hold base + 1 baskets
        head = base * (G - extra)             # baskets in the shorter, older groups
        in_head = b < head
        bb = b - head
        g = np.where(in_head, b // np.maximum(base, 1), (G - extra) + bb // (base + 1))
        size = np.where(in_head, base, base + 1)
        pos = np.where(in_head, b % np.maximum(base, 1), bb % (base + 1))
    else:
        m = cfg.group_size
        G = -(-nu // m)                       # ceil
        first = nu - (G - 1) * m              # the oldest group holds the remainder
        in_first = b < first
        g = np.where(in_first, 0, 1 + (b - first) // m)
        size = np.where(in_first, first, m)
        pos = np.where(in_first, b, (b - first) % m)
    age = (size - 1 - pos) if cfg.within_decay_scope == "group" else (nu - 1 - b)
    w = (cfg.within_decay ** age) / size * (cfg.group_decay ** (G - 1 - g)) / G
    m = sp.csr_matrix((w.astype(np.float64), (u, i)), shape=(n_rows, n_items))
    m.sum_duplicates()
    return m.astype(np.float32)


class TIFUKNN(Recommender):
    name = "tifu-knn"
    Config = TIFUKNNConfig

    def _fit(self, X, train, valid) -> None:
        u, i, b = basket_rows(train, self.vocab_)
        self.rows_u_, self.rows_i_, self.rows_b_ = u, i, b
        self._prepare()
        self.fit_info_["baskets"] = int(len(np.unique(u * (int(b.max()) + 1) + b))) if len(u) else 0

    def _prepare(self) -> None:
        n_users, n_items = len(self.vocab_.users), len(self.vocab_.items)
        self.U_ = user_vectors(self.rows_u_, self.rows_i_, self.rows_b_, n_users, n_items, self.config)
        self.n_baskets_ = np.zeros(n_users, dtype=np.int64)
        if len(self.rows_u_):
            np.maximum.at(self.n_baskets_, self.rows_u_, self.rows_b_ + 1)
        self.has_vec_ = self.n_baskets_ > 0
        self.sq_ = np.asarray(self.U_.multiply(self.U_).sum(axis=1)).ravel()
        self.row_start_ = np.searchsorted(self.rows_u_, np.arange(n_users + 1))

    def _batch_vectors(self, users: np.ndarray, hist: HistoryBatch) -> sp.csr_matrix:
        n_items = len(self.vocab_.items)
        R, I, B = [], [], []
        for r, uidx in enumerate(users):
            h = hist.row(r).astype(np.int64)
            if uidx >= 0:
                lo, hi = self.row_start_[uidx], self.row_start_[uidx + 1]
                own = self.rows_i_[lo:hi]
                R.append(np.full(hi - lo, r))
                I.append(own)
                B.append(self.rows_b_[lo:hi])
                extra = h[~np.isin(h, own)]
                R.append(np.full(len(extra), r))
                I.append(extra)
                B.append(np.full(len(extra), self.n_baskets_[uidx]))
            else:
                R.append(np.full(len(h), r))
                I.append(h)
                B.append(np.zeros(len(h), dtype=np.int64))
        cat = [np.concatenate(a).astype(np.int64) if a else np.zeros(0, np.int64) for a in (R, I, B)]
        return user_vectors(*cat, len(users), n_items, self.config)

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        cfg = self.config
        V = self._batch_vectors(users, hist)
        own = V.toarray()
        if cfg.alpha >= 1.0 or not self.has_vec_.any():
            return own
        dots = (V @ self.U_.T).toarray().astype(np.float64)
        if cfg.similarity == "cosine":
            vn = np.sqrt(np.asarray(V.multiply(V).sum(axis=1)).ravel())
            with np.errstate(divide="ignore", invalid="ignore"):
                sim = dots / (vn[:, None] * np.sqrt(self.sq_)[None, :])
            sim = np.nan_to_num(sim, nan=0.0)
        else:
            vsq = np.asarray(V.multiply(V).sum(axis=1)).ravel()
            sim = -(vsq[:, None] + self.sq_[None, :] - 2 * dots)
        sim[:, ~self.has_vec_] = -np.inf
        known = np.flatnonzero(users >= 0)
        sim[known, users[known]] = -np.inf  # never one's own neighbour
        n_cand = int(self.has_vec_.sum()) - (1 if len(known) else 0)
        k = max(1, min(cfg.k, n_cand)) if n_cand > 0 else 0
        if k == 0:
            return own
        # top-k by similarity, ties to the lower user index (stable on -sim)
        top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        ok = np.isfinite(np.take_along_axis(sim, top, 1))
        rows = np.repeat(np.arange(len(users)), k).reshape(-1, k)
        W = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], top[ok])), shape=(len(users), self.U_.shape[0]))
        cnt = np.maximum(ok.sum(axis=1), 1)
        nbr = (sp.diags(1.0 / cnt) @ W @ self.U_).toarray()
        return (cfg.alpha * own + (1 - cfg.alpha) * nbr).astype(np.float32)

    def _state(self):
        return {"rows_u": self.rows_u_.astype(np.int64), "rows_i": self.rows_i_.astype(np.int64),
                "rows_b": self.rows_b_.astype(np.int64)}

    def _set_state(self, t):
        self.rows_u_, self.rows_i_, self.rows_b_ = t["rows_u"], t["rows_i"], t["rows_b"]
        self._prepare()
