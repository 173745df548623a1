"""lm-linear-dp: a linear model in the language-model item space, fitted in closed form and
made differentially private by perturbing its sufficient statistics once.

    t_i     the item's text embedding (longrec.lm), centred, projected on its top `dim`
            principal components and L2-normalised                     (public: item texts)
    φ(u)    = clip_C([Σ_{i∈H_u} t_i / √|H_u| ; a·x̂_u ; β])  the user's text profile, optionally their own
                                                          history (weight a = `item_weight`), and a constant
                                                          β, scaled down to L2 norm ≤ C (`clip`)
    score   s(u, i) = φ(u)ᵀ W_i
    W       = (S1 + λI)⁻¹ S2,    S1 = Σ_u φ(u) φ(u)ᵀ,    S2 = Σ_u φ(u) x̂_uᵀ,   x̂_u = x_u / √|H_u|

W is the ridge regression ||X̂ − ΦW||² + λ||W||² of every item's (row-normalised) interaction
column on the users' text profiles: a two-tower model whose user tower is fixed (the text
profile of the history) and whose item vectors are learned. The constant β makes W's last
row a popularity term, so no separate popularity release is needed. With `item_weight` a > 0 the
profile also holds the history itself, so W gains an item-item block (a ridge item-item model
like EASE, without its zero diagonal) beside the text block: the collaborative and the content
signal are fitted jointly in one solve. It costs a dense (n_items + dim + 1)² system, like EASE.
Clipping bounds the whole profile, so the privacy analysis below is unchanged.

Differential privacy (user level: adding or removing one user's whole history). A user adds
φφᵀ (Frobenius norm ≤ C²) to S1 and φx̂ᵀ (≤ C, as ‖x̂‖ = 1) to S2, so the pair has L2
sensitivity Δ = √(C⁴ + C²). The pair is released once with Gaussian noise of standard deviation
σΔ (S1's upper triangle, mirrored), σ calibrated to (ε, δ) by the analytic Gaussian mechanism
(Balle & Wang, ICML 2018), which is exact for a single release. Everything after the release
(projection of S1 on the PSD cone, the solve) is post-processing. This is sufficient-statistics
perturbation (as in DP linear regression, e.g. Wang, AISTATS 2018): one release instead of many
noisy gradient steps, which is why it loses less accuracy than DP-SGD at the same ε.

Cold items (`cold_items`, non-private fits only): an item nobody interacted with has an
all-zero column in S2, so its vector is predicted from its text instead, by a ridge map fitted
on the other items' (text, W_i) pairs. Under DP, which items had no interactions is itself
private. The release gives only a noisy guess (S2's β row). Tried with a 3σ threshold, it
mislabelled rare items as cold and cost ml-100k P1 0.05 NDCG@10 at ε = 1, so private fits keep
the released columns.

Treated as public (not covered by the guarantee): the item texts and the item vocabulary, the
number of users, and hyper-parameter choices made on validation data. The guarantee covers the
learned arrays (T, W), not the model folder: like every longrec model it also stores the
training histories and popularity, for seen-item exclusion and fold-in (docs/privacy.md).
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from longrec.errors import ConfigError
from longrec.models._lm_items import ItemTextConfig
from longrec.models.base import HistoryBatch, Recommender
from longrec.privacy.noise import REPRODUCIBLE_HELP, noise_seed
from longrec.privacy.guarantee import PrivacyGuarantee, privacy_record


class DPLinearConfig(ItemTextConfig):
    # defaults: the ε = 8 choice on ml-100k P1 valid; without DP, dim 256 / l2 10 / clip 2 did best there
    dim: int = Field(16, ge=1, description="principal components of the item text embeddings kept")
    l2: float = Field(10.0, gt=0, description="ridge penalty λ (raise it as the noise grows)")
    clip: float = Field(0.5, gt=0, description="C: user profiles are scaled down to L2 norm <= C")
    bias: float = Field(0.5, ge=0, description="β: the constant coordinate of every profile (popularity term)")
    cold_items: bool = Field(True, description="non-private fits: give items without training interactions "
                             "a vector predicted from their text (a ridge map fitted on the other items' W; "
                             "needs bias > 0, whose row of S2 tells which items had interactions)")
    cold_l2: float = Field(100.0, gt=0, description="ridge penalty of that text -> vector map")
    cold_metadata: float = Field(0.0, ge=0, description="weight of the item table's own features beside the "
                                 "text embedding in that map: content-tfidf's TF-IDF rows (every word of "
                                 "every text column: genres, year, author, ...; plus `cold_value_columns` "
                                 "as whole values). 0 = the text embedding only")
    cold_value_columns: list[str] = Field(default_factory=list, description="item columns whose whole value "
                                          "is one more metadata feature (e.g. ['author']: 'same author')")
    item_weight: float = Field(0.0, ge=0, description="a: weight of the user's own history x̂_u as extra profile "
                               "coordinates (an item-item block in W, fitted jointly with the text block; "
                               "dense n_items² memory). 0 = text profile only (the default here; lm-linear "
                               "uses 4)")
    max_items: int = Field(30_000, description="with item_weight > 0: refuse larger catalogues (dense n_items² memory)")
    dp_epsilon: float | None = Field(None, gt=0, description="target epsilon; None = no differential privacy")
    dp_delta: float | None = Field(None, gt=0, lt=1, description="delta; default 1/#training users")
    reproducible_noise: bool = Field(False, description=REPRODUCIBLE_HELP)

    @model_validator(mode="before")
    @classmethod
    def _one_process(cls, values):
        from longrec.models._data_parallel import refuse_workers
        return refuse_workers(values, "lm-linear(-dp)", "a closed-form fit: one pass over the data, no training loop")


def gaussian_sigma(epsilon: float, delta: float) -> float:
    """The smallest noise multiplier σ (noise std / L2 sensitivity) for which one Gaussian
    release is (ε, δ)-DP, from the exact privacy profile of the Gaussian mechanism (Balle &
    Wang 2018, Theorem 8): δ(ε) = Φ(1/(2σ) − εσ) − e^ε Φ(−1/(2σ) − εσ)."""
    from scipy.stats import norm

    def delta_of(s: float) -> float:
        # e^ε Φ(x) in log space: large ε would overflow e^ε
        return float(norm.cdf(0.5 / s - epsilon * s) - math.exp(min(epsilon + norm.logcdf(-0.5 / s - epsilon * s), 700.0)))

    lo, hi = 1e-3, 1.0
    while delta_of(hi) > delta:
        lo, hi = hi, 2 * hi
        if hi > 1e6:
            raise ConfigError(f"dp_epsilon={epsilon}, dp_delta={delta}: no usable noise level; raise epsilon or delta.")
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


def _unit_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    """x̂_u = x_u / √|H_u| (binary rows -> L2 norm 1; empty rows stay empty)."""
    n = np.asarray(X.sum(1)).ravel()
    return sp.diags(1.0 / np.sqrt(np.maximum(n, 1.0))) @ sp.csr_matrix(X, dtype=np.float64)


def _clipped_profiles(Xh: sp.csr_matrix, T: np.ndarray, clip: float, bias: float, item_weight: float = 0.0) -> np.ndarray:
    parts = [np.asarray(Xh @ T, dtype=np.float64)]
    if item_weight > 0:
        parts.append(item_weight * Xh.toarray())
    P = np.hstack([*parts, np.full((Xh.shape[0], 1), bias)])
    norm = np.linalg.norm(P, axis=1, keepdims=True)
    return P * np.minimum(1.0, clip / np.maximum(norm, 1e-12))


def profiles(X: sp.csr_matrix, T: np.ndarray, clip: float, bias: float, item_weight: float = 0.0) -> np.ndarray:
    """φ for each row of the binary history matrix X: (n, dim [+ n_items] + 1), L2 norm <= clip."""
    return _clipped_profiles(_unit_rows(X), T, clip, bias, item_weight)


def sufficient_statistics(X: sp.csr_matrix, T: np.ndarray, clip: float, bias: float,
                          item_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """S1 = Σ_u φ_u φ_uᵀ (p² with p = len(φ)) and S2 = Σ_u φ_u x̂_uᵀ (p x n_items); sums over
    users, so one user moves the pair by at most √(clip⁴ + clip²) in L2."""
    Xh = _unit_rows(X)
    P = _clipped_profiles(Xh, T, clip, bias, item_weight)
    return P.T @ P, np.asarray((Xh.T @ P).T)


def ridge_predict(Zw, Y: np.ndarray, Zc, l2: float) -> np.ndarray:
    """Zc A with A = argmin ||Zw A - Y||² + l2 ||A||²: primal (features² system) when there are
    fewer features than rows, else dual (Zc Zwᵀ (Zw Zwᵀ + l2 I)⁻¹ Y, rows² system). Zw, Zc: dense
    or sparse feature rows; Y: (rows, outputs)."""
    Zw, Zc = sp.csr_matrix(Zw, dtype=np.float64), sp.csr_matrix(Zc, dtype=np.float64)
    if Zw.shape[1] <= Zw.shape[0]:
        Zd = Zw.toarray()
        A = np.linalg.solve(Zd.T @ Zd + l2 * np.eye(Zd.shape[1]), Zd.T @ Y)
        return np.asarray(Zc @ A)
    K = (Zw @ Zw.T).toarray()
    alpha = np.linalg.solve(K + l2 * np.eye(K.shape[0]), Y)
    return np.asarray((Zc @ Zw.T) @ alpha)


class DPLinear(PrivacyGuarantee, Recommender):
    """Closed-form linear model over LM item embeddings with optional user-level DP
    (sufficient-statistics perturbation); see the module docstring."""

    name = "lm-linear-dp"
    Config = DPLinearConfig

    def _profiles(self, X: sp.csr_matrix) -> np.ndarray:
        return profiles(X, self.T_, self.config.clip, self.config.bias, self.config.item_weight)

    def _fit(self, X, train, valid) -> None:
        from longrec.models._lm_items import model_item_text

        cfg = self.config
        if cfg.item_weight > 0 and X.shape[1] > cfg.max_items:
            raise ConfigError(f"{self.name} with item_weight > 0 solves a dense {X.shape[1]:,}-item system; "
                              f"set item_weight = 0 (text profile only) or raise max_items if you have the memory.")
        t0 = time.perf_counter()
        text = model_item_text(self)
        self.fit_info_["text_seconds"] = round(time.perf_counter() - t0, 2)
        text = text.astype(np.float64)
        tc = text - text.mean(0, keepdims=True)
        _, _, vt = np.linalg.svd(tc, full_matrices=False)
        d = min(cfg.dim, vt.shape[0])
        T = tc @ vt[:d].T
        self.T_ = (T / np.maximum(np.linalg.norm(T, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        S1, S2 = sufficient_statistics(X, self.T_, cfg.clip, cfg.bias, cfg.item_weight)
        n_users = X.shape[0]
        if cfg.dp_epsilon is None:
            self.privacy_ = {"private": False}
        else:
            delta = cfg.dp_delta if cfg.dp_delta is not None else 1.0 / n_users
            sigma = gaussian_sigma(cfg.dp_epsilon, delta)
            sens = math.sqrt(cfg.clip ** 4 + cfg.clip ** 2)
            rng = np.random.default_rng(noise_seed(cfg.seed, cfg.reproducible_noise))
            Z = rng.normal(0.0, sigma * sens, S1.shape)
            S1 = S1 + np.triu(Z) + np.triu(Z, 1).T
            S2 = S2 + rng.normal(0.0, sigma * sens, S2.shape)
            e, V = np.linalg.eigh(S1)  # post-processing: back onto the PSD cone
            S1 = (V * np.maximum(e, 0.0)) @ V.T
            self.privacy_ = privacy_record(
                "sufficient-statistics perturbation (one Gaussian release of S1, S2; analytic Gaussian mechanism)",
                epsilon_target=cfg.dp_epsilon, epsilon_spent=cfg.dp_epsilon, delta=delta,
                noise_multiplier=round(sigma, 5), reproducible_noise=cfg.reproducible_noise,
                l2_sensitivity=round(sens, 5), clip=cfg.clip, n_users=n_users)
        W = np.linalg.solve(S1 + cfg.l2 * np.eye(S1.shape[0]), S2)
        if cfg.cold_items and cfg.dp_epsilon is None:
            warm = S2[-1] > 1e-12   # S2's β row: Σ_u φ_u[-1] x̂_u > 0 iff someone interacted
            if cfg.bias > 0 and warm.any() and not warm.all():
                W[:, ~warm] = self._cold_map(text, W, warm)
                self.fit_info_["cold_items_from_text"] = int((~warm).sum())
        self.W_ = W.astype(np.float32)
        if valid is not None and len(valid):
            from longrec.models.validation import valid_ndcg
            self.fit_info_["valid_ndcg@10"] = round(valid_ndcg(self, valid), 6)

    def _cold_map(self, text: np.ndarray, W: np.ndarray, warm: np.ndarray) -> np.ndarray:
        """W's columns for the items without interactions (~warm): a ridge regression of the warm
        items' columns on their features, the text embedding [and the weighted metadata TF-IDF],
        solved in the smaller of the primal (features) and the dual (warm items) forms."""
        cfg = self.config
        Z = sp.csr_matrix(text)
        if cfg.cold_metadata > 0 and self.items_ is not None:
            from longrec.models.content_tfidf import ContentTFIDFConfig, tfidf_matrix

            M = tfidf_matrix(self.items_, self.vocab_.items.ids,
                             ContentTFIDFConfig(value_columns=cfg.cold_value_columns))
            Z = sp.hstack([Z, cfg.cold_metadata * M.astype(np.float64)]).tocsr()
        return ridge_predict(Z[warm], W[:, warm].T, Z[~warm], cfg.cold_l2).T

    def user_embeddings(self, users=None, histories=None) -> tuple[np.ndarray, np.ndarray]:
        """(caller user IDs, profiles φ: (n, dim + 1), or (n, dim + n_items + 1) with item_weight) —
        what an attribute-inference attacker sees."""
        ids, hist = self._users_and_histories(users, histories)
        return ids, self._profiles(hist.matrix()).astype(np.float32)

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        return (self._profiles(hist.matrix()).astype(np.float32) @ self.W_).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {"T": self.T_, "W": self.W_}

    def _check_state(self, d, t, n_users, n_items) -> None:
        from longrec.models.artifacts import check_tensors

        check_tensors(d, t, {"T": ("f", (n_items, None)), "W": ("f", (None, n_items))})

    def _set_state(self, t: dict[str, np.ndarray]) -> None:
        self.T_ = np.asarray(t["T"], dtype=np.float32)
        self.W_ = np.asarray(t["W"], dtype=np.float32)


class LMLinearConfig(DPLinearConfig):
    """`lm-linear`: the text + history ridge model without differential privacy. Its defaults are
    the best measured setting (ml-100k P1 valid; the cold-item map: train-only cold folds of five
    ml-100k P3 draws); train with `--dp-epsilon` for the private variant."""

    dim: int = Field(256, ge=1, description="principal components of the item text embeddings kept")
    l2: float = Field(20.0, gt=0, description="ridge penalty λ")
    clip: float = Field(2.0, gt=0, description="C: user profiles are scaled down to L2 norm <= C")
    bias: float = Field(2.0, ge=0, description="β: the constant coordinate of every profile (popularity term)")
    item_weight: float = Field(4.0, ge=0, description="a: weight of the user's own history as extra profile "
                               "coordinates (an item-item block fitted jointly with the text block; dense "
                               "n_items² memory); 0 = text profile only")
    # cold items: chosen on train-only cold folds of five ml-100k P3 draws (bench/results/cold_movies_5draws.md)
    cold_l2: float = Field(10.0, gt=0, description="ridge penalty of the features -> vector map for items "
                           "without training interactions")
    cold_metadata: float = Field(1.0, ge=0, description="weight of the item table's TF-IDF features beside the "
                                 "text embedding in the cold-item map (0 = the text embedding only)")

    @model_validator(mode="after")
    def _no_dp_here(self):
        if self.dp_epsilon is not None:
            raise ValueError("lm-linear is the non-private model: train with --dp-epsilon (or --model "
                             "lm-linear-dp), whose defaults are chosen for the noise")
        return self


class LMLinear(DPLinear):
    """Text + history linear model: a closed-form ridge regression of each item on the user's
    language-model text profile and (``item_weight``) their own history. Items without training
    interactions get a vector from their text, so it also recommends cold items."""

    name = "lm-linear"
    Config = LMLinearConfig
