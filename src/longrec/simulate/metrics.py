"""Long-term metrics, computed every step for every user group (vectorised; no user loop).

Per step, for the users of a group (all, gender=F, age=25-34, ...):

utility            mean true (effective) utility of the items shown to active users
oracle_utility     the same for the oracle's slate (top-K by true utility) in the same state
random_utility     mean true utility of the user's unconsumed items (a random slate's expectation)
utility_vs_oracle  (utility - random_utility) / (oracle_utility - random_utility): 0 random, 1 oracle
chosen_utility     mean true utility of the chosen items
welfare            sum of the chosen items' true utility over the group's users / group size:
                   users who chose nothing or left count 0, so churn is not hidden (the
                   per-active-user means above only see the users who stayed)
click_rate         share of active users who chose an item
active             share of the group's users who are active (retention)
return_rate        share of users away at the start of the step who came back
jaccard_consumed   mean Jaccard of sampled pairs' sets of items consumed in the simulation
                   (T-RECS InteractionSimilarity; Chaney et al. 2018 homogenisation)
jaccard_shown      mean Jaccard of sampled pairs' current slates (T-RECS RecSimilarity)
inter_diversity    mean cosine distance between sampled pairs' consumption centroids in the true
                   item space (Anwar et al. 2024: low = homogenised)
intra_diversity    mean pairwise cosine distance between a user's consumed items (Anwar et al.)
exposure_gini      Gini of how often each catalogue item was shown so far (cumulative)
coverage           share of the catalogue shown at least once so far
novelty            mean -log2(initial popularity share) of chosen items (Zhou et al. 2010)
consumed_popularity mean initial popularity share of chosen items
rec_popularity     mean popularity share (in the data logged so far) of shown items
                   (Mansoury et al. 2020 popularity bias amplification)
calibration_kl     mean KL(initial genre mix || genre mix consumed in the simulation), α = 0.01
                   smoothing (Steck 2018); users with at least one simulated choice
"""

from __future__ import annotations

import numpy as np

from longrec.metrics.ranking import gini
from longrec.simulate.users import UserState
from longrec.simulate.world import World

METRICS = ("utility", "oracle_utility", "random_utility", "utility_vs_oracle", "chosen_utility", "welfare", "click_rate",
           "active", "return_rate", "jaccard_consumed", "jaccard_shown", "inter_diversity", "intra_diversity",
           "exposure_gini", "coverage", "novelty", "consumed_popularity", "rec_popularity", "calibration_kl")
_EPS = 1e-12


