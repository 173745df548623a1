"""The feedback loop, and sweeps of policies x seeds (in process or as Ray tasks).

Each step: every active user gets a slate of K items from the policy; users choose (or not)
by the behaviour model; choices are logged. Every R steps (and at step 0) the policy is refit
on everything logged so far: the real training split plus all simulated choices. Between
refits the choices since the last fit are passed to `recommend` as histories (and excluded).

Randomness: users draw from `default_rng([seed, 1])`, policies from `[seed, 2]`, metric pair
samples from `[seed, 3]`, so a run is a pure function of (config, policy, seed); the same seed
gives every policy the same user pairs and the same starting world.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from longrec._threads import limit_blas
from longrec.simulate.config import SimConfig, split_folder
from longrec.simulate.metrics import METRICS, MetricTracker
from longrec.simulate.policies import make_policy
from longrec.simulate.users import UserState, choose, step_users
from longrec.simulate.world import World, fit_world, validate_world


def _read_split_folder(d: Path) -> dict:
    """train/valid/test Datasets of a split folder (e.g. book-crossing/splits/b1), with its
    items/users tables when present. Ids are read as strings (ISBNs keep leading zeros)."""
    from longrec.data.dataset import Dataset
    from longrec.data.readers import read_interactions, read_items, read_users

    def pick(stem):
        return next((d / f"{stem}.{e}" for e in ("csv", "parquet") if (d / f"{stem}.{e}").is_file()), None)

    items = read_items(pick("items")) if pick("items") else None
    users = read_users(pick("users")) if pick("users") else None
    name = f"{d.parent.parent.name}/{d.name}" if d.parent.name == "splits" else d.name
    return {part: Dataset(read_interactions(pick(part)), items, users, name=f"{name}/{part}",
                          meta={"source": str(d), "part": part}) for part in ("train", "valid", "test")}


@limit_blas(1)
def build_world(cfg: SimConfig, validate: bool = True) -> World:
    """Load the configured dataset split and fit the world (plus its validation on test)."""
    from longrec.data.registry import load_split

    sim = cfg.simulation
    folder = split_folder(sim.dataset)
    split = _read_split_folder(folder) if folder is not None else load_split(sim.dataset, sim.split, download=sim.download)
    parts = [split[p].interactions for p in ("train", "valid", "test")]
    full = split["train"].with_interactions(pd.concat(parts, ignore_index=True), name=sim.dataset)
    world = fit_world(full, split["train"], cfg.world, cfg.metrics, max_users=sim.max_users,
                      log_all_users=sim.log_all_users)
    if validate:
        world.info["validation"] = validate_world(split, cfg.world)
    return world


@limit_blas(1)
def run_policy(cfg: SimConfig, world: World, policy_name: str, seed: int,
               on_step: Callable[[int], None] | None = None, llm_generator=None) -> pd.DataFrame:
    """One simulation: a DataFrame with one row per (step, group) and a column per metric.
    With ``[users] choice = "llm"`` a language model chooses (``llm_generator`` overrides the
    configured generator, e.g. a stub in tests); its parse counts are in ``df.attrs["llm_users"]``."""
    sim = cfg.simulation
    # behaviour parameters come from this run's config; the fitted ones stay the world's
    fitted = {k: getattr(world.settings, k) for k in ("family", "text_encoder", "latent_dim", "utility_l2", "text_weight")}
    ws = cfg.world.model_copy(update=fitted)
    world = dataclasses.replace(world, settings=ws)
    t_start = time.perf_counter()
    user_rng = np.random.default_rng([seed, 1])
    pol_rng = np.random.default_rng([seed, 2])
    policy = make_policy(cfg.policy(policy_name), seed, sim.epochs)
    state = UserState.initial(world)
    llm = None
    if cfg.users.choice == "llm":
        from longrec.simulate.llm_users import LLMChooser

        llm = LLMChooser(cfg.users.llm, world, generator=llm_generator)
    tracker = MetricTracker(world, state, np.random.default_rng([seed, 3]), cfg.metrics.pairs)
    t0 = int(world.initial_frame["timestamp"].max()) + 1 if len(world.initial_frame) else 0
    logged = [world.initial_frame]
    pending: list[pd.DataFrame] = []
    rows = []
    fit_seconds = 0.0
    for t in range(sim.steps):
        if policy.trains and t % sim.retrain_every == 0:
            f0 = time.perf_counter()
            logged = [pd.concat(logged + pending, ignore_index=True)]
            pending = []
            policy.fit(logged[0], world)
            fit_seconds += time.perf_counter() - f0
        users = np.flatnonzero(state.active)
        if len(users):
            full_util = state.effective_utility(world, users)
            pend = pd.concat(pending, ignore_index=True) if pending else None
            slates = policy.slate(pol_rng, world, state, users, full_util, pend, sim.slate_size)
            slate_util = np.where(slates >= 0, np.take_along_axis(full_util, np.maximum(slates, 0), 1), -np.inf)
            pos = choose(user_rng, slate_util, ws.choice_beta, ws.no_choice_utility)
            if llm is not None:  # the MNL draw above is kept: the same user RNG stream, and the fallback
                pos = llm.choose(users, slates, slate_util, pos)
            chosen = np.where(pos >= 0, np.take_along_axis(slates, np.maximum(pos, 0)[:, None], 1)[:, 0], -1)
            chosen = np.where(np.isfinite(np.take_along_axis(slate_util, np.maximum(pos, 0)[:, None], 1)[:, 0]), chosen, -1)
        else:
            full_util = np.zeros((0, world.n_items), np.float32)
            slates = np.zeros((0, sim.slate_size), np.int64)
            slate_util = np.zeros((0, sim.slate_size), np.float32)
            chosen = np.zeros(0, np.int64)
        policy.observe(world, users, chosen, slates)
        if llm is not None:
            llm.observe(users, chosen)
        event = step_users(user_rng, world, state, users, chosen)
        values = tracker.step(state, users, slates, slate_util, full_util, chosen, sim.slate_size, event)
        clicked = chosen >= 0
        if clicked.any():
            pending.append(pd.DataFrame({"user_id": world.user_ids[users[clicked]],
                                         "item_id": world.item_ids[chosen[clicked]],
                                         "timestamp": np.full(int(clicked.sum()), t0 + t, np.int64)}))
        for gi, g in enumerate(tracker.names):
            rows.append([t, t // sim.retrain_every, g] + [float(values[m][gi]) for m in METRICS])
        if on_step is not None:
            on_step(t)
    df = pd.DataFrame(rows, columns=["step", "round", "group", *METRICS])
    df.insert(0, "seed", seed)
    df.insert(0, "policy", policy_name)
    df.attrs["seconds"] = round(time.perf_counter() - t_start, 2)
    df.attrs["fit_seconds"] = round(fit_seconds, 2)
    if llm is not None:
        df.attrs["llm_users"] = llm.summary()
    learned = getattr(policy, "learned_weights", None)
    if learned is not None:  # a policy that learns during the run (the bandit): its final weights
        df.attrs["learned_weights"] = learned()
    return df


def _task(cfg_data: dict, world: World, policy_name: str, seed: int) -> tuple[pd.DataFrame, dict]:
    """One (policy, seed) run: the unit of work both in process and on Ray."""
    cfg = SimConfig(**cfg_data)
    df = run_policy(cfg, world, policy_name, seed)
    info = {"policy": policy_name, "seed": seed, "seconds": df.attrs["seconds"],
            "fit_seconds": df.attrs["fit_seconds"]}
    for key in ("llm_users", "learned_weights"):
        if key in df.attrs:
            info[key] = df.attrs[key]
    return df, info


def run_sweep(cfg: SimConfig, world: World | None = None, use_ray: bool = False, address: str | None = None,
              log: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """All policies x seeds; returns (metrics frame, per-task timing records)."""
    log = log or (lambda msg: None)
    world = world if world is not None else build_world(cfg)
    tasks = [(p.name, s) for p in cfg.policies for s in cfg.simulation.seeds]
    data = cfg.model_dump()
    if use_ray:
        results = _run_on_ray(data, world, tasks, address, log)
    else:
        results = []
        for name, seed in tasks:
            results.append(_task(data, world, name, seed))
            log(f"{name} seed {seed}: {results[-1][1]['seconds']} s")
    frames = [r[0] for r in results]
    for f in frames:
        f.attrs = {}
    return pd.concat(frames, ignore_index=True), [r[1] for r in results]


def _run_on_ray(data: dict, world: World, tasks: list, address: str | None, log) -> list:
    from longrec.errors import ConfigError

    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the `ray` package: pip install 'ray>=2.9' (or longrec[sim]).") from None
    started = False
    if not ray.is_initialized():
        # a local cluster by default; an existing one when an address is given
        kw = {"address": address} if address else {"include_dashboard": False}
        ray.init(ignore_reinit_error=True, logging_level="ERROR", log_to_driver=False, **kw)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(_task)
        ref = ray.put(world)
        futures = [remote.remote(data, ref, name, seed) for name, seed in tasks]
        results = ray.get(futures)
        for _, info in results:
            log(f"{info['policy']} seed {info['seed']}: {info['seconds']} s (ray)")
        return results
    finally:
        if started:
            ray.shutdown()


def simulate(config: str | Path | SimConfig, out: str | Path, use_ray: bool = False, address: str | None = None,
             log: Callable[[str], None] | None = None, report: bool = True) -> pd.DataFrame:
    """Validate the config, fit the world, run every policy x seed, write results to `out`:
    metrics.parquet, world.json, config.toml, report.html and the report's PNGs."""
    import json

    import tomli_w

    from longrec.simulate.config import check_dataset_available, load_config

    log = log or (lambda msg: None)
    if isinstance(config, SimConfig):
        cfg = config
        check_dataset_available(cfg)
    else:
        cfg = load_config(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.worlds:
        return _study(cfg, out, use_ray, address, log, report)
    t0 = time.perf_counter()
    world = build_world(cfg)
    where = "the split folder's" if split_folder(cfg.simulation.dataset) else cfg.simulation.split
    log(f"world fitted: {world.n_users:,} users, {world.n_items:,} items "
        f"(true-utility NDCG@10 on {where} test: {world.info['validation']['NDCG@10']})")
    df, timings = run_sweep(cfg, world, use_ray=use_ray, address=address, log=log)
    df.to_parquet(out / "metrics.parquet", index=False)
    info = {**world.info, "tasks": timings, "total_seconds": round(time.perf_counter() - t0, 2), "ray": use_ray}
    (out / "world.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    (out / "config.toml").write_text(tomli_w.dumps(cfg.model_dump(exclude_none=True)), encoding="utf-8")
    if report:
        from longrec.simulate.report import write_report

        write_report(df, cfg, info, out)
    return df


def _study(cfg: SimConfig, out: Path, use_ray: bool, address: str | None, log, report: bool) -> pd.DataFrame:
    """Every [[worlds]] entry as one simulation in out/<name>/, then study.json and study.md."""
    import json

    from longrec.simulate import study

    frames, validity = [], {}
    for w in cfg.worlds:
        log(f"world {w.name!r} (family {w.family})")
        df = simulate(cfg.for_world(w.name), out / w.name, use_ray=use_ray, address=address, log=log, report=report)
        info = json.loads((out / w.name / "world.json").read_text(encoding="utf-8"))
        validity[w.name] = {"family": w.family, **info.get("validation", {}), "seconds": info.get("total_seconds")}
        frames.append(df.assign(world=w.name))
    df = pd.concat(frames, ignore_index=True)
    runs = study.per_run(df)
    agg = study.aggregate(runs)
    wins = study.winners(agg)
    summary = {"name": cfg.simulation.name, "worlds": validity, "runs": runs.to_dict("records"),
               "aggregate": agg.to_dict("records"), "winners": wins}
    (out / "study.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    head = "| world | family | true-utility NDCG@10 on test |\n|---|---|---|\n" + "".join(
        f"| {n} | {v['family']} | {v.get('NDCG@10')} |\n" for n, v in validity.items())
    (out / "study.md").write_text(study.markdown(agg, wins, head), encoding="utf-8")
    log(f"study summary: {out}/study.md")
    return df
