"""EASE (Steck, WWW 2019): a closed-form item-item model.

B = I - P diag(1/diag(P)), P = (XᵀX + λI)⁻¹, scores = X_u B. Needs a dense
items x items matrix: fine up to a few ten thousand items; use itemknn above that.
With a validation split, λ is chosen from `l2_grid` by validation NDCG@10.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from longrec._threads import limit_blas
from longrec.errors import ConfigError
from longrec.models.base import ModelConfig, Recommender
from pydantic import Field


class EASEConfig(ModelConfig):
    l2: float = Field(500.0, gt=0, description="ridge penalty λ (used when not tuned)")
    tune_l2: bool = Field(True, description="with a validation split, pick λ from l2_grid")
    l2_grid: list[float] = [100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 800.0, 1200.0]
    max_items: int = Field(30_000, description="refuse larger catalogues (dense n_items² memory)")
    num_threads: int = Field(1, ge=1, description="BLAS threads; 1 is robust on busy shared machines "
                             "(multi-threaded BLAS stalls when another process holds a core)")
    refit_on_valid: bool = Field(False, description="after choosing λ on valid, refit B on train + valid "
                                 "(more data for the final model; valid can then no longer score it)")


class EASE(Recommender):
    name = "ease"
    Config = EASEConfig

    def _fit(self, X, train, valid) -> None:
        limit_blas(self.config.num_threads)(self._fit_limited)(X, train, valid)

    def _fit_limited(self, X, train, valid) -> None:
        n = X.shape[1]
        if n > self.config.max_items:
            raise ConfigError(f"EASE needs a dense {n:,} x {n:,} matrix ({n * n * 8 / 2**30:.1f} GiB); "
                              f"raise max_items if you have the memory, or use --model itemknn.")
        G = (X.T @ X).toarray().astype(np.float64)
        grid = self.config.l2_grid if (valid is not None and self.config.tune_l2) else [self.config.l2]
        if len(grid) == 1:
            lam = grid[0]
            self.B_ = self._solve(G, lam)
        else:
            from longrec.models.validation import valid_ndcg

            scores, best = {}, (-1.0, None, None)
            for cand in grid:
                self.B_ = self._solve(G, cand)
                scores[cand] = valid_ndcg(self, valid)
                if scores[cand] > best[0]:
                    best = (scores[cand], cand, self.B_)
            _, lam, self.B_ = best
            self.fit_info_["valid_ndcg@10"] = {str(k): round(v, 6) for k, v in scores.items()}
        self.fit_info_["l2"] = lam
        if self.config.refit_on_valid and valid is not None:
            Xall = ((X + valid.matrix(self.vocab_)) > 0).astype(np.float64)
            self.B_ = self._solve((Xall.T @ Xall).toarray(), lam)
            self.fit_info_["refit_on_valid"] = True

    @staticmethod
    def _solve(G: np.ndarray, lam: float) -> np.ndarray:
        A = G.copy()
        A[np.diag_indices_from(A)] += lam
        P = scipy.linalg.inv(A, overwrite_a=True, check_finite=False)
        B = -P / np.diag(P)[None, :]
        np.fill_diagonal(B, 0.0)
        return B.astype(np.float32)

    def _score(self, users, hist) -> np.ndarray:
        return np.asarray(hist.matrix() @ self.B_)

    def _state(self):
        return {"B": self.B_}

    def _check_state(self, d, t, n_users, n_items):
        from longrec.models.artifacts import check_tensors

        check_tensors(d, t, {"B": ("f", (n_items, n_items))})

    def _set_state(self, t):
        self.B_ = t["B"]
