"""The simulated world, fitted to a real dataset.

True utility of item j for user i (in "z units": 0 is an average item for that user):

    u_ij = (1 - w_text) * z_i(U_i · V_j) + w_text * z_i(text_ij) + w_q * q_j

* U, V: a rank-d factorisation computed on *all* of the dataset's interactions (train +
  valid + test), so the world knows tastes the logged data does not show. `family` picks it:
  "ease" factorises EASE scores (Steck 2019); "lowrank" and "text" factorise the binary
  interaction matrix itself (PureSVD, Cremonesi et al. 2010), a different model family, so a
  policy that resembles EASE gets no home advantage. A randomized SVD gives U = L sqrt(S),
  V = R sqrt(S). The "text" family adds text affinity with share text_weight (0.3 by default).
* z_i(.) standardises with user i's mean/std over the catalogue at fit time (kept fixed, so
  interest drift moves utilities on the same scale).
* q_j: item quality, the shrunk mean rating (10 pseudo-ratings at the global mean), z-scored.
* text_ij (optional): cosine between the LM embedding of the item text and the mean
  embedding of the user's consumed items (longrec.lm), fixed over the run.

`validate_world` checks the same fitting procedure on a train/valid/test split: fitted on
train + valid, it must rank the held-out test items well (NDCG@10; target ≥ 0.30).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from longrec.data.dataset import Dataset
from longrec.errors import DataError
from longrec.simulate.config import MetricSettings, WorldSettings
from longrec.topk import topk


@dataclass
class World:
    user_ids: np.ndarray          # caller IDs of the simulated users, index = user index
    item_ids: np.ndarray          # caller IDs of the catalogue, index = item index
    U: np.ndarray                 # (n_users, d) initial interest vectors
    V: np.ndarray                 # (n_items, d) item vectors
    mu: np.ndarray                # (n_users,) affinity mean at fit time
    sd: np.ndarray                # (n_users,) affinity std at fit time
    quality: np.ndarray           # (n_items,) z-scored quality
    genres: np.ndarray            # (n_items, n_genres) row-normalised genre membership
    genre_names: list[str]
    initial: sp.csr_matrix        # (n_users, n_items) the logged training interactions
    initial_frame: pd.DataFrame   # the same as user_id,item_id,timestamp (policy training data)
    items: pd.DataFrame | None    # item table (for models that read item attributes)
    users: pd.DataFrame | None
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # group name -> bool mask over users
    text: np.ndarray | None = None  # (n_users, n_items) z-scored text affinity, if text_weight > 0
    settings: WorldSettings = field(default_factory=WorldSettings)
    info: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def utility(self, U: np.ndarray, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Base true utility (before boredom) of `items` for `users`, given current
        interest vectors U (n_users, d). items None -> all items (n, n_items); items of shape
        (n, K) -> (n, K)."""
        s = self.settings
        if items is None:
            aff = U[users] @ self.V.T
            q = self.quality[None, :]
            txt = None if self.text is None else self.text[users]
        else:
            aff = np.einsum("nd,nkd->nk", U[users], self.V[items])
            q = self.quality[items]
            txt = None if self.text is None else np.take_along_axis(self.text[users], items, 1)
        z = (aff - self.mu[users, None]) / self.sd[users, None]
        if txt is not None:
            z = (1 - s.text_weight) * z + s.text_weight * txt
        return (z + s.quality_weight * q).astype(np.float32)


# --------------------------------------------------------------------------- fitting
def _ease_scores(X: sp.csr_matrix, lam: float) -> np.ndarray:
    from longrec.models.ease import solve_scores  # the one EASE solve (float32 Cholesky)

    return solve_scores(X, lam)


