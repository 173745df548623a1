"""The long-term study's summary for bench/results/: run (or read) a `[[worlds]]` study and write
bench/results/long_term_study.md and .json with the command, commit and date.

    LONGREC_DATA_DIR=/work/shared/datasets python bench/long_term_study.py \
        --config bench/long_term_study_reduced.toml --out runs/lts [--ray] [--reuse]

--reuse summarises an existing --out folder (made by `longrec simulate CONFIG --out OUT`) instead
of running it again. Besides the per-goal winners (longrec.simulate.study), it checks the
long-term policy's targets against the best other non-oracle policy by cumulative welfare in
every world it was not tuned in: welfare >= 1.05 x and homogenisation >= 20 % lower.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _provenance import md_line, provenance, stamp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bench/long_term_study_reduced.toml")
    ap.add_argument("--out", default="runs/long-term-study")
    ap.add_argument("--ray", action="store_true")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--policy", default="long-term")
    ap.add_argument("--tuned-world", default="ease")
    ap.add_argument("--base", default="itemknn", help="the policy the long-term one wraps")
    ap.add_argument("--results", default="long_term_study", help="file name stem under bench/results/")
    ap.add_argument("--record-load", action="store_true",
                    help="record the simulation's wall time and the 1-minute load average every 30 s "
                    "(written to OUT/timing.json, kept by a later --reuse)")
    ap.add_argument("--worlds", nargs="+", default=None,
                    help="run only these [[worlds]] into --out (a study split over several invocations); the "
                    "summary covers every world of the config found in --out")
    args = ap.parse_args()
    prov = provenance()
    import pandas as pd

    from longrec.simulate import study
    from longrec.simulate.config import load_config
    from longrec.simulate.loop import simulate

    out = Path(args.out)
    if not args.reuse:
        import os
        import threading
        import time

        loads, done = [], threading.Event()

        def sample() -> None:
            while not done.wait(30.0):
                loads.append(round(os.getloadavg()[0], 2))

        if args.record_load:
            threading.Thread(target=sample, daemon=True).start()
        t0, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        run_cfg = load_config(args.config)
        if args.worlds:
            run_cfg = run_cfg.model_copy(update={"worlds": [w for w in run_cfg.worlds if w.name in args.worlds]})
        simulate(run_cfg, out, use_ray=args.ray, log=print)
        done.set()
        if args.record_load:
            import statistics

            timing = {"wall_seconds": round(time.perf_counter() - t0, 1), "started_utc": started,
                      "cpus": os.cpu_count(), "ray": args.ray, "load_1min_every_30s": loads,
                      "load_median": statistics.median(loads) if loads else None,
                      "load_max": max(loads) if loads else None}
            timing["worlds"] = args.worlds or [w.name for w in run_cfg.worlds]
            tag = "_".join(args.worlds) if args.worlds else "all"
            (out / f"timing_{tag}.json").write_text(json.dumps(timing, indent=2), encoding="utf-8")
    timings = [json.loads(f.read_text(encoding="utf-8")) for f in sorted(out.glob("timing_*.json"))]
    timing = None
    if timings:
        import statistics

        loads = [x for t in timings for x in t["load_1min_every_30s"]]
        timing = {"wall_seconds": round(sum(t["wall_seconds"] for t in timings), 1), "parts": timings,
                  "started_utc": ", ".join(t["started_utc"] for t in timings), "cpus": timings[0]["cpus"],
                  "ray": all(t["ray"] for t in timings), "load_median": statistics.median(loads) if loads else None,
                  "load_max": max(loads) if loads else None}
    cfg = load_config(args.config, check_dataset=False)
    # every world of the config with results in --out (a study may be split over invocations)
    s = {"worlds": {}}
    for w in cfg.worlds:
        if (out / w.name / "metrics.parquet").is_file():
            info = json.loads((out / w.name / "world.json").read_text(encoding="utf-8"))
            s["worlds"][w.name] = {"family": w.family, **info.get("validation", {}), "seconds": info.get("total_seconds"),
                                   "learned_weights": {f"{t['policy']}/{t['seed']}": t["learned_weights"]
                                                       for t in info.get("tasks", []) if "learned_weights" in t}}
    # recomputed from the metrics (so a summary rule changed since the run applies)
    frames = [pd.read_parquet(out / w / "metrics.parquet").assign(world=w) for w in s["worlds"]]
    agg = study.aggregate(study.per_run(pd.concat(frames, ignore_index=True)))
    s["aggregate"], s["winners"] = agg.to_dict("records"), study.winners(agg)
    head = "| world | family | true-utility NDCG@10 on test |\n|---|---|---|\n" + "".join(
        f"| {n} | {v['family']} | {v.get('NDCG@10')} |\n" for n, v in s["worlds"].items())
    study_md = study.markdown(agg, s["winners"], head)
    # the baseline: the best other myopic candidate (oracle, random excluded) by cumulative welfare
    others_lt = tuple(p for p in set(agg["policy"]) if p.startswith("long-term") and p != args.policy)
    cmp_all = study.compare(agg, args.policy, exclude_policies=others_lt)
    base = args.base
    vs_base = {w: round(float(agg[(agg.world == w) & (agg.policy == args.policy)]["cum_welfare"].iloc[0]
                              / agg[(agg.world == w) & (agg.policy == base)]["cum_welfare"].iloc[0]), 4)
               for w in s["worlds"]} if base in set(agg["policy"]) else {}
    held_out = {w: v for w, v in cmp_all.items() if w != args.tuned_world}
    met = bool(held_out) and all(v["welfare_met"] and v["homogenisation_met"] for v in held_out.values())
    res = {"config": args.config, "simulate_command": f"longrec simulate {args.config} --out {args.out}"
           + (" --ray" if args.ray else ""), "name": cfg.simulation.name,
           "size": {"users": cfg.simulation.max_users or "all", "steps": cfg.simulation.steps,
                    "seeds": cfg.simulation.seeds, "policies": [p.name for p in cfg.policies]},
           "worlds": s["worlds"], "aggregate": s["aggregate"], "winners": s["winners"],
           "long_term_vs_best_myopic": cmp_all, "long_term_welfare_vs_its_base": vs_base, "tuned_world": args.tuned_world,
           "targets_met_on_untuned_worlds": met, "timing": timing}
    res_dir = Path(__file__).resolve().parent / "results"
    (res_dir / f"{args.results}.json").write_text(json.dumps(stamp(res, prov), indent=2, default=float),
                                                  encoding="utf-8")
    md = [f"# {cfg.simulation.name}", "", md_line(prov), "",
          f"Simulation: `{res['simulate_command']}` — {res['size']['users']} users, {cfg.simulation.steps} steps, "
          f"seeds {cfg.simulation.seeds}, slate {cfg.simulation.slate_size}, retrain every "
          f"{cfg.simulation.retrain_every}. Values: mean ± std over seeds; cum_welfare = sum over steps of "
          "welfare (all users); retention = active share over the last 10 % of steps; homogenisation = "
          "Jaccard of consumed sets at the end; min_group_ratio = worst gender/age group's cum_welfare / "
          "all users'.", ""]
    if timing:
        md += [f"Wall time {timing['wall_seconds'] / 60:.1f} min on {timing['cpus']} cores "
               f"({'--ray' if timing['ray'] else 'in process'}; {len(timing['parts'])} invocation(s): "
               + ", ".join(f"{'+'.join(t['worlds'])} {t['wall_seconds'] / 60:.1f} min" for t in timing["parts"])
               + f"), started {timing['started_utc']}; 1-minute load "
               f"average median {timing['load_median']}, max {timing['load_max']} (sampled every 30 s).", ""]
    md += [study_md, "",
          f"### `{args.policy}` vs the best other myopic non-oracle policy (tuned in world `{args.tuned_world}`)", "",
          "| world | baseline | welfare ratio (target ≥ 1.05) | homogenisation cut (target ≥ 20 %) |",
          "|---|---|---|---|"]
    for w, v in cmp_all.items():
        tag = " (tuning world)" if w == args.tuned_world else ""
        md.append(f"| {w}{tag} | {v['baseline']} | {v['welfare_ratio']:.3f} | {100 * v['homogenisation_cut']:.1f} % |")
    md += ["", f"Targets met on every world it was not tuned on: **{'yes' if met else 'no'}**.",
           "", f"Cumulative welfare of `{args.policy}` / its base policy `{base}`: "
           + ", ".join(f"{w} {v:.3f}" for w, v in vs_base.items()) + ".", ""]
    (res_dir / f"{args.results}.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
