"""Fairness metrics: accuracy by user group, and how exposure is spread over items.

User side
    ``user_groups`` assigns every user a group per attribute (gender, age bucket, occupation,
    activity level); ``group_metrics`` gives each accuracy metric per group with a bootstrap
    95% confidence interval; ``largest_gaps`` the largest relative gap between groups.
Item side
    ``exposure_gini``: Gini of how often each catalogue item is shown (optionally position
    weighted). ``aplt``: average percentage of long-tail items (Abdollahpouri et al. 2019),
    the long tail being every item outside the top 20% by training popularity.
    ``exposure_merit``: exposure vs merit (Singh & Joachims 2018, "Fairness of Exposure in
    Rankings"): head and tail items should get exposure in proportion to their merit
    (held-out relevance); reports the disparate treatment ratio and the item-level total
    variation between the exposure and merit distributions.
    ``popularity_calibration``: Jensen-Shannon divergence between each user's historical
    head/mid/tail mix and their list's (Abdollahpouri et al. 2021).
Everything
    ``fairness_report(recs, truth, users_df, train_interactions, k)`` -> a JSON-ready dict,
    what ``longrec evaluate --users FILE --fairness`` prints.

``recs`` / ``truth`` are as in :func:`longrec.metrics.ranking.evaluate`; IDs are normalised,
so int and str IDs from different files match.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from longrec.errors import ConfigError, DataError
from longrec.metrics.ranking import ACCURACY_METRICS, _align_ids, _gini, _need, per_user, top_k

__all__ = ["user_groups", "group_metrics", "largest_gaps", "exposure_gini", "aplt", "exposure_merit",
           "popularity_calibration", "item_popularity", "fairness_report", "AGE_BUCKETS"]

#: MovieLens-1M age codes as bucket edges (ml-100k exact ages fall into the same buckets).
AGE_BUCKETS = ((0, 18, "<18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
               (45, 50, "45-49"), (50, 56, "50-55"), (56, 200, "56+"))
ACTIVITY_LABELS = ("low", "mid", "high")


# --------------------------------------------------------------------------- helpers
def _ids(s: pd.Series) -> pd.Series:
    return _align_ids(s)[0]


def item_popularity(train_interactions: pd.DataFrame) -> pd.Series:
    """Distinct users per item in the training interactions (index item_id)."""
    _need(train_interactions, ("user_id", "item_id"), "train_interactions")
    u, i = _align_ids(train_interactions["user_id"], train_interactions["item_id"])
    df = pd.DataFrame({"user_id": u.to_numpy(), "item_id": i.to_numpy()}).drop_duplicates()
    return df.groupby("item_id").size().rename("popularity")


def _head_items(pop: pd.Series, head_share: float) -> set:
    """The top ``head_share`` of items by popularity (ties: lower item_id first)."""
    if not 0 < head_share < 1:
        raise ConfigError(f"head_share must be in (0, 1), got {head_share}")
    order = pop.reset_index().sort_values(["popularity", "item_id"], ascending=[False, True])
    n_head = int(np.ceil(head_share * len(order)))
    return set(order["item_id"].iloc[:n_head])


def _aligned_top(recs: pd.DataFrame, k: int, *others: pd.Series) -> tuple[pd.DataFrame, list[pd.Series]]:
    """top_k(recs, k) with its item ids aligned (int vs str) with the other item series."""
    top = top_k(recs, k)
    al = _align_ids(top["item_id"], *others)
    top = top.assign(item_id=al[0].to_numpy())
    return top, al[1:]


# --------------------------------------------------------------------------- user side
def user_groups(users_df: pd.DataFrame | None = None, train_interactions: pd.DataFrame | None = None,
                attributes: Sequence[str] = ("gender", "age", "occupation", "activity")) -> pd.DataFrame:
    """One row per user: ``user_id`` and a group label per attribute.

    ``age`` is bucketed (AGE_BUCKETS; non-numeric ages are kept as given); ``activity`` is the
    tertile (low/mid/high) of the user's number of distinct training items. Attributes
    missing from ``users_df`` are skipped; other columns are used as they are.
    """
    frames = []
    if users_df is not None:
        _need(users_df, ("user_id",), "users_df")
        u = users_df.drop_duplicates("user_id").copy()
        u["user_id"] = _ids(u["user_id"]).to_numpy()
        df = u[["user_id"]].copy()
        for a in attributes:
            if a == "activity" or a not in u.columns:
                continue
            col = u[a]
            if a == "age":
                num = pd.to_numeric(col, errors="coerce")
                if num.notna().all():
                    edges = [b[0] for b in AGE_BUCKETS] + [AGE_BUCKETS[-1][1]]
                    col = pd.cut(num, edges, right=False, labels=[b[2] for b in AGE_BUCKETS]).astype(str)
            df[a] = col.astype(str).to_numpy()
        frames.append(df.set_index("user_id"))
    if "activity" in attributes and train_interactions is not None:
        _need(train_interactions, ("user_id", "item_id"), "train_interactions")
        u, i = _align_ids(train_interactions["user_id"], train_interactions["item_id"])
        n = pd.DataFrame({"user_id": u.to_numpy(), "item_id": i.to_numpy()}).drop_duplicates().groupby("user_id").size()
        # rank first so that heavy ties (many users with 20 items) still give three groups
        act = pd.qcut(n.rank(method="first"), 3, labels=list(ACTIVITY_LABELS)).astype(str)
        frames.append(act.rename("activity").to_frame())
    if not frames:
        raise DataError("user_groups needs a user table (users_df) or training interactions (for activity).")
    out = frames[0]
    for f in frames[1:]:
        if len(out):
            a, b = _align_ids(pd.Series(out.index), pd.Series(f.index))
            out.index, f.index = a.to_numpy(), b.to_numpy()
        out = out.join(f, how="outer")
    out.index.name = "user_id"
    return out.reset_index()


def _bootstrap_ci(values: np.ndarray, n_boot: int, rng: np.random.Generator, level: float = 0.95,
                  chunk: int = 2_000_000) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (resampling users with replacement)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    means = np.empty(n_boot)
    step = max(1, chunk // n)
    for s in range(0, n_boot, step):
        b = min(step, n_boot - s)
        means[s:s + b] = values[rng.integers(0, n, size=(b, n))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(lo), float(hi)


def group_metrics(recs: pd.DataFrame, truth: pd.DataFrame, groups: pd.DataFrame, k: int = 10,
                  metrics: Sequence[str] = ("NDCG", "Recall", "Hit"), n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Accuracy metrics per user group with bootstrap 95% CIs.

    groups: ``user_id`` + one column per attribute (see :func:`user_groups`). Users in
    ``truth`` without a group get the label ``"unknown"``. Returns one row per (attribute,
    group, metric): ``attribute, group, metric, n_users, mean, ci_low, ci_high``; the
    ``attribute == "all"`` rows hold the overall values.
    """
    bad = [m for m in metrics if m not in ACCURACY_METRICS]
    if bad:
        raise ConfigError(f"unknown metric(s) {bad}; choose from {list(ACCURACY_METRICS)}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be positive, got {n_boot}")
    _need(groups, ("user_id",), "groups")
    pu = per_user(recs, truth, k)
    a, b = _align_ids(pu["user_id"], groups["user_id"])
    g = groups.assign(user_id=b.to_numpy()).drop_duplicates("user_id").set_index("user_id")
    pu = pu.assign(user_id=a.to_numpy()).set_index("user_id")
    rng = np.random.default_rng(seed)
    rows = []
    attrs = [("all", pd.Series("all", index=pu.index))]
    attrs += [(c, g[c].reindex(pu.index).fillna("unknown").astype(str)) for c in g.columns]
    for attr, labels in attrs:
        for label, idx in labels.groupby(labels, sort=True).groups.items():
            sub = pu.loc[idx]
            for m in metrics:
                v = sub[f"{m}@{k}"].to_numpy(dtype=np.float64)
                lo, hi = _bootstrap_ci(v, n_boot, rng)
                rows.append((attr, str(label), m, len(v), float(v.mean()), lo, hi))
    return pd.DataFrame(rows, columns=["attribute", "group", "metric", "n_users", "mean", "ci_low", "ci_high"])


