"""Scale: the language-model recommenders on MovieLens-1M (P2-style split: per user the last
interaction is test, the second-last valid, the rest train; computed by
`longrec.data.splits.split_p2`). Each model trains with early stopping on valid in a child
process, so its peak RSS is its own.

    LONGREC_DATA_DIR=../shared/datasets python bench/scale.py --model lm-seq
    LONGREC_DATA_DIR=../shared/datasets python bench/scale.py --model lm-twotower
    python bench/scale.py report            # -> bench/results/scale_ml-1m.json + .md
    LONGREC_DATA_DIR=../shared/datasets python bench/scale.py budget --budget 3600
        # lm-seq beside RecTools' SASRec (bench/sasrec_budget.py, its own venv), the same wall-clock
        # budget each, run side by side, one core each -> bench/results/scale_budget_ml-1m.{json,md}

Prints one JSON line per run and appends it to bench/results/scale_runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from _provenance import md_line, provenance, stamp

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "scale_runs.jsonl"

#: configs for ml-1m: the ml-100k defaults, a longer history window for lm-seq (ml-1m
#: users have 165 ratings on average), shorter patience, one thread, and a wall-clock cap at the issue's 15-minute budget
#: (a run that hits it says so in `capped`).
CONFIGS = {
    "lm-seq": {"max_len": 100, "batch_size": 128, "patience": 5, "num_threads": 1},
    "lm-twotower": {"batch_size": 1024, "patience": 4, "num_threads": 1},
}


def run(model: str, dataset: str, seed: int, cap_s: float, extra: dict) -> dict:
    from longrec.data.registry import load_split
    from longrec.metrics.ranking import evaluate
    from longrec.models import get_model_class

    t0 = time.perf_counter()
    s = load_split(dataset, "p2", download=False)
    load_s = time.perf_counter() - t0
    cfg = {**CONFIGS.get(model, {}), **extra, "seed": seed, "max_seconds": cap_s, "progress": False}
    t0 = time.perf_counter()
    m = get_model_class(model)(cfg).fit(s["train"], s["valid"])
    fit_s = time.perf_counter() - t0
    test = s["test"].interactions
    t0 = time.perf_counter()
    recs = m.recommend(users=test["user_id"].unique(), histories=s["valid"].interactions, k=10)
    rec_s = time.perf_counter() - t0
    res = evaluate(recs, test[["user_id", "item_id"]], ks=(10,), metrics=["NDCG", "Hit"])
    info = m.fit_info_
    epochs_run = len(info.get("valid_curve", []))
    return {"dataset": dataset, "protocol": "p2 (computed)", "model": model, "seed": seed, "config": cfg,
            "n_train": len(s["train"].interactions), "n_users": int(res["n_users"]),
            "NDCG@10": round(res["NDCG@10"], 4), "HR@10": round(res["Hit@10"], 4),
            "valid_ndcg@10": info.get("valid_ndcg@10"), "best_epoch": info.get("best_epoch"),
            "epochs_run": epochs_run, "capped": info.get("train_seconds", 0) >= cap_s,
            "load_s": round(load_s, 1), "fit_s": round(fit_s, 1), "text_s": info.get("text_seconds"),
            "recommend_s": round(rec_s, 1), "train_seconds": info.get("train_seconds"),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "cpu_s": round(time.process_time(), 1), "epochs_run_total": (info.get("valid_curve") or [[0]])[-1][0],
            "valid_curve": info.get("valid_curve"), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_avg_1m": os.getloadavg()[0], "cpus": os.cpu_count(), "platform": platform.platform()}


def report() -> None:
    rows = [json.loads(x) for x in RUNS.read_text().splitlines() if x.strip()]
    prov = provenance()
    (RESULTS / "scale_ml-1m.json").write_text(json.dumps(stamp(rows, prov), indent=2))
    lines = ["# Scale: ml-1m, P2-style split (test NDCG@10 / HR@10, early stopping on valid)", "", md_line(prov), "",
             "Produced by `bench/scale.py`. fit includes item-text encoding; peak RSS is the whole process.", "",
             "| model | seed | NDCG@10 | HR@10 | fit s | best epoch / run | capped | peak RSS MB | load avg |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['seed']} | {r['NDCG@10']:.4f} | {r['HR@10']:.4f} | {r['fit_s']:.0f} | "
                     f"{r['best_epoch']} / {r['epochs_run']} | {r['capped']} | {r['peak_rss_mb']} | {r['load_avg_1m']:.1f} |")
    (RESULTS / "scale_ml-1m.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


#: the budget comparison: lm-seq's ml-1m config with validation every 2 epochs (as SASRec's side)
#: and no epoch cap; early stopping after 5 checks without improvement
BUDGET_LMSEQ = {**CONFIGS["lm-seq"], "eval_every": 2, "patience": 5, "epochs": 10_000}
SASREC_PY = Path(__file__).resolve().parent / ".venv-rectools" / "bin" / "python"


def best_so_far(curve: list, minutes: list[int]) -> dict:
    """Best valid NDCG@10 reached by each wall-clock mark (None before the first check)."""
    out = {}
    for m in minutes:
        seen = [c[1] for c in curve if c[2] <= m * 60]
        out[m] = max(seen) if seen else None
    return out


def budget(dataset: str, budget_s: float, seed: int, workdir: Path) -> None:
    """Run lm-seq and RecTools' SASRec side by side (core 0: SASRec, core 1: lm-seq, one torch
    thread each) under the same wall-clock budget, then score both with longrec's evaluator."""
    import subprocess

    from longrec.data.registry import load_split

    if not SASREC_PY.exists():
        raise SystemExit(f"{SASREC_PY} is missing: create it as bench/sasrec_budget.py's docstring says")
    workdir.mkdir(parents=True, exist_ok=True)
    s = load_split(dataset, "p2", download=False)
    for part in ("train", "valid", "test"):
        s[part].interactions[["user_id", "item_id", "timestamp"]].to_csv(workdir / f"{part}.csv", index=False)
    here = Path(__file__).resolve().parent
    sas_cmd = ["taskset", "-c", "0", str(SASREC_PY), str(here / "sasrec_budget.py"), "--split", str(workdir),
               "--out", str(workdir / "sasrec"), "--budget", str(budget_s), "--threads", "1", "--seed", str(seed)]
    # lm-seq's cap is on its training loop; leave room for loading and the item-text encoding
    seq_cfg = {**BUDGET_LMSEQ, "num_threads": 1}
    seq_cmd = ["taskset", "-c", "1", sys.executable, str(Path(__file__).resolve()), "run", "--model", "lm-seq",
               "--dataset", dataset, "--seed", str(seed), "--cap-seconds", str(budget_s - 20),
               "--config", json.dumps(seq_cfg), "--no-record"]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(workdir / "sasrec.log", "w") as sl, open(workdir / "lmseq.log", "w") as ql:
        ps = subprocess.Popen(sas_cmd, stdout=sl, stderr=subprocess.STDOUT)
        pq = subprocess.Popen(seq_cmd, stdout=ql, stderr=subprocess.STDOUT)
        rq, rs = pq.wait(), ps.wait()
    wall = time.perf_counter() - t0
    if rq or rs:
        raise SystemExit(f"a run failed (lm-seq rc {rq}, SASRec rc {rs}): see {workdir}/*.log")
    (workdir / "meta.json").write_text(json.dumps({"wall_s": round(wall, 1), "load_avg_1m_start": load0,
                                                   "load_avg_1m_end": os.getloadavg()[0], "seed": seed,
                                                   "budget_s": budget_s}))
    budget_report(dataset, workdir)


