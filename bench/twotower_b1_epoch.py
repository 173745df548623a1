"""Seconds per epoch of lm-twotower on Book-Crossing B1 (6,049 users, 12,339 books) and the
valid NDCG@10 after the same epochs, one process (the issue #22 target: <= 60 s per epoch).

    PYTHONPATH=src HF_HUB_OFFLINE=1 LONGREC_DATA_DIR=../shared/datasets \
        python bench/twotower_b1_epoch.py --epochs 3 --label after
    # sampled softmax (log-Q) with 1024 negatives instead of the full softmax over the 12,339 books
    ... bench/twotower_b1_epoch.py --epochs 3 --label sampled-1024 --full-softmax-max-items 10000 --n-negatives 1024

An epoch here is one pass over the training pairs plus the validation ranking that follows it
(early stopping scores every epoch by default), read off fit_info["valid_curve"]. Appends one
row to bench/results/twotower_b1_epoch.jsonl and rewrites bench/results/twotower_b1_epoch.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--label", default="run")
    ap.add_argument("--data", default=os.environ.get("LONGREC_DATA_DIR", str(HERE.parents[1] / "shared" / "datasets")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-softmax-max-items", type=int, default=None,
                    help="the config knob (default: the model's); below 12,339 B1 trains with sampled softmax")
    ap.add_argument("--n-negatives", type=int, default=None, help="sampled negatives per step (sampled softmax)")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop the fit after this many seconds")
    ap.add_argument("--patience", type=int, default=1000,
                    help="early stopping patience in epochs (default 1000: run all --epochs)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="training precision (default: the model's)")
    ap.add_argument("--tables", action="store_true", help="only rewrite the .md/.json from the .jsonl rows")
    args = ap.parse_args()
    if args.tables:
        return write_tables()
    os.environ["LONGREC_DATA_DIR"] = args.data
    from longrec.data.dataset import Dataset
    from longrec.data.readers import read_interactions, read_items, read_users
    from longrec.models.lm_twotower import LMTwoTower

    d = Path(args.data) / "book-crossing" / "splits" / "b1"
    items, users = read_items(d / "items.csv"), read_users(d / "users.csv")
    sp = {p: Dataset(read_interactions(d / f"{p}.csv"), items, users, name=f"b1/{p}") for p in ("train", "valid")}
    knobs = {k: v for k, v in (("full_softmax_max_items", args.full_softmax_max_items),
                                ("n_negatives", args.n_negatives), ("max_seconds", args.max_seconds),
                                ("patience", args.patience if args.patience != 1000 else None),
                                ("precision", args.precision)) if v is not None}
    model = LMTwoTower({"epochs": args.epochs, "patience": 1000, "progress": True, "num_threads": args.threads, **knobs})
    t0, c0 = time.perf_counter(), _cpu_seconds()
    model.fit(sp["train"], valid=sp["valid"])
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    cfg, n_warm = model.config, int((model.popularity_ > 0).sum())  # the rule lm-twotower's _train applies
    loss = f"sampled softmax, {cfg.n_negatives} negatives" if n_warm > cfg.full_softmax_max_items else "full softmax"
    if cfg.precision != "fp32":
        loss += f", {cfg.precision}"
    info = model.fit_info_
    curve = info["valid_curve"]
    ends = [c[2] for c in curve]
    per_epoch = [round(b - a, 1) for a, b in zip([0.0, *ends[:-1]], ends)]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    import longrec
    row = {"label": args.label, "commit": commit, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "epochs": args.epochs, "threads": args.threads, "loss": loss, "config": knobs, "epoch_seconds": per_epoch,
           "median_epoch_seconds": statistics.median(per_epoch), "valid_curve": curve,
           "valid_ndcg@10": info.get("valid_ndcg@10"), "best_epoch": info.get("best_epoch"), "text_seconds": info.get("text_seconds"),
           "fit_wall_s": round(wall, 1), "fit_cpu_s": round(cpu, 1),
           "cpu_s_per_epoch": round(cpu / max(len(curve), 1), 1), "load_average": [round(x, 2) for x in os.getloadavg()],
           "code": str(Path(longrec.__file__).parents[1]),
           "command": f"PYTHONPATH={Path(longrec.__file__).parents[1]} HF_HUB_OFFLINE=1 python bench/twotower_b1_epoch.py "
                      f"--epochs {args.epochs} --label {args.label} --threads {args.threads}"
                      + "".join(f" --{k.replace('_', '-')} {v if isinstance(v, str) else format(v, 'g')}"
                              for k, v in knobs.items())}
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "twotower_b1_epoch.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))
    write_tables()


def _cpu_seconds() -> float:
    """CPU seconds of this process, all threads (less sensitive than wall time to other jobs on
    a shared machine; the fit's text encoding is cached, so nearly all of it is training +
    validation)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_tables() -> None:
    rows = [json.loads(x) for x in (RESULTS / "twotower_b1_epoch.jsonl").read_text().splitlines() if x.strip()]
    (RESULTS / "twotower_b1_epoch.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = ["# lm-twotower on Book-Crossing B1: seconds per epoch", "",
          "One process, dim 64, batch 512; the loss column says full softmax over the 12,339 books (the default up to "
          "commit 244b9d9: `full_softmax_max_items` 50,000) or sampled softmax with log-Q correction over the batch's "
          "targets + `--n-negatives` sampled books (`--full-softmax-max-items` below 12,339; the default from commit "
          "c3c2572: 10,000 and 2048 negatives; `--full-softmax-max-items 50000` gives the full "
          "softmax again). Epochs run without "
          "early stopping unless the command sets `--patience`; an epoch = one pass over the 228,245 training pairs + the valid NDCG@10 ranking after it. "
          "`before` runs the source tree of the commit before the change (`git archive 7b26f10 src`), `after` this "
          "branch; the rows alternate so that both see the same machine load (the 2-core machine is shared). "
          "Wall seconds move with the other jobs on the machine (see the load column); CPU s/epoch (the fit's "
          "process CPU time over its epochs, at the row's thread count) moves less and is the fairer ratio between rows.", "",
          "| label | code | loss | date (UTC) | epochs | s per epoch (each) | median s/epoch | CPU s/epoch (fit CPU / epochs) | valid NDCG@10 per epoch | best valid NDCG@10 (epoch) | load avg (1, 5, 15 min) | command |",
          "|---|---|---|---|---:|---|---:|---:|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['label']} | {r['commit'][:7] if r['label'] != 'before' else '7b26f10 src'} | {r.get('loss', 'full softmax')} | {r['date']} | {r['epochs']} | "
                  f"{', '.join(f'{x:g}' for x in r['epoch_seconds'])} | {r['median_epoch_seconds']:g} | {r.get('cpu_s_per_epoch', '')} | "
                  f"{', '.join(f'{c[1]:.6f}' for c in r['valid_curve'])} | "
                  f"{r['valid_ndcg@10']:.6f} ({r.get('best_epoch', max(r['valid_curve'], key=lambda c: c[1])[0])}) | "
                  f"{', '.join(f'{x:g}' for x in r['load_average'])} | "
                  f"`{r['command']}` |")
    (RESULTS / "twotower_b1_epoch.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
