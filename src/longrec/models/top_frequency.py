"""top-frequency: the personal top-frequency baseline of repeat consumption (groceries, music
replays, re-orders). A user's own items come first, ordered by how often the user consumed them
(number of training rows), then by recency (the basket in which the user last consumed the
item: later first), then by global popularity (number of training rows of the item); every other
item follows in order of global popularity. Ties left after that go to the lower item index.

Use it where consuming an item again is the point, with the repeat rows kept when reading the
data (``duplicates="keep-all"``, ``longrec train --duplicates keep-all``) and the consumed items
left eligible when recommending (``recommend(..., exclude_seen=False)``, ``longrec recommend
--keep-seen``). With the default ``exclude_seen=True`` it degrades to global popularity.

Baskets (for recency) are defined in ``longrec.models._baskets``. History passed at inference
time counts once per item not already in the user's training data, as the most recent basket.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from longrec.models._baskets import basket_rows
from longrec.models.base import HistoryBatch, ModelConfig, Recommender


class TopFrequencyConfig(ModelConfig):
    pass


def popularity_rank(counts: np.ndarray) -> np.ndarray:
    """Rank 0..n-1 of each item (n-1 = most popular; equal counts: the lower index ranks higher)."""
    n = len(counts)
    order = np.lexsort((-np.arange(n), counts))  # ascending count, then descending index
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


class TopFrequency(Recommender):
    name = "top-frequency"
    Config = TopFrequencyConfig

    def _fit(self, X, train, valid) -> None:
        n_users, n_items = len(self.vocab_.users), len(self.vocab_.items)
        u, i, b = basket_rows(train, self.vocab_)
        key = u * n_items + i
        uniq, inv = np.unique(key, return_inverse=True)
        count = np.bincount(inv).astype(np.float32)
        last = np.full(len(uniq), -1, dtype=np.int64)
        np.maximum.at(last, inv, b)
        uu, ii = uniq // n_items, uniq % n_items
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(uu, minlength=n_users), out=indptr[1:])
        self.counts_ = sp.csr_matrix((count, ii.astype(np.int32), indptr), shape=(n_users, n_items))
        self.last_ = last
        self.item_rows_ = np.bincount(i, minlength=n_items).astype(np.float32)
        self._prepare()
        self.fit_info_["repeat_rows"] = int(len(u) - len(uniq))

    def _prepare(self) -> None:
        self.pop_rank_ = popularity_rank(self.item_rows_)

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        n = len(self.vocab_.items)
        scores = np.broadcast_to(self.pop_rank_.astype(np.float32), (len(users), n)).copy()
        R, I, C, L = [], [], [], []
        for r, uidx in enumerate(users):
            h = hist.row(r)
            if uidx >= 0:
                lo, hi = self.counts_.indptr[uidx], self.counts_.indptr[uidx + 1]
                items = self.counts_.indices[lo:hi].astype(np.int64)
                cnt = self.counts_.data[lo:hi].astype(np.float64)
                last = self.last_[lo:hi].astype(np.float64)
                extra = h[~np.isin(h, items)]
                newest = (last.max() + 1) if len(last) else 0.0
                items = np.r_[items, extra]
                cnt = np.r_[cnt, np.ones(len(extra))]
                last = np.r_[last, np.full(len(extra), newest)]
            else:  # a history-only user: each item once, later in the history = more recent
                items, cnt, last = h.astype(np.int64), np.ones(len(h)), np.arange(len(h), dtype=np.float64)
            R.append(np.full(len(items), r))
            I.append(items)
            C.append(cnt)
            L.append(last)
        if not R:
            return scores
        R, I, C, L = (np.concatenate(a) for a in (R, I, C, L))
        order = np.lexsort((self.pop_rank_[I], L, C, R))  # per user: worst own item first
        R, I = R[order], I[order]
        start = np.searchsorted(R, R, side="left")
        scores[R, I] = n + (np.arange(len(R)) - start)  # own items above every other item
        return scores

    def _state(self):
        return {"counts_indptr": self.counts_.indptr.astype(np.int64),
                "counts_indices": self.counts_.indices.astype(np.int32),
                "counts_data": self.counts_.data.astype(np.float32),
                "last": self.last_.astype(np.int64), "item_rows": self.item_rows_}

    def _set_state(self, t):
        shape = (len(self.vocab_.users), len(self.vocab_.items))
        self.counts_ = sp.csr_matrix((t["counts_data"], t["counts_indices"], t["counts_indptr"]), shape=shape)
        self.last_ = t["last"]
        self.item_rows_ = t["item_rows"]
        self._prepare()
