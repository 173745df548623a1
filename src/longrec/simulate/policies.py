"""Policies: who fills the slates.

* `ModelPolicy`: any registered longrec recommender, used only through its public protocol:
  `fit(Dataset of everything logged)` every R steps, and between retrainings
  `recommend(users, histories=<choices since the last fit>, k, exclude_seen=True)`, so new
  choices are excluded (and used as history by history-aware models) without refitting.
* `RandomPolicy`: K distinct unconsumed items uniformly at random.
* `OraclePolicy`: the top-K items by the user's current true (effective) utility; myopic.
* `Exploration`: wraps any of them: ε-greedy (each slot is replaced by a random unconsumed
  item with probability ε) or softmax/Boltzmann (K items sampled without replacement from the
  top-`pool`, with probability ∝ exp(z / T), z the per-user z-scored policy score).

Slates are (n_users, K) arrays of world item indices, -1 where no item is left.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from longrec.simulate.config import PolicySettings
from longrec.simulate.users import UserState
from longrec.simulate.world import World
from longrec.topk import topk


def topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores per row, best first; -1 pads rows with fewer."""
    top, vals = topk(scores, k)
    return np.where(np.isfinite(vals), top, -1)


def _random_unconsumed(rng: np.random.Generator, state: UserState, users: np.ndarray, k: int,
                       exclude: np.ndarray | None = None) -> np.ndarray:
    keys = rng.random((len(users), state.consumed.shape[1]), dtype=np.float32)
    keys[state.consumed[users]] = -np.inf
    if exclude is not None:
        rows = np.repeat(np.arange(len(users)), exclude.shape[1])
        cols = exclude.ravel()
        ok = cols >= 0
        keys[rows[ok], cols[ok]] = -np.inf
    return topk_rows(keys, k)


class Policy:
    trains = False

    def fit(self, logged: pd.DataFrame, world: World) -> None:
        pass

    def slate(self, rng, world: World, state: UserState, users: np.ndarray, utility: np.ndarray,
              pending: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(slate (n, k) item indices, scores of a top-`pool` candidate list or None)."""
        raise NotImplementedError

    def candidates(self, rng, world, state, users, utility, pending, k) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items with scores, best first (used by exploration wrappers)."""
        raise NotImplementedError


class RandomPolicy(Policy):
    def slate(self, rng, world, state, users, utility, pending, k):
        return _random_unconsumed(rng, state, users, k)


class OraclePolicy(Policy):
    def candidates(self, rng, world, state, users, utility, pending, k):
        top = topk_rows(utility, k)
        return top, np.where(top >= 0, np.take_along_axis(utility, np.maximum(top, 0), 1), -np.inf)

    def slate(self, rng, world, state, users, utility, pending, k):
        return topk_rows(utility, k)


class ModelPolicy(Policy):
    trains = True

    def __init__(self, settings: PolicySettings, seed: int) -> None:
        from longrec.models.registry import create_model

        params = dict(settings.params)
        params.setdefault("seed", seed)
        self.model = create_model(settings.model, params)

    def fit(self, logged: pd.DataFrame, world: World) -> None:
        from longrec.data.dataset import Dataset

        self.model.fit(Dataset(logged.copy(), world.items, world.users, name="simulation-log"))

    def candidates(self, rng, world, state, users, utility, pending, k):
        import warnings

        ids = world.user_ids[users]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # items unknown to the model are simply not recommended
            recs = self.model.recommend(users=ids, histories=pending, k=k, exclude_seen=True)
        row = pd.Index(ids).get_indexer(recs["user_id"].to_numpy())
        item = pd.Index(world.item_ids).get_indexer(recs["item_id"].to_numpy())
        col = recs["rank"].to_numpy() - 1
        top = np.full((len(users), k), -1, dtype=np.int64)
        score = np.full((len(users), k), -np.inf, dtype=np.float64)
        ok = (row >= 0) & (item >= 0)
        top[row[ok], col[ok]] = item[ok]
        score[row[ok], col[ok]] = recs["score"].to_numpy()[ok]
        return top, score

    def slate(self, rng, world, state, users, utility, pending, k):
        return self.candidates(rng, world, state, users, utility, pending, k)[0]


class Exploration(Policy):
    def __init__(self, base: Policy, settings) -> None:
        self.base, self.s = base, settings
        self.trains = base.trains

    def fit(self, logged, world):
        self.base.fit(logged, world)

    def slate(self, rng, world, state, users, utility, pending, k):
        if self.s.kind == "epsilon":
            top = self.base.slate(rng, world, state, users, utility, pending, k)
            rand = _random_unconsumed(rng, state, users, k, exclude=top)
            swap = (rng.random(top.shape) < self.s.epsilon) & (rand >= 0)
            return np.where(swap, rand, top)
        # softmax / Boltzmann over the candidate pool (Gumbel-top-k = sampling without replacement)
        cand, score = self.base.candidates(rng, world, state, users, utility, pending, max(k, self.s.pool))
        fin = np.isfinite(score)
        cnt = np.maximum(fin.sum(1, keepdims=True), 1)
        mean = np.where(fin, score, 0).sum(1, keepdims=True) / cnt
        var = np.where(fin, (score - mean) ** 2, 0).sum(1, keepdims=True) / cnt
        z = (score - mean) / (np.sqrt(var) + 1e-9)
        keys = np.where(fin, z / self.s.temperature + rng.gumbel(size=z.shape), -np.inf)
        pick = topk_rows(keys, k)
        return np.where(pick >= 0, np.take_along_axis(cand, np.maximum(pick, 0), 1), -1)


def make_policy(settings: PolicySettings, seed: int) -> Policy:
    if settings.model == "random":
        base: Policy = RandomPolicy()
    elif settings.model == "oracle":
        base = OraclePolicy()
    else:
        base = ModelPolicy(settings, seed)
    return Exploration(base, settings.exploration) if settings.exploration is not None else base