def largest_gaps(table: pd.DataFrame, min_group_size: int = 20) -> pd.DataFrame:
    """Per (attribute, metric): the best and worst group and the relative gap
    ``(best - worst) / best``, over groups with at least ``min_group_size`` users (tiny
    groups make noisy gaps; their CIs are in the table). ``significant`` says whether the two
    groups' 95% CIs do not overlap."""
    rows = []
    t = table[(table["attribute"] != "all") & (table["group"] != "unknown") & (table["n_users"] >= min_group_size)]
    for (attr, m), sub in t.groupby(["attribute", "metric"], sort=True):
        if len(sub) < 2:
            continue
        best, worst = sub.loc[sub["mean"].idxmax()], sub.loc[sub["mean"].idxmin()]
        gap = (best["mean"] - worst["mean"]) / best["mean"] if best["mean"] > 0 else float("nan")
        rows.append((attr, m, best["group"], float(best["mean"]), worst["group"], float(worst["mean"]),
                     float(gap), bool(worst["ci_high"] < best["ci_low"]), len(sub)))
    return pd.DataFrame(rows, columns=["attribute", "metric", "best_group", "best", "worst_group", "worst",
                                       "relative_gap", "significant", "n_groups"])


# --------------------------------------------------------------------------- item side
def exposure_gini(recs: pd.DataFrame, k: int = 10, catalog=None, position_weighted: bool = False) -> float:
    """Gini of item exposure over the catalogue (zeros included): 0 = every item shown
    equally, near 1 = a few items get everything. Exposure is the number of lists holding the
    item, or with ``position_weighted`` the sum of 1/log2(1 + position) (Singh & Joachims'
    attention model). catalog: candidate items (default: the recommended items only)."""
    top = top_k(recs, k)
    if len(top) == 0:
        return float("nan")
    w = 1.0 / np.log2(1.0 + top["pos"].to_numpy()) if position_weighted else np.ones(len(top))
    if catalog is None:
        items = top["item_id"]
    else:
        a, items = _align_ids(top["item_id"], pd.Series(np.asarray(list(catalog), dtype=object)).drop_duplicates())
        top = top.assign(item_id=a.to_numpy())
    expo = pd.Series(w).groupby(top["item_id"].to_numpy()).sum()
    x = expo.reindex(pd.unique(items.to_numpy()), fill_value=0.0).to_numpy(dtype=np.float64)
    return _gini(x)


