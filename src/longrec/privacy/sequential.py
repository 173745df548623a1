"""lm-seq-dp: the sequential transformer of `lm-seq`, trained with user-level DP-SGD.

Privacy unit: one user's whole history. Each user is one training example, the window of
the last `max_len` + 1 items of their history (lm-seq itself cuts long histories into
several windows; here one user must be one example, so the accountant's sampling rate is
the user's). Each step samples every user independently with probability q =
`dp_batch_size` / #users (Poisson sampling), computes each sampled user's gradient (torch.func: vmap over
grad), clips it to L2 norm `max_grad_norm`, sums, adds Gaussian noise of standard deviation
σ · max_grad_norm and divides by the expected batch size q · #users. σ is calibrated by the
Opacus accountant (RDP or PRV) so that `dp_epochs` / q steps spend `dp_epsilon` at
δ = 1/#users; the spent ε is stored in meta.json under "privacy".

What changes against `lm-seq` under DP, and why:
- a fixed number of epochs (no early stopping): which epoch did best on validation data of
  the same users would be a data-dependent choice outside the accountant;
- the softmax runs over the whole catalogue, and items without interactions keep their ID
  part at inference: which items had interactions is private;
- no dropout (the noise regularises; a per-example dropout mask would need its own stream).

Without `dp_epsilon` the model is plain `lm-seq` (its own training loop and defaults).
Treated as public, as for the other DP models: item texts and vocabulary, the number of
users, and hyper-parameters chosen on validation data (docs/privacy.md).
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from longrec.errors import ConfigError
from longrec.models.base import HistoryBatch
from longrec.models.lm_seq import LMSeq, LMSeqConfig
from longrec.privacy.noise import REPRODUCIBLE_HELP, noise_seed
from longrec.privacy.guarantee import PrivacyGuarantee, privacy_record


class DPLMSeqConfig(LMSeqConfig):
    # dp_* defaults: the epsilon = 8 choice on ml-100k P2 valid (bench/results/tuning/privacy_seq_tuning.jsonl)
    dp_epsilon: float | None = Field(None, gt=0, description="target epsilon; None = plain lm-seq training")
    dp_delta: float | None = Field(None, gt=0, lt=1, description="delta; default 1/#training users")
    max_grad_norm: float = Field(1.0, gt=0, description="per-user gradient clipping norm C")
    dp_batch_size: int = Field(256, ge=1, description="expected users per DP-SGD step (q = this / #users)")
    dp_epochs: int = Field(30, ge=1, description="DP-SGD epochs (fixed: no early stopping under DP)")
    dp_lr: float = Field(1e-2, gt=0, description="Adam learning rate of the noisy updates")
    accountant: Literal["rdp", "prv"] = "rdp"
    reproducible_noise: bool = Field(False, description=REPRODUCIBLE_HELP)

    @model_validator(mode="after")
    def _one_process(self) -> "DPLMSeqConfig":
        if self.dp_epsilon is not None and self.workers > 1:
            raise ConfigError(
                f"lm-seq-dp with dp_epsilon (differentially private training) trains in one process: its per-user "
                f"clipping and noise are not split across Ray workers, so workers = {self.workers} is not "
                "supported. Set workers = 1 (drop --workers), or drop dp_epsilon to train a non-private "
                "lm-seq on several workers.")
        return self


def noisy_mean(per_sample: dict, max_norm: float, sigma: float, denom: float, gen) -> dict:
    """The DP-SGD gradient: each example's gradient (over all tensors together) clipped to L2
    norm `max_norm`, summed, plus N(0, (sigma · max_norm)²) per coordinate, divided by `denom`
    (the expected batch size, so the noise does not depend on who was sampled)."""
    import torch

    first = next(iter(per_sample.values()))
    if first.shape[0]:
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_sample.values()))
        scale = (max_norm / (norms + 1e-12)).clamp(max=1.0)
    out = {}
    for k, g in per_sample.items():
        s = (g * scale.view(-1, *[1] * (g.dim() - 1))).sum(0) if first.shape[0] else torch.zeros(g.shape[1:])
        out[k] = (s + torch.normal(0.0, sigma * max_norm, size=s.shape, generator=gen)) / denom
    return out


class DPLMSeq(PrivacyGuarantee, LMSeq):
    """lm-seq with optional user-level DP-SGD; see the module docstring."""

    name = "lm-seq-dp"
    Config = DPLMSeqConfig

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        """A private model scores an empty history from its DP-trained weights alone: the net's
        next-item scores after the padding token (position 0, a zero item vector), i.e. what it
        learned users pick first, instead of the exact (non-private) training popularity."""
        import torch

        out = super()._score(users, hist)
        empty = np.flatnonzero(hist.lengths() == 0)
        if len(empty) and self.is_private:
            with torch.no_grad():
                h = self.net_(torch.zeros((1, 1), dtype=torch.long), self._table)[0, 0]
                out[empty] = (h @ self._table[1:].T).numpy()
        return out

    def _fit(self, X, train, valid) -> None:
        if self.config.dp_epsilon is None:
            super()._fit(X, train, valid)
            self.privacy_ = {"private": False}
            return
        self._fit_private(X)
        if valid is not None and len(valid):
            from longrec.models.validation import valid_ndcg
            self.fit_info_["valid_ndcg@10"] = round(valid_ndcg(self, valid), 6)

    def _fit_private(self, X) -> None:
        import torch
        import torch.nn.functional as F
        from torch.func import functional_call, grad, vmap

        from longrec.privacy.accounting import calibrate_noise, require_opacus

        cfg = self.config
        require_opacus()  # its accountant calibrates the noise
        torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        # Poisson sampling and noise (see longrec.privacy.noise): by default two independent secret seeds
        rng = np.random.default_rng(noise_seed(cfg.seed, cfg.reproducible_noise))
        gen = torch.Generator().manual_seed(noise_seed(cfg.seed + 1, cfg.reproducible_noise))
        n_users = X.shape[0]
        q = min(1.0, cfg.dp_batch_size / n_users)
        steps_per_epoch = max(1, round(1 / q))
        steps = cfg.dp_epochs * steps_per_epoch
        delta = cfg.dp_delta if cfg.dp_delta is not None else 1.0 / n_users
        sigma = calibrate_noise(cfg.dp_epsilon, delta, q, steps, None, cfg.accountant)

        t0 = time.perf_counter()
        text = self._item_text()
        self.fit_info_["text_seconds"] = round(time.perf_counter() - t0, 2)
        from longrec.models.lm_seq_net import SeqNet

        # no dropout; attention spelled out: vmap has no batching rule for the fused kernel's backward
        net = SeqNet(cfg.model_copy(update={"dropout": 0.0}), X.shape[1], text, explicit_attention=True)
        net.eval()
        self.net_ = net
        wins = torch.from_numpy(self._last_windows(self.seen_, cfg.max_len + 1)[0])  # one window per user
        wins = wins[(wins > 0).sum(1) >= 2]  # a user needs a next item to contribute a gradient

        class UserLoss(torch.nn.Module):
            """One user's mean next-item cross-entropy over their window (the vmapped unit)."""

            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, w):
                tab = self.net.item_table()
                h = self.net(w[None, :-1], tab)[0]
                tgt = w[1:]
                mask = (tgt > 0).to(h.dtype)
                ce = F.cross_entropy(h @ tab[1:].T, (tgt - 1).clamp(min=0), reduction="none")
                return (ce * mask).sum() / mask.sum().clamp(min=1.0)

        user_loss = UserLoss()
        bufs = {f"net.{k}": v for k, v in net.named_buffers()}

        def per_user_loss(p, w):
            return functional_call(user_loss, ({f"net.{k}": v for k, v in p.items()}, bufs), (w,))

        per_sample_grads = vmap(grad(per_user_loss), in_dims=(None, 0))
        named = {k: p for k, p in net.named_parameters() if p.requires_grad}
        opt = torch.optim.Adam(named.values(), lr=cfg.dp_lr)
        t1 = time.perf_counter()
        it = range(steps)
        if cfg.progress:
            from rich.progress import track
            it = track(it, description="lm-seq-dp DP-SGD steps")
        for step in it:
            take = torch.from_numpy(np.flatnonzero(rng.random(len(wins)) < q))
            cur = {k: p.detach() for k, p in named.items()}
            g = per_sample_grads(cur, wins[take]) if len(take) else {k: torch.zeros((0, *v.shape)) for k, v in cur.items()}
            for k, v in noisy_mean(g, cfg.max_grad_norm, sigma, q * n_users, gen).items():
                named[k].grad = v
            opt.step()
        for b in net.blocks:
            b.attn.explicit = False  # inference: the fused kernel
        self.fit_info_["train_seconds"] = round(time.perf_counter() - t1, 1)
        from opacus.accountants import PRVAccountant, RDPAccountant
        acc = RDPAccountant() if cfg.accountant == "rdp" else PRVAccountant()
        acc.history = [(sigma, q, steps)]
        self.privacy_ = privacy_record(
            "DP-SGD (per-user gradients by torch.func, Poisson sampling)", epsilon_target=cfg.dp_epsilon,
            epsilon_spent=round(float(acc.get_epsilon(delta)), 4), delta=delta, noise_multiplier=round(sigma, 5),
            reproducible_noise=cfg.reproducible_noise, accountant=cfg.accountant, max_grad_norm=cfg.max_grad_norm,
            sample_rate=round(q, 6), steps=steps, n_users=n_users)
        self._finish()

    def user_embeddings(self, users=None, histories=None) -> tuple[np.ndarray, np.ndarray]:
        """(caller user IDs, (n, dim) hidden state after each user's last item; zeros without
        history) — what an attribute-inference attacker sees."""
        ids, hist = self._users_and_histories(users, histories)
        rows, h = self._last_hidden(hist)
        out = np.zeros((len(ids), self.config.dim), dtype=np.float32)
        out[rows] = h.numpy()
        return ids, out

    def _finish(self) -> None:
        import torch

        if not self.is_private:
            return super()._finish()
        self.net_.eval()  # a private model keeps the IDs of items without interactions (that set is private)
        with torch.no_grad():
            self._table = self.net_.item_table()
