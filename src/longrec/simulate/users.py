"""User behaviour, one step for all active users at once (no loop over users).

1. Effective utility of a slate item: base true utility (see world.py) minus boredom,
   ``boredom_weight * sum_g genre_j,g * satiation_i,g``; items the user already consumed
   cannot be chosen again.
2. Choice: multinomial logit over the slate plus a no-choice option of utility
   ``no_choice_utility`` with inverse temperature ``choice_beta`` (sampled by Gumbel-max).
3. Boredom/satiation (after SARDINE, Deffayet et al. 2023): consuming an item adds its genre
   mix to the user's satiation; satiation decays by ``boredom_recovery`` each step.
4. Interest drift (RecSim NG interest evolution, Mladenov et al. 2021): the interest vector
   moves a step ``drift_rate`` toward the consumed item's direction, keeping its norm.
5. Patience (after KuaiSim's leave/return models, Zhao et al. 2023): a slate without a choice
   costs ``patience_drop``; a choice restores ``patience_gain`` (capped at 1). At 0 the user
   leaves; each step a user who left returns with probability ``return_prob`` with full
   patience.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from longrec.simulate.world import World


@dataclass
class UserState:
    U: np.ndarray            # (n_users, d) current interests
    satiation: np.ndarray    # (n_users, n_genres)
    patience: np.ndarray     # (n_users,)
    active: np.ndarray       # (n_users,) bool
    consumed: np.ndarray     # (n_users, n_items) bool: logged so far (initial + simulated)
    sim_consumed: np.ndarray  # (n_users, n_items) bool: consumed during the simulation
    returns: np.ndarray      # (n_users,) number of returns so far

    @classmethod
    def initial(cls, world: World) -> UserState:
        n = world.n_users
        consumed = world.initial.toarray().astype(bool)
        return cls(U=world.U.copy(), satiation=np.zeros((n, world.genres.shape[1]), np.float32),
                   patience=np.ones(n, np.float32), active=np.ones(n, bool), consumed=consumed,
                   sim_consumed=np.zeros_like(consumed), returns=np.zeros(n, np.int64))

    def effective_utility(self, world: World, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Utility now (base minus boredom); consumed items -inf. items: None or (n, K)."""
        base = world.utility(self.U, users, items)
        bore = self.satiation[users] @ world.genres.T  # (n, n_items)
        w = world.settings.boredom_weight
        if items is None:
            u = base - w * bore
            u[self.consumed[users]] = -np.inf
        else:
            u = base - w * np.take_along_axis(bore, items, 1)
            u[np.take_along_axis(self.consumed[users], items, 1)] = -np.inf
        return u


def choose(rng: np.random.Generator, util: np.ndarray, beta: float, no_choice: float) -> np.ndarray:
    """MNL choice per row over the slate + no-choice; returns slate position or -1."""
    n, k = util.shape
    logits = np.concatenate([beta * util, np.full((n, 1), beta * no_choice, np.float32)], axis=1)
    g = rng.gumbel(size=logits.shape).astype(np.float32)
    pick = np.argmax(logits + g, axis=1)
    return np.where(pick == k, -1, pick)


def step_users(rng: np.random.Generator, world: World, state: UserState, users: np.ndarray,
               chosen_items: np.ndarray) -> dict[str, np.ndarray]:
    """Apply consumption, boredom, drift, patience, leaving and returning after a step.
    users: active users that got a slate; chosen_items: item index or -1 per user."""
    s = world.settings
    clicked = chosen_items >= 0
    cu, ci = users[clicked], chosen_items[clicked]
    state.consumed[cu, ci] = True
    state.sim_consumed[cu, ci] = True
    # boredom: every user's satiation recovers; consumers add their item's genre mix
    state.satiation *= (1.0 - s.boredom_recovery)
    state.satiation[cu] += world.genres[ci]
    # interest drift toward the consumed item's direction, norm kept
    if s.drift_rate > 0 and len(cu):
        u = state.U[cu]
        norm = np.linalg.norm(u, axis=1, keepdims=True)
        v = world.V[ci]
        v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9) * norm
        new = (1 - s.drift_rate) * u + s.drift_rate * v
        state.U[cu] = new / (np.linalg.norm(new, axis=1, keepdims=True) + 1e-9) * norm
    # patience, leaving
    p = state.patience[users]
    p = np.where(clicked, np.minimum(1.0, p + s.patience_gain), p - s.patience_drop)
    state.patience[users] = p
    left = users[p <= 1e-6]
    # returning (users who were away at the start of this step)
    away = np.flatnonzero(~state.active)
    back = away[rng.random(len(away)) < s.return_prob]
    state.active[left] = False
    state.active[back] = True
    state.patience[back] = 1.0
    state.returns[back] += 1
    return {"left": left, "returned": back, "n_away_before": np.int64(len(away))}