def _randomized_svd(A: np.ndarray, rank: int, seed: int = 0, n_iter: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Halko et al. 2011; exact SVD of a 6k x 4k matrix is needlessly slow for rank 64
    rng = np.random.default_rng(seed)
    k = min(rank + 10, min(A.shape))
    Q = A @ rng.standard_normal((A.shape[1], k))
    for _ in range(n_iter):
        Q, _ = np.linalg.qr(Q)
        Q = A @ (A.T @ Q)
    Q, _ = np.linalg.qr(Q)
    Ub, s, Vt = np.linalg.svd(Q.T @ A, full_matrices=False)
    r = min(rank, len(s))
    return (Q @ Ub)[:, :r], s[:r], Vt[:r]


def fit_factors(X: sp.csr_matrix, settings: WorldSettings) -> tuple[np.ndarray, np.ndarray]:
    S = _ease_scores(X, settings.utility_l2)
    L, s, Rt = _randomized_svd(S, settings.latent_dim)
    root = np.sqrt(s)
    return (L * root).astype(np.float32), (Rt.T * root).astype(np.float32)


def fit_lowrank_factors(X: sp.csr_matrix, settings: WorldSettings) -> tuple[np.ndarray, np.ndarray]:
    """Rank-d truncated SVD of the binary interaction matrix (PureSVD)."""
    A = X.astype(np.float64).toarray()
    A[A > 0] = 1.0
    L, s, Rt = _randomized_svd(A, settings.latent_dim)
    root = np.sqrt(s)
    return (L * root).astype(np.float32), (Rt.T * root).astype(np.float32)


def world_factors(X: sp.csr_matrix, settings: WorldSettings) -> tuple[np.ndarray, np.ndarray]:
    """The configured family's (U, V)."""
    if settings.family == "ease":
        return fit_factors(X, settings)
    return fit_lowrank_factors(X, settings)


def _quality(inter: pd.DataFrame, item_ids: np.ndarray, prior: float = 10.0) -> np.ndarray:
    if "rating" not in inter.columns:
        return np.zeros(len(item_ids), dtype=np.float32)
    g = inter.groupby("item_id")["rating"].agg(["sum", "count"]).reindex(item_ids).fillna(0.0)
    mean = float(inter["rating"].mean())
    shrunk = (g["sum"].to_numpy() + prior * mean) / (g["count"].to_numpy() + prior)
    return ((shrunk - shrunk.mean()) / (shrunk.std() + 1e-9)).astype(np.float32)


def _genres(items: pd.DataFrame | None, item_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Row-normalised membership of each item in the categories of the item table's category
    column (genres, tags, a clothing class, ...), parsed by `longrec.lm.text.item_lists` (the
    same parser as item text and explanations: "Science Fiction|Drama" is two genres)."""
    from longrec.lm.text import item_lists

    tokens, col = item_lists(items, item_ids) if items is not None and "item_id" in items.columns else ([], None)
    if col is None:  # no genre information: boredom becomes a global satiation
        return np.ones((len(item_ids), 1), dtype=np.float32), ["all"]
    names = sorted({g for gs in tokens for g in gs})
    if not names:
        return np.ones((len(item_ids), 1), dtype=np.float32), ["all"]
    pos = {g: k for k, g in enumerate(names)}
    rows = np.repeat(np.arange(len(item_ids)), [len(gs) for gs in tokens])
    cols = np.array([pos[g] for gs in tokens for g in gs], dtype=np.int64)
    M = np.zeros((len(item_ids), len(names)), dtype=np.float32)
    M[rows, cols] = 1.0
    empty = M.sum(1) == 0
    M[empty] = 1.0  # items without a genre belong a little to every genre
    return M / M.sum(1, keepdims=True), names


def _groups(users: pd.DataFrame | None, user_ids: np.ndarray, metrics: MetricSettings) -> dict[str, np.ndarray]:
    groups = {"all": np.ones(len(user_ids), dtype=bool)}
    if users is None:
        return groups
    tab = users.drop_duplicates("user_id").set_index("user_id").reindex(user_ids)
    if "gender" in metrics.groups and "gender" in tab.columns:
        g = tab["gender"].astype(str).str.upper()
        for v in sorted(x for x in g.dropna().unique() if x not in ("NAN", "")):
            groups[f"gender={v}"] = (g == v).to_numpy()
    if "age" in metrics.groups and "age" in tab.columns:
        age = pd.to_numeric(tab["age"], errors="coerce").to_numpy()
        edges = list(metrics.age_buckets)
        lo = 0
        for hi in [*edges, None]:
            mask = (age >= lo) & (age < hi) if hi is not None else (age >= lo)
            label = f"age={lo}-{hi - 1}" if hi is not None else f"age={lo}+"
            if mask.any():
                groups[label] = mask
            lo = hi if hi is not None else lo
    return groups


def _text_affinity(items: pd.DataFrame | None, item_ids: np.ndarray, X: sp.csr_matrix,
                   encoder: str = "default") -> np.ndarray:
    from longrec.models._lm_items import item_text_matrix

    if items is None:
        raise DataError("world.text_weight > 0 needs an item table with text (titles, genres); this dataset has none.")
    # the same (cached) item texts and encoder as the LM recommenders (lm-linear, lm-seq)
    E = item_text_matrix(item_ids, items, encoder)
    prof = np.asarray(X @ E)
    prof /= np.linalg.norm(prof, axis=1, keepdims=True) + 1e-9
    T = prof @ E.T
    return ((T - T.mean(1, keepdims=True)) / (T.std(1, keepdims=True) + 1e-9)).astype(np.float32)


def fit_world(full: Dataset, train: Dataset, settings: WorldSettings, metrics: MetricSettings,
              max_users: int = 0, log_all_users: bool = False) -> World:
    """Fit the world on all of `full`'s interactions; the loop starts from `train`. With
    `max_users` and `log_all_users`, the policies' starting log (`initial_frame`) holds every
    user's training interactions, not only the simulated users' (for sparse catalogues, where a
    model trained on a few hundred users knows almost nothing)."""
    t0 = time.perf_counter()
    vocab = full.vocabulary()
    user_ids, item_ids = vocab.users.ids, vocab.items.ids
    X = full.matrix(vocab)
    U, V = world_factors(X, settings)
    if max_users:
        keep = np.arange(min(max_users, len(user_ids)))
        user_ids, U, X = user_ids[keep], U[keep], X[keep]
    A = U @ V.T
    mu, sd = A.mean(1), A.std(1) + 1e-6
    text = _text_affinity(full.items, item_ids, X, settings.text_encoder) if settings.text_weight > 0 else None
    inter = train.interactions
    inter = inter[inter["user_id"].isin(pd.Index(user_ids))]
    u = vocab.users.lookup(inter["user_id"].to_numpy())
    i = vocab.items.lookup(inter["item_id"].to_numpy())
    ok = (u >= 0) & (i >= 0) & (u < len(user_ids))
    initial = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (u[ok], i[ok])), shape=(len(user_ids), len(item_ids)))
    initial.data[:] = 1.0
    ts = inter["timestamp"].to_numpy()[ok] if "timestamp" in inter.columns else np.zeros(int(ok.sum()), np.int64)
    frame = pd.DataFrame({"user_id": inter["user_id"].to_numpy()[ok], "item_id": inter["item_id"].to_numpy()[ok],
                          "timestamp": ts.astype(np.int64)})
    if log_all_users and max_users:
        rest = train.interactions[~train.interactions["user_id"].isin(pd.Index(user_ids))]
        rest = rest[vocab.items.lookup(rest["item_id"].to_numpy()) >= 0]
        rts = rest["timestamp"].to_numpy() if "timestamp" in rest.columns else np.zeros(len(rest), np.int64)
        frame = pd.concat([frame, pd.DataFrame({"user_id": rest["user_id"].to_numpy(), "item_id": rest["item_id"].to_numpy(),
                                                "timestamp": rts.astype(np.int64)})], ignore_index=True)
    genres, names = _genres(full.items, item_ids)
    w = World(user_ids=user_ids, item_ids=item_ids, U=U, V=V, mu=mu.astype(np.float32), sd=sd.astype(np.float32),
              quality=_quality(full.interactions, item_ids), genres=genres, genre_names=names,
              initial=initial, initial_frame=frame, items=full.items, users=full.users,
              groups=_groups(full.users, user_ids, metrics), text=text, settings=settings)
    w.info = {"dataset": full.name, "family": settings.family, "text_weight": settings.text_weight, "n_users": w.n_users, "n_items": w.n_items, "n_genres": len(names),
              "initial_interactions": int(initial.nnz), "fit_seconds": round(time.perf_counter() - t0, 2),
              "groups": {g: int(m.sum()) for g, m in w.groups.items()}}
    return w


def validate_world(split: dict, settings: WorldSettings) -> dict:
    """NDCG@10 of the world's fitting procedure fitted on train+valid, on the test part
    (full ranking, train+valid items excluded; longrec.metrics.ranking.evaluate)."""
    from longrec.metrics.ranking import evaluate

    seen = pd.concat([split["train"].interactions, split["valid"].interactions], ignore_index=True)
    ds = split["train"].with_interactions(seen)
    vocab = ds.vocabulary()
    X = ds.matrix(vocab)
    U, V = world_factors(X, settings)
    A = U @ V.T
    z = (A - A.mean(1, keepdims=True)) / (A.std(1, keepdims=True) + 1e-6)
    if settings.text_weight > 0:
        z = (1 - settings.text_weight) * z + settings.text_weight * _text_affinity(
            split["train"].items, vocab.items.ids, X, settings.text_encoder)
    S = z + settings.quality_weight * _quality(seen, vocab.items.ids)[None, :]
    test = split["test"].interactions
    users = vocab.users.lookup(pd.unique(test["user_id"]))
    users = users[users >= 0]
    S = S[users]
    sub = X[users]
    S[np.repeat(np.arange(len(users)), np.diff(sub.indptr)), sub.indices] = -np.inf
    top, _ = topk(S, 10)
    recs = pd.DataFrame({"user_id": np.repeat(vocab.users.ids[users], 10), "item_id": vocab.items.ids[top.ravel()],
                         "rank": np.tile(np.arange(1, 11), len(users))})
    res = evaluate(recs, test, ks=(10,))
    return {"NDCG@10": round(float(res["NDCG@10"]), 4), "Recall@10": round(float(res["Recall@10"]), 4),
            "n_users": int(res["n_users"]), "fitted_on": "train+valid", "evaluated_on": "test",
            "family": settings.family}
