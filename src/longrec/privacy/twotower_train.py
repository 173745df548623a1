"""The training loop of lm-twotower-dp (longrec.privacy.twotower): the per-user batches (input
part / held-out part of each history), the epoch loop shared by central, private and federated
training, the popularity prior and the user sampler. The torch module is
longrec.models.twotower_net.DPTwoTowerNet (`build_net` makes it from a config); the DP
accounting is in longrec.privacy.accounting. torch is imported inside the functions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def build_net(text: np.ndarray, cfg):
    """The DPTwoTowerNet of a DPTwoTowerConfig over the frozen (n_items, d_text) text matrix."""
    from longrec.models.twotower_net import DPTwoTowerNet

    return DPTwoTowerNet(text, cfg.dim, hidden=cfg.hidden, item_bias=cfg.item_bias, init=cfg.init,
                         fair_projection=bool(cfg.fair_attribute) and cfg.fair_method in ("leace", "nullspace"))


def history_features(X: sp.csr_matrix, text: np.ndarray) -> np.ndarray:
    """Mean text embedding of each row's items (zeros for an empty row)."""
    cnt = np.asarray(X.sum(1)).ravel()
    return np.asarray(X @ text, dtype=np.float32) / np.maximum(cnt, 1)[:, None].astype(np.float32)


def split_batch(X: sp.csr_matrix, rows: np.ndarray, text: np.ndarray, keep_prob: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (mean text of a random part of each history) and targets (the held-out part,
    normalised to sum 1) for the users `rows`; at least one item per user is held out."""
    sub = X[rows]
    lens = np.diff(sub.indptr)
    keep = rng.random(sub.nnz) < keep_prob
    has = lens > 0
    forced = sub.indptr[:-1][has] + (rng.random(int(has.sum())) * lens[has]).astype(np.int64)
    keep[forced] = False
    inp = sp.csr_matrix((keep.astype(np.float32), sub.indices, sub.indptr), shape=sub.shape)
    tgt = sp.csr_matrix(((~keep).astype(np.float32), sub.indices, sub.indptr), shape=sub.shape).toarray()
    tgt /= np.maximum(tgt.sum(1, keepdims=True), 1.0)
    return history_features(inp, text), tgt


def train_epochs(net, X: sp.csr_matrix, text: np.ndarray, loader, optimizer, epochs: int, keep_prob: float,
                 rng: np.random.Generator, progress: bool = False, aux=None) -> list[float]:
    """The training loop shared by central, private and federated training: `loader` yields
    batches of user row indices (a plain shuffled DataLoader, or Opacus's Poisson one) and
    `optimizer` is a torch optimizer (or Opacus's DPOptimizer). `aux(rows, x)` (optional)
    returns an extra loss term for the batch (the fairness adversary). Returns the mean
    recommendation loss per epoch."""
    import torch

    losses = []
    it = range(epochs)
    if progress:
        from rich.progress import track
        it = track(it, description="two-tower epochs")
    net.train()
    for _ in it:
        tot, n = 0.0, 0
        for (ub,) in loader:
            if len(ub) == 0:  # possible under Poisson sampling; nothing to do
                continue
            x, y = split_batch(X, ub.numpy(), text, keep_prob, rng)
            logits = net(torch.from_numpy(x))
            loss = -(torch.from_numpy(y) * torch.log_softmax(logits, 1)).sum(1).mean()
            optimizer.zero_grad()
            (loss if aux is None else loss + aux(ub.numpy(), x)).backward()
            optimizer.step()
            tot += float(loss.detach()) * len(ub)
            n += len(ub)
        losses.append(tot / max(n, 1))
    return losses


def popularity_counts(X: sp.csr_matrix) -> np.ndarray:
    """c_i = sum over the rows (users) of x_ui / sqrt(|H_u|): every user adds a vector of L2
    norm 1. Sums over disjoint sets of users add up (parties can aggregate theirs)."""
    n = np.diff(X.indptr)
    w = np.repeat(1.0 / np.sqrt(np.maximum(n, 1)), n)
    return np.bincount(X.indices, weights=w, minlength=X.shape[1])


def prior_from_counts(c: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(c, 0.0)).astype(np.float32)


def popularity_prior(X: sp.csr_matrix, noise: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """log(1 + c_i), c_i = sum over users of x_ui / sqrt(|H_u|) (each user's row has L2 norm 1,
    so adding or removing one user moves c by at most 1 in L2); with `noise`, c gets Gaussian
    noise of standard deviation `noise` first (the Gaussian mechanism) and is clipped at 0."""
    c = popularity_counts(X)
    if noise is not None:
        c = c + (rng or np.random.default_rng()).normal(0.0, noise, size=c.shape)
    return prior_from_counts(c)


def user_loader(n_users: int, batch_size: int, seed: int):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.arange(n_users)), batch_size=min(batch_size, n_users),
                      shuffle=True, generator=g)


# ============================================================================ model
