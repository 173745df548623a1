"""A study: every policy in several worlds (`[[worlds]]`), summarised per goal.

Per (world, policy, seed), on all users unless a group is named:

cum_welfare      sum over steps of welfare (chosen true utility per user, left users count 0)
retention        share of users active, mean over the last 10 % of steps
homogenisation   Jaccard of consumed sets (jaccard_consumed) at the last step
exposure_gini    Gini of item exposure (cumulative) at the last step
cum_welfare@G    cum_welfare of user group G (gender=F, age=25-34, ...)
min_group_ratio  the worst group's cum_welfare / all users' (1 = every group as well off)

For each goal the winner among the candidate policies (not the oracle or random references) is found in every world (mean over seeds,
with the seed standard deviation); a conclusion is stated only when the same policy wins in at
least two of the worlds (`min_worlds`) and, for "X beats Y" claims, when the sign of the mean
difference holds in at least that many worlds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# goal -> (column, higher is better)
GOALS = {"welfare": ("cum_welfare", True), "retention": ("retention", True),
         "homogenisation": ("homogenisation", False), "exposure_gini": ("exposure_gini", False),
         "group_fairness": ("min_group_ratio", True)}
NOT_COMPARED = ("oracle", "random")  # references, not candidates: never "winners"


def per_run(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (world, policy, seed) with the study's outcome columns."""
    keys = [k for k in ("world", "policy", "seed") if k in df.columns]
    rows = []
    for key, g in df.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(keys, key))
        last = g["step"].max()
        tail = g["step"] >= last - max(1, int(0.1 * (last + 1))) + 1
        alls = g[g["group"] == "all"]
        rec["cum_welfare"] = float(alls["welfare"].sum())
        rec["retention"] = float(alls.loc[tail[alls.index], "active"].mean())
        rec["homogenisation"] = float(alls.loc[alls["step"] == last, "jaccard_consumed"].iloc[0])
        rec["exposure_gini"] = float(alls.loc[alls["step"] == last, "exposure_gini"].iloc[0])
        ratios = []
        for grp, gg in g.groupby("group"):
            cw = float(gg["welfare"].sum())
            rec[f"cum_welfare@{grp}"] = cw
            if grp != "all" and rec["cum_welfare"] > 0:
                ratios.append(cw / rec["cum_welfare"])
        rec["min_group_ratio"] = float(min(ratios)) if ratios else float("nan")
        rows.append(rec)
    return pd.DataFrame(rows)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (world, policy)."""
    cols = [c for c in runs.columns if c not in ("world", "policy", "seed")]
    g = runs.groupby(["world", "policy"], sort=False)[cols]
    mean, std = g.mean(), g.std(ddof=0)
    out = mean.copy()
    for c in cols:
        out[f"{c}_std"] = std[c]
    out["n_seeds"] = g.size()
    return out.reset_index()


def winners(agg: pd.DataFrame, min_worlds: int = 2) -> dict:
    """Per goal: the best non-oracle policy per world (and its lead over the runner-up, in seed
    standard deviations), and a conclusion when one policy wins in >= min_worlds worlds."""
    out = {}
    cand = agg[~agg["policy"].isin(NOT_COMPARED)]
    worlds = list(dict.fromkeys(agg["world"]))
    for goal, (col, higher) in GOALS.items():
        per = {}
        for w in worlds:
            a = cand[cand["world"] == w].sort_values(col, ascending=not higher)
            if len(a) < 2 or not np.isfinite(a[col].iloc[0]):
                continue
            best, second = a.iloc[0], a.iloc[1]
            spread = float(max(best[f"{col}_std"], second[f"{col}_std"], 1e-12))
            per[w] = {"winner": best["policy"], "value": float(best[col]), "std": float(best[f"{col}_std"]),
                      "runner_up": second["policy"], "runner_up_value": float(second[col]),
                      "lead": float(abs(best[col] - second[col])),
                      "lead_rel": float(abs(best[col] - second[col]) / (abs(second[col]) + 1e-12)),
                      "lead_in_std": float(abs(best[col] - second[col]) / spread)}
        counts = pd.Series([v["winner"] for v in per.values()]).value_counts()
        top = counts.index[0] if len(counts) else None
        out[goal] = {"column": col, "higher_is_better": higher, "per_world": per,
                     "conclusion": (top if len(counts) and counts.iloc[0] >= min_worlds else None),
                     "wins": {str(k): int(v) for k, v in counts.items()}}
    return out


def compare(agg: pd.DataFrame, policy: str, baseline: str | None = None, welfare_factor: float = 1.05,
            homog_cut: float = 0.20, exclude_worlds: tuple = (), exclude_policies: tuple = ()) -> dict:
    """`policy` against `baseline` (default: the best other candidate policy by cumulative
    welfare in each world, excluding `policy` and `exclude_policies`, e.g. other long-term-aware
    variants) in every world not in `exclude_worlds`: welfare ratio, homogenisation change, and
    whether both targets are met."""
    res = {}
    for w in dict.fromkeys(agg["world"]):
        if w in exclude_worlds:
            continue
        a = agg[agg["world"] == w].set_index("policy")
        if policy not in a.index:
            continue
        others = a.drop(index=[p for p in (policy, *NOT_COMPARED, *exclude_policies) if p in a.index])
        base = baseline or others["cum_welfare"].idxmax()
        p, b = a.loc[policy], a.loc[base]
        wr = float(p["cum_welfare"] / b["cum_welfare"]) if b["cum_welfare"] else float("nan")
        hc = float(1 - p["homogenisation"] / b["homogenisation"]) if b["homogenisation"] else float("nan")
        res[w] = {"baseline": base, "welfare_ratio": round(wr, 4), "homogenisation_cut": round(hc, 4),
                  "welfare_met": bool(wr >= welfare_factor), "homogenisation_met": bool(hc >= homog_cut)}
    return res


def _fmt(v: float, s: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f} ± {s:,.0f}"
    return f"{v:.3f} ± {s:.3f}"


def markdown(agg: pd.DataFrame, wins: dict, header: str = "") -> str:
    lines = [header] if header else []
    cols = ["cum_welfare", "retention", "homogenisation", "exposure_gini", "min_group_ratio"]
    for w in dict.fromkeys(agg["world"]):
        a = agg[agg["world"] == w].sort_values("cum_welfare", ascending=False)
        lines += [f"\n### world `{w}`\n", "| policy | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for _, r in a.iterrows():
            lines.append(f"| {r['policy']} | " + " | ".join(_fmt(r[c], r[f'{c}_std']) for c in cols) + " |")
    lines += ["\n### winners per goal (oracle and random excluded; mean over seeds)\n",
              "| goal | " + " | ".join(f"`{w}`" for w in dict.fromkeys(agg["world"])) + " | holds in ≥ 2 worlds |",
              "|---|" + "---|" * (len(set(agg["world"])) + 1)]
    for goal, g in wins.items():
        cells = []
        for w in dict.fromkeys(agg["world"]):
            v = g["per_world"].get(w)
            cells.append("–" if v is None else f"{v['winner']} (+{100 * v['lead_rel']:.1f}% vs {v['runner_up']}, "
                                             f"{v['lead_in_std']:.1f} sd)")
        lines.append(f"| {goal} | " + " | ".join(cells) + f" | {g['conclusion'] or 'no'} |")
    return "\n".join(lines) + "\n"