def _lmseq_run(log: Path) -> dict:
    seq = json.loads([x for x in log.read_text().splitlines() if x.startswith("{")][-1])
    # lm-seq's curve is timed from the start of its training loop; put it on the same clock as
    # SASRec's (from process start: data loading and item-text encoding included)
    lead = seq["load_s"] + seq["fit_s"] - seq["train_seconds"]
    seq["valid_curve"] = [[e, v, round(t + lead, 1)] for e, v, t in seq["valid_curve"]]
    seq["clock_s"] = round(seq["load_s"] + seq["fit_s"], 1)
    seq["log"] = log.name
    return seq


def budget_report(dataset: str, workdir: Path) -> None:
    """Score SASRec's test recommendations with longrec's evaluator and write the comparison:
    every lm-seq run in WORKDIR/lmseq*.log (the first is `budget`'s own; more configs may be run
    with `run --no-record > WORKDIR/lmseq_NAME.log`, on their own core); the lm-seq line that
    counts is the one with the best valid NDCG@10."""
    import pandas as pd

    from longrec.data.registry import load_split
    from longrec.metrics.ranking import evaluate

    meta = json.loads((workdir / "meta.json").read_text()) if (workdir / "meta.json").exists() else {}
    runs = [_lmseq_run(p) for p in sorted(workdir.glob("lmseq*.log"))]
    best = max(runs, key=lambda r: r["valid_ndcg@10"])
    sas = json.loads((workdir / "sasrec" / "curve.json").read_text())
    budget_s = meta.get("budget_s", sas["budget_s"])
    test = load_split(dataset, "p2", download=False)["test"].interactions
    recs = pd.read_csv(workdir / "sasrec" / "test_recs.csv", dtype={"user_id": str, "item_id": str})
    res = evaluate(recs, test[["user_id", "item_id"]], ks=(10,), metrics=["NDCG", "Hit"])
    sas.update({"NDCG@10": round(res["NDCG@10"], 4), "HR@10": round(res["Hit@10"], 4), "n_users": int(res["n_users"])})
    marks = [10, 20, 30, 40, 50, 60]
    label = lambda r: f"lm-seq (dim {r['config'].get('dim', 64)}, len {r['config'].get('max_len')})"  # noqa: E731
    out = {"dataset": dataset, "protocol": "p2 (split_p2)", "budget_s": budget_s, **meta,
           "setup": "SASRec pinned to core 0, lm-seq to core 1, one torch thread each; other jobs at nice 19",
           "lm-seq runs": runs, "lm-seq chosen on valid": best["log"], "sasrec": sas,
           "best_valid_by_minute": {**{label(r): best_so_far(r["valid_curve"], marks) for r in runs},
                                    "sasrec": best_so_far(sas["valid_curve"], marks)}}
    prov = provenance()
    (RESULTS / f"scale_budget_{dataset}.json").write_text(json.dumps(stamp(out, prov), indent=2))
    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"# Budget comparison on {dataset} P2: lm-seq vs RecTools' SASRec, {budget_s / 60:.0f} min each", "",
             md_line(prov), "",
             f"{out['setup']}. Valid NDCG@10 is checked every 2 epochs and its time counts; test is scored once, "
             "for the best valid check. The lm-seq line in bold has the best valid NDCG@10 of the lm-seq runs.", "",
             "| model | test NDCG@10 | HR@10 | best epoch / run | valid NDCG@10 | clock s | CPU s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        name = f"**{label(r)}**" if r is best else label(r)
        lines.append(f"| {name} | {r['NDCG@10']:.4f} | {r['HR@10']:.4f} | {r['best_epoch']} / {r['epochs_run_total']} | "
                     f"{r['valid_ndcg@10']:.4f} | {r['clock_s']:.0f} | {r.get('cpu_s', 0):.0f} | {r['peak_rss_mb']} |")
    lines += [f"| SASRec (RecTools, {sas['params']['n_factors']}d, len {sas['params']['session_max_len']}) | "
              f"{sas['NDCG@10']:.4f} | {sas['HR@10']:.4f} | {sas['best_epoch']} / {sas['epochs_run']} | "
              f"{sas['valid_ndcg@10']:.4f} | {sas['clock_s']:.0f} | {sas['cpu_s']:.0f} | {sas['peak_rss_mb']} |", "",
              "Best valid NDCG@10 so far, by wall-clock minute of each run:", "",
              "| run | " + " | ".join(str(m) for m in marks) + " |", "|---|" + "---|" * len(marks)]
    for name, by in out["best_valid_by_minute"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(by[m]) for m in marks) + " |")
    lines += ["", "Curves (epoch, valid NDCG@10, seconds): in the JSON file."]
    (RESULTS / f"scale_budget_{dataset}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="run", choices=["run", "report", "budget", "budget-report"])
    ap.add_argument("--model", default="lm-seq", choices=sorted(CONFIGS))
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cap-seconds", type=float, default=840.0, help="training wall-clock cap (15 min budget)")
    ap.add_argument("--config", default="{}", help="JSON config overrides")
    ap.add_argument("--budget", type=float, default=3600.0, help="budget: wall-clock seconds for each model")
    ap.add_argument("--workdir", default="/tmp/longrec-budget", help="budget: split files and logs")
    ap.add_argument("--no-record", action="store_true", help="run: print only (do not append to scale_runs.jsonl)")
    a = ap.parse_args()
    if a.what == "report":
        return report()
    if a.what == "budget":
        return budget(a.dataset, a.budget, a.seed, Path(a.workdir))
    if a.what == "budget-report":
        return budget_report(a.dataset, Path(a.workdir))
    row = run(a.model, a.dataset, a.seed, a.cap_seconds, json.loads(a.config))
    if a.no_record:
        print(json.dumps(row))
        return
    RESULTS.mkdir(exist_ok=True)
    with open(RUNS, "a") as f:
        f.write(json.dumps(stamp(row)) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "valid_curve"}))


if __name__ == "__main__":
    main()
