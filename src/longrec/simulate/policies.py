"""Policies: who fills the slates.

* `ModelPolicy`: any registered longrec recommender, used only through its public protocol:
  `fit(Dataset of everything logged)` every R steps, and between retrainings
  `recommend(users, histories=<choices since the last fit>, k, exclude_seen=True)`, so new
  choices are excluded (and used as history by history-aware models) without refitting.
* `RandomPolicy`: K distinct unconsumed items uniformly at random.
* `OraclePolicy`: the top-K items by the user's current true (effective) utility; myopic.
* `ModelPolicy` with `rerank`: the model's top-`candidates` re-ranked by a longrec.rerank spec
  (`"calibrated:0.4"`, `"mmr:0.3"` ...), exactly as `longrec recommend --rerank` does.
* `SatiationAware`: wraps a model policy; keeps per-user genre counts of the clicks it observed
  (decayed each step) and subtracts `weight` x (candidate genre mix . counts) from the per-user
  z-scored model score: a long-term-aware policy that rests over-consumed genres. Optionally
  (`impression_weight`) it also discounts items the user was shown and skipped (a decayed
  per-user count), so the slate rotates through the user's candidates instead of repeating
  them, and (`crowd_weight`) items many users already chose in the run (log of the share),
  steering users who would all take the same item toward their own next-best ones.
* `LinearBandit`: wraps a model policy; a contextual bandit trained in the simulator on the clicks
  it observes. Each user's top-`pool` base candidates get features (base score, the user's
  genre satiation at two time scales, skipped impressions, the run's crowd share, logged
  popularity) and are ranked by a Thompson draw of a Bayesian linear click model: global
  weights plus a per-user deviation shrunk toward them, updated after every step.
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

    def observe(self, world: World, users: np.ndarray, chosen: np.ndarray, slates: np.ndarray | None = None) -> None:
        """Called after every step with the users who got a slate, their choice (-1: none) and the
        slates they were shown."""

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

    def __init__(self, settings: PolicySettings, seed: int, epochs: int | None = None) -> None:
        from longrec.models.registry import create_model, get_model_class

        params = dict(settings.params)
        params.setdefault("seed", seed)
        if epochs is not None and "epochs" in get_model_class(settings.model).Config.model_fields:
            params.setdefault("epochs", epochs)  # the simulation's fixed budget for trained models
        self.model = create_model(settings.model, params)
        self.rerank = settings.rerank
        self.n_candidates = settings.candidates
        self.fold_in = settings.fold_in
        self._ctx = None

    def fit(self, logged: pd.DataFrame, world: World) -> None:
        from longrec.data.dataset import Dataset

        self.model.fit(Dataset(logged.copy(), world.items, world.users, name="simulation-log"))
        self._ctx = None

    def _recommend(self, ids, histories, k: int) -> pd.DataFrame:
        if self.rerank is None:
            return self.model.recommend(users=ids, histories=histories, k=k, exclude_seen=True)
        from longrec.rerank import RerankContext, recommend_reranked

        if self._ctx is None:
            self._ctx = RerankContext.from_model(self.model)
        return recommend_reranked(self.model, users=ids, histories=histories, k=k, spec=self.rerank,
                                  n_candidates=max(self.n_candidates, k), context=self._ctx, exclude_seen=True)

    def candidates(self, rng, world, state, users, utility, pending, k):
        import warnings

        ids = world.user_ids[users]
        # without fold-in the model does not see today's clicks: ask for enough extra items to
        # drop the ones the user consumed since the last fit (the world never offers them again)
        extra = 0 if self.fold_in or pending is None else int(pending["user_id"].value_counts().max())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # items unknown to the model are simply not recommended
            recs = self._recommend(ids, pending if self.fold_in else None, k + extra)
        row = pd.Index(ids).get_indexer(recs["user_id"].to_numpy())
        item = pd.Index(world.item_ids).get_indexer(recs["item_id"].to_numpy())
        col = recs["rank"].to_numpy() - 1
        top = np.full((len(users), k + extra), -1, dtype=np.int64)
        score = np.full((len(users), k + extra), -np.inf, dtype=np.float64)
        ok = (row >= 0) & (item >= 0)
        top[row[ok], col[ok]] = item[ok]
        score[row[ok], col[ok]] = recs["score"].to_numpy()[ok]
        if extra:
            seen = (top >= 0) & state.consumed[users[:, None], np.maximum(top, 0)]
            score = np.where(seen | (top < 0), -np.inf, score)
            order = np.argsort(~np.isfinite(score), axis=1, kind="stable")[:, :k]  # keep model order
            top, score = np.take_along_axis(top, order, 1), np.take_along_axis(score, order, 1)
            top = np.where(np.isfinite(score), top, -1)
        return top, score

    def slate(self, rng, world, state, users, utility, pending, k):
        return self.candidates(rng, world, state, users, utility, pending, k)[0]


def _zscore(score: np.ndarray) -> np.ndarray:
    fin = np.isfinite(score)
    cnt = np.maximum(fin.sum(1, keepdims=True), 1)
    mean = np.where(fin, score, 0).sum(1, keepdims=True) / cnt
    var = np.where(fin, (score - mean) ** 2, 0).sum(1, keepdims=True) / cnt
    return np.where(fin, (score - mean) / (np.sqrt(var) + 1e-9), -np.inf)


class _Wrapper(Policy):
    def __init__(self, base: Policy, settings) -> None:
        self.base, self.s = base, settings
        self.trains = base.trains

    def fit(self, logged, world):
        self.base.fit(logged, world)

    def observe(self, world, users, chosen, slates=None):
        self.base.observe(world, users, chosen, slates)


class SatiationAware(_Wrapper):
    """Long-term-aware re-scoring with the policy's own estimate of genre satiation."""

    pool = 100
    sat: np.ndarray | None = None
    skipped: np.ndarray | None = None   # (n_users, n_items) decayed count of shown-but-not-chosen
    crowd: np.ndarray | None = None     # (n_items,) users who chose the item during the run

    def observe(self, world, users, chosen, slates=None):
        self.base.observe(world, users, chosen, slates)
        if self.sat is None:
            self.sat = np.zeros((world.n_users, world.genres.shape[1]), np.float32)
            self.crowd = np.zeros(world.n_items, np.float32)
        self.sat *= (1.0 - self.s.decay)
        c = chosen >= 0
        self.sat[users[c]] += world.genres[chosen[c]]
        np.add.at(self.crowd, chosen[c], 1.0)
        if self.s.impression_weight > 0 and slates is not None and len(users):
            if self.skipped is None:
                self.skipped = np.zeros((world.n_users, world.n_items), np.float32)
            if self.s.impression_decay > 0:
                self.skipped *= (1.0 - self.s.impression_decay)
            rows = np.repeat(users, slates.shape[1])
            cols = slates.ravel()
            ok = (cols >= 0) & (cols != np.repeat(chosen, slates.shape[1]))
            np.add.at(self.skipped, (rows[ok], cols[ok]), 1.0)

    def candidates(self, rng, world, state, users, utility, pending, k):
        cand, score = self.base.candidates(rng, world, state, users, utility, pending, max(k, self.pool))
        z = _zscore(score)
        idx = np.maximum(cand, 0)
        if self.sat is not None:
            pen = np.einsum("ng,nkg->nk", self.sat[users], world.genres[idx])
            z = z - self.s.weight * pen
            if self.s.crowd_weight > 0:
                z = z - self.s.crowd_weight * np.log1p(self.crowd[idx] / max(1.0, len(users)) * 100.0)
        if self.skipped is not None:
            z = z - self.s.impression_weight * self.skipped[users[:, None], idx]
        pick = topk_rows(np.where(cand >= 0, z, -np.inf), k)
        ok = pick >= 0
        return (np.where(ok, np.take_along_axis(cand, np.maximum(pick, 0), 1), -1),
                np.where(ok, np.take_along_axis(z, np.maximum(pick, 0), 1), -np.inf))

    def slate(self, rng, world, state, users, utility, pending, k):
        return self.candidates(rng, world, state, users, utility, pending, k)[0]


