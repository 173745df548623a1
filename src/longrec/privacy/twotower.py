"""lm-twotower-dp: a two-tower recommender over frozen language-model item embeddings,
trainable with user-level differential privacy (DP-SGD through Opacus) or federated.

Towers (only small dense layers are trained; there is no per-user table at all and the only
per-item parameter is one bias scalar, so Opacus never materialises a big embedding gradient,
cf. opacus issue #350):

    t_i            frozen, L2-normalised LM embedding of item i's text (longrec.lm, cached)
    user tower     u = MLP(mean_{j in H_u} t_j)                      (H_u: the user's history)
    item tower     v_i = W t_i            (a linear projection of the text)
    score(u, i)    = <u, v_i> + c.t_i + b_i

Implementation trick that makes per-sample (per-user) gradients exact with Opacus's layer
hooks: <u, W t_i> = <W^T u, t_i>, so the item projection is applied to the *user* vector
(`net.item`, a Linear(dim -> d_text) whose batch dimension is the user) and the scores are
z @ T^T with T a buffer. Every trained layer therefore sees one row per user.

Training unit = one user (user-level privacy): each step draws users (Poisson sampling under
DP), splits each drawn user's history at random into an input part (mean-pooled text) and a
held-out part, and minimises the multinomial log-likelihood of the held-out items under a
full softmax over the catalogue, averaged per user. Under DP each user's gradient (from their
whole history) is clipped to `max_grad_norm` and Gaussian noise is added, so the guarantee is
(epsilon, delta)-DP with respect to adding/removing one user's entire history. epsilon is a
target: Opacus calibrates the noise multiplier for `epochs` passes; the spent epsilon (from
the accountant, RDP by default or PRV) is stored in meta.json under "privacy".

Not covered by the guarantee (see docs/privacy.md): the item texts and the item vocabulary
(treated as public), hyper-parameter tuning on validation data, and the per-item popularity
fallback the base class serves to cold users with no history.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from longrec.errors import ConfigError
from longrec.models.base import HistoryBatch, ModelConfig, Recommender


class DPTwoTowerConfig(ModelConfig):
    encoder: str = Field("default", description="longrec.lm encoder spec for item texts, or 'hash'")
    item_text_template: str | None = Field(None, description="str.format template over item columns")
    dim: int = Field(32, ge=4, description="width of the user/item vectors")
    hidden: int = Field(0, ge=0, description="hidden width of the user tower MLP (0 = linear tower)")
    epochs: int = Field(30, ge=1, description="passes over the users")
    batch_size: int = Field(128, ge=1, description="users per step (expected size under Poisson sampling)")
    lr: float = Field(0.01, gt=0)
    keep_prob: float = Field(0.5, gt=0, lt=1, description="share of a history used as input; the rest is predicted")
    dp_epsilon: float | None = Field(None, gt=0, description="target epsilon; None = no differential privacy")
    dp_delta: float | None = Field(None, gt=0, lt=1, description="delta; default 1/#training users")
    max_grad_norm: float = Field(1.0, gt=0, description="per-user gradient clipping bound (DP only)")
    accountant: Literal["rdp", "prv"] = "rdp"
    num_threads: int = Field(2, ge=1)
    progress: bool = False


# ============================================================================ net
def build_net(text: np.ndarray, cfg: DPTwoTowerConfig):
    """The torch module over the frozen (n_items, d_text) text matrix."""
    import torch
    from torch import nn

    class TwoTowerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d_text, n_items = text.shape[1], text.shape[0]
            self.register_buffer("text", torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)))
            if cfg.hidden:
                self.user = nn.Sequential(nn.Linear(d_text, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.dim))
            else:
                self.user = nn.Sequential(nn.Linear(d_text, cfg.dim))
            self.item = nn.Linear(cfg.dim, d_text)             # W^T (and c as its bias)
            self.bias = nn.Linear(1, n_items, bias=False)      # b_i: one scalar per item
            nn.init.zeros_(self.bias.weight)

        def user_vectors(self, x):
            return self.user(x)

        def forward(self, x):
            z = self.item(self.user(x))
            return z @ self.text.T + self.bias(torch.ones(len(x), 1, dtype=x.dtype))

        def item_vectors(self):
            """(n_items, dim) item embeddings v_i = W t_i and (n_items,) item biases."""
            with torch.no_grad():
                v = self.text @ self.item.weight            # (n, d_text) @ (d_text, dim)
                b = self.text @ self.item.bias + self.bias.weight[:, 0]
            return v, b

    return TwoTowerNet()


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
                 rng: np.random.Generator, progress: bool = False) -> list[float]:
    """The training loop shared by central, private and federated training: `loader` yields
    batches of user row indices (a plain shuffled DataLoader, or Opacus's Poisson one) and
    `optimizer` is a torch optimizer (or Opacus's DPOptimizer). Returns the mean loss per epoch."""
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
            loss.backward()
            optimizer.step()
            tot += float(loss.detach()) * len(ub)
            n += len(ub)
        losses.append(tot / max(n, 1))
    return losses


def user_loader(n_users: int, batch_size: int, seed: int):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.arange(n_users)), batch_size=min(batch_size, n_users),
                      shuffle=True, generator=g)


