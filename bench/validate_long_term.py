"""Validate long-term-aware policies on worlds and seeds they were not tuned on, against the best
myopic non-oracle policy of the reduced study (bench/results/long_term_study.json, same config,
worlds and seeds), without re-running every myopic policy.

    LONGREC_DATA_DIR=/work/shared/datasets python bench/validate_long_term.py \
        --policies long-term long-term-crowd --check itemknn --workers 2

Runs `--policies` plus `--check` (a myopic policy re-run to show that the stored baseline runs
reproduce exactly) in every `--worlds` x `--seeds`; writes bench/results/long_term_validation.{json,md}
with welfare ratio and homogenisation change vs the best myopic policy in each world.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _provenance import md_line, provenance, stamp

LONG_TERM_PREFIX = "long-term"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bench/long_term_study_reduced.toml")
    ap.add_argument("--study", default="bench/results/long_term_study.json")
    ap.add_argument("--policies", nargs="+", default=["long-term", "long-term-crowd"])
    ap.add_argument("--check", nargs="*", default=["itemknn"])
    ap.add_argument("--worlds", nargs="+", default=["ease", "lowrank", "text"])
    ap.add_argument("--tuned-world", default="ease")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="long_term_validation")
    ap.add_argument("--policies-from", default=None,
                    help="a TOML file whose [[policies]] tables are added to --config's (e.g. a tuned bandit)")
    ap.add_argument("--tuning-seeds", default="100-101", help="for the report: the seeds tuning used")
    args = ap.parse_args()
    prov = provenance()
    import pandas as pd

    from longrec.simulate import study
    from longrec.simulate.config import load_config
    from longrec.simulate.loop import build_world, run_policy

    cfg = load_config(args.config)
    if args.policies_from:
        import tomllib

        extra = tomllib.loads(Path(args.policies_from).read_text(encoding="utf-8"))["policies"]
        have = {p.name for p in cfg.policies}
        data = cfg.model_dump()
        data["policies"] += [p for p in extra if p["name"] not in have]
        cfg = type(cfg)(**data)
    t_start = __import__("time").perf_counter()
    stored = pd.DataFrame(json.loads(Path(args.study).read_text(encoding="utf-8"))["aggregate"])
    frames = []
    for w in args.worlds:
        c = cfg.for_world(w)
        world = build_world(c, validate=False)
        jobs = [(p, s) for p in args.policies + list(args.check) for s in c.simulation.seeds]
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers) as ex:
            futs = [ex.submit(run_policy, c, world, p, s) for p, s in jobs]
            for (p, s), f in zip(jobs, futs):
                frames.append(f.result().assign(world=w))
                print(w, p, s, file=sys.stderr, flush=True)
    wall = round(__import__("time").perf_counter() - t_start, 1)
    agg = study.aggregate(study.per_run(pd.concat(frames, ignore_index=True)))
    repro = {}
    for p in args.check:
        for w in args.worlds:
            a = agg[(agg.world == w) & (agg.policy == p)].iloc[0]
            b = stored[(stored.world == w) & (stored.policy == p)].iloc[0]
            repro[f"{w}/{p}"] = {"rerun_cum_welfare": round(float(a["cum_welfare"]), 4),
                                 "stored_cum_welfare": round(float(b["cum_welfare"]), 4),
                                 "rerun_homogenisation": round(float(a["homogenisation"]), 5),
                                 "stored_homogenisation": round(float(b["homogenisation"]), 5)}
    myopic = stored[~stored.policy.str.startswith(LONG_TERM_PREFIX) & ~stored.policy.isin(study.NOT_COMPARED)]
    res_rows = []
    for w in args.worlds:
        m = myopic[myopic.world == w].sort_values("cum_welfare", ascending=False).iloc[0]
        for p in args.policies:
            a = agg[(agg.world == w) & (agg.policy == p)].iloc[0]
            res_rows.append({"world": w, "held_out_world": w != args.tuned_world, "policy": p,
                             "cum_welfare": round(float(a["cum_welfare"]), 2),
                             "cum_welfare_std": round(float(a["cum_welfare_std"]), 2),
                             "homogenisation": round(float(a["homogenisation"]), 4),
                             "retention": round(float(a["retention"]), 3),
                             "exposure_gini": round(float(a["exposure_gini"]), 4),
                             "baseline": m["policy"], "baseline_cum_welfare": round(float(m["cum_welfare"]), 2),
                             "baseline_homogenisation": round(float(m["homogenisation"]), 4),
                             "welfare_ratio": round(float(a["cum_welfare"] / m["cum_welfare"]), 4),
                             "homogenisation_change": round(float(a["homogenisation"] / m["homogenisation"] - 1), 4)})
    for r in res_rows:
        r["targets_met"] = bool(r["welfare_ratio"] >= 1.05 and r["homogenisation_change"] <= -0.20)
    res = {"config": args.config, "policies_from": args.policies_from, "wall_seconds": wall,
           "load_1min_at_end": round(__import__("os").getloadavg()[0], 2),
           "size": {"users": cfg.simulation.max_users or "all", "steps": cfg.simulation.steps},
           "seeds": cfg.simulation.seeds, "tuned_world": args.tuned_world,
           "rows": res_rows, "reproducibility_check": repro, "aggregate": agg.to_dict("records")}
    out = Path(__file__).resolve().parent / "results"
    (out / f"{args.out}.json").write_text(json.dumps(stamp(res, prov), indent=2, default=float), encoding="utf-8")
    md = [f"# Long-term-aware policies on held-out worlds and seeds ({cfg.simulation.name})", "", md_line(prov), "",
          f"Size: {res['size']['users']} users x {res['size']['steps']} steps; wall time {wall / 60:.1f} min "
          f"({args.workers} workers). Seeds {cfg.simulation.seeds} (tuning used {args.tuning_seeds}, world "
          f"`{args.tuned_world}` only). Baseline: the "
          f"best myopic non-oracle policy of `{args.study}` by cumulative welfare in that world (same config, "
          "worlds and seeds). Targets: welfare ratio ≥ 1.05 and homogenisation ≥ 20 % lower.", "",
          "| world | policy | cum. welfare | baseline (welfare) | welfare ratio | homogenisation (baseline) | "
          "homogenisation change | retention | targets met |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res_rows:
        tag = "" if r["held_out_world"] else " (tuning world, fresh seeds)"
        md.append(f"| {r['world']}{tag} | {r['policy']} | {r['cum_welfare']:.1f} ± {r['cum_welfare_std']:.1f} | "
                  f"{r['baseline']} ({r['baseline_cum_welfare']:.1f}) | {r['welfare_ratio']:.3f} | "
                  f"{r['homogenisation']:.4f} ({r['baseline_homogenisation']:.4f}) | "
                  f"{100 * r['homogenisation_change']:+.1f} % | {r['retention']:.3f} | "
                  f"{'yes' if r['targets_met'] else 'no'} |")
    md += ["", "Reproducibility check (a stored baseline re-run now): "
           + "; ".join(f"{k}: welfare {v['rerun_cum_welfare']} vs stored {v['stored_cum_welfare']}, "
                       f"homogenisation {v['rerun_homogenisation']} vs {v['stored_homogenisation']}"
                       for k, v in repro.items()) + ".", ""]
    (out / f"{args.out}.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
