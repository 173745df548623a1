"""Scale on synthetic data (`longrec synth`): generation, lm-seq on Ray Train, `recommend --ray`.

Each stage runs in its own process (its peak RSS is its own) and appends one row to
bench/results/scale_synthetic.json; `report` writes bench/results/scale_synthetic.md.

    python bench/scale_synthetic.py gen --users 100000 --items 20000 --interactions 1000000 --out runs/synth-1m
    python bench/scale_synthetic.py train --data runs/synth-1m --workers 2 --out runs/synth-1m-seq
    python bench/scale_synthetic.py recommend --data runs/synth-1m --model runs/synth-1m-seq --users 100000 --sample 10000
    python bench/scale_synthetic.py report

gen:       wall time and peak RSS of `synthesize`.
train:     lm-seq, one epoch, no validation, on Ray Train with N workers (1 torch thread each):
           training windows per second per worker, each worker's peak RSS (getrusage).
recommend: `recommend_on_ray_to_path` (k = 10) for the first N test users, then the one-process
           `recommend_to_file` for a random sample of them: rows compared (same items and ranks;
           score differences reported).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from _provenance import md_line, provenance

RESULTS = Path(__file__).resolve().parent / "results"
JSON = RESULTS / "scale_synthetic.json"
SEQ = {"encoder": "hash", "num_threads": 1, "max_len": 50, "batch_size": 128, "epochs": 1, "progress": False,
       "dim": 64, "n_layers": 2, "n_heads": 2}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def append(row: dict) -> None:
    rows = json.loads(JSON.read_text()) if JSON.is_file() else []
    rows.append({**row, "load_avg": load(), "provenance": provenance()})
    JSON.write_text(json.dumps(rows, indent=2))
    print(json.dumps(row, indent=2))


def gen(a) -> None:
    from longrec.data.synth import synthesize

    t0 = time.perf_counter()
    s = synthesize(a.out, users=a.users, items=a.items, interactions=a.interactions, seed=a.seed, overwrite=True)
    wall = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in Path(a.out).iterdir()) / 2**20
    append({"stage": "gen", "users": a.users, "items": a.items, "interactions": a.interactions, "seed": a.seed,
            "wall_s": round(wall, 1), "peak_rss_mb": peak_rss_mb(), "folder_mb": round(size, 1),
            "top1pct_share": round(s["share of the top 1% items"], 3)})


def train(a) -> None:
    from longrec.data.prepare import PreparedDataset
    from longrec.data.readers import dataset_from_frames
    from longrec.models.lm_seq import LMSeq

    d = PreparedDataset.load(a.data)
    t0 = time.perf_counter()
    ds = dataset_from_frames(d.interactions("train"), items=d.root / "items.csv")
    read_s = time.perf_counter() - t0
    extra = json.loads(a.config) if a.config else {}
    m = LMSeq({**SEQ, **extra, "workers": a.workers, "num_threads": a.workers})
    t0 = time.perf_counter()
    m.fit(ds)
    wall = time.perf_counter() - t0
    info = m.fit_info_
    n_windows = len(m._windows(m._binary(m.seen_)))
    m.save(a.out, overwrite=True)
    per_worker = n_windows / max(info["train_seconds"], 1e-9) / a.workers
    append({"stage": "train", "data": str(a.data), "train_interactions": len(ds), "items": m.meta_["n_items"],
            "workers": a.workers, "threads_per_worker": 1, "epochs": 1, "windows": n_windows,
            "config": {k: v for k, v in extra.items()},
            "read_s": round(read_s, 1), "fit_wall_s": round(wall, 1), "train_s": info["train_seconds"],
            "windows_per_s_per_worker": round(per_worker, 1),
            "worker_peak_rss_mb": info.get("worker_peak_rss_mb"), "driver_peak_rss_mb": peak_rss_mb()})


def recommend(a) -> None:
    import numpy as np
    import pandas as pd

    from longrec.data.prepare import PreparedDataset
    from longrec.pipeline import recommend_on_ray_to_path, recommend_to_file

    d = PreparedDataset.load(a.data)
    out = Path(a.model).parent / f"{Path(a.model).name}-recs"
    out.mkdir(parents=True, exist_ok=True)
    users = pd.read_csv(d.require("test"), usecols=["user_id"])["user_id"].drop_duplicates().iloc[:a.users]
    users.to_frame().to_csv(out / "users.csv", index=False)
    hist = [d.require("train"), d.require("valid")]
    t0 = time.perf_counter()
    res = recommend_on_ray_to_path(a.model, k=10, output=out / "ray.csv", histories=hist, users=out / "users.csv",
                                   workers=a.workers)
    ray_s = time.perf_counter() - t0
    sample = users.sample(n=min(a.sample, len(users)), random_state=0)
    sample.to_frame().to_csv(out / "sample.csv", index=False)
    t0 = time.perf_counter()
    one = recommend_to_file(a.model, k=10, output=out / "one.csv", histories=hist, users=out / "sample.csv")
    one_s = time.perf_counter() - t0
    ray_rows = pd.read_csv(out / "ray.csv")
    one = pd.read_csv(out / "one.csv")
    sub = ray_rows[ray_rows["user_id"].isin(set(sample))].sort_values(["user_id", "rank"]).reset_index(drop=True)
    one = one.sort_values(["user_id", "rank"]).reset_index(drop=True)
    same_items = len(sub) == len(one) and bool((sub[["user_id", "item_id", "rank"]].to_numpy()
                                                 == one[["user_id", "item_id", "rank"]].to_numpy()).all())
    diff = float(np.abs(sub["score"].to_numpy() - one["score"].to_numpy()).max()) if same_items else None
    append({"stage": "recommend", "data": str(a.data), "model": str(a.model), "users": int(len(users)),
            "k": 10, "workers": res["workers"], "chunks": res["chunks"], "rows": res["rows"],
            "ray_wall_s": round(ray_s, 1), "users_per_s": round(len(users) / ray_s, 1),
            "sample_users": int(len(sample)), "one_process_sample_s": round(one_s, 1),
            "sample_rows_equal": same_items, "sample_identical_bytes": bool(same_items and diff == 0.0),
            "sample_max_score_diff": diff, "driver_peak_rss_mb": peak_rss_mb()})


def report(a) -> None:
    rows = json.loads(JSON.read_text())
    lines = ["# Scale on synthetic data (`longrec synth`)", "",
             "Produced by `bench/scale_synthetic.py`; one row per stage run, each in its own process, on the "
             "shared 2-core / 24 GiB development machine (load average at the end of each run recorded; "
             "other jobs were running, so times are upper bounds).", ""]
    for r in rows:
        lines.append(f"- {md_line(r['provenance'])} Load average: {r['load_avg']}.")
    lines += ["", "## Generation", "", "| users | items | interactions | wall s | peak RSS MB | folder MB | top-1% items' share |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['users']:,} | {r['items']:,} | {r['interactions']:,} | {r['wall_s']} | {r['peak_rss_mb']:,} | "
              f"{r['folder_mb']:,} | {r['top1pct_share']} |" for r in rows if r["stage"] == "gen"]
    lines += ["", "## lm-seq, one epoch on Ray Train (1 torch thread per worker, hash item encoder, full softmax)", "",
              "| data | train interactions | items | workers | windows | train s | windows/s per worker | "
              "peak RSS per worker MB | driver peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {Path(r['data']).name}{' (' + json.dumps(r['config']) + ')' if r.get('config') else ''} | {r['train_interactions']:,} | {r['items']:,} | {r['workers']} | "
              f"{r['windows']:,} | {r['train_s']} | {r['windows_per_s_per_worker']} | "
              f"{', '.join(str(x) for x in r['worker_peak_rss_mb'] or [])} | {r['driver_peak_rss_mb']:,} |"
              for r in rows if r["stage"] == "train"]
    lines += ["", "## `recommend --ray` (k = 10; histories train + valid) and the one-process check", "",
              "| data | users | workers | Ray wall s | users/s | sample | one-process s (sample) | rows equal | "
              "identical bytes | max score diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {Path(r['data']).name} | {r['users']:,} | {r['workers']} | {r['ray_wall_s']} | {r['users_per_s']} | "
              f"{r['sample_users']:,} | {r['one_process_sample_s']} | {r['sample_rows_equal']} | "
              f"{r['sample_identical_bytes']} | {r['sample_max_score_diff']} |" for r in rows if r["stage"] == "recommend"]
    for r in rows:
        if r["stage"] == "recommend":
            one = r["sample_users"] / r["one_process_sample_s"]
            lines.append(f"\n{Path(r['data']).name}: one process scored the {r['sample_users']:,}-user sample at "
                         f"{one:.1f} users/s; Ray with {r['workers']} workers scored {r['users']:,} users at "
                         f"{r['users_per_s']} users/s ({r['users_per_s'] / one:.2f}x, Ray start-up included; "
                         "the machine's load differed between the two runs).")
    (RESULTS / "scale_synthetic.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="stage", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--users", type=int, required=True)
    g.add_argument("--items", type=int, required=True)
    g.add_argument("--interactions", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--out", required=True)
    t.add_argument("--config", default=None, help='JSON over the lm-seq settings, e.g. \'{"precision": "bf16"}\'')
    r = sub.add_parser("recommend")
    r.add_argument("--data", required=True)
    r.add_argument("--model", required=True)
    r.add_argument("--users", type=int, default=100_000)
    r.add_argument("--sample", type=int, default=10_000)
    r.add_argument("--workers", type=int, default=2)
    sub.add_parser("report")
    a = ap.parse_args()
    {"gen": gen, "train": train, "recommend": recommend, "report": report}[a.stage](a)


if __name__ == "__main__":
    main()
