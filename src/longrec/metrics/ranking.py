"""Top-K ranking metrics, exactly as defined in ``shared/metrics/METRICS.md``.

For a user with relevant (held-out) set R, n_rel = |R|, and top-K list L = (l_1 .. l_K),
best first (already without the user's excluded items):

* Hit@K       = 1 if any l_i in R else 0
* Recall@K    = |L & R| / n_rel            (not divided by min(K, n_rel))
* Precision@K = |L & R| / K
* MRR@K       = 1 / i for the smallest i <= K with l_i in R, else 0
* NDCG@K      = DCG / IDCG, binary relevance, DCG = sum_{i<=K} [l_i in R] / log2(i + 1),
  IDCG = sum_{i <= min(K, n_rel)} 1 / log2(i + 1)
* ItemCoverage@K = |union of the evaluated users' top-K lists (within the catalogue)| / |catalogue|
* Gini@K      = sum_j (2j - n - 1) x_j / (n sum_j x_j), x_j = number of evaluated users whose
  top-K holds catalogue item j (zeros included), sorted ascending, j = 1..n, n = |catalogue|.
  NaN when no catalogue item is recommended at all.

Only users in ``truth`` (with >= 1 relevant item) are evaluated; each per-user metric is the
plain mean over them. A user with no (or a short) list counts the missing slots as misses.
Everything is vectorised (a users x K hit matrix); there is no Python loop over users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from longrec.data.ids import normalize_ids
from longrec.errors import ConfigError, DataError

ACCURACY_METRICS = ("Recall", "NDCG", "Hit", "MRR", "Precision")
AGGREGATE_METRICS = ("ItemCoverage", "Gini")
ALL_METRICS = ACCURACY_METRICS + AGGREGATE_METRICS
_CANON = {m.lower(): m for m in ALL_METRICS} | {"coverage": "ItemCoverage", "itemcoverage": "ItemCoverage"}

__all__ = ["evaluate", "per_user", "top_k", "ALL_METRICS", "ACCURACY_METRICS", "AGGREGATE_METRICS"]


# --------------------------------------------------------------------------- inputs
def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing} (has {list(df.columns)}); "
                        f"expected {list(cols)}.")


def _align_ids(*series: pd.Series) -> list[pd.Series]:
    """normalize_ids each; if they disagree (int vs str), use strings for all."""
    out = [normalize_ids(s.reset_index(drop=True)) for s in series]
    kinds = {s.dtype.kind in "iu" for s in out if len(s)}
    if len(kinds) > 1:
        out = [s.astype(str) for s in out]
    return out


def top_k(recs: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
    """Each user's list best-first as columns ``user_id, item_id, pos`` (pos = 1..).

    Order: by ``rank`` ascending if that column exists, else by ``score`` descending with ties
    broken by lower item_id (the reference tie rule); stable otherwise. Repeated (user, item)
    pairs keep their best position only; positions are then renumbered 1, 2, ... (gaps in
    ``rank`` are closed). With ``k``, only positions <= k are kept. IDs are normalised.
    """
    _need(recs, ("user_id", "item_id"), "recs")
    if "rank" not in recs.columns and "score" not in recs.columns:
        raise DataError("recs needs a 'rank' column (1 = best) or a 'score' column (higher = better); "
                        f"it has {list(recs.columns)}.")
    u, i = _align_ids(recs["user_id"], recs["item_id"])
    df = pd.DataFrame({"user_id": u.to_numpy(), "item_id": i.to_numpy()})
    return _order(df, recs, k)


def _order(df: pd.DataFrame, recs: pd.DataFrame, k: int | None) -> pd.DataFrame:
    if "rank" in recs.columns:
        df["_key"] = recs["rank"].to_numpy()
        df = df.sort_values(["user_id", "_key"], kind="stable")
    else:
        df["_key"] = -pd.to_numeric(recs["score"]).to_numpy(dtype=np.float64)
        df = df.sort_values(["user_id", "_key", "item_id"], kind="stable")
    df = df.drop(columns="_key").drop_duplicates(["user_id", "item_id"], keep="first")
    df["pos"] = df.groupby("user_id", sort=False).cumcount().to_numpy() + 1
    if k is not None:
        df = df[df["pos"] <= k]
    return df.reset_index(drop=True)


@dataclass
class _Prepared:
    users: np.ndarray          # evaluated user ids (sorted)
    n_rel: np.ndarray          # (n_users,)
    hits: np.ndarray           # (n_users, K) bool
    item_codes: np.ndarray     # (n_users, K) int, -1 = empty slot; codes into `items`
    items: np.ndarray          # item labels of the codes
    extra_codes: np.ndarray    # codes of the catalogue items (unique), if asked for


def _prepare(recs: pd.DataFrame, truth: pd.DataFrame, k: int, catalog=None,
             want_catalog: bool = False) -> _Prepared:
    _need(truth, ("user_id", "item_id"), "truth")
    _need(recs, ("user_id", "item_id"), "recs")
    if "rank" not in recs.columns and "score" not in recs.columns:
        raise DataError("recs needs a 'rank' column (1 = best) or a 'score' column (higher = better); "
                        f"it has {list(recs.columns)}.")
    series = [recs["user_id"], truth["user_id"], recs["item_id"], truth["item_id"]]
    if want_catalog and catalog is not None:
        series.append(pd.Series(np.asarray(list(catalog) if not hasattr(catalog, "__array__") else catalog)))
    aligned = _align_ids(*series[:2]) + _align_ids(*series[2:])
    ru, tu, ri, ti = aligned[:4]
    extra = None
    if want_catalog:
        extra = aligned[4] if catalog is not None else pd.concat([ri, ti], ignore_index=True)
        extra = extra.drop_duplicates()

    t = pd.DataFrame({"user_id": tu.to_numpy(), "item_id": ti.to_numpy()}).drop_duplicates()
    users, t_ucode = np.unique(t["user_id"].to_numpy(), return_inverse=True)
    n_users = len(users)
    n_rel = np.bincount(t_ucode, minlength=n_users)

    r = _order(pd.DataFrame({"user_id": ru.to_numpy(), "item_id": ri.to_numpy()}), recs, k)
    r_ucode = pd.Index(users).get_indexer(r["user_id"].to_numpy())
    keep = r_ucode >= 0
    r_ucode = r_ucode[keep]
    r_items = r["item_id"].to_numpy()[keep]
    r_pos = r["pos"].to_numpy()[keep] - 1

    parts = [r_items, t["item_id"].to_numpy()] + ([extra.to_numpy()] if extra is not None else [])
    all_items = np.concatenate(parts) if parts else np.zeros(0)
    codes, items = pd.factorize(all_items, sort=False)
    items = np.asarray(items)
    n_items = len(items)
    r_icode = codes[: len(r_items)]
    t_icode = codes[len(r_items): len(r_items) + len(t)]
    extra_codes = codes[len(r_items) + len(t):]

    rel_keys = np.sort(t_ucode.astype(np.int64) * n_items + t_icode)
    rec_keys = r_ucode.astype(np.int64) * n_items + r_icode
    is_hit = np.isin(rec_keys, rel_keys, assume_unique=False) if len(rec_keys) else np.zeros(0, bool)

    hits = np.zeros((n_users, k), dtype=bool)
    item_codes = np.full((n_users, k), -1, dtype=np.int64)
    hits[r_ucode, r_pos] = is_hit
    item_codes[r_ucode, r_pos] = r_icode
    return _Prepared(users, n_rel, hits, item_codes, items, extra_codes)


def _accuracy(p: _Prepared, k: int) -> dict[str, np.ndarray]:
    h = p.hits[:, :k]
    n_hit = h.sum(axis=1)
    disc = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    idcg_table = np.r_[0.0, np.cumsum(disc)]
    dcg = (h * disc).sum(axis=1)
    idcg = idcg_table[np.minimum(p.n_rel, k)]
    first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
    mrr = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "Recall": n_hit / p.n_rel,
            "NDCG": np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0),
            "Hit": (n_hit > 0).astype(np.float64),
            "MRR": mrr,
            "Precision": n_hit / float(k),
        }


def gini(x: np.ndarray) -> float | np.ndarray:
    """Gini index of non-negative exposures (all catalogue items, zeros included): a float for a
    1-D array, one value per row for a 2-D array; NaN where the total is 0."""
    a = np.asarray(x, dtype=np.float64)
    rows = np.sort(np.atleast_2d(a), axis=1)
    n = rows.shape[1]
    tot = rows.sum(1)
    j = np.arange(1, n + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where((tot > 0) & (n > 0), ((2 * j - n - 1) * rows).sum(1) / (n * tot), np.nan)
    return float(g[0]) if a.ndim == 1 else g


_gini = gini


def _parse_metrics(metrics: Iterable[str] | None) -> list[str]:
    if metrics is None:
        return list(ALL_METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    out = []
    for m in metrics:
        name = _CANON.get(str(m).split("@")[0].lower())
        if name is None:
            raise ConfigError(f"unknown metric {m!r}; choose from {list(ALL_METRICS)}")
        if name not in out:
            out.append(name)
    return out


def _parse_ks(ks) -> list[int]:
    ks = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ConfigError(f"ks {ks} must be positive integers")
    return [int(k) for k in ks]


# --------------------------------------------------------------------------- public API
def evaluate(recs: pd.DataFrame, truth: pd.DataFrame, ks: Sequence[int] | int = (10,),
             catalog=None, metrics: Iterable[str] | None = None) -> dict[str, float]:
    """Mean top-K metrics over the users in ``truth``.

    recs: ``user_id, item_id`` and ``rank`` (1 = best) or ``score`` (higher = better; ties by
    lower item_id) - see :func:`top_k`. truth: ``user_id, item_id`` relevant pairs (duplicates
    ignored). Only users in truth are evaluated; a user without recs scores 0 everywhere. ID
    columns are normalised (``normalize_ids``) so int and str IDs from different files match.

    catalog: the candidate item set (array-like of item ids) for ItemCoverage/Gini. If None, it
    is the union of every item appearing in ``recs`` (any user, any depth, so it does not depend
    on ``ks``) and every item in ``truth``. Pass the real candidate set (e.g. all items, or P3's
    cold items) for comparable figures. Recommended items outside the catalog are ignored by
    coverage and Gini.

    metrics: names from Recall, NDCG, Hit, MRR, Precision, ItemCoverage, Gini (case-insensitive;
    default all). Returns ``{"Recall@10": ..., ..., "n_users": int}``; values are NaN when no
    user is evaluated.
    """
    ks = _parse_ks(ks)
    names = _parse_metrics(metrics)
    kmax = max(ks)
    acc = [m for m in names if m in ACCURACY_METRICS]
    agg = [m for m in names if m in AGGREGATE_METRICS]
    p = _prepare(recs, truth, kmax, catalog=catalog, want_catalog=bool(agg))
    n_users = len(p.users)
    out: dict[str, float] = {}
    for k in ks:
        vals = _accuracy(p, k) if acc else {}
        for m in acc:
            out[f"{m}@{k}"] = float(vals[m].mean()) if n_users else float("nan")
    if agg:
        in_cat = np.zeros(len(p.items), dtype=bool)
        in_cat[p.extra_codes] = True
        n_cat = int(in_cat.sum())
        for k in ks:
            codes = p.item_codes[:, :k]
            codes = codes[codes >= 0]
            expo = np.bincount(codes, minlength=len(p.items))[in_cat]
            if "ItemCoverage" in agg:
                out[f"ItemCoverage@{k}"] = float((expo > 0).sum() / n_cat) if n_cat and n_users else float("nan")
            if "Gini" in agg:
                out[f"Gini@{k}"] = _gini(expo) if n_users else float("nan")
    out["n_users"] = int(n_users)
    return out


def per_user(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """Per-user metric values at ``k`` for every user in ``truth``.

    Columns: ``user_id, n_relevant, n_hits, Recall@k, NDCG@k, Hit@k, MRR@k, Precision@k``,
    sorted by user_id. The column means equal :func:`evaluate`'s values (for grouping users and
    bootstrap confidence intervals).
    """
    k = _parse_ks(k)[0]
    p = _prepare(recs, truth, k)
    vals = _accuracy(p, k)
    df = pd.DataFrame({"user_id": p.users, "n_relevant": p.n_rel.astype(np.int64),
                       "n_hits": p.hits.sum(axis=1).astype(np.int64)})
    for m in ACCURACY_METRICS:
        df[f"{m}@{k}"] = vals[m]
    return df
