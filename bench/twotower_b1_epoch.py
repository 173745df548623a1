"""Seconds per epoch of lm-twotower on Book-Crossing B1 (6,049 users, 12,339 books) and the
valid NDCG@10 after the same epochs, one process (the issue #22 target: <= 60 s per epoch).

    PYTHONPATH=src HF_HUB_OFFLINE=1 LONGREC_DATA_DIR=../shared/datasets \
        python bench/twotower_b1_epoch.py --epochs 3 --label after

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
    args = ap.parse_args()
    os.environ["LONGREC_DATA_DIR"] = args.data
    from longrec.data.dataset import Dataset
    from longrec.data.readers import read_interactions, read_items, read_users
    from longrec.models.lm_twotower import LMTwoTower

    d = Path(args.data) / "book-crossing" / "splits" / "b1"
    items, users = read_items(d / "items.csv"), read_users(d / "users.csv")
    sp = {p: Dataset(read_interactions(d / f"{p}.csv"), items, users, name=f"b1/{p}") for p in ("train", "valid")}
    model = LMTwoTower({"epochs": args.epochs, "patience": 1000, "progress": True, "num_threads": args.threads})
    t0 = time.perf_counter()
    model.fit(sp["train"], valid=sp["valid"])
    wall = time.perf_counter() - t0
    info = model.fit_info_
    curve = info["valid_curve"]
    ends = [c[2] for c in curve]
    per_epoch = [round(b - a, 1) for a, b in zip([0.0, *ends[:-1]], ends)]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    row = {"label": args.label, "commit": commit, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "epochs": args.epochs, "threads": args.threads, "epoch_seconds": per_epoch,
           "median_epoch_seconds": statistics.median(per_epoch), "valid_curve": curve,
           "valid_ndcg@10": info.get("valid_ndcg@10"), "text_seconds": info.get("text_seconds"),
           "fit_wall_s": round(wall, 1), "load_average": [round(x, 2) for x in os.getloadavg()],
           "command": f"PYTHONPATH=src HF_HUB_OFFLINE=1 python bench/twotower_b1_epoch.py --epochs {args.epochs} "
                      f"--label {args.label} --threads {args.threads}"}
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "twotower_b1_epoch.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
