"""Fairness / beyond-accuracy trade-offs of the re-rankers on ml-100k P1 with EASE.

    LONGREC_DATA_DIR=../shared/datasets python bench/fairness.py

EASE (λ tuned on valid) gives each user 100 candidates; every re-ranker in `longrec.rerank`
re-ranks them to 10 over a grid of λ (for longtail / fair: the target long-tail share). For
each setting: NDCG@10, exposure Gini@10 over the whole catalogue, calibration KL (Steck 2018,
genres, alpha 0.01) and APLT. The λ of each target is chosen on valid (the largest gain whose
NDCG@10 loss on valid is within the budget) and reported on test:

* exposure Gini -0.05 for <= 3% NDCG@10 loss;
* calibration KL -30% for <= 2% NDCG@10 loss.

Also the user-side fairness report of plain EASE on test (groups: gender, age, occupation,
activity; bootstrap 95% CIs). Writes bench/results/fairness.json, fairness.md and
fairness_{gini,calibration,aplt}.png.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from _provenance import md_line, provenance, stamp

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
GRID = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.525, 0.55, 0.575, 0.6, 0.7, 0.8, 0.9, 1.0]
METHODS = ["mmr", "calibrated", "exposure", "longtail", "fair"]


def main() -> None:
    if not os.environ.get("LONGREC_DATA_DIR"):
        sys.exit("set LONGREC_DATA_DIR to the shared datasets folder")
    from longrec.data.registry import load_split
    from longrec.metrics import calibration_kl, evaluate
    from longrec.metrics.fairness import aplt, exposure_gini, fairness_report
    from longrec.models.ease import EASE
    from longrec.rerank import RerankContext, apply_rerank

    split = load_split("ml-100k", "p1", download=False)
    train, valid, test = (split[p].interactions for p in ("train", "valid", "test"))
    items = split["train"].items
    genres = pd.Series([str(g).split() for g in items["class"]], index=items["item_id"].to_numpy())
    catalog = items["item_id"].to_numpy()
    t0 = time.perf_counter()
    model = EASE().fit(split["train"], split["valid"])
    print(f"EASE fit {time.perf_counter() - t0:.1f} s, {model.fit_info_.get('l2')}", flush=True)
    ctx = RerankContext.from_model(model)
    phases = {
        "valid": dict(users=np.sort(valid.user_id.unique()), hist=None, truth=valid, profile=train),
        "test": dict(users=np.sort(test.user_id.unique()), hist=valid, truth=test,
                     profile=pd.concat([train, valid], ignore_index=True)),
    }
    rows = []
    base_recs = {}
    for phase, p in phases.items():
        cands = model.recommend(users=p["users"], histories=p["hist"], k=100)
        for method in METHODS:
            for lam in GRID:
                t1 = time.perf_counter()
                recs = apply_rerank(model, cands, f"{method}:{lam}", k=10, histories=p["hist"], context=ctx)
                dt = time.perf_counter() - t1
                if lam == 0 and method == "mmr":
                    base_recs[phase] = recs
                rows.append({"phase": phase, "method": method, "lam": lam,
                             "NDCG@10": evaluate(recs, p["truth"], ks=(10,), metrics=["NDCG"])["NDCG@10"],
                             "Gini@10": exposure_gini(recs, 10, catalog=catalog),
                             "CalibKL@10": calibration_kl(recs, p["profile"], genres, k=10),
                             "APLT@10": aplt(recs, train, 10), "rerank_s": round(dt, 3)})
            last = rows[-len(GRID):]
            print(phase, method, " ".join(f"{r['lam']}:{r['NDCG@10']:.4f}/{r['Gini@10']:.3f}/{r['CalibKL@10']:.3f}"
                                          for r in last), flush=True)
    df = pd.DataFrame(rows)
    targets = choose(df)
    report = fairness_report(base_recs["test"], test, split["train"].users, train, 10, n_boot=1000,
                             catalog=catalog, history=phases["test"]["profile"])
    out = {"dataset": "ml-100k", "protocol": "P1", "model": "EASE", "l2": model.fit_info_.get("l2"),
           "candidates": 100, "grid": GRID, "sweep": rows, "targets": targets, "ease_fairness_report_test": report}
    RESULTS.mkdir(parents=True, exist_ok=True)
    prov = provenance()
    (RESULTS / "fairness.json").write_text(json.dumps(stamp(out, prov), indent=2, default=float))
    plots(df[df.phase == "test"])
    write_md(df, targets, report, prov)


def choose(df: pd.DataFrame) -> dict:
    """Per target and method: the λ with the largest gain on valid within the NDCG budget."""
    out = {}
    for name, col, budget, goal in (("gini", "Gini@10", 0.03, ("abs", -0.05)),
                                    ("calibration", "CalibKL@10", 0.02, ("rel", -0.30))):
        res = {}
        for method in METHODS:
            v = df[(df.phase == "valid") & (df.method == method)].set_index("lam")
            t = df[(df.phase == "test") & (df.method == method)].set_index("lam")
            base_v, base_t = v.loc[0.0], t.loc[0.0]
            ok = v[v["NDCG@10"] >= (1 - budget) * base_v["NDCG@10"]]
            lam = float(ok[col].idxmin())
            ch_t = t.loc[lam, col] - base_t[col] if goal[0] == "abs" else t.loc[lam, col] / base_t[col] - 1
            loss_t = 1 - t.loc[lam, "NDCG@10"] / base_t["NDCG@10"]
            res[method] = {"lam": lam, "test_change": float(ch_t), "test_ndcg_loss": float(loss_t),
                           "test_value": float(t.loc[lam, col]), "test_base": float(base_t[col]),
                           "met": bool(ch_t <= goal[1] and loss_t <= budget)}
        out[name] = {"budget_ndcg_loss": budget, "goal": goal[1], "kind": goal[0], "by_method": res}
    return out


def plots(t: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for col, fname, label in (("Gini@10", "fairness_gini.png", "exposure Gini@10 (lower = fairer)"),
                              ("CalibKL@10", "fairness_calibration.png", "calibration KL@10 (lower = calibrated)"),
                              ("APLT@10", "fairness_aplt.png", "APLT@10 (long-tail share, higher = more tail)")):
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for method in METHODS:
            s = t[t.method == method].sort_values("lam")
            ax.plot(s[col], s["NDCG@10"], marker="o", ms=3, label=method)
        base = t[(t.method == "mmr") & (t.lam == 0)].iloc[0]
        ax.scatter([base[col]], [base["NDCG@10"]], color="k", zorder=5, label="EASE (no re-ranking)")
        ax.axhline(0.97 * base["NDCG@10"], color="grey", ls=":", lw=1, label="-3% NDCG@10")
        ax.set_xlabel(label)
        ax.set_ylabel("NDCG@10 (test)")
        ax.set_title(f"ml-100k P1, EASE + re-rankers: NDCG@10 vs {col.split('@')[0]}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(RESULTS / fname, dpi=120)
        plt.close(fig)


def write_md(df: pd.DataFrame, targets: dict, report: dict, prov: dict | None = None) -> None:
    t = df[df.phase == "test"]
    lines = ["# Fairness trade-offs: re-rankers on EASE, ml-100k P1", "", md_line(prov), "",
             "Produced by `python bench/fairness.py`. EASE top-100 candidates re-ranked to 10; λ chosen on valid, "
             "figures on test. Gini over all 1,682 items; calibration KL over genres (Steck 2018, alpha 0.01, "
             "profile = train + valid); APLT: items outside the top 20% by training popularity.", ""]
    for name, tg in targets.items():
        goal = f"{tg['goal']:+.2f} absolute" if tg["kind"] == "abs" else f"{tg['goal']:+.0%} relative"
        lines += [f"## Target: {name} {goal} for <= {tg['budget_ndcg_loss']:.0%} NDCG@10 loss", "",
                  "| method | λ (valid) | base | re-ranked | change | NDCG@10 loss | met |", "|---|---|---|---|---|---|---|"]
        for m, r in tg["by_method"].items():
            ch = f"{r['test_change']:+.4f}" if tg["kind"] == "abs" else f"{r['test_change']:+.1%}"
            lines.append(f"| {m} | {r['lam']:g} | {r['test_base']:.4f} | {r['test_value']:.4f} | {ch} | "
                         f"{r['test_ndcg_loss']:.2%} | {'yes' if r['met'] else 'no'} |")
        lines.append("")
    lines += ["## Sweep (test)", "", "| method | λ | NDCG@10 | Gini@10 | CalibKL@10 | APLT@10 |", "|---|---|---|---|---|---|"]
    for r in t.itertuples(index=False):
        lines.append(f"| {r.method} | {r.lam:g} | {r._3:.4f} | {r._4:.4f} | {r._5:.4f} | {r._6:.4f} |")
    lines += ["", "Plots: fairness_gini.png, fairness_calibration.png, fairness_aplt.png.", "",
              "## User groups, plain EASE on test (NDCG@10, bootstrap 95% CI)", ""]
    for key, g in report.get("largest_gaps", {}).items():
        if "NDCG" in key:
            lines.append(f"- {key}: best {g['best'][0]} {g['best'][1]:.4f}, worst {g['worst'][0]} {g['worst'][1]:.4f}, "
                         f"relative gap {g['relative_gap']:.1%}, CIs disjoint: {g['ci_disjoint']}")
    it = report["items"]
    lines += ["", f"Item side (plain EASE, test): exposure Gini {it['exposure_gini']:.4f}, APLT {it['aplt']:.4f}, "
              f"popularity calibration JS {it['popularity_calibration_js']:.4f}, exposure-vs-merit "
              f"DTR {it['exposure_vs_merit']['dtr']:.3f} (head exposure share "
              f"{it['exposure_vs_merit']['exposure_head_share']:.3f} vs merit share "
              f"{it['exposure_vs_merit']['merit_head_share']:.3f}), TV {it['exposure_vs_merit']['tv']:.3f}."]
    (RESULTS / "fairness.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