class MetricTracker:
    def __init__(self, world: World, state: UserState, rng: np.random.Generator, n_pairs: int) -> None:
        self.world = world
        self.names = list(world.groups)
        self.M = np.stack([world.groups[g] for g in self.names]).astype(np.float64)  # (G, n_users)
        self.n_users = world.n_users
        pop0 = np.asarray(world.initial.sum(0)).ravel()
        self.pop0_share = np.maximum(pop0, 1) / world.n_users
        self.logged_count = pop0.astype(np.float64)
        self.Vhat = world.V / (np.linalg.norm(world.V, axis=1, keepdims=True) + 1e-9)
        self.vec_sum = np.zeros((world.n_users, world.V.shape[1]), np.float64)
        self.n_sim = np.zeros(world.n_users, np.int64)
        g0 = np.asarray(world.initial @ world.genres, dtype=np.float64)
        self.p0 = g0 / np.maximum(g0.sum(1, keepdims=True), _EPS)
        self.genre_sum = np.zeros_like(self.p0)
        self.exposure = np.zeros((len(self.names), world.n_items), np.float64)
        # fixed pairs of distinct users inside each group
        self.pairs = []
        for g in self.names:
            members = np.flatnonzero(world.groups[g])
            if len(members) < 2:
                self.pairs.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            a = rng.integers(0, len(members), n_pairs)
            b = (a + rng.integers(1, len(members), n_pairs)) % len(members)
            self.pairs.append((members[a], members[b]))
        self.pair_inter = [np.zeros(len(a), np.int64) for a, _ in self.pairs]

    def _group_mean(self, v: np.ndarray) -> np.ndarray:
        ok = np.isfinite(v)
        num = self.M @ np.where(ok, v, 0.0)
        den = self.M @ ok.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)

    def step(self, state: UserState, users: np.ndarray, slates: np.ndarray, slate_util: np.ndarray,
             full_util: np.ndarray, chosen: np.ndarray, k: int, event: dict) -> dict[str, np.ndarray]:
        """Update the cumulative trackers with this step and return {metric: (G,) values}.
        Call after `step_users` (state holds this step's choices)."""
        n = self.n_users
        nanv = lambda: np.full(n, np.nan)  # noqa: E731
        valid = slates >= 0
        fin_slate = np.where(valid & np.isfinite(slate_util), slate_util, np.nan)
        util, orc, rnd, chu = nanv(), nanv(), nanv(), nanv()
        with np.errstate(invalid="ignore"), _quiet():
            util[users] = np.nanmean(fin_slate, axis=1)
            fin = np.isfinite(full_util)
            rnd[users] = np.where(fin, full_util, 0.0).sum(1) / np.maximum(fin.sum(1), 1)
            kk = min(k, full_util.shape[1])
            top = -np.partition(-full_util, kk - 1, axis=1)[:, :kk] if len(users) else np.zeros((0, kk))
            orc[users] = np.nanmean(np.where(np.isfinite(top), top, np.nan), axis=1)
        clicked = chosen >= 0
        ci = chosen[clicked]
        cu = users[clicked]
        chu[cu] = np.take_along_axis(slate_util, np.argmax(slates == chosen[:, None], axis=1)[:, None], 1)[clicked, 0]
        click = nanv()
        click[users] = clicked.astype(np.float64)
        # popularity / novelty of choices and of slates (before this step's choices are counted)
        nov, cpop, rpop = nanv(), nanv(), nanv()
        nov[cu] = -np.log2(self.pop0_share[ci])
        cpop[cu] = self.pop0_share[ci]
        with _quiet():
            rpop[users] = np.nanmean(np.where(valid, self.logged_count[np.maximum(slates, 0)] / n, np.nan), axis=1)
        np.add.at(self.logged_count, ci, 1.0)
        # consumption trackers
        np.add.at(self.vec_sum, cu, self.Vhat[ci])
        self.n_sim[cu] += 1
        np.add.at(self.genre_sum, cu, self.world.genres[ci])
        m = self.n_sim
        with np.errstate(invalid="ignore", divide="ignore"):
            intra = np.where(m >= 2, 1.0 - ((self.vec_sum ** 2).sum(1) - m) / (m * (m - 1.0)), np.nan)
            q = self.genre_sum / np.maximum(self.genre_sum.sum(1, keepdims=True), _EPS)
            q = 0.99 * q + 0.01 * self.p0
            kl_terms = np.where(self.p0 > 0, self.p0 * np.log(np.maximum(self.p0, _EPS) / np.maximum(q, _EPS)), 0.0)
            calib = np.where(m >= 1, kl_terms.sum(1), np.nan)
        active = state.active.astype(np.float64)
        welfare = np.zeros(n)
        welfare[cu] = chu[cu]
        out = {
            "utility": self._group_mean(util), "oracle_utility": self._group_mean(orc),
            "random_utility": self._group_mean(rnd), "chosen_utility": self._group_mean(chu),
            "click_rate": self._group_mean(click), "active": self._group_mean(active),
            "welfare": self._group_mean(welfare),
            "novelty": self._group_mean(nov), "consumed_popularity": self._group_mean(cpop),
            "rec_popularity": self._group_mean(rpop), "intra_diversity": self._group_mean(intra),
            "calibration_kl": self._group_mean(calib),
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            out["utility_vs_oracle"] = (out["utility"] - out["random_utility"]) / (out["oracle_utility"] - out["random_utility"])
        away = np.zeros(n)
        # away at the start of the step = away now, minus who left this step, plus who came back
        away[np.flatnonzero(~state.active)] = 1.0
        ret = np.zeros(n)
        ret[event["returned"]] = 1.0
        away[event["returned"]] = 1.0
        away[event["left"]] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out["return_rate"] = np.where(self.M @ away > 0, (self.M @ ret) / (self.M @ away), np.nan)
        # exposure (cumulative, per group)
        full_slate = np.full((n, slates.shape[1]), -1, np.int64)
        full_slate[users] = slates
        for gi in range(len(self.names)):
            s = full_slate[self.M[gi] > 0]
            s = s[s >= 0]
            self.exposure[gi] += np.bincount(s, minlength=self.world.n_items)
        out["exposure_gini"] = gini(self.exposure)
        out["coverage"] = (self.exposure > 0).mean(1)
        # pair metrics
        jc, js, inter = (np.full(len(self.names), np.nan) for _ in range(3))
        # Jaccard of consumed sets, updated incrementally: with new items x (of a) and y (of b),
        # |A'∩B'| = |A∩B| + [x ∈ B'] + [y ∈ A'] - [x = y]
        C = state.sim_consumed
        sizes = self.n_sim
        clk = np.full(n, -1, np.int64)
        clk[cu] = ci
        cent = self.vec_sum / np.maximum(np.linalg.norm(self.vec_sum, axis=1, keepdims=True), _EPS)
        for gi, (a, b) in enumerate(self.pairs):
            if not len(a):
                continue
            xa, xb = clk[a], clk[b]
            ha, hb = xa >= 0, xb >= 0
            self.pair_inter[gi] += (ha & C[b, np.maximum(xa, 0)]).astype(np.int64)
            self.pair_inter[gi] += (hb & C[a, np.maximum(xb, 0)]).astype(np.int64)
            self.pair_inter[gi] -= (ha & (xa == xb)).astype(np.int64)
            inter_ab = self.pair_inter[gi]
            union = sizes[a] + sizes[b] - inter_ab
            if (union > 0).any():
                jc[gi] = float(np.mean(inter_ab[union > 0] / union[union > 0]))
            both = (full_slate[a, 0] >= 0) & (full_slate[b, 0] >= 0)
            if both.any():
                sa, sb = full_slate[a[both]], full_slate[b[both]]
                common = ((sa[:, :, None] == sb[:, None, :]) & (sa[:, :, None] >= 0)).sum((1, 2))
                un = (sa >= 0).sum(1) + (sb >= 0).sum(1) - common
                js[gi] = float(np.mean(common / np.maximum(un, 1)))
            okc = (self.n_sim[a] > 0) & (self.n_sim[b] > 0)
            if okc.any():
                inter[gi] = float(np.mean(1.0 - (cent[a[okc]] * cent[b[okc]]).sum(1)))
        out["jaccard_consumed"], out["jaccard_shown"], out["inter_diversity"] = jc, js, inter
        return out


class _quiet:
    """Silence 'mean of empty slice' for users/groups with nothing to average."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
