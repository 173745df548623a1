"""blend: a weighted sum of trained recommenders' normalised scores.

    Blend().fit(train, valid)                       # the default: EASE + lm-seq
    Blend(models=[{"name": "ease"}, {"name": "lm-twotower", "config": {"dim": 32}}])

Each member is trained on the same training data (early stopping on `valid` as usual).
Their scores live on different scales (EASE regression values, softmax logits, cosine
similarities), so each user's row of scores is normalised per member first (`zscore`:
minus the row mean, over the row standard deviation; `rank`: the item's rank percentile;
`minmax`). The weights are then tuned on the validation split by a grid over the simplex
(step `weight_step`), unless `weights` is given. Everything is stored in one model
directory: member arrays are prefixed (`m0.`, `m1.`, ...) inside the blend's safetensors,
member configs inside its config.toml.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from longrec.errors import ConfigError
from longrec.models.base import HistoryBatch, ModelConfig, Recommender
from longrec.topk import topk


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


def _default_members() -> list[Member]:
    return [Member(name="ease"), Member(name="lm-seq")]


class BlendConfig(ModelConfig):
    models: list[Member] = Field(default_factory=_default_members, min_length=1)
    normalize: Literal["zscore", "rank", "minmax"] = "zscore"
    weights: list[float] | None = Field(None, description="fixed weights (one per model); None = tune on valid")
    weight_step: float = Field(0.1, gt=0, le=1, description="grid step of the weight search")


class Blend(Recommender):
    """Normalised-score blend of recommenders; see the module docstring."""

    name = "blend"
    Config = BlendConfig

    def _members(self) -> list[Recommender]:
        from longrec.models.registry import get_model_class

        out = []
        for m in self.config.models:
            if m.name.strip().lower() == "blend":
                raise ConfigError("a blend cannot contain another blend; list its members directly.")
            klass = get_model_class(m.name)
            cfg = {"seed": self.config.seed, **m.config}
            out.append(klass(cfg))
        return out

    def _fit(self, X, train, valid) -> None:
        cfg = self.config
        if cfg.weights is not None and len(cfg.weights) != len(cfg.models):
            raise ConfigError(f"blend: {len(cfg.weights)} weights for {len(cfg.models)} models; give one per model.")
        self.members_ = [m.fit(train, valid) for m in self._members()]
        self.fit_info_["members"] = [{"model": m.name, **{k: v for k, v in m.fit_info_.items() if k != "valid_curve"}}
                                     for m in self.members_]
        if cfg.weights is not None or valid is None or len(self.members_) == 1:
            w = cfg.weights or [1.0 / len(self.members_)] * len(self.members_)
            self.weights_ = np.asarray(w, dtype=np.float32)
            return
        self.weights_ = self._tune(valid)

    # ---------------------------------------------------------------- weights
    def _tune(self, valid) -> np.ndarray:
        """Grid search of the weights on valid NDCG@10 (one score matrix per member, reused)."""
        vi = valid.interactions
        users = vi["user_id"].unique()
        uidx, hist = self._build_histories(users, self._history_frame(None))
        n_items = len(self.vocab_.items)
        truth_u = self.vocab_.users.lookup(vi["user_id"].to_numpy())
        truth_i = self.vocab_.items.lookup(vi["item_id"].to_numpy())
        row_of = {u: r for r, u in enumerate(uidx)}
        ok = (truth_u >= 0) & (truth_i >= 0)
        rows = np.array([row_of.get(u, -1) for u in truth_u[ok]], dtype=np.int64)
        R = np.zeros((len(users), n_items), dtype=bool)
        R[rows[rows >= 0], truth_i[ok][rows >= 0]] = True
        S = [self._norm(m.score_batch(uidx, hist)) for m in self.members_]
        seen_r = np.repeat(np.arange(len(hist)), hist.lengths())
        R[seen_r, hist.indices] = False  # seen items are excluded, as in the protocols
        n_rel = R.sum(1)
        disc = 1.0 / np.log2(np.arange(2, 12))
        idcg = np.cumsum(disc)[np.clip(np.minimum(n_rel, 10) - 1, 0, 9)]
        steps = int(round(1 / self.config.weight_step))
        results = []
        for combo in itertools.product(range(steps + 1), repeat=len(S)):
            if sum(combo) != steps:
                continue
            w = np.asarray(combo, dtype=np.float32) / steps
            s = sum(wk * Sk for wk, Sk in zip(w, S) if wk > 0)
            s[seen_r, hist.indices] = -np.inf
            top, _ = topk(s, 10)  # ties: lower index first
            gains = np.take_along_axis(R, top, 1) @ disc
            ndcg = float(np.where(n_rel > 0, gains / idcg, 0.0)[n_rel > 0].mean())
            results.append((ndcg, tuple(float(x) for x in w)))
        best = max(results, key=lambda r: r[0])
        self.fit_info_["weights_valid_ndcg@10"] = round(best[0], 6)
        self.fit_info_["weights"] = [round(x, 4) for x in best[1]]
        return np.asarray(best[1], dtype=np.float32)

    def _norm(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=np.float32)
        how = self.config.normalize
        if how == "zscore":
            mu = s.mean(1, keepdims=True)
            sd = s.std(1, keepdims=True)
            return (s - mu) / np.where(sd > 0, sd, 1.0)
        if how == "minmax":
            lo, hi = s.min(1, keepdims=True), s.max(1, keepdims=True)
            return (s - lo) / np.where(hi > lo, hi - lo, 1.0)
        r = np.argsort(np.argsort(s, axis=1, kind="stable"), axis=1, kind="stable")
        return (r / max(s.shape[1] - 1, 1)).astype(np.float32)

    # ---------------------------------------------------------------- inference
    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        out = np.zeros((len(users), hist.n_items), dtype=np.float32)
        for w, m in zip(self.weights_, self.members_):
            if w > 0:
                out += w * self._norm(m.score_batch(users, hist))
        return out

    # ---------------------------------------------------------------- persistence
    def _state(self) -> dict[str, np.ndarray]:
        out = {"weights": self.weights_}
        for k, m in enumerate(self.members_):
            out.update({f"m{k}.{key}": v for key, v in m._state().items()})
        return out

    def _check_state(self, d, t, n_users, n_items) -> None:
        from longrec.models.artifacts import check_tensors

        members = self._members()
        check_tensors(d, {"weights": t["weights"]} if "weights" in t else {}, {"weights": ("f", (len(members),))})
        prefixes = [f"m{k}." for k in range(len(members))]
        stray = [key for key in t if key != "weights" and not any(key.startswith(p) for p in prefixes)]
        check_tensors(d, {key: t[key] for key in stray}, {})
        for p, m in zip(prefixes, members):
            m._check_state(d, {key[len(p):]: v for key, v in t.items() if key.startswith(p)}, n_users, n_items)

    def _set_state(self, t: dict[str, np.ndarray]) -> None:
        self.weights_ = t["weights"]
        self.members_ = self._members()
        for k, m in enumerate(self.members_):
            # members share the blend's training data: vocabulary, histories and popularity
            m.vocab_, m.seen_, m.popularity_ = self.vocab_, self.seen_, self.popularity_
            m.items_, m.meta_, m.fit_info_ = None, {}, {}
            p = f"m{k}."
            m._set_state({key[len(p):]: v for key, v in t.items() if key.startswith(p)})
