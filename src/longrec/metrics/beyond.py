"""Beyond-accuracy metrics: novelty, intra-list diversity, calibration.

All three take ``recs`` in the same form as :func:`longrec.metrics.ranking.evaluate`
(``user_id, item_id`` and ``rank`` or ``score``) and use each user's top-``k`` list
(:func:`longrec.metrics.ranking.top_k`: rank ascending, or score descending with ties by lower
item_id; repeated items counted once). Each returns the plain mean over the users for whom the
per-user value is defined (see each function); NaN if there are none. IDs are normalised with
:func:`longrec.data.ids.normalize_ids`, so int and str IDs from different files match.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from longrec.data.ids import normalize_ids
from longrec.errors import ConfigError, DataError
from longrec.metrics.ranking import _align_ids, _need, top_k

__all__ = ["novelty", "intra_list_diversity", "calibration_kl"]

_BATCH = 1024  # users per dense block in intra_list_diversity


def _lookup_table(obj, value_name: str) -> pd.Series:
    """A mapping item_id -> value from a dict, a Series (indexed by item) or a DataFrame with an
    item_id column (or item index) and one value column."""
    if isinstance(obj, pd.DataFrame):
        df = obj.set_index("item_id") if "item_id" in obj.columns else obj
        if df.shape[1] != 1:
            raise DataError(f"{value_name}: a DataFrame needs item_id plus exactly one value column; "
                            f"got {list(obj.columns)}")
        s = df.iloc[:, 0]
    elif isinstance(obj, pd.Series):
        s = obj
    elif isinstance(obj, Mapping):
        s = pd.Series(list(obj.values()), index=list(obj.keys()), dtype=object)
    else:
        raise TypeError(f"{value_name} must be a dict, Series or DataFrame keyed by item_id")
    return s


def _join_items(list_items: pd.Series, table_items: pd.Series) -> np.ndarray:
    """Index into table_items (-1 if absent) of every list item, with aligned ID kinds."""
    a, b = _align_ids(list_items, table_items)
    return pd.Index(b.to_numpy()).get_indexer(a.to_numpy())


# --------------------------------------------------------------------------- novelty
def novelty(recs: pd.DataFrame, item_popularity, n_users: int, k: int = 10) -> float:
    """Mean self-information of the recommended items (Zhou et al. 2010).

    For item i with popularity pop_i (number of users who interacted with it in the training
    data) the self-information is ``-log2(pop_i / n_users)`` bits. A user's novelty is the mean
    over the items of their top-k list; the result is the mean over users with a non-empty
    list. Items missing from ``item_popularity`` or with popularity 0 are given popularity 1
    (maximal novelty log2(n_users)), so the value stays finite.

    item_popularity: dict / Series item_id -> count, or DataFrame (item_id, count).
    """
    if n_users <= 0:
        raise ConfigError(f"n_users must be positive, got {n_users}")
    top = top_k(recs, k)
    if len(top) == 0:
        return float("nan")
    pop_s = _lookup_table(item_popularity, "item_popularity")
    pop_vals = pd.to_numeric(pop_s, errors="raise").to_numpy(dtype=np.float64)
    idx = _join_items(top["item_id"], pd.Series(pop_s.index.to_numpy()))
    pop = np.where(idx >= 0, pop_vals[np.maximum(idx, 0)], 0.0)
    pop = np.maximum(pop, 1.0)
    info = -np.log2(pop / float(n_users))
    per_user = pd.Series(info).groupby(top["user_id"].to_numpy(), sort=False).mean()
    return float(per_user.mean())


# --------------------------------------------------------------------------- diversity
def _is_genre_value(v) -> bool:
    """A set, a string (one genre), or a non-empty list/tuple of strings."""
    if isinstance(v, (set, frozenset, str)):
        return True
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(g, str) for g in v)


def _features(item_features) -> tuple[pd.Series, np.ndarray, str]:
    """(item ids, row matrix, kind) with kind "cosine" (dense vectors) or "jaccard" (multi-hot)."""
    if isinstance(item_features, pd.DataFrame):
        df = item_features.set_index("item_id") if "item_id" in item_features.columns else item_features
        if df.shape[1] == 1 and df.iloc[:, 0].dtype == object:
            return _features(df.iloc[:, 0])
        num = df.select_dtypes("number")
        if num.shape[1] != df.shape[1]:
            raise DataError("item_features DataFrame: use numeric vector columns, or one column of "
                            "genre sets/lists")
        return pd.Series(df.index.to_numpy()), num.to_numpy(dtype=np.float64), "cosine"
    if isinstance(item_features, pd.Series):
        keys, vals = item_features.index.to_numpy(), list(item_features.to_numpy())
    elif isinstance(item_features, Mapping):
        keys, vals = np.asarray(list(item_features.keys()), dtype=object), list(item_features.values())
    else:
        raise TypeError("item_features must be a dict, Series or DataFrame keyed by item_id")
    ids = pd.Series(keys)
    if not vals:
        return ids, np.zeros((0, 0)), "cosine"
    if any(_is_genre_value(v) for v in vals):
        sets = [{v} if isinstance(v, str) else set(v) for v in vals]
        col: dict = {}
        for gs in sets:
            for g in gs:
                col.setdefault(g, len(col))
        m = np.zeros((len(sets), len(col)), dtype=np.float64)
        for r, gs in enumerate(sets):
            m[r, [col[g] for g in gs]] = 1.0
        return ids, m, "jaccard"
    return ids, np.vstack([np.asarray(v, dtype=np.float64).ravel() for v in vals]), "cosine"


def intra_list_diversity(recs: pd.DataFrame, item_features, k: int = 10) -> float:
    """Intra-list diversity: mean pairwise distance within each top-k list, mean over users.

    For a user's list L (items without features dropped), ILD = (2 / (m (m - 1))) *
    sum_{i<j} d(l_i, l_j), m = |L|; users with m < 2 are skipped. The distance depends on
    ``item_features``:

    * vectors (dict item -> array, Series of arrays, or DataFrame with item_id + numeric
      columns): ``d = 1 - cos(v_i, v_j)``; a zero vector has cosine 0 with everything.
    * genre sets (dict item -> set, or list of strings, or one string = one genre; or a Series /
      one-column DataFrame of them; split RecBole token_seq strings yourself):
      ``d = 1 - |G_i & G_j| / |G_i | G_j|``; two empty sets count as identical (d = 0).
    """
    top = top_k(recs, k)
    ids, feats, kind = _features(item_features)
    if len(top) == 0 or feats.shape[0] == 0:
        return float("nan")
    idx = _join_items(top["item_id"], ids)
    top = top.assign(_f=idx)
    top = top[top["_f"] >= 0]
    top["_p"] = top.groupby("user_id", sort=False).cumcount().to_numpy()
    ucode, _ = pd.factorize(top["user_id"])
    n_u = int(ucode.max()) + 1 if len(ucode) else 0
    if n_u == 0:
        return float("nan")
    width = int(top["_p"].max()) + 1
    grid = np.full((n_u, width), -1, dtype=np.int64)
    grid[ucode, top["_p"].to_numpy()] = top["_f"].to_numpy()
    m = (grid >= 0).sum(axis=1)

    if kind == "cosine":
        norms = np.linalg.norm(feats, axis=1)
        rows = feats / np.where(norms > 0, norms, 1.0)[:, None]
    else:
        rows = feats
        sizes = feats.sum(axis=1)
    iu = np.triu_indices(width, k=1)
    pair_sum = np.zeros(n_u)
    for s in range(0, n_u, _BATCH):
        g = grid[s: s + _BATCH]
        valid = g >= 0
        x = rows[np.maximum(g, 0)] * valid[..., None]                 # (b, width, d)
        sim = np.einsum("bid,bjd->bij", x, x)
        if kind == "jaccard":
            sz = sizes[np.maximum(g, 0)] * valid
            union = sz[:, :, None] + sz[:, None, :] - sim
            sim = np.where(union > 0, sim / np.where(union > 0, union, 1.0), 1.0)
        dist = 1.0 - sim
        pmask = valid[:, :, None] & valid[:, None, :]
        pair_sum[s: s + _BATCH] = (dist * pmask)[:, iu[0], iu[1]].sum(axis=1)
    ok = m >= 2
    if not ok.any():
        return float("nan")
    return float((pair_sum[ok] / (m[ok] * (m[ok] - 1) / 2.0)).mean())


# --------------------------------------------------------------------------- calibration
def _genre_matrix(item_genres) -> tuple[pd.Series, sp.csr_matrix]:
    """(item ids, items x genres matrix with each item's row summing to 1 or 0)."""
    ids, m, kind = _features(item_genres)
    if kind != "jaccard":
        raise DataError("item_genres must map item_id -> set/list of genre names")
    cnt = m.sum(axis=1)
    m = m / np.where(cnt > 0, cnt, 1.0)[:, None]
    return ids, sp.csr_matrix(m)


def _user_genre_dist(pairs: pd.DataFrame, users: pd.Index, ids: pd.Series, gm: sp.csr_matrix) -> np.ndarray:
    """Row-normalised user x genre distribution of the (user, item) pairs, uniform item weights."""
    u = users.get_indexer(pairs["user_id"].to_numpy())
    i = _join_items(pairs["item_id"], ids)
    ok = (u >= 0) & (i >= 0)
    a = sp.csr_matrix((np.ones(int(ok.sum())), (u[ok], i[ok])), shape=(len(users), gm.shape[0]))
    d = np.asarray((a @ gm).todense())
    tot = d.sum(axis=1, keepdims=True)
    return d / np.where(tot > 0, tot, 1.0)


def calibration_kl(recs: pd.DataFrame, history: pd.DataFrame, item_genres, k: int = 10,
                   alpha: float = 0.01) -> float:
    """Miscalibration (Steck 2018, "Calibrated Recommendations"): mean KL(p || q~) over users.

    * p(g|u) = sum_{i in H_u} p(g|i) / |H_u|: the genre distribution of the user's history H_u
      (distinct items of ``history`` for that user, uniform weight), where each item spreads its
      weight equally over its genres, p(g|i) = 1 / |genres(i)|.
    * q(g|u) = the same over the user's top-k list.
    * q~ = (1 - alpha) q + alpha p (so q~ > 0 wherever p > 0).
    * KL(p || q~) = sum_{g: p(g) > 0} p(g) ln(p(g) / q~(g)) (natural log, nats).

    Items without genres (or unknown) carry no weight. Users are those with a list in ``recs``
    and a history with at least one genre; a list with no genre-bearing item gives q = 0 and
    KL = sum p ln(1/alpha) = ln(1/alpha).
    """
    if not 0 < alpha <= 1:
        raise ConfigError(f"alpha must be in (0, 1], got {alpha}")
    _need(history, ("user_id", "item_id"), "history")
    top = top_k(recs, k)
    ids, gm = _genre_matrix(item_genres)
    hu, tu = _align_ids(history["user_id"], top["user_id"])
    hist = pd.DataFrame({"user_id": hu.to_numpy(), "item_id": normalize_ids(history["item_id"]).to_numpy()})
    hist = hist.drop_duplicates()
    top = top.assign(user_id=tu.to_numpy())
    users = pd.Index(pd.unique(top["user_id"]))
    if len(users) == 0:
        return float("nan")
    p = _user_genre_dist(hist, users, ids, gm)
    q = _user_genre_dist(top, users, ids, gm)
    has_p = p.sum(axis=1) > 0
    if not has_p.any():
        return float("nan")
    p, q = p[has_p], q[has_p]
    qt = (1.0 - alpha) * q + alpha * p
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(qt > 0, qt, 1.0)), 0.0)
    return float(terms.sum(axis=1).mean())
