"""Timing of the feedback-loop simulator (issue 5 targets).

    LONGREC_DATA_DIR=/work/shared/datasets python bench/simulate.py                 # ml-100k: 943 users x 200 steps
    LONGREC_DATA_DIR=/work/shared/datasets python bench/simulate.py --dataset ml-1m --steps 100

One EASE policy (λ = 300, no tuning), slate 10, retrained every 20 steps, one seed. Reports
world fit time (incl. its P1-test validation), the loop's wall time (and the part spent in
model fits), peak RSS of the process, and the machine's load average (the machine is shared:
a loaded machine makes every number larger). Writes bench/results/simulate[_<dataset>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from _provenance import stamp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--retrain-every", type=int, default=20)
    ap.add_argument("--slate", type=int, default=10)
    ap.add_argument("--policy", default="ease")
    args = ap.parse_args()

    from longrec.simulate.config import parse_config
    from longrec.simulate.loop import build_world, run_policy

    params = {"l2": 300.0, "tune_l2": False} if args.policy == "ease" else {}
    cfg = parse_config({"simulation": {"dataset": args.dataset, "steps": args.steps, "slate_size": args.slate,
                                       "retrain_every": args.retrain_every},
                        "policies": [{"name": args.policy, "model": args.policy, "params": params}]})
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    world = build_world(cfg, validate=True)
    t_world = time.perf_counter() - t0
    t1 = time.perf_counter()
    df = run_policy(cfg, world, args.policy, 0)
    t_loop = time.perf_counter() - t1
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    a = df[df.group == "all"]
    res = {
        "dataset": args.dataset, "users": world.n_users, "items": world.n_items, "steps": args.steps,
        "slate_size": args.slate, "retrain_every": args.retrain_every, "policy": args.policy,
        "world_fit_s": round(t_world, 1), "loop_s": round(t_loop, 1), "loop_fit_s": df.attrs["fit_seconds"],
        "total_s": round(t_world + t_loop, 1), "peak_rss_mb": round(rss_mb), "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "world_validation": world.info.get("validation"),
        "final_all_users": {k: round(float(a[k].iloc[-1]), 4) for k in ("utility_vs_oracle", "welfare", "active",
                                                                         "jaccard_consumed", "exposure_gini")},
    }
    print(json.dumps(res, indent=2))
    name = "simulate.json" if args.dataset == "ml-100k" else f"simulate_{args.dataset}.json"
    out = Path(__file__).resolve().parent / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stamp(res), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
