"""report.html (self-contained: PNGs embedded as base64, no scripts, no CDN) plus the PNGs.

Figures: every metric over time for all users (one line per policy = mean over seeds, band =
min..max over seeds); the utility vs homogenisation / exposure-Gini trade-off (one dot per
seed, a ring per policy mean); per-group utility and retention at the end. Tables: the summary
(mean over the last 10% of steps, ± std over seeds) for all users and per group, and the
trade-off finding of the issue (a policy within 5% of the best non-oracle utility that cuts
homogenisation or exposure Gini by ≥ 20%), computed from the results.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.simulate.config import SimConfig

PLOTTED = [
    ("utility_vs_oracle", "utility relative to oracle (0 random, 1 oracle)"),
    ("welfare", "welfare: chosen utility per user (left = 0)"),
    ("utility", "mean true utility of shown items (active users)"),
    ("click_rate", "click rate (active users)"),
    ("active", "active users (retention)"),
    ("jaccard_consumed", "homogenisation: Jaccard of consumed sets"),
    ("jaccard_shown", "Jaccard of shown slates"),
    ("inter_diversity", "inter-user diversity"),
    ("intra_diversity", "intra-user diversity"),
    ("exposure_gini", "exposure Gini (cumulative)"),
    ("coverage", "catalogue coverage (cumulative)"),
    ("novelty", "novelty of chosen items (bits)"),
    ("rec_popularity", "popularity of shown items (logged share)"),
    ("consumed_popularity", "popularity of chosen items (initial share)"),
    ("calibration_kl", "calibration drift KL(initial || simulated)"),
    ("return_rate", "return rate (of users away)"),
]
UTILITY = "welfare"
SUMMARY_COLS = ["welfare", "utility", "utility_vs_oracle", "click_rate", "active", "jaccard_consumed", "jaccard_shown",
                "inter_diversity", "intra_diversity", "exposure_gini", "coverage", "novelty", "rec_popularity",
                "calibration_kl"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(policies: list[str]) -> dict[str, str]:
    base = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    return {p: base[i % len(base)] for i, p in enumerate(policies)}


def summarize(df: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Per (policy, group, seed): mean over the last 10% of steps; then mean and std over seeds."""
    last = max(1, steps // 10)
    tail = df[df["step"] >= df["step"].max() - last + 1]
    per_seed = tail.groupby(["policy", "group", "seed"], sort=False)[SUMMARY_COLS].mean()
    mean = per_seed.groupby(level=["policy", "group"], sort=False).mean()
    std = per_seed.groupby(level=["policy", "group"], sort=False).std(ddof=0)
    return mean.join(std.add_suffix("_std"))


def tradeoff_finding(summary: pd.DataFrame, oracle_names: set[str]) -> dict:
    """The issue's target: a policy within 5% of the best non-oracle mean utility that cuts
    homogenisation (jaccard_consumed) or exposure Gini by >= 20% relative to that best policy."""
    allu = summary.xs("all", level="group")
    cand = allu[~allu.index.isin(oracle_names)]
    if cand.empty:
        return {"text": "no non-oracle policy to compare.", "found": []}
    best = cand[UTILITY].idxmax()
    b = cand.loc[best]
    found = []
    for name, r in cand.iterrows():
        if name == best or b[UTILITY] <= 0:
            continue
        within = r[UTILITY] >= 0.95 * b[UTILITY]
        cut_j = 1 - r["jaccard_consumed"] / b["jaccard_consumed"] if b["jaccard_consumed"] > 0 else np.nan
        cut_g = 1 - r["exposure_gini"] / b["exposure_gini"] if b["exposure_gini"] > 0 else np.nan
        if within and (cut_j >= 0.2 or cut_g >= 0.2):
            found.append({"policy": name, "utility_ratio": round(float(r[UTILITY] / b[UTILITY]), 3),
                          "homogenisation_cut": round(float(cut_j), 3), "gini_cut": round(float(cut_g), 3)})
    if found:
        parts = [f"{f['policy']} keeps {100 * f['utility_ratio']:.1f}% of {best}'s utility while cutting "
                 f"homogenisation by {100 * f['homogenisation_cut']:.0f}% and exposure Gini by {100 * f['gini_cut']:.0f}%"
                 for f in found]
        text = "Yes: " + "; ".join(parts) + "."
    else:
        text = (f"No policy kept mean utility within 5% of the best non-oracle policy ({best}, welfare "
                f"{b[UTILITY]:.3f}) while cutting homogenisation or exposure Gini by ≥ 20%.")
    return {"best_non_oracle": best, "found": found, "text": text}


def _png(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = buf.getvalue()
    path.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


def plot_time(df: pd.DataFrame, path: Path, group: str = "all") -> str:
    plt = _plt()
    d = df[df["group"] == group]
    policies = list(dict.fromkeys(d["policy"]))
    colors = _colors(policies)
    ncol = 4
    nrow = int(np.ceil(len(PLOTTED) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.9 * nrow), sharex=True)
    for ax, (m, title) in zip(axes.ravel(), PLOTTED):
        for p in policies:
            g = d[d["policy"] == p].groupby("step")[m]
            mean, lo, hi = g.mean(), g.min(), g.max()
            ax.plot(mean.index, mean.to_numpy(), color=colors[p], lw=1.6, label=p)
            if d.loc[d["policy"] == p, "seed"].nunique() > 1:
                ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), color=colors[p], alpha=0.18, lw=0)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(PLOTTED):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(policies), 8), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"long-term metrics over time ({group} users; line = mean over seeds, band = min–max)",
                 fontsize=11, y=1.03)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out = _png(fig, path)
    plt.close(fig)
    return out


