"""Data-parallel training on Ray Train: 1 worker vs 2 workers (1 torch thread each), for
lm-seq (default), lm-twotower or bpr (--model).

(1) throughput: a fixed number of epochs without validation, training examples per second of
    training time (Ray start-up excluded; its wall time is reported apart). An example is what
    one epoch goes through once: a training window (lm-seq), a (user, held-out item) pair
    (lm-twotower) or a (user, positive, negative) triple (bpr);
(2) quality: the same split with early stopping on valid (patience 5, at most --epochs), test
    NDCG@10 of each.

    LONGREC_DATA_DIR=../shared/datasets python bench/scale_ray.py --dataset ml-100k --throughput-epochs 3 --epochs 60
    LONGREC_DATA_DIR=../shared/datasets python bench/scale_ray.py --dataset ml-100k --model lm-twotower

Writes bench/results/scale_ray_<dataset>.json and .md for lm-seq, scale_ray_<model>_<dataset>.*
for the others (command, commit, date, machine load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from _provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"
BASE = {"num_threads": 1, "max_len": 50, "batch_size": 128, "patience": 5, "progress": False}
# each model's settings (its defaults otherwise) and what one epoch goes through: (name, count(model))
MODELS = {
    "lm-seq": (BASE, "training windows", lambda m: len(m._windows(m._binary(m.seen_)))),
    "lm-twotower": ({"num_threads": 1, "patience": 5, "progress": False}, "training pairs", lambda m: m.seen_.nnz),
    "bpr": ({"num_threads": 1, "eval_every": 2, "patience": 5, "progress": False}, "training triples",
            lambda m: m.seen_.nnz),
}


def one(split, workers: int, epochs: int, with_valid: bool, seed: int = 0, model: str = "lm-seq") -> dict:
    from longrec.metrics.ranking import evaluate
    from longrec.models.registry import get_model_class

    base, _, count = MODELS[model]
    cfg = {**base, "epochs": epochs, "seed": seed, "workers": workers, "num_threads": workers}
    t0 = time.perf_counter()
    m = get_model_class(model)(cfg).fit(split["train"], split["valid"] if with_valid else None)
    wall = time.perf_counter() - t0
    info = m.fit_info_
    done = info["valid_curve"][-1][0] if with_valid else epochs  # epochs actually run (the last is scored)
    out = {"workers": workers, "threads_per_worker": 1, "epochs": done, "wall_s": round(wall, 1),
           "train_s": info["train_seconds"],
           "examples_per_s": round(count(m) * done / max(info["train_seconds"], 1e-9), 1)}
    if with_valid:
        test = split["test"].interactions
        recs = m.recommend(users=test["user_id"].unique(), histories=split["valid"].interactions, k=10)
        res = evaluate(recs, test[["user_id", "item_id"]], ks=(10,), metrics=["NDCG", "Hit"])
        out.update({"best_epoch": info.get("best_epoch"), "epochs_run": done,
                    "valid_ndcg@10": info.get("valid_ndcg@10"), "test_ndcg@10": round(res["NDCG@10"], 4),
                    "test_hr@10": round(res["Hit@10"], 4)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--model", default="lm-seq", choices=sorted(MODELS))
    ap.add_argument("--throughput-epochs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=60, help="cap of the early-stopped quality runs")
    ap.add_argument("--no-quality", action="store_true", help="throughput only (no early-stopped quality runs)")
    ap.add_argument("--wait-quiet", type=float, default=120,
                    help="wait up to this many seconds for the 1-minute load average to fall below 0.6")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the .md of an earlier run's .json")
    args = ap.parse_args()
    if args.render:
        rec = json.loads(Path(args.render).read_text())
        render(rec, Path(args.render).stem, rec.get("throughput_epochs", args.throughput_epochs))
        return
    from longrec.data.registry import load_split

    split = load_split(args.dataset, "p2", download=False)
    t_wait = time.time()
    while os.getloadavg()[0] > 0.6 and time.time() - t_wait < args.wait_quiet:  # let the 1-minute load settle
        time.sleep(5)
    load_before = os.getloadavg()
    rows = {"throughput": [one(split, w, args.throughput_epochs, False, model=args.model) for w in (1, 2)]}
    rows["quality"] = [] if args.no_quality else [one(split, w, args.epochs, True, model=args.model) for w in (1, 2)]
    t1, t2 = rows["throughput"]
    summary = {"speedup": round(t2["examples_per_s"] / t1["examples_per_s"], 2)}
    if rows["quality"]:
        q1, q2 = rows["quality"]
        summary["ndcg_ratio"] = round(q2["test_ndcg@10"] / q1["test_ndcg@10"], 3)
    rec = {**provenance(),
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "load_before": [round(x, 2) for x in load_before],
                       "load_after": [round(x, 2) for x in os.getloadavg()]},
           "dataset": args.dataset, "protocol": "p2", "model": args.model, "example": MODELS[args.model][1],
           "throughput_epochs": args.throughput_epochs, **rows, **summary}
    RESULTS.mkdir(exist_ok=True)
    stem = f"scale_ray_{args.dataset}" if args.model == "lm-seq" else f"scale_ray_{args.model}_{args.dataset}"
    if args.no_quality:
        stem += "_throughput"
    (RESULTS / f"{stem}.json").write_text(json.dumps(rec, indent=2))
    render(rec, stem, args.throughput_epochs)


def render(rec: dict, stem: str, throughput_epochs: int) -> None:
    rows = {"throughput": rec["throughput"], "quality": rec["quality"]}
    summary = {k: rec[k] for k in ("speedup", "ndcg_ratio") if k in rec}
    # the load after includes this run's own workers (2 busy cores at the end): only the load before says
    # whether other work was running
    busy = rec["machine"]["load_before"][0] > 0.5 * (os.cpu_count() or 1)
    md = [f"# {rec['model']} on Ray Train, {rec['dataset']} P2: 1 vs 2 workers (1 thread each)", "",
          f"`{rec['command']}` — commit {rec['commit'][:10]}, {rec['date']}, load before/after "
          f"{rec['machine']['load_before']} / {rec['machine']['load_after']} on {rec['machine']['cores']} cores "
          "(1-minute, 5-minute, 15-minute averages; the load after includes this run's own workers)", ""]
    if busy:
        md += ["The machine was busy with other work during this run (load average above half its cores): "
               "the throughput figures and their ratio are not a clean measurement.", ""]
    md += [f"| workers | {MODELS[rec['model']][1]} / s | train s | test NDCG@10 | valid NDCG@10 | best / run epochs |",
           "|---|---|---|---|---|---|"]
    for t, q in zip(rows["throughput"], rows["quality"] or [None, None]):
        qual = (f"{q['test_ndcg@10']} | {q['valid_ndcg@10']} | {q['best_epoch']} / {q['epochs_run']}" if q
                else "– | – | –")
        md.append(f"| {t['workers']} | {t['examples_per_s']} | {t['train_s']} | {qual} |")
    md += ["", f"Throughput 2 vs 1: {summary['speedup']}x" + (f"; test NDCG@10 2 vs 1: {summary['ndcg_ratio']}."
                                                              if "ndcg_ratio" in summary else
                                                              f" ({throughput_epochs} epochs each, no validation).")]
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
