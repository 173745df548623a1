"""Write a `longrec experiment` run's leaderboard and wall time as Markdown for bench/results/.

    python bench/experiment_md.py OUT_DIR --config EXPERIMENT.toml --log RUN.log [--load LOAD.log] --md X.md

OUT_DIR is the experiment's --out folder (results.parquet, stats.parquet, experiment.lock.toml);
RUN.log holds the run's console output between a `start ... load: ...` line and an
`end ... rc=0 wall_s=N load: ...` line (the wrapper that timed the run wrote them); LOAD.log one
`HH:MM:SS load1 load5 load15 ...` line every 30 s while it ran. Nothing here re-runs a model.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import md_line, provenance  # noqa: E402


def _fmt_p(x: float) -> str:
    return "–" if not np.isfinite(x) else ("<1e-4" if x < 1e-4 else f"{x:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--config", required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--load", type=Path)
    ap.add_argument("--md", type=Path, required=True)
    a = ap.parse_args()
    lock = tomllib.loads((a.out / "experiment.lock.toml").read_text())
    res = pd.read_parquet(a.out / "results.parquet")
    stats = pd.read_parquet(a.out / "stats.parquet")
    exp = lock["experiment"]
    metric, k = exp.get("stats", {}).get("metric", "NDCG@10").split("@")
    k = int(k)
    baseline = exp.get("stats", {}).get("baseline") or exp["models"][0].get("label", exp["models"][0]["name"])
    log = a.log.read_text()
    start = re.search(r"^start (\S+) load: (\S+) (\S+) (\S+)", log, re.M)
    end = re.search(r"^end (\S+) rc=(\d+) wall_s=(\d+) load: (\S+) (\S+) (\S+)", log, re.M)
    started_at = re.search(r"^start .* commit: (\S+)", log, re.M)
    loads = []
    if a.load and a.load.is_file():
        loads = [float(line.split()[1]) for line in a.load.read_text().splitlines() if len(line.split()) > 1]

    def val(model, m, kk=k):
        s = res[(res["model"] == model) & (res["metric"] == m) & (res["k"] == kk)]["value"]
        return s.mean(), (s.std(ddof=1) if len(s) > 1 else np.nan), len(s)

    models = list(dict.fromkeys(res["model"]))
    rows = []
    for m in models:
        mean, std, n = val(m, metric)
        sub = res[(res["model"] == m) & (res["metric"] == metric) & (res["k"] == k)]
        st = stats[(stats["model"] == m) & (stats["metric"] == metric) & (stats["k"] == k)]
        fit = res[res["model"] == m].drop_duplicates("seed")
        rows.append({"model": m, "name": sub["model_name"].iloc[0], "mean": mean, "std": std, "n": n,
                     "ci": (sub["ci_low"].mean(), sub["ci_high"].mean()),
                     "recall": val(m, "Recall")[0], "cov": val(m, "ItemCoverage")[0], "nov": val(m, "Novelty")[0],
                     "diff": float(st["diff"].iloc[0]) if len(st) else np.nan,
                     "d": float(st["cohens_d"].iloc[0]) if len(st) else np.nan,
                     "pt": float(st["p_t_holm"].iloc[0]) if len(st) else np.nan,
                     "pw": float(st["p_wilcoxon_holm"].iloc[0]) if len(st) else np.nan,
                     "sig": bool(st["significant"].iloc[0]) if len(st) else None,
                     "fit": ", ".join(f"{x:.0f}" for x in fit["fit_seconds"]),
                     "over": bool(fit["over_budget"].any())})
    rows.sort(key=lambda r: -r["mean"])
    p = provenance()
    out = [f"# `longrec experiment {a.config}`: {exp['name']}", "",
           md_line(p), "",
           "The experiment itself:", "",
           f"    LONGREC_DATA_DIR=../shared/datasets HF_HUB_OFFLINE=1 longrec experiment {a.config} --out OUT", "",
           (f"Run from commit `{started_at.group(1)}` (the working tree at the start of the run); "
            if started_at else "")
           + f"the lock records `{lock.get('git_commit')}`, finished {lock.get('created_at')}; "
           f"{lock['data']['n_train']:,} train / {lock['data']['n_valid']:,} valid / {lock['data']['n_test']:,} test "
           f"interactions; {int(res['n_users'].iloc[0]):,} test users.", ""]
    if end:
        wall = int(end.group(3))
        load_txt = (f"; load average (1 min) sampled every 30 s while it ran: median {np.median(loads):.1f}, "
                    f"min {min(loads):.1f}, max {max(loads):.1f}" if loads else "")
        out += [f"**Wall time: {wall} s ({wall / 60:.1f} min)** for the whole command on the shared 2-core machine "
                f"(started {start.group(1)} at load {start.group(2)}, ended {end.group(1)} at load {end.group(4)}"
                f"{load_txt}). Other engineers' jobs shared the two cores, so the fit times below are inflated "
                "by an unknown factor; compare them with each other only loosely.", ""]
    out += [f"Leaderboard ({metric}@{k} on test; mean over seeds ± std when there are several; 95% CI: bootstrap "
            f"over test users; Δ, Cohen's d and p against the baseline **{baseline}** on the same users, "
            "Holm-corrected over the models; significant = both corrected p < 0.05):", "",
            f"| # | model | {metric}@{k} | 95% CI | Recall@{k} | ItemCoverage@{k} | Novelty@{k} | Δ vs {baseline} | "
            "Cohen's d | p t (Holm) | p Wilcoxon (Holm) | significant | fit s (per seed) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        mean = f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r["n"] > 1 else "")
        sig = "baseline" if r["model"] == baseline else ("yes" if r["sig"] else "no")
        diff = "–" if r["model"] == baseline or not np.isfinite(r["diff"]) else f"{r['diff']:+.4f}"
        d = "–" if not np.isfinite(r["d"]) else f"{r['d']:.2f}"
        out.append(f"| {i} | {r['model']} (`{r['name']}`) | {mean} | [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] | "
                   f"{r['recall']:.4f} | {r['cov']:.3f} | {r['nov']:.2f} | {diff} | {d} | {_fmt_p(r['pt'])} | "
                   f"{_fmt_p(r['pw'])} | {sig} | {r['fit']}{' (over max_seconds)' if r['over'] else ''} |")
    search = lock.get("search", {})
    if search:
        out += ["", "Searches on valid (NDCG@10 per setting; the best is used on test):", ""]
        for label, s in search.items():
            trials = "; ".join(f"{t['params']}: {t['valid_NDCG@10']:.4f}" for t in s["trials"])
            out.append(f"- {label}: {trials} → {s['best']}")
    a.md.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
