"""Item-based k-nearest neighbours with cosine similarity (Sarwar et al. 2001; the
implicit/lenskit formulation): sim(i, j) = |U_i ∩ U_j| / (√|U_i| √|U_j| + shrink),
each item keeps its k most similar items, score(u, j) = Σ_{i ∈ hist(u)} sim(i, j).
Similarities are computed in column blocks, so memory stays O(n_items · block)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from longrec.models.base import ModelConfig, Recommender


class ItemKNNConfig(ModelConfig):
    k: int = Field(200, ge=1, description="neighbours kept per item")
    shrink: float = Field(0.0, ge=0)
    block_size: int = Field(2048, ge=1)
    neighbours_of: str = Field("target", pattern="^(target|source)$",
                               description="keep the k nearest of each scored item (target) or of each history item (source)")


class ItemKNN(Recommender):
    name = "itemknn"
    Config = ItemKNNConfig

    def _fit(self, X, train, valid) -> None:
        Xc = X.tocsc()
        norms = np.sqrt(np.asarray(Xc.sum(axis=0)).ravel())
        n = X.shape[1]
        k = min(self.config.k, max(n - 1, 1))
        XtX = (Xc.T @ Xc).tocsr()
        rows, cols, vals = [], [], []
        for start in range(0, n, self.config.block_size):
            stop = min(start + self.config.block_size, n)
            block = XtX[start:stop].toarray()
            denom = norms[start:stop, None] * norms[None, :] + self.config.shrink
            with np.errstate(divide="ignore", invalid="ignore"):
                sim = np.where(denom > 0, block / denom, 0.0)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (stop - start, 1))
            v = np.take_along_axis(sim, top, 1)
            keep = v > 0
            rows.append(np.repeat(np.arange(start, stop), k).reshape(-1, k)[keep])
            cols.append(top[keep])
            vals.append(v[keep])
        # row j holds target item j's k nearest items; scoring uses its transpose so that
        # score(u, j) sums over j's neighbours in u's history
        S = sp.csr_matrix((np.concatenate(vals).astype(np.float32),
                           (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        self.S_ = S.T.tocsr() if self.config.neighbours_of == "target" else S

    def _score(self, users, hist) -> np.ndarray:
        return (hist.matrix() @ self.S_).toarray()

    def _state(self):
        return {"S_indptr": self.S_.indptr.astype(np.int64), "S_indices": self.S_.indices.astype(np.int32),
                "S_data": self.S_.data.astype(np.float32)}

    def _check_state(self, d, t, n_users, n_items):
        from longrec.models.artifacts import check_csr, check_tensors

        check_tensors(d, t, {"S_indptr": ("i", (n_items + 1,)), "S_indices": ("i", (None,)), "S_data": ("f", (None,))})
        check_csr(d, t["S_indptr"], t["S_indices"], n_items, n_items, "the item-similarity matrix")
        if len(t["S_data"]) != len(t["S_indices"]):
            from longrec.errors import ModelError
            from longrec.models.artifacts import tensor_message

            raise ModelError(tensor_message(d, "S_data and S_indices differ in length"))

    def _set_state(self, t):
        n = len(self.vocab_.items)
        self.S_ = sp.csr_matrix((t["S_data"], t["S_indices"], t["S_indptr"]), shape=(n, n))
