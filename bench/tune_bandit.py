"""Tune the contextual-bandit long-term policy (`bandit = {...}` on a model policy) by simulated
outcomes in ONE world on tuning seeds; bench/validate_long_term.py then validates the chosen point on
the other worlds and fresh seeds.

    LONGREC_DATA_DIR=/work/shared/datasets python bench/tune_bandit.py \
        --config bench/long_term_study_reduced.toml --world ease --seeds 100 101 --workers 2

Grid: base model x crowd_weight x feature set x Thompson noise. The reference is the best myopic
policy of the tuning world (`--myopic`, run on the same tuning seeds). Rule: among the points with
cumulative welfare >= 1.05 x the reference, the one with the lowest homogenisation (Jaccard of
consumed sets); if no point reaches 1.05 x, the highest welfare. Writes bench/results/<--out>
(every point, mean over the tuning seeds, relative to the reference) and prints the chosen point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _provenance import md_line, provenance, stamp

FEATURE_SETS = {"all": ["satiation_fast", "satiation_slow", "skipped", "crowd", "log_popularity"],
                "nopop": ["satiation_fast", "satiation_slow", "skipped", "crowd"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bench/long_term_study_reduced.toml")
    ap.add_argument("--world", default="ease")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    ap.add_argument("--bases", nargs="+", default=["itemknn"], help="policies of the config to wrap")
    ap.add_argument("--myopic", default="itemknn", help="the reference: best myopic policy of the tuning world")
    ap.add_argument("--crowd-weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4])
    ap.add_argument("--feature-sets", nargs="+", default=["all", "nopop"], choices=sorted(FEATURE_SETS))
    ap.add_argument("--noises", type=float, nargs="+", default=[0.3])
    ap.add_argument("--user-priors", type=float, nargs="+", default=[50.0])
    ap.add_argument("--max-users", type=int, default=None, help="override simulation.max_users")
    ap.add_argument("--steps", type=int, default=None, help="override simulation.steps")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--welfare-target", type=float, default=1.05)
    ap.add_argument("--out", default="long_term_tuning_bandit.json", help="file name under bench/results/")
    args = ap.parse_args()
    prov = provenance()
    import pandas as pd

    from longrec.simulate import study
    from longrec.simulate.config import load_config
    from longrec.simulate.loop import build_world, run_policy

    cfg = load_config(args.config).for_world(args.world)
    sim = cfg.simulation.model_copy(update={k: v for k, v in (("max_users", args.max_users), ("steps", args.steps))
                                            if v is not None})
    pols = [cfg.policy(args.myopic)]
    for b in args.bases:
        base = cfg.policy(b)
        for cw in args.crowd_weights:
            for fs in args.feature_sets:
                for nz in args.noises:
                    for up in args.user_priors:
                        pols.append(base.model_copy(update={
                            "name": f"bandit-{b}-crowd{cw:g}-{fs}-noise{nz:g}-up{up:g}",
                            "bandit": {"crowd_weight": cw, "features": FEATURE_SETS[fs], "noise": nz,
                                       "user_prior": up}}))
    cfg = cfg.model_copy(update={"policies": pols, "simulation": sim})
    cfg = type(cfg)(**cfg.model_dump())  # re-validate
    world = build_world(cfg, validate=False)
    jobs = [(p.name, s) for p in cfg.policies for s in args.seeds]
    frames = []
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers) as ex:
            futs = [ex.submit(run_policy, cfg, world, n, s) for n, s in jobs]
            for (n, s), f in zip(jobs, futs):
                frames.append(f.result().assign(world=args.world))
                print(n, s, file=sys.stderr, flush=True)
    else:
        for n, s in jobs:
            frames.append(run_policy(cfg, world, n, s).assign(world=args.world))
            print(n, s, frames[-1].attrs.get("seconds"), file=sys.stderr, flush=True)
    agg = study.aggregate(study.per_run(pd.concat(frames, ignore_index=True)))
    ref = agg[agg["policy"] == args.myopic].iloc[0]
    rows = []
    for _, a in agg.sort_values("cum_welfare", ascending=False).iterrows():
        rows.append({"policy": a["policy"], "cum_welfare": round(float(a["cum_welfare"]), 2),
                     "cum_welfare_std": round(float(a["cum_welfare_std"]), 2),
                     "homogenisation": round(float(a["homogenisation"]), 4),
                     "retention": round(float(a["retention"]), 3),
                     "welfare_ratio": round(float(a["cum_welfare"] / ref["cum_welfare"]), 4),
                     "homogenisation_change": round(float(a["homogenisation"] / ref["homogenisation"] - 1), 4)})
    cand = [r for r in rows if r["policy"] != args.myopic]
    ok = [r for r in cand if r["welfare_ratio"] >= args.welfare_target]
    best = min(ok, key=lambda r: r["homogenisation"]) if ok else max(cand, key=lambda r: r["cum_welfare"])
    res = {"config": args.config, "world": args.world, "seeds": args.seeds, "myopic_reference": args.myopic,
           "size": {"users": sim.max_users or "all", "steps": sim.steps}, "grid": rows, "chosen": best["policy"],
           "rule": f"lowest homogenisation among points with cumulative welfare >= {args.welfare_target:g} x "
                   f"{args.myopic}'s on the tuning seeds; the highest welfare if none reaches it",
           "both_targets_met_on_tuning_seeds": [r["policy"] for r in ok if r["homogenisation_change"] <= -0.20]}
    out = Path(__file__).resolve().parent / "results" / args.out
    out.write_text(json.dumps(stamp(res, prov), indent=2, default=float), encoding="utf-8")
    print(md_line(prov))
    for r in rows:
        print(r)
    print("chosen:", best["policy"])


if __name__ == "__main__":
    main()