def plot_tradeoff(df: pd.DataFrame, steps: int, path: Path, oracle_names: set[str]) -> str:
    plt = _plt()
    last = max(1, steps // 10)
    tail = df[(df["group"] == "all") & (df["step"] >= df["step"].max() - last + 1)]
    per_seed = tail.groupby(["policy", "seed"], sort=False)[[UTILITY, "jaccard_consumed", "exposure_gini"]].mean()
    policies = list(dict.fromkeys(df["policy"]))
    colors = _colors(policies)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for ax, x, xl in ((axes[0], "jaccard_consumed", "homogenisation (Jaccard of consumed sets)"),
                      (axes[1], "exposure_gini", "exposure Gini")):
        for p in policies:
            r = per_seed.loc[p]
            ax.scatter(r[x], r[UTILITY], color=colors[p], s=18, alpha=0.6)
            ax.scatter(r[x].mean(), r[UTILITY].mean(), s=110, facecolors="none", edgecolors=colors[p], lw=2)
            ax.annotate(p + (" (oracle)" if p in oracle_names and "oracle" not in p else ""), (r[x].mean(), r[UTILITY].mean()),
                        textcoords="offset points", xytext=(7, 5), fontsize=8, color=colors[p])
        ax.set_xlabel(xl, fontsize=9)
        ax.set_ylabel("welfare (true utility realised per user)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"utility vs homogenisation trade-off (mean over the last {last} steps; dot = seed, ring = mean; "
                 "up-left is better)", fontsize=10)
    fig.tight_layout()
    out = _png(fig, path)
    plt.close(fig)
    return out


def plot_groups(summary: pd.DataFrame, path: Path) -> str:
    plt = _plt()
    s = summary.reset_index()
    groups = [g for g in dict.fromkeys(s["group"]) if g != "all"]
    policies = list(dict.fromkeys(s["policy"]))
    colors = _colors(policies)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    w = 0.8 / max(len(policies), 1)
    x = np.arange(len(groups))
    for ax, m, title in ((axes[0], "utility_vs_oracle", "utility relative to oracle"),
                         (axes[1], "active", "active users (retention)")):
        for k, p in enumerate(policies):
            vals = [float(s[(s["policy"] == p) & (s["group"] == g)][m].iloc[0]) for g in groups]
            ax.bar(x + (k - (len(policies) - 1) / 2) * w, vals, w, color=colors[p], label=p)
        ax.set_xticks(x, groups, fontsize=8, rotation=20)
        ax.set_title(f"{title}, by user group (end of run)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[1].legend(fontsize=8, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    out = _png(fig, path)
    plt.close(fig)
    return out


def _table(summary: pd.DataFrame, group: str) -> str:
    d = summary.xs(group, level="group")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["policy", *SUMMARY_COLS])
    rows = []
    for p, r in d.iterrows():
        cells = []
        for c in SUMMARY_COLS:
            sd = r.get(f"{c}_std", np.nan)
            cells.append(f"<td>{r[c]:.3f}" + (f"<small> ±{sd:.3f}</small>" if np.isfinite(sd) and sd > 0 else "") + "</td>")
        rows.append(f"<tr><th>{html.escape(str(p))}</th>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(df: pd.DataFrame, cfg: SimConfig, info: dict, out: Path) -> Path:
    from longrec.simulate import metrics as metrics_mod

    out = Path(out)
    steps = cfg.simulation.steps
    oracle_names = {p.name for p in cfg.policies if p.model == "oracle"}
    summary = summarize(df, steps)
    finding = tradeoff_finding(summary, oracle_names)
    (out / "summary.json").write_text(json.dumps({"tradeoff": finding, "summary": json.loads(
        summary.reset_index().to_json(orient="records"))}, indent=2), encoding="utf-8")
    img_time = plot_time(df, out / "metrics_over_time.png")
    img_trade = plot_tradeoff(df, steps, out / "tradeoff.png", oracle_names)
    img_groups = plot_groups(summary, out / "groups.png")
    val = info.get("validation", {})
    sim = cfg.simulation
    pol = "".join(f"<li><b>{html.escape(p.name)}</b>: {html.escape(p.model)}"
                  f"{' ' + html.escape(json.dumps(p.params)) if p.params else ''}"
                  f"{' + ' + html.escape(p.exploration.kind) + ' exploration ' + html.escape(json.dumps(p.exploration.model_dump())) if p.exploration else ''}</li>"
                  for p in cfg.policies)
    groups = "".join(f"<h3>{html.escape(g)}</h3>{_table(summary, g)}" for g in dict.fromkeys(df["group"]) if g != "all")
    defs = html.escape(metrics_mod.__doc__.split("\n\n", 1)[1])
    world = html.escape(json.dumps(cfg.world.model_dump(), indent=1))
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>longrec simulate: {html.escape(sim.name)}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1250px;margin:1.5em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:12px;margin:.5em 0 1.2em}} td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}
th{{background:#f4f4f4}} img{{max-width:100%;border:1px solid #eee;margin:.5em 0}} pre{{background:#f7f7f7;padding:.6em;font-size:12px;overflow-x:auto}}
.finding{{background:#eef6ee;border-left:4px solid #2ca02c;padding:.6em 1em}} small{{color:#777}}
</style></head><body>
<h1>Long-term simulation: {html.escape(sim.name)}</h1>
<p>Dataset <b>{html.escape(sim.dataset)}</b> ({info.get('n_users', '?')} users, {info.get('n_items', '?')} items), loop started from
the <b>{sim.split}</b> training split; {sim.steps} steps, slate size {sim.slate_size}, models retrained every
{sim.retrain_every} steps on everything logged; seeds {sim.seeds}. Wall time {info.get('total_seconds', '?')} s.</p>
<p>World check: the true-utility model, fitted the same way on {html.escape(str(val.get('fitted_on', '?')))}, ranks the held-out
{sim.split} test items with <b>NDCG@10 = {val.get('NDCG@10', float('nan'))}</b> (Recall@10 {val.get('Recall@10', float('nan'))},
{val.get('n_users', '?')} users; target ≥ 0.30).</p>
<h2>Policies</h2><ul>{pol}</ul>
<h2>Trade-off finding</h2><p class="finding">{html.escape(finding['text'])}</p>
<h2>Summary (all users; mean over the last {max(1, steps // 10)} steps, ± std over seeds)</h2>{_table(summary, 'all')}
<h2>Metrics over time</h2><img alt="metrics over time" src="data:image/png;base64,{img_time}">
<h2>Utility vs homogenisation</h2><img alt="trade-off" src="data:image/png;base64,{img_trade}">
<h2>User groups</h2><img alt="groups" src="data:image/png;base64,{img_groups}">{groups}
<h2>Metric definitions</h2><pre>{defs}</pre>
<h2>World parameters</h2><pre>{world}</pre>
<p><small>Generated by longrec.simulate; data in metrics.parquet (one row per policy, seed, step, user group).</small></p>
</body></html>"""
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path
