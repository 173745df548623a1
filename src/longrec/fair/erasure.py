"""Removing a protected attribute from learned user vectors (what an attribute-inference attacker
sees): LEACE closed-form linear concept erasure (Belrose et al. 2023) and iterative nullspace
projection (Ravfogel et al., ACL 2020), with the linear probe and AUC they are judged by.
numpy only; used by lm-twotower-dp's fair training (docs/trust.md, "Fair training").
"""

from __future__ import annotations

import numpy as np


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC of scores s for binary labels y (rank formula, ties averaged)."""
    from scipy.stats import rankdata

    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return 0.5
    return float((rankdata(s)[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def linear_probe(Z: np.ndarray, y: np.ndarray, n_cls: int, l2: float | None = None) -> np.ndarray:
    """Multinomial (binary: logistic) regression on standardised Z, full-batch L-BFGS in torch;
    returns (n_dirs, d) raw-space directions (1 for binary, one per class otherwise).
    l2 defaults to sklearn's C=1 strength (0.5 |w|^2 / n per sample)."""
    import torch

    mu, sd = Z.mean(0), Z.std(0) + 1e-8
    z = torch.from_numpy(((Z - mu) / sd).astype(np.float64))
    k = 1 if n_cls == 2 else n_cls
    W = torch.zeros(Z.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    yt = torch.from_numpy(y)
    lam = 0.5 / len(Z) if l2 is None else l2
    opt = torch.optim.LBFGS([W, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        out = z @ W + b
        if k == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], yt.double())
        else:
            loss = torch.nn.functional.cross_entropy(out, yt)
        loss = loss + lam * (W ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (W.detach().numpy() / sd[:, None]).T  # w . (x - mu) / sd  ->  raw direction w / sd


def _probe_auc(Z: np.ndarray, y: np.ndarray, n_cls: int, seed: int) -> float:
    """2-fold held-out AUC of the linear probe (macro one-vs-rest for > 2 classes)."""
    fold = np.random.default_rng(seed).random(len(y)) < 0.5
    aucs = []
    for tr in (fold, ~fold):
        W = linear_probe(Z[tr], y[tr], n_cls)
        s = Z[~tr] @ W.T
        if n_cls == 2:
            aucs.append(_auc(y[~tr], s[:, 0]))
        else:
            aucs.append(np.mean([_auc((y[~tr] == c).astype(int), s[:, c]) for c in range(n_cls)]))
    return float(np.mean(aucs))


def nullspace_projection(U: np.ndarray, y: np.ndarray, stop_auc: float = 0.52, max_rounds: int = 16,
                         seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Iterative nullspace projection (Ravfogel et al. 2020): (d, d) symmetric projection P that
    removes the directions a linear probe uses to predict y from the rows of U, and the
    held-out probe AUC before each round (the last one is the AUC that stopped it)."""
    d = U.shape[1]
    n_cls = int(y.max()) + 1
    B = np.zeros((d, 0))
    P = np.eye(d)
    rounds: list[float] = []
    for r in range(max_rounds + 1):
        Z = U @ P
        auc = _probe_auc(Z, y, n_cls, seed + r)
        rounds.append(round(auc, 4))
        if auc <= stop_auc or r == max_rounds or B.shape[1] >= d - 1:
            break
        W = linear_probe(Z, y, n_cls) @ P  # keep only the part inside the current space
        q, s, _ = np.linalg.svd(np.c_[B, W.T], full_matrices=False)
        B = q[:, s > 1e-8 * s.max()]
        P = np.eye(d) - B @ B.T
    return P, rounds


def leace_eraser(U: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LEACE (Belrose et al., NeurIPS 2023): the least-squares-smallest linear change after
    which no linear classifier predicts y from U better than a constant (the class means
    coincide). Erases rank (#classes - 1). Returns M with  u -> u @ M  (the constant shift of
    the closed form is dropped: it is the same for every user, the item biases absorb it)."""
    Z = U - U.mean(0)
    n_cls = int(y.max()) + 1
    onehot = np.eye(n_cls)[y][:, : n_cls - 1]                 # k-1 columns span the class contrasts
    cov_xz = Z.T @ (onehot - onehot.mean(0)) / len(Z)          # (d, k-1)
    e, V = np.linalg.eigh(Z.T @ Z / len(Z))
    keep = e > 1e-8 * e.max()
    W = (V[:, keep] / np.sqrt(e[keep])) @ V[:, keep].T         # Sigma^{-1/2} (pseudo)
    W_inv = (V[:, keep] * np.sqrt(e[keep])) @ V[:, keep].T     # Sigma^{1/2}
    q, sv, _ = np.linalg.svd(W @ cov_xz, full_matrices=False)
    q = q[:, sv > 1e-10 * max(sv.max(), 1e-300)]
    A = W_inv @ q @ q.T @ W                                    # u' = u - A (u - mu)
    return np.eye(U.shape[1]) - A.T