class LinearBandit(_Wrapper):
    """Thompson sampling over a ridge-regression click model (LinTS with a per-user layer).

    Observations: every shown slot whose item was among the candidates the bandit scored,
    reward 1 when the user chose it, else 0. Global posterior N(A^-1 b, s2 A^-1) with
    A = prior_n I + sum x x', b = prior_n theta0 + sum r x, s2 = p(1 - p) at the observed click
    rate p. Per user: theta_u = (user_prior I + X_u'X_u)^-1 (user_prior theta_g + X_u'r_u), theta_g
    a per-user draw of the global posterior (scaled by ``noise``); no draw before any feedback,
    so the first slates are the base model's."""

    FEATURES = ("bias", "base_score", "satiation_fast", "satiation_slow", "skipped", "crowd", "log_popularity")
    PRIOR_N = 100.0  # pseudo-observations per unit of `prior`

    def __init__(self, base: Policy, settings) -> None:
        super().__init__(base, settings)
        d = len(self.FEATURES)
        # prior mean: the base model's ranking (click rate ~ 5 %, +3 points per std of the base score)
        self.theta0 = np.zeros(d)
        self.theta0[0], self.theta0[1] = 0.05, 0.03
        self.A = self.s.prior * self.PRIOR_N * np.eye(d)
        self.b = self.A @ self.theta0
        self.n_obs, self.n_clicks = 0, 0
        self.uA: np.ndarray | None = None   # (n_users, d, d) per-user X'X
        self.ub: np.ndarray | None = None   # (n_users, d) per-user X'r
        self.sat_fast = self.sat_slow = self.skipped = self.crowd = self.logpop = None
        self._last: tuple | None = None     # (users, candidates, features) of the last slate call
        # features left out of the model stay 0 (their weight keeps its prior mean, 0)
        self._mask = np.array([f in ("bias", "base_score") or f in settings.features for f in self.FEATURES], float)

    @property
    def weights(self) -> np.ndarray:
        """Posterior mean of the global weights (one per FEATURES entry)."""
        return np.linalg.solve(self.A, self.b)

    def learned_weights(self) -> dict[str, float]:
        """The global weights' posterior mean by feature name, rounded (for run records)."""
        return {f: round(float(v), 5) for f, v in zip(self.FEATURES, self.weights)}

    def _init_state(self, world: World) -> None:
        d = len(self.FEATURES)
        self.sat_fast = np.zeros((world.n_users, world.genres.shape[1]), np.float32)
        self.sat_slow = np.zeros_like(self.sat_fast)
        self.skipped = np.zeros((world.n_users, world.n_items), np.float32)
        self.crowd = np.zeros(world.n_items, np.float32)
        pop = np.log1p(np.asarray(world.initial.sum(0)).ravel().astype(np.float64))
        self.logpop = ((pop - pop.mean()) / (pop.std() + 1e-9)).astype(np.float32)
        self.uA = np.zeros((world.n_users, d, d))
        self.ub = np.zeros((world.n_users, d))

    def _features(self, world, users, cand, score) -> np.ndarray:
        idx = np.maximum(cand, 0)
        g = world.genres[idx]                                          # (n, P, G)
        z = np.where(np.isfinite(score), _zscore(score), 0.0)
        share = self.crowd[idx] / max(1.0, len(users)) * 100.0
        x = np.stack([np.ones(cand.shape), z,
                      np.einsum("ng,npg->np", self.sat_fast[users], g),
                      np.einsum("ng,npg->np", self.sat_slow[users], g),
                      self.skipped[users[:, None], idx], np.log1p(share), self.logpop[idx]], axis=-1)
        return x.astype(np.float64) * self._mask

    def _user_weights(self, rng, users: np.ndarray) -> np.ndarray:
        d = len(self.FEATURES)
        mean = self.weights
        if self.n_obs and self.s.noise > 0:
            p = min(max(self.n_clicks / self.n_obs, 1e-3), 0.5)
            cov = p * (1 - p) * np.linalg.inv(self.A)
            chol = np.linalg.cholesky((cov + cov.T) / 2 + 1e-12 * np.eye(d))
            tg = mean[None, :] + self.s.noise * rng.standard_normal((len(users), d)) @ chol.T
        else:
            tg = np.repeat(mean[None, :], len(users), 0)
        lam = self.s.user_prior
        A = self.uA[users] + lam * np.eye(d)[None]
        b = self.ub[users] + lam * tg
        return np.linalg.solve(A, b[..., None])[..., 0]

    def candidates(self, rng, world, state, users, utility, pending, k):
        if self.sat_fast is None:
            self._init_state(world)
        cand, score = self.base.candidates(rng, world, state, users, utility, pending, max(k, self.s.pool))
        x = self._features(world, users, cand, score)
        theta = self._user_weights(rng, users)
        val = np.einsum("npd,nd->np", x, theta)
        if self.s.crowd_weight > 0:
            ok = cand >= 0
            spread = np.sqrt(np.where(ok, (val - np.where(ok, val, 0).sum(1, keepdims=True)
                                           / np.maximum(ok.sum(1, keepdims=True), 1)) ** 2, 0).sum(1, keepdims=True)
                             / np.maximum(ok.sum(1, keepdims=True), 1))
            share = self.crowd[np.maximum(cand, 0)] / max(1.0, len(users)) * 100.0
            val = val - self.s.crowd_weight * (spread + 1e-12) * np.log1p(share)
        val = np.where(cand >= 0, val, -np.inf)
        self._last = (users.copy(), cand, x)
        pick = topk_rows(val, k)
        ok = pick >= 0
        return (np.where(ok, np.take_along_axis(cand, np.maximum(pick, 0), 1), -1),
                np.where(ok, np.take_along_axis(val, np.maximum(pick, 0), 1), -np.inf))

    def slate(self, rng, world, state, users, utility, pending, k):
        return self.candidates(rng, world, state, users, utility, pending, k)[0]

    def observe(self, world, users, chosen, slates=None):
        self.base.observe(world, users, chosen, slates)
        if self.sat_fast is None:
            self._init_state(world)
        if slates is not None and self._last is not None and len(users) and np.array_equal(self._last[0], users):
            _, cand, x = self._last
            hit = (slates[:, :, None] == cand[:, None, :]) & (slates[:, :, None] >= 0)   # (n, K, P)
            shown = hit.any(2)
            pos = hit.argmax(2)
            xs = np.take_along_axis(x, pos[..., None], 1)                                 # (n, K, d)
            r = (slates == chosen[:, None]).astype(np.float64) * shown
            xs = xs * shown[..., None]
            self.A += np.einsum("nkd,nke->de", xs, xs)
            self.b += np.einsum("nkd,nk->d", xs, r)
            np.add.at(self.uA, users, np.einsum("nkd,nke->nde", xs, xs))
            np.add.at(self.ub, users, np.einsum("nkd,nk->nd", xs, r))
            self.n_obs += int(shown.sum())
            self.n_clicks += int(r.sum())
        self._last = None
        # feature state after this step's feedback
        c = chosen >= 0
        self.sat_fast *= (1.0 - self.s.decay)
        self.sat_slow *= (1.0 - self.s.slow_decay)
        self.sat_fast[users[c]] += world.genres[chosen[c]]
        self.sat_slow[users[c]] += world.genres[chosen[c]]
        np.add.at(self.crowd, chosen[c], 1.0)
        if slates is not None and len(users):
            if self.s.skip_decay > 0:
                self.skipped *= (1.0 - self.s.skip_decay)
            rows = np.repeat(users, slates.shape[1])
            cols = slates.ravel()
            ok = (cols >= 0) & (cols != np.repeat(chosen, slates.shape[1]))
            np.add.at(self.skipped, (rows[ok], cols[ok]), 1.0)


