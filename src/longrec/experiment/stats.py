"""Paired significance tests of every model against a baseline, over the same test users.

For model m and baseline b with per-user values x_u, y_u (users both were evaluated on), the
paired differences are d_u = x_u - y_u and

* ``p_t``: two-sided paired t-test (``scipy.stats.ttest_rel(x, y)``);
* ``p_wilcoxon``: two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon(x, y)``; zero
  differences dropped, the default ``zero_method="wilcox"``); 1.0 when every d_u is 0;
* ``cohens_d``: mean(d) / std(d, ddof=1) (Cohen's d of the paired differences, d_z);
* ``p_t_holm`` / ``p_wilcoxon_holm``: Holm's step-down adjustment over the models compared
  with the baseline (one family per test and metric);
* ``significant``: ``p_t_holm < alpha`` and ``p_wilcoxon_holm < alpha``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["holm", "paired_tests", "compare_to_baseline"]


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def paired_tests(x, y) -> dict:
    """t-test, Wilcoxon and Cohen's d of the paired samples x (model) and y (baseline)."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    d = x - y
    n = len(d)
    out = {"n_users": n, "mean": float(x.mean()) if n else np.nan, "baseline_mean": float(y.mean()) if n else np.nan,
           "diff": float(d.mean()) if n else np.nan, "p_t": np.nan, "p_wilcoxon": np.nan, "cohens_d": np.nan}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    if sd > 0:
        out["p_t"] = float(stats.ttest_rel(x, y).pvalue)
        out["cohens_d"] = float(d.mean() / sd)
    else:
        out["p_t"] = 1.0 if d.mean() == 0 else 0.0
    if np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(x, y).pvalue)
    else:
        out["p_wilcoxon"] = 1.0
    return out


def compare_to_baseline(per_user: pd.DataFrame, baseline: str, alpha: float = 0.05) -> pd.DataFrame:
    """Tests of every model against ``baseline`` for every (metric, k).

    per_user: columns ``model, user_id, metric, k, value`` (one value per user; average seeds
    first). Returns one row per (metric, k, model != baseline) with the columns of
    :func:`paired_tests` plus the Holm-adjusted p-values and ``significant``.
    """
    rows = []
    for (metric, k), sub in per_user.groupby(["metric", "k"], sort=False):
        wide = sub.pivot_table(index="user_id", columns="model", values="value", aggfunc="mean")
        if baseline not in wide.columns:
            continue
        fam = []
        for model in wide.columns:
            if model == baseline:
                continue
            both = wide[[model, baseline]].dropna()
            r = paired_tests(both[model].to_numpy(), both[baseline].to_numpy())
            fam.append({"metric": metric, "k": int(k), "model": model, "baseline": baseline, **r})
        if not fam:
            continue
        for test in ("p_t", "p_wilcoxon"):
            adj = holm([f[test] for f in fam])
            for f, a in zip(fam, adj):
                f[f"{test}_holm"] = float(a)
        for f in fam:
            f["significant"] = bool(f["p_t_holm"] < alpha and f["p_wilcoxon_holm"] < alpha)
        rows.extend(fam)
    cols = ["metric", "k", "model", "baseline", "n_users", "mean", "baseline_mean", "diff", "cohens_d",
            "p_t", "p_t_holm", "p_wilcoxon", "p_wilcoxon_holm", "significant"]
    return pd.DataFrame(rows, columns=cols)
