"""The leaderboard (one row per model) and the self-contained HTML report.

report.html needs no network and no other file: styles are inline and the plots are PNGs
embedded as base64 (matplotlib, imported only here; without it the report has no plots).
Every number cell carries ``data-model``, ``data-col`` and the unrounded ``data-value``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.experiment.config import ExperimentConfig


def _split(name: str) -> tuple[str, int]:
    m, _, k = name.partition("@")
    return m, int(k)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1; 0 for one seed) and mean per-seed CI of every (model, metric, k)."""
    g = results.groupby(["model", "metric", "k"], sort=False)
    out = g.agg(mean=("value", "mean"), std=("value", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0),
                ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"), n_seeds=("seed", "nunique")).reset_index()
    return out


def leaderboard(cfg: ExperimentConfig, results: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """One row per model, best first on cfg.stats.metric, with its test against the baseline."""
    metric, k = _split(cfg.stats.metric)
    s = summarize(results)
    main = s[(s["metric"] == metric) & (s["k"] == k)].set_index("model")
    order = [m.key for m in cfg.models]
    rows = []
    for label in order:
        if label not in main.index:
            continue
        r = main.loc[label]
        row = {"model": label, "model_name": next(m.name for m in cfg.models if m.key == label),
               "n_seeds": int(r["n_seeds"]), "value": float(r["mean"]), "std": float(r["std"]),
               "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"])}
        for extra in ("ItemCoverage", "Novelty"):
            e = s[(s["model"] == label) & (s["metric"] == extra) & (s["k"] == k)]
            row[extra] = float(e["mean"].iloc[0]) if len(e) else np.nan
        fs = results[results["model"] == label].drop_duplicates("seed")["fit_seconds"]
        row["fit_seconds"] = float(fs.mean())
        row["over_budget"] = bool(results[results["model"] == label]["over_budget"].any())
        st = stats[(stats["model"] == label) & (stats["metric"] == metric) & (stats["k"] == k)] if len(stats) else stats
        if label == cfg.baseline:
            row.update(diff=0.0, cohens_d=np.nan, p_t_holm=np.nan, p_wilcoxon_holm=np.nan, significant=None,
                       baseline=True)
        elif len(st):
            t = st.iloc[0]
            row.update(diff=float(t["diff"]), cohens_d=float(t["cohens_d"]), p_t_holm=float(t["p_t_holm"]),
                       p_wilcoxon_holm=float(t["p_wilcoxon_holm"]), significant=bool(t["significant"]),
                       baseline=False)
        else:
            row.update(diff=np.nan, cohens_d=np.nan, p_t_holm=np.nan, p_wilcoxon_holm=np.nan, significant=None,
                       baseline=False)
        rows.append(row)
    board = pd.DataFrame(rows).sort_values("value", ascending=False, kind="stable").reset_index(drop=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board


# --------------------------------------------------------------------------- formatting
def _f(x, nd: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{nd}f}"


def _p(x) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return "&lt;1e-4" if x < 1e-4 else f"{x:.4f}"


def _td(model: str, col: str, value, text: str, cls: str = "num") -> str:
    dv = "" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f' data-value="{value!r}"'
    return (f'<td class="{cls}" data-model="{html.escape(model)}" data-col="{html.escape(col)}"{dv}>{text}</td>')


def _sig(flag, diff: float = 0.0) -> str:
    if flag is None:
        return '<span class="muted">baseline</span>'
    if not flag:
        return '<span class="muted">no</span>'
    return '<span class="sig">✔ better</span>' if diff > 0 else '<span class="sig">✔ worse</span>'


def _plots(summary: pd.DataFrame, cfg: ExperimentConfig) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    metric, k = _split(cfg.stats.metric)
    acc = summary[(summary["metric"] == metric) & (summary["k"] == k)].set_index("model")["mean"]
    panels = [m for m in ("ItemCoverage", "Novelty", "ILD") if ((summary["metric"] == m) & (summary["k"] == k)).any()]
    if not panels or acc.empty:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, other in zip(axes[0], panels):
        o = summary[(summary["metric"] == other) & (summary["k"] == k)].set_index("model")["mean"]
        for label in acc.index:
            if label in o.index:
                ax.scatter(o[label], acc[label], s=40)
                ax.annotate(label, (o[label], acc[label]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"{other}@{k}")
        ax.set_ylabel(cfg.stats.metric)
        ax.grid(alpha=0.3)
    fig.suptitle(f"accuracy vs beyond-accuracy (test, @{k}; higher = more accurate; right = more coverage, novelty or diversity)",
                 fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fair_plot(fair: pd.DataFrame, metric: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    f = fair[(fair["metric"] == metric) & (fair["attribute"] != "all")]
    attrs = list(dict.fromkeys(f["attribute"]))
    if not attrs:
        return None
    models = list(dict.fromkeys(f["model"]))
    fig, axes = plt.subplots(len(attrs), 1, figsize=(8, 2.8 * len(attrs)), squeeze=False)
    for ax, a in zip(axes[:, 0], attrs):
        sub = f[f["attribute"] == a]
        groups = list(dict.fromkeys(sub["group"]))
        w = 0.8 / max(1, len(models))
        x = np.arange(len(groups))
        for j, m in enumerate(models):
            s = sub[sub["model"] == m].set_index("group").reindex(groups)
            err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]]).clip(min=0)
            ax.bar(x + j * w, s["mean"], w, yerr=err, capsize=2, label=m)
        ax.set_xticks(x + w * (len(models) - 1) / 2, groups, rotation=30, fontsize=8)
        ax.set_title(f"{metric} by {a} (95% bootstrap CI)", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.85rem;display:block;max-width:100%;overflow-x:auto}
th,td{border-bottom:1px solid #ddd;padding:.3rem .45rem;text-align:left}
th{background:#f4f4f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.sig{color:#0a7a2f;font-weight:600}.muted{color:#888}.warn{color:#b36b00}
code{background:#f4f4f6;padding:0 .25rem}
img{max-width:100%;height:auto}
h2{margin-top:2rem;border-bottom:2px solid #eee}
"""


def render_report(cfg: ExperimentConfig, results: pd.DataFrame, stats: pd.DataFrame, board: pd.DataFrame,
                  fairness: pd.DataFrame | None, lock: dict) -> str:
    metric, k = _split(cfg.stats.metric)
    summary = summarize(results)
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(cfg.name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{e(cfg.name)}</h1>"]
    if cfg.description:
        parts.append(f"<p>{e(cfg.description)}</p>")
    d = lock.get("data", {})
    src = ", ".join(f"{k2} = {v}" for k2, v in d.get("source", {}).items())
    parts.append(f"<p>Data: <code>{e(src)}</code>; {d.get('n_train', 0):,} train / {d.get('n_valid', 0):,} valid / "
                 f"{d.get('n_test', 0):,} test interactions. Models are fitted on train (valid for tuning and early "
                 "stopping), recommend for the test users with train + valid as history, and are scored on test. "
                 f"Created {e(str(lock.get('created_at', '')))}, longrec {e(str(lock.get('versions', {}).get('longrec', '?')))}"
                 f", commit <code>{e(str(lock.get('git_commit') or 'unknown'))}</code>.</p>")
    # leaderboard
    parts.append(f"<h2>Leaderboard: {e(cfg.stats.metric)} on test</h2>")
    parts.append(f"<p>Mean over seeds (± std when there are several); 95% CI: bootstrap over test users "
                 f"({cfg.metrics.n_boot} resamples, mean of the per-seed intervals). Δ, Cohen's d and the p-values "
                 f"compare each model with the baseline <b>{e(cfg.baseline)}</b> on the same users (paired t-test and "
                 f"Wilcoxon signed-rank, Holm-corrected over the models); <b>significant</b> means both corrected "
                 f"p-values are below {cfg.stats.alpha}.</p>")
    parts.append("<table id='leaderboard'><tr><th>#</th><th>model</th><th>seeds</th>"
                 f"<th>{e(cfg.stats.metric)}</th><th>95% CI</th><th>Δ vs baseline</th><th>Cohen's d</th>"
                 f"<th>p (t, Holm)</th><th>p (Wilcoxon, Holm)</th><th>significant</th>"
                 f"<th>ItemCoverage@{k}</th><th>Novelty@{k}</th><th>fit s</th></tr>")
    for r in board.itertuples():
        m = r.model
        mean_txt = _f(r.value) + (f" ± {_f(r.std)}" if r.n_seeds > 1 else "")
        warn = " <span class='warn' title='training went over max_seconds'>⏱</span>" if r.over_budget else ""
        parts.append(
            f"<tr><td>{r.rank}</td><td>{e(m)} <span class='muted'>({e(r.model_name)})</span>{warn}</td>"
            f"<td class='num'>{r.n_seeds}</td>" + _td(m, "value", r.value, mean_txt)
            + _td(m, "ci", None, f"[{_f(r.ci_low)}, {_f(r.ci_high)}]")
            + _td(m, "diff", r.diff, ("+" if r.diff > 0 else "") + _f(r.diff) if np.isfinite(r.diff) else "–")
            + _td(m, "cohens_d", r.cohens_d, _f(r.cohens_d, 3)) + _td(m, "p_t_holm", r.p_t_holm, _p(r.p_t_holm))
            + _td(m, "p_wilcoxon_holm", r.p_wilcoxon_holm, _p(r.p_wilcoxon_holm))
            + f"<td>{_sig(r.significant, r.diff)}</td>"
            + _td(m, "ItemCoverage", r.ItemCoverage, _f(r.ItemCoverage)) + _td(m, "Novelty", r.Novelty, _f(r.Novelty, 2))
            + _td(m, "fit_seconds", r.fit_seconds, f"{r.fit_seconds:.1f}") + "</tr>")
    parts.append("</table>")
    png = _plots(summary, cfg)
    if png:
        parts.append("<h2>Accuracy vs coverage and novelty</h2>"
                     f"<img alt='accuracy vs beyond-accuracy' src='data:image/png;base64,{png}'>")
    # per-metric tables
    parts.append("<h2>Every metric</h2><p>Accuracy metrics per user, averaged (METRICS.md definitions); "
                 "ItemCoverage and Gini over the catalogue; Novelty = mean self-information −log2(popularity / "
                 "#train users) of the recommended items; ILD = mean pairwise Jaccard distance of the items' "
                 "genres within a list. The p-value is the Holm-corrected paired t-test against the baseline.</p>")
    order = list(board["model"])
    metrics_order = list(dict.fromkeys(summary["metric"]))
    for mname in metrics_order:
        for kk in cfg.metrics.k:
            sub = summary[(summary["metric"] == mname) & (summary["k"] == kk)].set_index("model")
            if sub.empty:
                continue
            col = f"{mname}@{kk}"
            has_ci = sub["ci_low"].notna().any()
            parts.append(f"<h3>{e(col)}</h3><table class='metric' data-metric='{e(col)}'><tr><th>model</th>"
                         f"<th>mean{' ± std' if sub['n_seeds'].max() > 1 else ''}</th>"
                         + ("<th>95% CI</th><th>Δ vs baseline</th><th>p (t, Holm)</th><th>significant</th>"
                            if has_ci else "") + "</tr>")
            for label in order:
                if label not in sub.index:
                    continue
                r = sub.loc[label]
                txt = _f(r["mean"]) + (f" ± {_f(r['std'])}" if r["n_seeds"] > 1 else "")
                row = f"<tr><td>{e(label)}</td>" + _td(label, col, float(r["mean"]), txt)
                if has_ci:
                    st = stats[(stats["model"] == label) & (stats["metric"] == mname) & (stats["k"] == kk)]
                    row += _td(label, col + ":ci", None, f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]")
                    if label == cfg.baseline or st.empty:
                        row += "<td class='num'>–</td><td class='num'>–</td>" + f"<td>{_sig(None)}</td>"
                    else:
                        t = st.iloc[0]
                        row += (_td(label, col + ":diff", float(t["diff"]), ("+" if t["diff"] > 0 else "")
                                    + _f(float(t["diff"])))
                                + _td(label, col + ":p", float(t["p_t_holm"]), _p(float(t["p_t_holm"])))
                                + f"<td>{_sig(bool(t['significant']), float(t['diff']))}</td>")
                parts.append(row + "</tr>")
            parts.append("</table>")
    # fairness
    if fairness is not None and len(fairness):
        fk = int(fairness["k"].iloc[0])
        first = fairness[fairness["seed"] == fairness.groupby("model")["seed"].transform("min")]
        fmetric = metric if metric in set(first["metric"]) else first["metric"].iloc[0]
        parts.append(f"<h2>Fairness across user groups ({e(fmetric)}@{fk})</h2><p>Mean per group with a 95% "
                     "bootstrap CI over the group's users (each model's first seed). Groups whose intervals do not "
                     "overlap differ beyond resampling noise; small groups have wide intervals.</p>")
        png = _fair_plot(first, fmetric)
        if png:
            parts.append(f"<img alt='per-group accuracy' src='data:image/png;base64,{png}'>")
        f = first[first["metric"] == fmetric]
        parts.append("<table id='fairness'><tr><th>attribute</th><th>group</th><th>users</th>"
                     + "".join(f"<th>{e(m)}</th>" for m in order) + "</tr>")
        for (attr, grp), sub in f.groupby(["attribute", "group"], sort=False):
            s = sub.set_index("model")
            cells = "".join(
                f"<td class='num'>{_f(s.loc[m, 'mean'])} [{_f(s.loc[m, 'ci_low'])}, {_f(s.loc[m, 'ci_high'])}]</td>"
                if m in s.index else "<td>–</td>" for m in order)
            parts.append(f"<tr><td>{e(str(attr))}</td><td>{e(str(grp))}</td><td class='num'>"
                         f"{int(sub['n_users'].iloc[0])}</td>{cells}</tr>")
        parts.append("</table>")
    # provenance
    res = lock.get("resolved", {})
    parts.append("<h2>Configurations</h2><p>Every setting of each model after the search, and what its fit "
                 "reported (first seed), e.g. the penalty EASE chose on valid.</p><table><tr><th>model</th><th>name</th>"
                 "<th>seeds</th><th>resolved config</th><th>fit info</th></tr>")
    for label, r in res.items():
        cfg_txt = ", ".join(f"{k2}={v}" for k2, v in sorted(r.get("config", {}).items()) if k2 != "seed")
        best = r.get("search_best")
        parts.append(f"<tr><td>{e(label)}</td><td>{e(r['model'])}</td><td>{e(str(r.get('seeds')))}</td>"
                     f"<td><code>{e(cfg_txt)}</code>{' <b>(searched on valid: ' + e(str(best)) + ')</b>' if best else ''}"
                     f"</td><td><code>{e(json.dumps(r.get('fit_info') or {}, default=str))}</code></td></tr>")
    parts.append("</table>")
    v = lock.get("versions", {})
    parts.append("<p class='muted'>Versions: " + e(", ".join(f"{a} {b}" for a, b in v.items()))
                 + f". Data fingerprints: {e(str(d.get('fingerprints', {})))}. Everything here is in "
                 "<code>results.parquet</code>, <code>per_user.parquet</code>, <code>stats.parquet</code> and "
                 "<code>experiment.lock.toml</code> next to this file.</p></body></html>")
    return "\n".join(parts)


def write_report(path: Path, cfg: ExperimentConfig, results, stats, board, fairness, lock) -> Path:
    from longrec.experiment._io import write_text

    write_text(render_report(cfg, results, stats, board, fairness, lock), Path(path))
    return Path(path)


def print_leaderboard(board: pd.DataFrame, cfg: ExperimentConfig, console) -> None:
    """The leaderboard as a rich table."""
    from rich.table import Table

    metric, k = _split(cfg.stats.metric)
    if not console.is_terminal and console.width < 130:
        console.width = 130  # piped output: do not squeeze the columns to 80
    t = Table(title=f"{cfg.name}: {cfg.stats.metric} on test (vs baseline {cfg.baseline}, Holm-corrected)")
    for c in ("#", "model", cfg.stats.metric, "95% CI", "Δ", "d", "p (t)", "p (W)", "sig.", f"Cov@{k}",
              f"Nov@{k}", "fit s"):
        t.add_column(c, justify="left" if c in ("model", "sig.") else "right")
    for r in board.itertuples():
        val = _f(r.value) + (f" ± {_f(r.std)}" if r.n_seeds > 1 else "")
        sig = ("[dim]baseline[/]" if r.significant is None else "no" if not r.significant
               else "[green]better[/]" if r.diff > 0 else "[red]worse[/]")
        pfmt = (lambda x: "–" if not np.isfinite(x) else ("<1e-4" if x < 1e-4 else f"{x:.4f}"))
        t.add_row(str(r.rank), r.model, val, f"[{_f(r.ci_low)}, {_f(r.ci_high)}]",
                  "–" if not np.isfinite(r.diff) else f"{r.diff:+.4f}", _f(r.cohens_d, 2),
                  pfmt(r.p_t_holm), pfmt(r.p_wilcoxon_holm), sig, _f(r.ItemCoverage, 3), _f(r.Novelty, 2),
                  f"{r.fit_seconds:.1f}" + (" ⏱" if r.over_budget else ""))
    console.print(t)
