"""The torch modules of the two-tower recommenders, top to bottom as in nanoGPT: TextMLP (the
tower layer over frozen text embeddings, shared), TwoTowerNet (lm-twotower,
longrec.models.lm_twotower) and DPTwoTowerNet (lm-twotower-dp, longrec.privacy.twotower).
Imports torch at module level: import this file lazily (inside fit/load), so `import longrec`
stays light.

Both nets score s(u, i) = <u, v_i> + b_i and expose `item_vectors()` -> (v, b). They differ
where the measurements say they must (bench/NOTES.md, "One two-tower net or two"):

- TwoTowerNet: item tower = TextMLP(text) + a learned ID vector, user tower = a residual MLP
  over the pooled item vectors of the history. The nonlinear item tower and the ID part are
  what score cold items well (ml-100k P3 test NDCG@10 0.3436 against 0.2230).
- DPTwoTowerNet: user tower = TextMLP(mean text of the history), item tower = one linear map
  of the text, applied on the user side (<u, W t_i> = <W^T u, t_i>) so that every trained
  layer sees one row per user: what per-user gradient clipping (Opacus) needs. A nonlinear
  item tower or an ID table cannot be moved to the user side.

Parameter names are part of the saved artifacts (model.safetensors keys `net.*`): keep them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TextMLP(nn.Sequential):
    """A tower layer over a text embedding: Linear(d_in, d_out), or with `hidden` > 0
    Linear(d_in, hidden) -> GELU -> Linear(hidden, d_out). Parameters `0.*` (and `2.*`)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 0) -> None:
        if hidden:
            super().__init__(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        else:
            super().__init__(nn.Linear(d_in, d_out))


class TwoTowerNet(nn.Module):
    """lm-twotower: item vectors f_i = TextMLP(t_i) + id_i, biases b_i = TextMLP(t_i) + beta_i
    (the ID parts only for items with training interactions: `id_mask`); user vector
    g(u) = h + MLP(h), h = pool(f(history)) [+ W t_u]."""

    def __init__(self, text: np.ndarray, dim: int, item_layers: int = 2, use_id: bool = True,
                 user_text_dim: int = 0, pooling: str = "mean", dropout: float = 0.2,
                 interaction: str = "dot") -> None:
        super().__init__()
        d, n_items, dt = dim, text.shape[0], text.shape[1]
        self.register_buffer("text", torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)))
        self.register_buffer("id_mask", torch.ones(n_items))  # 0 for items without interactions
        self.proj = TextMLP(dt, d, 2 * d if item_layers == 2 else 0)
        self.bias_text = TextMLP(dt, 1, d if item_layers == 2 else 0)
        self.use_id = use_id
        if use_id:
            self.ids = nn.Embedding(n_items, d)
            nn.init.zeros_(self.ids.weight)  # text first, IDs learn the residual
        self.bias_id = nn.Parameter(torch.zeros(n_items))
        self.user_text_dim = user_text_dim
        if user_text_dim:
            self.user_proj = nn.Linear(user_text_dim, d)
        self.pooling = pooling
        if pooling == "attention":
            self.query = nn.Parameter(torch.zeros(d))
            self.key = nn.Linear(d, d)
        self.user_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d))
        self.interaction = interaction
        if interaction == "additive":
            self.w_u = nn.Linear(d, 1)
            self.w_i = nn.Linear(d, 1)

    def item_vectors(self, keep: torch.Tensor | None = None,
                     idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_items, d) item vectors and (n_items,) biases; `keep` (n_items,) in {0,1} drops
        ID parts during training. With `idx` (k,) item indices: only those items' rows, (k, d)
        and (k,), and `keep` is (k,) (one entry per row), so that a step that reads a few items
        (sampled softmax) runs the item tower, and its backward, on those items alone."""
        if idx is not None:
            m = self.id_mask[idx] if keep is None else self.id_mask[idx] * keep
            text = self.text[idx]
            f = self.proj(text)
            if self.use_id:
                f = f + self.ids(idx) * m[:, None]
            return f, self.bias_text(text).squeeze(1) + self.bias_id[idx] * m
        m = self.id_mask if keep is None else self.id_mask * keep
        f = self.proj(self.text)
        if self.use_id:
            f = f + self.ids.weight * m[:, None]
        b = self.bias_text(self.text).squeeze(1) + self.bias_id * m
        return f, b

    def user_vectors(self, F: torch.Tensor, hist: torch.Tensor, weights: torch.Tensor,
                     utext: torch.Tensor | None = None) -> torch.Tensor:
        """hist (B, H) item indices, weights (B, H) 1 for real entries (0 = pad or held out)."""
        if self.pooling == "attention":
            v = F[hist]
            a = (self.key(v) * self.query).sum(-1) / (v.shape[-1] ** 0.5)
            a = a.masked_fill(weights <= 0, float("-inf"))
            a = torch.softmax(a, 1).nan_to_num(0.0) * (weights > 0)
            h = (a[..., None] * v).sum(1)
        else:
            # weighted mean through embedding_bag: the same sum as (w[..., None] * F[hist]).sum(1)
            # without the (B, H, d) tensor, whose gather/multiply/scatter took ~2/3 of training
            w = weights / weights.sum(1, keepdim=True).clamp(min=1.0)
            h = torch.nn.functional.embedding_bag(hist, F, per_sample_weights=w, mode="sum")
        if utext is not None and self.user_text_dim:
            h = h + self.user_proj(utext)
        return h + self.user_mlp(h)

    def scores(self, U: torch.Tensor, F: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.interaction == "additive":
            return self.w_u(U) + (self.w_i(F).squeeze(1) + b)[None, :]
        return U @ F.T + b[None, :]


class DPTwoTowerNet(nn.Module):
    """lm-twotower-dp: u = TextMLP(x) [@ fair_proj], x = the mean text of the user's history;
    score(u, i) = <W^T u + c, t_i> + b_i + a * p_i (p: a popularity prior buffer, a: one
    learned scalar). `forward(x)` gives the (B, n_items) scores."""

    def __init__(self, text: np.ndarray, dim: int, hidden: int = 0, item_bias: bool = True,
                 init: str = "random", fair_projection: bool = False) -> None:
        super().__init__()
        n_items, d_text = text.shape
        self.register_buffer("text", torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)))
        self.user = TextMLP(d_text, dim, hidden)
        self.item = nn.Linear(dim, d_text)                 # W^T (and c as its bias)
        self.bias = nn.Linear(1, n_items, bias=False)      # b_i: one scalar per item
        nn.init.zeros_(self.bias.weight)
        self.bias.weight.requires_grad_(item_bias)
        if init == "pca" and not hidden:
            # u = P^T h, v_i = P^T t_i: <u, v_i> = content similarity in the top-dim PCA space
            tc = text - text.mean(0, keepdims=True)
            P = np.linalg.svd(tc, full_matrices=False)[2][:dim].T.astype(np.float32)  # (d_text, dim)
            P = np.pad(P, ((0, 0), (0, dim - P.shape[1])))
            with torch.no_grad():
                self.user[0].weight.copy_(torch.from_numpy(P.T.copy()) * 4.0)
                self.user[0].bias.zero_()
                self.item.weight.copy_(torch.from_numpy(P.copy()) * 4.0)
                self.item.bias.zero_()
        self.register_buffer("prior", torch.zeros(n_items))  # p_i (zeros = no prior)
        self.prior_scale = nn.Linear(1, 1, bias=False)      # a (a layer: Opacus needs one)
        nn.init.ones_(self.prior_scale.weight)
        if fair_projection:  # u -> u M (identity until fitted)
            self.register_buffer("fair_proj", torch.eye(dim))

    def user_vectors(self, x: torch.Tensor) -> torch.Tensor:
        u = self.user(x)
        return u @ self.fair_proj if hasattr(self, "fair_proj") else u

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.item(self.user_vectors(x))
        one = torch.ones(len(x), 1, dtype=x.dtype)
        return z @ self.text.T + self.bias(one) + self.prior_scale(one) * self.prior

    def item_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_items, dim) item vectors v_i = W t_i and (n_items,) item biases."""
        with torch.no_grad():
            v = self.text @ self.item.weight            # (n, d_text) @ (d_text, dim)
            b = self.text @ self.item.bias + self.bias.weight[:, 0] + self.prior_scale.weight[0, 0] * self.prior
        return v, b