def aplt(recs: pd.DataFrame, train_interactions: pd.DataFrame, k: int = 10, head_share: float = 0.2) -> float:
    """Average Percentage of Long-Tail items (Abdollahpouri et al. 2019): the mean over users
    of the share of their top-k list outside the head (the top ``head_share`` of training
    items by popularity; items never seen in training count as long tail)."""
    pop = item_popularity(train_interactions)
    head = pd.Series(sorted(_head_items(pop, head_share), key=str), dtype=object)
    top, (head_al,) = _aligned_top(recs, k, head)
    if len(top) == 0:
        return float("nan")
    tail = ~top["item_id"].isin(set(head_al))
    return float(tail.groupby(top["user_id"].to_numpy()).mean().mean())


def exposure_merit(recs: pd.DataFrame, truth: pd.DataFrame, train_interactions: pd.DataFrame, k: int = 10,
                   head_share: float = 0.2) -> dict[str, float]:
    """Exposure vs merit (Singh & Joachims 2018), head vs long-tail items.

    Exposure of an item = sum over lists of 1/log2(1 + position) (top k); merit = the number
    of held-out (truth) users who find it relevant. Returns the head group's share of exposure
    and of merit, ``dtr`` = (Exp_head / Merit_head) / (Exp_tail / Merit_tail) (the disparate
    treatment ratio; 1 = exposure proportional to merit, > 1 = head over-exposed), and
    ``tv`` = 0.5 * sum_i |exposure share_i - merit share_i| over items (0 = every item gets
    exactly its share of exposure).
    """
    _need(truth, ("user_id", "item_id"), "truth")
    pop = item_popularity(train_interactions)
    head = pd.Series(sorted(_head_items(pop, head_share), key=str), dtype=object)
    tu, ti = _align_ids(truth["user_id"], truth["item_id"])
    top, (head_al, ti) = _aligned_top(recs, k, head, ti)
    expo = (1.0 / np.log2(1.0 + top["pos"].to_numpy()))
    expo = pd.Series(expo).groupby(top["item_id"].to_numpy()).sum()
    merit = pd.DataFrame({"u": tu.to_numpy(), "i": ti.to_numpy()}).drop_duplicates().groupby("i").size().astype(float)
    items = pd.Index(pd.unique(np.concatenate([expo.index.to_numpy(), merit.index.to_numpy()])))
    e = expo.reindex(items, fill_value=0.0).to_numpy()
    m = merit.reindex(items, fill_value=0.0).to_numpy()
    is_head = items.isin(set(head_al))
    if e.sum() == 0 or m.sum() == 0:
        nan = float("nan")
        return {"exposure_head_share": nan, "merit_head_share": nan, "dtr": nan, "tv": nan}
    eh, mh = e[is_head].sum() / e.sum(), m[is_head].sum() / m.sum()
    et, mt = 1 - eh, 1 - mh
    with np.errstate(divide="ignore", invalid="ignore"):
        dtr = (eh / mh) / (et / mt) if mh > 0 and mt > 0 and et > 0 else float("inf")
    tv = 0.5 * float(np.abs(e / e.sum() - m / m.sum()).sum())
    return {"exposure_head_share": float(eh), "merit_head_share": float(mh), "dtr": float(dtr), "tv": tv}


