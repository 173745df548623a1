"""BPR-MF (Rendle et al., UAI 2009) in PyTorch on the CPU.

score(u, i) = ⟨p_u, q_i⟩ + b_i, trained on (user, positive, sampled negative) triples
with the BPR loss and L2 on the touched factors; Adam; early stopping on validation
NDCG@10 (best epoch's weights kept). Users seen only through a history at inference are
folded in as the mean of their history items' factors (no retraining).

`workers > 1` trains data-parallel on Ray Train (longrec.models._data_parallel): every worker
draws the same triples, takes its share of each batch, and the gradients are averaged.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from longrec.models._training import train_with_early_stopping
from longrec.models.base import ModelConfig, Recommender


class BPRConfig(ModelConfig):
    factors: int = Field(64, ge=1)
    epochs: int = Field(100, ge=1)
    lr: float = Field(0.005, gt=0)
    reg: float = Field(0.01, ge=0, description="L2 on the factors of each triple")
    batch_size: int = Field(1024, ge=1)
    eval_every: int = Field(5, ge=1, description="epochs between validation checks")
    patience: int = Field(4, ge=1, description="validation checks without improvement before stopping")
    num_threads: int = Field(1, ge=1, description="torch threads (shared among the workers when workers > 1)")
    workers: int = Field(1, ge=1, description="data-parallel training processes on Ray Train; 1 = this process")
    ray_address: str | None = Field(None, description="with workers > 1: the Ray cluster to join "
                                    "(default: a local Ray started for the fit)")
    progress: bool = False


class BPRMF(Recommender):
    name = "bpr"
    Config = BPRConfig

    def _fit(self, X, train, valid) -> None:
        from longrec.models._training import run_training

        self.fit_info_.update(run_training(self, X, valid))

    def _train(self, X, valid, text=None, comm=None) -> dict:
        """The training loop; returns the fit_info entries. `comm` (longrec.models._data_parallel)
        makes it one of several data-parallel workers: all draw the same triples, each takes its
        share of every batch, the gradients are averaged, and the first worker's validation score
        decides for all. Without it the loop is the plain one-process fit."""
        import torch

        cfg = self.config
        rank, world = (comm.rank, comm.world) if comm is not None else (0, 1)
        torch.set_num_threads(cfg.num_threads if comm is None else comm.threads)
        gen = torch.Generator().manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        n_users, n_items = X.shape
        coo = X.tocoo()
        pos_u = torch.from_numpy(coo.row.astype(np.int64))
        pos_i = torch.from_numpy(coo.col.astype(np.int64))
        P = torch.nn.Embedding(n_users, cfg.factors)
        Q = torch.nn.Embedding(n_items, cfg.factors)
        b = torch.nn.Embedding(n_items, 1)
        torch.nn.init.normal_(P.weight, std=0.1, generator=gen)
        torch.nn.init.normal_(Q.weight, std=0.1, generator=gen)
        torch.nn.init.zeros_(b.weight)
        params = [P.weight, Q.weight, b.weight]
        opt = torch.optim.Adam(params, lr=cfg.lr)

        def run_epoch(epoch: int) -> None:
            perm = torch.from_numpy(rng.permutation(len(pos_u)))  # the same on every worker
            neg_all = torch.from_numpy(rng.integers(0, n_items, len(pos_u)))
            for s in range(0, len(perm), cfg.batch_size):
                idx = perm[s:s + cfg.batch_size]
                neg = neg_all[s:s + len(idx)]
                if comm is not None:  # this worker's share of the batch
                    idx, neg = idx[rank::world], neg[rank::world]
                opt.zero_grad()
                if len(idx):
                    u, i, j = pos_u[idx], pos_i[idx], neg
                    pu, qi, qj = P(u), Q(i), Q(j)
                    x = (pu * (qi - qj)).sum(1) + (b(i) - b(j)).squeeze(1)
                    loss = -torch.nn.functional.logsigmoid(x).mean() + cfg.reg * (
                        pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(idx)
                    loss.backward()
                if comm is not None:
                    comm.average_gradients(params)
                opt.step()

        def score() -> float:
            from longrec.models.validation import valid_ndcg
            self._export(P, Q, b)
            if comm is None:
                return valid_ndcg(self, valid)
            return comm.score_on_first(lambda: valid_ndcg(self, valid))

        def restore(state) -> None:
            self.P_, self.Q_, self.b_ = state

        has_valid = valid is not None if comm is None else comm.has_valid
        info = train_with_early_stopping(
            run_epoch, score if has_valid else None, lambda: (self.P_.copy(), self.Q_.copy(), self.b_.copy()),
            restore, epochs=cfg.epochs, eval_every=cfg.eval_every, patience=cfg.patience,
            progress="BPR epochs" if cfg.progress and rank == 0 else None,
            agree=None if comm is None else comm.agree)
        if "best_epoch" not in info:
            self._export(P, Q, b)
            info["epochs"] = cfg.epochs
        return info

    def _export(self, P, Q, b) -> None:
        self.P_ = P.weight.detach().numpy().copy()
        self.Q_ = Q.weight.detach().numpy().copy()
        self.b_ = b.weight.detach().numpy().ravel().copy()

    def _score(self, users, hist) -> np.ndarray:
        U = np.zeros((len(users), self.Q_.shape[1]), dtype=np.float32)
        known = users >= 0
        U[known] = self.P_[users[known]]
        new = np.flatnonzero(~known & (hist.lengths() > 0))
        if len(new):  # fold-in: mean of the history items' factors
            m = hist.matrix()[new]
            U[new] = (m @ self.Q_) / np.asarray(m.sum(axis=1)).reshape(-1, 1)
        return U @ self.Q_.T + self.b_[None, :]

    def _state(self):
        return {"P": self.P_, "Q": self.Q_, "b": self.b_}

    def _check_state(self, d, t, n_users, n_items):
        from longrec.models.artifacts import check_tensors

        dim = t["Q"].shape[-1] if "Q" in t else None
        check_tensors(d, t, {"P": ("f", (n_users, dim)), "Q": ("f", (n_items, None)), "b": ("f", (n_items,))})

    def _set_state(self, t):
        self.P_, self.Q_, self.b_ = t["P"], t["Q"], t["b"]