# ============================================================================ model
class DPTwoTower(Recommender):
    """Two-tower over frozen LM item embeddings with optional user-level DP; see the module docstring."""

    name = "lm-twotower-dp"
    Config = DPTwoTowerConfig

    # ---------------------------------------------------------------- training
    def _item_text(self) -> np.ndarray:
        from longrec.models._lm_items import item_text_matrix
        return item_text_matrix(self.vocab_.items.ids, self.items_, self.config.encoder,
                                self.config.item_text_template)

    def _fit(self, X, train, valid) -> None:
        import torch

        cfg = self.config
        torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        t0 = time.perf_counter()
        self.text_ = self._item_text()
        self.fit_info_["text_seconds"] = round(time.perf_counter() - t0, 2)
        self.net_ = build_net(self.text_, cfg)
        if getattr(self, "_external_training", False):  # the federated driver trains the net
            self.privacy_ = {"private": False}
            self._finish()
            return
        opt = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr)
        loader = user_loader(X.shape[0], cfg.batch_size, cfg.seed)
        t1 = time.perf_counter()
        if cfg.dp_epsilon is None:
            losses = train_epochs(self.net_, X, self.text_, loader, opt, cfg.epochs, cfg.keep_prob, rng, cfg.progress)
            self.privacy_ = {"private": False}
        else:
            losses = self._fit_private(X, loader, opt, rng)
        self.fit_info_["train_seconds"] = round(time.perf_counter() - t1, 2)
        self.fit_info_["loss_curve"] = [round(v, 5) for v in losses]
        self._finish()
        if valid is not None and len(valid):
            from longrec.models.validation import valid_ndcg
            self.fit_info_["valid_ndcg@10"] = round(valid_ndcg(self, valid), 6)

    def _fit_private(self, X, loader, opt, rng) -> list[float]:
        import warnings

        cfg = self.config
        try:
            from opacus import PrivacyEngine
        except ImportError:
            raise ConfigError("dp_epsilon needs Opacus: pip install opacus (the longrec[privacy] extra).") from None
        n_users = X.shape[0]
        delta = cfg.dp_delta if cfg.dp_delta is not None else 1.0 / n_users
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns about secure RNG and full backward hooks
            engine = PrivacyEngine(accountant=cfg.accountant)
            net, dp_opt, dp_loader = engine.make_private_with_epsilon(
                module=self.net_, optimizer=opt, data_loader=loader, target_epsilon=cfg.dp_epsilon,
                target_delta=delta, epochs=cfg.epochs, max_grad_norm=cfg.max_grad_norm, poisson_sampling=True)
            losses = train_epochs(net, X, self.text_, dp_loader, dp_opt, cfg.epochs, cfg.keep_prob, rng, cfg.progress)
            spent = float(engine.get_epsilon(delta))
        # the trained weights live in the wrapped module; keep a plain module for inference/saving
        state = {k.removeprefix("_module."): v for k, v in net.state_dict().items()}
        self.net_ = build_net(self.text_, cfg)
        self.net_.load_state_dict(state)
        self.privacy_ = {
            "private": True, "level": "user", "mechanism": "DP-SGD (Opacus, Poisson sampling)",
            "accountant": cfg.accountant, "epsilon_target": cfg.dp_epsilon, "epsilon_spent": round(spent, 4),
            "delta": delta, "noise_multiplier": round(float(dp_opt.noise_multiplier), 5),
            "max_grad_norm": cfg.max_grad_norm, "sample_rate": round(1.0 / len(dp_loader), 6),
            "steps": int(sum(h[2] for h in engine.accountant.history)), "n_users": n_users,
        }
        return losses

    def fit(self, train, valid=None):
        super().fit(train, valid)
        self.meta_["privacy"] = self.privacy_
        return self

    def _finish(self) -> None:
        self.net_.eval()
        self.privacy_ = getattr(self, "privacy_", {"private": False})

    # ---------------------------------------------------------------- inference
    def user_embeddings(self, users=None, histories=None) -> tuple[np.ndarray, np.ndarray]:
        """(caller user IDs, (n, dim) user vectors) from the users' histories — what an
        attribute-inference attacker would see."""
        import torch

        self._require_fitted()
        extra = self._history_frame(histories)
        ids = self.vocab_.users.ids if users is None and histories is None else self._user_list(users, extra)
        _, hist = self._build_histories(np.asarray(ids, dtype=object), extra)
        with torch.no_grad():
            u = self.net_.user_vectors(torch.from_numpy(history_features(hist.matrix(), self.text_)))
        return np.asarray(ids, dtype=object), u.numpy()

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        import torch

        torch.set_num_threads(self.config.num_threads)
        with torch.no_grad():
            return self.net_(torch.from_numpy(history_features(hist.matrix(), self.text_))).numpy()

    # ---------------------------------------------------------------- arrays (persistence, federation)
    def get_arrays(self) -> dict[str, np.ndarray]:
        """The trained parameters (what FedAvg averages); the frozen text is not included."""
        return {k: v.detach().numpy().copy() for k, v in self.net_.state_dict().items() if k != "text"}

    def set_arrays(self, arrays: dict[str, Any]) -> None:
        import torch

        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}
        state["text"] = self.net_.text
        self.net_.load_state_dict(state)

    def _state(self) -> dict[str, np.ndarray]:
        return {"text": self.text_, **{f"net.{k}": v for k, v in self.get_arrays().items()}}

    def _set_state(self, t: dict[str, np.ndarray]) -> None:
        self.text_ = np.asarray(t["text"], dtype=np.float32)
        self.net_ = build_net(self.text_, self.config)
        self.set_arrays({k[4:]: v for k, v in t.items() if k.startswith("net.")})
        self.privacy_ = getattr(self, "meta_", {}).get("privacy", {"private": False})
        self._finish()