def _pop_categories(pop: pd.Series, head_mass: float = 0.2, tail_mass: float = 0.2) -> pd.Series:
    """head / mid / tail by cumulative interaction mass (Abdollahpouri et al. 2021): the most
    popular items making up the first ``head_mass`` of interactions are head, the least popular
    making up the last ``tail_mass`` are tail."""
    s = pop.reset_index().sort_values(["popularity", "item_id"], ascending=[False, True])
    cum = s["popularity"].cumsum().to_numpy() / s["popularity"].sum()
    before = np.concatenate([[0.0], cum[:-1]])
    cat = np.where(before < head_mass, 0, np.where(before >= 1 - tail_mass, 2, 1))
    return pd.Series(cat, index=s["item_id"].to_numpy())


def popularity_calibration(recs: pd.DataFrame, train_interactions: pd.DataFrame, k: int = 10,
                           history: pd.DataFrame | None = None) -> float:
    """Popularity miscalibration: mean over users of the Jensen-Shannon divergence (base 2,
    in [0, 1]) between the head/mid/tail distribution of the user's history and of their
    top-k list (Abdollahpouri et al. 2021). Categories come from training popularity; items
    unseen in training are tail. history: the users' profiles (default: training)."""
    pop = item_popularity(train_interactions)
    cat = _pop_categories(pop)
    hist = train_interactions if history is None else history
    _need(hist, ("user_id", "item_id"), "history")
    hu, hi = _align_ids(hist["user_id"], hist["item_id"])
    top = top_k(recs, k)
    tu, hu = _align_ids(top["user_id"], hu)
    ti, hi, ci = _align_ids(top["item_id"], hi, pd.Series(cat.index))
    cat.index = ci.to_numpy()
    users = pd.Index(pd.unique(tu.to_numpy()))

    def dist(u: pd.Series, i: pd.Series) -> np.ndarray:
        r = users.get_indexer(u.to_numpy())
        c = cat.reindex(i.to_numpy()).fillna(2).to_numpy().astype(np.int64)
        ok = r >= 0
        d = np.zeros((len(users), 3))
        np.add.at(d, (r[ok], c[ok]), 1.0)
        return d

    p, q = dist(hu, hi), dist(tu, ti)
    ok = (p.sum(1) > 0) & (q.sum(1) > 0)
    if not ok.any():
        return float("nan")
    p = p[ok] / p[ok].sum(1, keepdims=True)
    q = q[ok] / q[ok].sum(1, keepdims=True)
    mix = (p + q) / 2

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / np.where(b > 0, b, 1)), 0.0).sum(1)

    return float((0.5 * kl(p, mix) + 0.5 * kl(q, mix)).mean())


