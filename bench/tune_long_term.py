"""Tune the long-term-aware policy (EASE + satiation re-scoring) by simulated cumulative welfare
in ONE world on tuning seeds; the study then validates it on the other worlds and fresh seeds.

    LONGREC_DATA_DIR=/work/shared/datasets python bench/tune_long_term.py \
        --config bench/long_term_study_reduced.toml --world ease --seeds 100 101

Grid: satiation weight x decay x softmax temperature (plus the plain base policy). The chosen
point has the highest cumulative welfare among points whose homogenisation (Jaccard of consumed
sets) is >= 20 % below the plain base policy's (the highest welfare overall if none qualifies). Writes
bench/results/long_term_tuning.json (every grid point: cumulative welfare and homogenisation,
mean over the tuning seeds) and prints the chosen point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _provenance import md_line, provenance, stamp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bench/long_term_study_reduced.toml")
    ap.add_argument("--world", default="ease")
    ap.add_argument("--base", default="ease", help="policy of the config to wrap")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--decays", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.0],
                    help="softmax exploration temperatures on top (0 = none)")
    ap.add_argument("--reranks", nargs="+", default=[""],
                    help="re-ranker specs applied before the satiation re-scoring ('' = none)")
    ap.add_argument("--impression-weights", type=float, nargs="+", default=[0.0],
                    help="penalty per skipped impression (0 = none)")
    ap.add_argument("--impression-decays", type=float, nargs="+", default=[0.0])
    ap.add_argument("--crowd-weights", type=float, nargs="+", default=[0.0],
                    help="penalty x log(1 + percent of users who chose the item in the run)")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (runs are independent)")
    ap.add_argument("--out", default="long_term_tuning.json", help="file name under bench/results/")
    ap.add_argument("--homog-cut", type=float, default=0.20,
                    help="choose the best welfare among points with homogenisation this much below the base")
    args = ap.parse_args()
    prov = provenance()
    from longrec.simulate import study
    from longrec.simulate.config import load_config
    from longrec.simulate.loop import build_world, run_policy

    cfg = load_config(args.config).for_world(args.world)
    base = cfg.policy(args.base)
    grid = [(0.0, 0.0, 0.0, "", 0.0, 0.0, 0.0)] + [
        (w, d, t, r, iw, idc, cw) for w in args.weights for d in args.decays for t in args.temperatures
        for r in args.reranks for iw in args.impression_weights
        for idc in (args.impression_decays if iw else [0.0]) for cw in args.crowd_weights]

    def name(w, d, t, r, iw, idc, cw):
        return (f"sat-w{w:g}-d{d:g}" + (f"-T{t:g}" if t else "") + (f"-{r}" if r else "")
                + (f"-imp{iw:g}" + (f"d{idc:g}" if idc else "") if iw else "") + (f"-crowd{cw:g}" if cw else ""))

    pols = [base.model_copy(update={
        "name": name(w, d, t, r, iw, idc, cw),
        "satiation": None if w == 0 and iw == 0 and cw == 0 else {
            "weight": w, "decay": d, "impression_weight": iw, "impression_decay": idc, "crowd_weight": cw},
        "rerank": r or None, "candidates": 300 if r else base.candidates,
        "exploration": {"kind": "softmax", "temperature": t, "pool": 100} if t else None})
        for w, d, t, r, iw, idc, cw in grid]
    cfg = cfg.model_copy(update={"policies": pols})
    cfg = type(cfg)(**cfg.model_dump())  # re-validate the satiation tables
    world = build_world(cfg, validate=False)
    import pandas as pd

    jobs = [(p.name, s) for p in cfg.policies for s in args.seeds]
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers) as ex:
            futs = [ex.submit(run_policy, cfg, world, n, s) for n, s in jobs]
            frames = []
            for (n, s), f in zip(jobs, futs):
                frames.append(f.result().assign(world=args.world))
                print(n, s, file=sys.stderr, flush=True)
    else:
        frames = []
        for n, s in jobs:
            frames.append(run_policy(cfg, world, n, s).assign(world=args.world))
            print(n, s, frames[-1].attrs.get("seconds"), file=sys.stderr, flush=True)

    agg = study.aggregate(study.per_run(pd.concat(frames, ignore_index=True)))
    agg = agg.sort_values("cum_welfare", ascending=False)
    base_h = float(agg.loc[agg["policy"] == pols[0].name, "homogenisation"].iloc[0])
    ok = agg[agg["homogenisation"] <= (1 - args.homog_cut) * base_h]
    best = (ok if len(ok) else agg).iloc[0]
    rows = agg[["policy", "cum_welfare", "cum_welfare_std", "homogenisation", "retention"]].to_dict("records")
    for r in rows:
        r["welfare_vs_base"] = round(r["cum_welfare"] / float(agg.loc[agg["policy"] == pols[0].name, "cum_welfare"].iloc[0]), 4)
        r["homogenisation_vs_base"] = round(r["homogenisation"] / base_h, 4)
    res = {"config": args.config, "world": args.world, "seeds": args.seeds, "base": args.base,
           "grid": rows, "chosen": best["policy"],
           "rule": f"highest cumulative welfare among points with homogenisation <= {1 - args.homog_cut:g} x the "
                   f"plain base policy's ({base_h:.4f}); the highest welfare overall if none qualifies"}
    out = Path(__file__).resolve().parent / "results" / args.out
    out.write_text(json.dumps(stamp(res, prov), indent=2, default=float), encoding="utf-8")
    print(md_line(prov))
    for r in rows:
        print(r)
    print("chosen:", best["policy"])


if __name__ == "__main__":
    main()