class Exploration(_Wrapper):

    def slate(self, rng, world, state, users, utility, pending, k):
        if self.s.kind == "epsilon":
            top = self.base.slate(rng, world, state, users, utility, pending, k)
            rand = _random_unconsumed(rng, state, users, k, exclude=top)
            swap = (rng.random(top.shape) < self.s.epsilon) & (rand >= 0)
            return np.where(swap, rand, top)
        # softmax / Boltzmann over the candidate pool (Gumbel-top-k = sampling without replacement)
        cand, score = self.base.candidates(rng, world, state, users, utility, pending, max(k, self.s.pool))
        fin = np.isfinite(score)
        z = np.where(fin, _zscore(score), 0.0)
        keys = np.where(fin, z / self.s.temperature + rng.gumbel(size=z.shape), -np.inf)
        pick = topk_rows(keys, k)
        return np.where(pick >= 0, np.take_along_axis(cand, np.maximum(pick, 0), 1), -1)


def make_policy(settings: PolicySettings, seed: int, epochs: int | None = None) -> Policy:
    if settings.model == "random":
        base: Policy = RandomPolicy()
    elif settings.model == "oracle":
        base = OraclePolicy()
    else:
        base = ModelPolicy(settings, seed, epochs)
    if settings.satiation is not None:
        base = SatiationAware(base, settings.satiation)
    if settings.bandit is not None:
        base = LinearBandit(base, settings.bandit)
    return Exploration(base, settings.exploration) if settings.exploration is not None else base