# --------------------------------------------------------------------------- report
def fairness_report(recs: pd.DataFrame, truth: pd.DataFrame, users_df: pd.DataFrame | None,
                    train_interactions: pd.DataFrame | None, k: int = 10, *,
                    metrics: Sequence[str] = ("NDCG", "Recall", "Hit"), n_boot: int = 1000, seed: int = 0,
                    catalog=None, min_group_size: int = 20, history: pd.DataFrame | None = None) -> dict:
    """Every fairness figure as a JSON-ready dict.

    users_df: user attributes (user_id + gender/age/occupation/...; None = activity groups
    only). train_interactions: the model's training data (popularity, activity, long tail;
    None skips the item-side figures that need it). history: the users' profiles for
    popularity calibration (default: train_interactions; pass train+valid for test lists).
    catalog: candidate items for the Gini (default: the training items plus anything
    recommended).
    """
    groups_df = None
    if users_df is not None or train_interactions is not None:
        groups_df = user_groups(users_df, train_interactions)
    out: dict = {"k": int(k), "n_boot": int(n_boot), "seed": int(seed), "min_group_size": int(min_group_size)}
    if groups_df is not None and groups_df.shape[1] > 1:
        table = group_metrics(recs, truth, groups_df, k=k, metrics=metrics, n_boot=n_boot, seed=seed)
        gaps = largest_gaps(table, min_group_size=min_group_size)
        by: dict = {}
        for r in table.itertuples(index=False):
            cell = by.setdefault(r.attribute, {}).setdefault(r.group, {"n_users": int(r.n_users)})
            cell[f"{r.metric}@{k}"] = {"mean": r.mean, "ci95": [r.ci_low, r.ci_high]}
        out["user_groups"] = by
        out["largest_gaps"] = {f"{r.attribute}/{r.metric}@{k}": {
            "best": [r.best_group, r.best], "worst": [r.worst_group, r.worst],
            "relative_gap": r.relative_gap, "ci_disjoint": r.significant} for r in gaps.itertuples(index=False)}
    if catalog is None and train_interactions is not None:
        catalog = pd.concat([_ids(train_interactions["item_id"]).astype(object),
                             _ids(recs["item_id"]).astype(object)]).drop_duplicates().to_numpy()
    items: dict = {"exposure_gini": exposure_gini(recs, k, catalog),
                   "exposure_gini_position_weighted": exposure_gini(recs, k, catalog, position_weighted=True)}
    if train_interactions is not None:
        items["aplt"] = aplt(recs, train_interactions, k)
        items["exposure_vs_merit"] = exposure_merit(recs, truth, train_interactions, k)
        items["popularity_calibration_js"] = popularity_calibration(recs, train_interactions, k, history=history)
    out["items"] = items
    return _jsonable(out)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
