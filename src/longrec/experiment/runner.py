"""Run an experiment: fit every (model, seed) on train (valid for tuning and early stopping),
recommend for the test users with train + valid as their history, score on test, then
aggregate, test against the baseline and write the report.

Output folder layout (``out``)::

    .longrec-experiment          marker: this folder belongs to an experiment
    runs/<label>/search.json     the valid grid search of a model (when it has `search`)
    runs/<label>/seed<s>/        one finished run: recs.parquet, metrics.parquet, per_user.parquet,
                                 [fairness.parquet], [model/], run.json (written last)
    results.parquet              one row per model x seed x metric x k
    per_user.parquet             one row per model x seed x user x metric x k
    stats.parquet                paired tests against the baseline
    fairness.parquet             per-group metrics with bootstrap CIs (when [metrics].fairness)
    experiment.lock.toml         resolved configs, versions, data fingerprints, git commit
    report.html                  the self-contained report
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.data.dataset import Dataset
from longrec.errors import ConfigError, DataError, LongrecError
from longrec.experiment._io import write_parquet as _write_parquet
from longrec.experiment._io import write_text as _write_text
from longrec.experiment.config import ExperimentConfig, ModelSpec

MARKER = ".longrec-experiment"
GENRE_COLUMNS = ("genres", "genre", "class", "category", "categories")


# --------------------------------------------------------------------------- data
@dataclass
class ExperimentData:
    train: Dataset
    valid: Dataset | None
    test: pd.DataFrame
    candidates: np.ndarray | None = None
    source: dict = field(default_factory=dict)

    def fingerprints(self) -> dict:
        out = {"train": self.train.fingerprint(), "test": Dataset(self.test).fingerprint()}
        if self.valid is not None:
            out["valid"] = self.valid.fingerprint()
        return out


def _pick(d: Path, stem: str) -> Path | None:
    for ext in (".csv", ".parquet", ".csv.gz", ".tsv", ".inter", ".item", ".user"):
        p = d / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def load_data(spec) -> ExperimentData:
    """The train/valid/test parts named by a DataSpec."""
    from longrec.data.readers import dataset_from_frames, read_interactions

    if spec.name is not None:
        from longrec.data.registry import load_split

        s = load_split(spec.name, spec.protocol)
        return ExperimentData(s["train"], s["valid"], s["test"].interactions, candidates=s.get("cold_items"),
                              source={"name": spec.name, "protocol": spec.protocol.lower()})
    if spec.dir is not None:
        d = spec.dir
        if not d.is_dir():
            raise DataError(f"[data] dir {d} is not a folder; point it at a prepared dataset with train.csv, "
                            "valid.csv, test.csv (and optional items.csv, users.csv).")
        files = {p: _pick(d, p) for p in ("train", "valid", "test")}
        files.update({"items": _pick(d, "items"), "users": _pick(d, "users")})
        missing = [p for p in ("train", "test") if files[p] is None]
        if missing:
            raise DataError(f"[data] dir {d} has no {' or '.join(f'{m}.csv' for m in missing)}; a prepared dataset "
                            "folder holds train.csv, valid.csv, test.csv (+ items.csv, users.csv).")
    else:
        files = {p: getattr(spec, p) for p in ("train", "valid", "test", "items", "users")}
        for p, f in files.items():
            if f is not None and not Path(f).is_file():
                raise DataError(f"[data] {p} = {str(f)!r} does not exist (relative paths start at the experiment "
                                "file's folder; $VARIABLES such as $LONGREC_DATA_DIR are expanded, relative to the working "
                                "directory).")
    train = dataset_from_frames(files["train"], items=files["items"], users=files["users"], unknown_items="warn",
                                name=Path(files["train"]).parent.name or "train")
    valid = train.with_interactions(read_interactions(files["valid"]), name="valid") if files["valid"] else None
    test = read_interactions(files["test"])
    return ExperimentData(train, valid, test, source={k: str(v) for k, v in files.items() if v is not None})


# --------------------------------------------------------------------------- helpers
def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, Path):
        return str(x)
    return x


def _tomlable(x):
    """None dropped (TOML has no null), everything else as JSON would write it."""
    x = _jsonable(x)
    if isinstance(x, dict):
        return {k: _tomlable(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_tomlable(v) for v in x if v is not None]
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    return x


def _short(info: dict, limit: int = 400) -> dict:
    """fit_info without its long entries (validation curves): what a reader wants to see."""
    return {k: v for k, v in info.items() if len(json.dumps(v, default=str)) <= limit}


def prepare_out(out: Path, resume: bool) -> None:
    """Create `out`, or accept it if it is an experiment folder; refuse any other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the experiment's outputs.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(f"--out {out} is a non-empty folder that was not written by `longrec experiment`; "
                          "nothing was changed. Pick a new or empty folder (or delete this one yourself).")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `longrec experiment`; the folder may be overwritten by it\n")


def _item_features(train: Dataset, column: str | None) -> pd.Series | None:
    items = train.items
    if items is None:
        if column:
            raise ConfigError(f"[metrics] item_features = {column!r}, but the data has no item table.")
        return None
    col = column or next((c for c in GENRE_COLUMNS if c in items.columns), None)
    if col is None:
        return None
    if col not in items.columns:
        raise ConfigError(f"[metrics] item_features = {col!r} is not a column of the item table "
                          f"(columns: {', '.join(c for c in items.columns if c != 'item_id')}).")
    vals = items[col]
    if (pd.api.types.is_string_dtype(vals) or vals.dtype == object) and \
            vals.dropna().map(lambda v: isinstance(v, str)).all():
        vals = vals.fillna("").astype(str)
        sample = " ".join(vals.head(200))
        sep = "|" if "|" in sample else ("," if "," in sample else None)
        vals = vals.map(lambda s: {g.strip() for g in (s.split(sep) if sep else s.split()) if g.strip()})
        keep = vals.map(len) > 0
        return pd.Series(vals[keep].to_numpy(), index=items["item_id"][keep].to_numpy())
    return pd.Series(vals.to_numpy(), index=items["item_id"].to_numpy())


def _check_fairness(cfg: ExperimentConfig, data: ExperimentData) -> None:
    users = data.train.users
    for col in cfg.metrics.fairness:
        if col == "activity":
            continue
        if users is None:
            raise ConfigError(f"[metrics] fairness = {cfg.metrics.fairness}: the data has no user table; give "
                              "[data] users (or use 'activity', computed from train).")
        if col not in users.columns:
            raise ConfigError(f"[metrics] fairness column {col!r} is not in the user table (columns: "
                              f"{', '.join(c for c in users.columns if c != 'user_id')}).")


def check_model_configs(cfg: ExperimentConfig) -> None:
    """Every model config (and grid point) through its typed Config, before any data is read."""
    from longrec.models.registry import get_model_class

    for spec in cfg.models:
        klass = get_model_class(spec.name)
        for combo in spec.grid():
            try:
                klass({**spec.config, **combo})
            except ConfigError as e:
                where = f" with search point {combo}" if combo else ""
                raise ConfigError(f"model {spec.key!r}{where}: {e} Fix its `config` in the experiment file.") from None


# --------------------------------------------------------------------------- one run
def _fit(spec: ModelSpec, cfg: dict, data: ExperimentData, valid: bool = True):
    from longrec.models.registry import get_model_class

    klass = get_model_class(spec.name)
    cfg = dict(cfg)
    if spec.max_seconds is not None and "max_seconds" in klass.Config.model_fields:
        cfg.setdefault("max_seconds", spec.max_seconds)
    try:
        model = klass(cfg)
    except ConfigError as e:
        raise ConfigError(f"model {spec.key!r}: {e}") from None
    t0 = time.perf_counter()
    model.fit(data.train, data.valid if valid else None)
    return model, time.perf_counter() - t0


def _search_trials(spec: ModelSpec, seed: int, data: ExperimentData, log=None) -> list[dict]:
    """Fit every grid combination on train and score it on valid (no files: it can run as a Ray task)."""
    from longrec.metrics.ranking import evaluate

    trials = []
    vusers = data.valid.interactions["user_id"].unique()
    for combo in spec.grid():
        m, secs = _fit(spec, {**spec.config, **combo, "seed": seed}, data)
        recs = m.recommend(users=vusers, k=10)
        score = evaluate(recs, data.valid.interactions, ks=(10,), metrics=["NDCG"])["NDCG@10"]
        trials.append({"params": combo, "valid_NDCG@10": float(score), "fit_seconds": round(secs, 2)})
        if log is not None:
            log(_trial_line(spec, trials[-1]))
    return trials


def _trial_line(spec: ModelSpec, t: dict) -> str:
    return (f"  {spec.key} search {json.dumps(t['params'], default=str)}: valid NDCG@10 {t['valid_NDCG@10']:.4f} "
            f"({t['fit_seconds']:.1f} s)")


def _search_key(spec: ModelSpec, seed: int, data: ExperimentData, fp: dict) -> str:
    if data.valid is None:
        raise ConfigError(f"model {spec.key!r} has a `search` grid, which is tuned on valid; the data has no "
                          "valid part. Add [data] valid (or drop `search`).")
    return _digest({"model": spec.name, "config": spec.config, "search": spec.search, "seed": seed, "data": fp})


def _reuse_search(spec: ModelSpec, key: str, run_root: Path, resume: bool, log) -> tuple[dict, list[dict]] | None:
    path = run_root / "search.json"
    if resume and path.is_file():
        done = json.loads(path.read_text())
        if done.get("key") == key:
            log(f"[dim]{spec.key}: search reused ({len(done['trials'])} settings)[/]")
            return done["best"], done["trials"]
    return None


def _finish_search(spec: ModelSpec, key: str, trials: list[dict], run_root: Path,
                   log=None) -> tuple[dict, list[dict]]:
    """The grid combination with the best valid NDCG@10 (first wins ties), written to search.json;
    `log` receives the trials (when they were not logged as they ran)."""
    for t in trials if log is not None else ():
        log(_trial_line(spec, t))
    best = max(trials, key=lambda t: t["valid_NDCG@10"])["params"]  # max keeps the first of ties
    _write_text(json.dumps(_jsonable({"key": key, "best": best, "trials": trials}), indent=2), run_root / "search.json")
    return best, trials


def _search(spec: ModelSpec, seed: int, data: ExperimentData, run_root: Path, resume: bool, fp: dict,
            log) -> tuple[dict, list[dict]]:
    """The grid combination with the best valid NDCG@10 (first wins ties)."""
    key = _search_key(spec, seed, data, fp)
    done = _reuse_search(spec, key, run_root, resume, log)
    if done is not None:
        return done
    return _finish_search(spec, key, _search_trials(spec, seed, data, log), run_root)


def _score_run(cfg: ExperimentConfig, recs: pd.DataFrame, data: ExperimentData, catalog, features,
               rng: np.random.Generator) -> tuple[list[dict], pd.DataFrame]:
    from longrec.metrics.beyond import intra_list_diversity, novelty
    from longrec.metrics.fairness import _bootstrap_ci, item_popularity
    from longrec.metrics.ranking import evaluate, per_user

    ks = cfg.metrics.k
    test = data.test
    res = evaluate(recs, test, ks=ks, catalog=catalog)
    rows: list[dict] = []
    pu_frames = []
    for k in ks:
        pu = per_user(recs, test, k)
        for m in cfg.metrics.accuracy:
            v = pu[f"{m}@{k}"].to_numpy(dtype=np.float64)
            lo, hi = _bootstrap_ci(v, cfg.metrics.n_boot, rng)
            rows.append({"metric": m, "k": k, "value": float(res[f"{m}@{k}"]), "ci_low": lo, "ci_high": hi,
                         "n_users": int(res["n_users"])})
            pu_frames.append(pd.DataFrame({"user_id": pu["user_id"].astype(str).to_numpy(), "metric": m, "k": k,
                                           "value": v}))
    beyond = cfg.metrics.beyond
    pop = item_popularity(data.train.interactions) if "novelty" in beyond else None
    n_train_users = int(data.train.interactions["user_id"].nunique())
    for k in ks:
        extra = {}
        if "coverage" in beyond:
            extra["ItemCoverage"] = res[f"ItemCoverage@{k}"]
        if "gini" in beyond:
            extra["Gini"] = res[f"Gini@{k}"]
        if "novelty" in beyond:
            extra["Novelty"] = novelty(recs, pop, n_train_users, k=k)
        if "ild" in beyond and features is not None:
            extra["ILD"] = intra_list_diversity(recs, features, k=k)
        for m, v in extra.items():
            rows.append({"metric": m, "k": k, "value": float(v), "ci_low": np.nan, "ci_high": np.nan,
                         "n_users": int(res["n_users"])})
    return rows, pd.concat(pu_frames, ignore_index=True)


@dataclass
class RunResult:
    label: str
    seed: int
    reused: bool
    fit_seconds: float
    metrics: pd.DataFrame
    per_user: pd.DataFrame
    fairness: pd.DataFrame | None
    info: dict


def _reuse_run(spec: ModelSpec, seed: int, out: Path, key: str, resume: bool) -> RunResult | None:
    """The finished run in `out` when --resume and its key (config, data, metrics, ...) is unchanged."""
    d = out / "runs" / spec.key / f"seed{seed}"
    done = d / "run.json"
    if resume and done.is_file():
        info = json.loads(done.read_text())
        if info.get("key") == key:
            fair = pd.read_parquet(d / "fairness.parquet") if (d / "fairness.parquet").is_file() else None
            return RunResult(spec.key, seed, True, info["fit_seconds"], pd.read_parquet(d / "metrics.parquet"),
                             pd.read_parquet(d / "per_user.parquet"), fair, info)
    return None


def _compute_run(cfg: ExperimentConfig, spec: ModelSpec, params: dict, seed: int, data: ExperimentData, catalog,
                 features, groups) -> dict:
    """Fit, recommend and score one (model, seed); writes nothing, so it can run as a Ray task."""
    model, secs = _fit(spec, {**spec.config, **params, "seed": seed}, data)
    kmax = cfg.output.recs_k or max(cfg.metrics.k)
    users = pd.unique(data.test["user_id"])
    hist = data.valid.interactions if data.valid is not None else None
    recs = model.recommend(users=users, histories=hist, k=max(kmax, max(cfg.metrics.k)),
                           candidates=data.candidates)
    rng = np.random.default_rng([cfg.data.seed, seed])
    rows, pu = _score_run(cfg, recs, data, catalog, features, rng)
    fair = None
    if groups is not None:
        from longrec.metrics.fairness import group_metrics

        fm = [m for m in cfg.metrics.accuracy]
        fair = group_metrics(recs, data.test, groups, k=min(cfg.metrics.k), metrics=fm, n_boot=cfg.metrics.n_boot,
                             seed=cfg.data.seed + seed)
        fair.insert(0, "k", min(cfg.metrics.k))
    return {"recs": recs, "metrics": pd.DataFrame(rows), "per_user": pu, "fairness": fair, "fit_seconds": secs,
            "config": model.config.model_dump(mode="json"),
            "fit_info": _jsonable(json.loads(json.dumps(getattr(model, "fit_info_", {}) or {}, default=str))),
            "model": model if cfg.output.save_models else None}


def _store_run(cfg: ExperimentConfig, spec: ModelSpec, seed: int, out: Path, key: str, c: dict) -> RunResult:
    """Write a computed run into out/runs/<label>/seed<s>/ (run.json last: it marks the run finished)."""
    d = out / "runs" / spec.key / f"seed{seed}"
    done = d / "run.json"
    if d.exists():
        shutil.rmtree(d)  # a stale or unfinished run of this experiment
    d.mkdir(parents=True, exist_ok=True)
    recs, metrics, pu, fair, secs = c["recs"], c["metrics"], c["per_user"], c["fairness"], c["fit_seconds"]
    _write_parquet(recs.assign(user_id=recs["user_id"].astype(str), item_id=recs["item_id"].astype(str)),
                   d / "recs.parquet")
    _write_parquet(metrics, d / "metrics.parquet")
    _write_parquet(pu, d / "per_user.parquet")
    if fair is not None:
        _write_parquet(fair, d / "fairness.parquet")
    if cfg.output.save_models and c.get("model") is not None:
        c["model"].save(d / "model")
    over = spec.max_seconds is not None and secs > spec.max_seconds
    info = {"key": key, "model": spec.name, "label": spec.key, "seed": seed, "fit_seconds": round(secs, 3),
            "over_budget": bool(over), "config": c["config"], "fit_info": c["fit_info"],
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_text(json.dumps(info, indent=2, default=str), done)
    return RunResult(spec.key, seed, False, secs, metrics, pu, fair, info)


def _run_one(cfg: ExperimentConfig, spec: ModelSpec, params: dict, seed: int, data: ExperimentData, out: Path,
             key: str, resume: bool, catalog, features, groups) -> RunResult:
    r = _reuse_run(spec, seed, out, key, resume)
    if r is not None:
        return r
    return _store_run(cfg, spec, seed, out, key, _compute_run(cfg, spec, params, seed, data, catalog, features, groups))


# --------------------------------------------------------------------------- scheduling
def _run_key(cfg: ExperimentConfig, spec: ModelSpec, params: dict, seed: int, fp: dict) -> str:
    """What a finished run depends on: --resume reuses it only while this is unchanged."""
    return _digest({"model": spec.name, "config": {**spec.config, **params}, "seed": seed, "data": fp,
                    "metrics": cfg.metrics.model_dump(mode="json"), "max_seconds": spec.max_seconds,
                    "data_seed": cfg.data.seed, "recs_k": cfg.output.recs_k,
                    "save_models": cfg.output.save_models, "longrec": _versions().get("longrec")})


def _run_failed(e: LongrecError, spec: ModelSpec, seed: int | None, n_done: int) -> LongrecError:
    done = f"; the {n_done} finished run(s) are kept: fix it and rerun with --resume" if n_done else ""
    where = f" (seed {seed})" if seed is not None else " (search on valid)"
    return type(e)(f"model {spec.key!r}{where}: {e}{done}")


def _log_run(cfg: ExperimentConfig, r: RunResult, i: int, n_runs: int, log, where: str = "") -> None:
    m = r.metrics
    head = m[(m["metric"] + "@" + m["k"].astype(str)) == cfg.stats.metric]["value"]
    how = "reused" if r.reused else f"fit {r.fit_seconds:.1f} s{where}"
    flag = " [yellow](over max_seconds)[/]" if r.info.get("over_budget") else ""
    log(f"[{i}/{n_runs}] {r.label} seed {r.seed}: {how}, {cfg.stats.metric} "
        f"{float(head.iloc[0]) if len(head) else float('nan'):.4f}{flag}")


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_reachable(address: str) -> None:
    """Refuse a HOST:PORT that nothing answers on (ray.init would wait for it for minutes)."""
    import socket

    if "://" in address or address == "auto" or ":" not in address:
        return  # ray://, auto and the like: Ray's own checks
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise ConfigError(f"--ray-address {address}: no Ray cluster answers there ({e}). Start one with "
                          "`ray start --head` and give the address it prints, or use --ray for a local one.") from None


def _run_on_ray(cfg: ExperimentConfig, data: ExperimentData, out: Path, resume: bool, fp: dict, catalog, features,
                groups, address: str | None, log) -> tuple[list[RunResult], dict, dict]:
    import warnings

    with warnings.catch_warnings():
        # Ray's own start-up and shutdown noise (its /dev/null handles and subprocesses, a GPU tip)
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.filterwarnings("ignore", message=".*RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO.*")
        return _ray_runs(cfg, data, out, resume, fp, catalog, features, groups, address, log)


def _ray_runs(cfg: ExperimentConfig, data: ExperimentData, out: Path, resume: bool, fp: dict, catalog, features,
              groups, address: str | None, log) -> tuple[list[RunResult], dict, dict]:
    """Every (model, seed) fit, and every valid search, as a Ray task of one CPU. Runs of a model with a
    search start when its search is done; the others start at once. The tasks only compute (no
    files); this process writes each run as it arrives, so the outputs are a local run's."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the `ray` package: pip install 'ray>=2.9' (or longrec[sim]), or run "
                          "without --ray.") from None
    started = False
    if not ray.is_initialized():
        if address:
            _check_reachable(address)
        kw = {"address": address} if address else {"num_cpus": _cpu_count(), "include_dashboard": False}
        try:
            ray.init(logging_level="ERROR", log_to_driver=False, configure_logging=False, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"could not start or join Ray{f' at {address!r}' if address else ''}: {e}") from None
        started = True
    running: dict = {}
    searching: dict = {}
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        jobs = [(spec, seed) for spec in cfg.models for seed in cfg.seeds_of(spec)]
        log(f"ray: {len(jobs)} run(s) as tasks of 1 CPU on {cpus:g} CPU(s)"
            + (f" at {address}" if address else " (local)"))
        data_ref = ray.put(data)
        search_task = ray.remote(num_cpus=1, max_retries=0)(_search_trials)
        run_task = ray.remote(num_cpus=1, max_retries=0)(_compute_run)
        results: list[RunResult | None] = [None] * len(jobs)
        params_of: dict = {}
        searches: dict = {}
        n_done = 0

        def submit(spec: ModelSpec, params: dict) -> None:
            nonlocal n_done
            params_of[spec.key] = params
            for idx, (sp, seed) in enumerate(jobs):
                if sp is not spec:
                    continue
                key = _run_key(cfg, spec, params, seed, fp)
                r = _reuse_run(spec, seed, out, key, resume)
                if r is not None:
                    results[idx] = r
                    n_done += 1
                    _log_run(cfg, r, n_done, len(jobs), log)
                else:
                    ref = run_task.remote(cfg, spec, params, seed, data_ref, catalog, features, groups)
                    running[ref] = (idx, key)

        for spec in cfg.models:
            if not spec.search:
                submit(spec, {})
                continue
            seed = cfg.seeds_of(spec)[0]
            key = _search_key(spec, seed, data, fp)
            done = _reuse_search(spec, key, out / "runs" / spec.key, resume, log)
            if done is not None:
                searches[spec.key] = {"best": done[0], "trials": done[1]}
                submit(spec, done[0])
            else:
                searching[search_task.remote(spec, seed, data_ref)] = (spec, key)
        while searching or running:
            ready, _ = ray.wait(list(searching) + list(running), num_returns=1)
            ref = ready[0]
            if ref in searching:
                spec, key = searching.pop(ref)
                try:
                    trials = ray.get(ref)
                except Exception as e:  # a RayTaskError wraps the task's exception
                    cause = getattr(e, "cause", None) or e
                    if isinstance(cause, LongrecError):
                        raise _run_failed(cause, spec, None, n_done) from None
                    raise
                best, trials = _finish_search(spec, key, trials, out / "runs" / spec.key, log)
                searches[spec.key] = {"best": best, "trials": trials}
                submit(spec, best)
                continue
            idx, key = running.pop(ref)
            spec, seed = jobs[idx]
            try:
                computed = ray.get(ref)
            except Exception as e:
                cause = getattr(e, "cause", None) or e
                if isinstance(cause, LongrecError):
                    raise _run_failed(cause, spec, seed, n_done) from None
                raise
            results[idx] = _store_run(cfg, spec, seed, out, key, computed)
            n_done += 1
            _log_run(cfg, results[idx], n_done, len(jobs), log, where=" (ray)")
        return [r for r in results if r is not None], params_of, searches
    finally:
        for ref in [*running, *searching]:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- provenance
def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("longrec", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "torch", "sentence-transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git_commit() -> str | None:
    src = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return r.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------------- the whole experiment
@dataclass
class ExperimentResult:
    out: Path
    results: pd.DataFrame
    per_user: pd.DataFrame
    stats: pd.DataFrame
    fairness: pd.DataFrame | None
    leaderboard: pd.DataFrame
    report: Path
    runs: list[RunResult]


def run_experiment(cfg: ExperimentConfig, out: str | Path, resume: bool = False, log=None,
                   source_text: str | None = None, use_ray: bool = False,
                   ray_address: str | None = None) -> ExperimentResult:
    """Run `cfg` into folder `out` (see the module docstring); `log(str)` receives progress lines.

    use_ray: fit the (model, seed) runs (and the valid searches) as Ray tasks, one CPU each, on a
    local Ray runtime sized to this machine's CPUs, or on the cluster at `ray_address`. The
    outputs are written by this process, so they are those of a local run."""
    from longrec.experiment.report import leaderboard, write_report
    from longrec.experiment.stats import compare_to_baseline

    log = log or (lambda s: None)
    out = Path(out)
    check_model_configs(cfg)
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        prepare_out(out, resume)  # refuses before the data is read
    t_start = time.perf_counter()
    commit = _git_commit()  # the code that runs: the working tree may change while a long experiment runs
    data = load_data(cfg.data)
    _check_fairness(cfg, data)
    prepare_out(out, resume)
    features = _item_features(data.train, cfg.metrics.item_features) if "ild" in cfg.metrics.beyond else None
    groups = None
    if cfg.metrics.fairness:
        from longrec.metrics.fairness import user_groups

        groups = user_groups(data.train.users, data.train.interactions, attributes=cfg.metrics.fairness)
    catalog = data.candidates if data.candidates is not None else data.train.item_ids
    fp = data.fingerprints()
    n_runs = sum(len(cfg.seeds_of(m)) for m in cfg.models)
    log(f"data: {len(data.train):,} train / {len(data.valid) if data.valid is not None else 0:,} valid / "
        f"{len(data.test):,} test interactions; {n_runs} run(s)")
    runs: list[RunResult] = []
    searches: dict = {}
    params_of: dict = {}
    i = 0
    if use_ray:
        runs, params_of, searches = _run_on_ray(cfg, data, out, resume, fp, catalog, features, groups, ray_address,
                                                log)
    else:
        for spec in cfg.models:
            seeds = cfg.seeds_of(spec)
            params: dict = {}
            if spec.search:
                params, trials = _search(spec, seeds[0], data, out / "runs" / spec.key, resume, fp, log)
                searches[spec.key] = {"best": params, "trials": trials}
            params_of[spec.key] = params
            for seed in seeds:
                i += 1
                key = _run_key(cfg, spec, params, seed, fp)
                try:
                    r = _run_one(cfg, spec, params, seed, data, out, key, resume, catalog, features, groups)
                except LongrecError as e:
                    raise _run_failed(e, spec, seed, len(runs)) from e
                runs.append(r)
                _log_run(cfg, r, i, n_runs, log)
    resolved: dict = {}
    for r in runs:  # in the order of the experiment file, whichever finished first
        spec = next(m for m in cfg.models if m.key == r.label)
        resolved.setdefault(spec.key, {"model": spec.name, "config": r.info["config"], "seeds": cfg.seeds_of(spec),
                                       "search_best": params_of.get(spec.key) or None,
                                       "fit_info": _short(r.info.get("fit_info") or {})})
    # ------------------------------------------------------------------ aggregate
    name_of = {m.key: m.name for m in cfg.models}
    res_frames, pu_frames, fair_frames = [], [], []
    for r in runs:
        res_frames.append(r.metrics.assign(model=r.label, model_name=name_of[r.label], seed=r.seed,
                                           fit_seconds=float(r.fit_seconds),
                                           over_budget=bool(r.info.get("over_budget", False))))
        pu_frames.append(r.per_user.assign(model=r.label, seed=r.seed))
        if r.fairness is not None:
            fair_frames.append(r.fairness.assign(model=r.label, seed=r.seed))
    results = pd.concat(res_frames, ignore_index=True)
    results = results[["model", "model_name", "seed", "metric", "k", "value", "ci_low", "ci_high", "n_users",
                       "fit_seconds", "over_budget"]]
    per_user = pd.concat(pu_frames, ignore_index=True)[["model", "seed", "user_id", "metric", "k", "value"]]
    fairness = pd.concat(fair_frames, ignore_index=True) if fair_frames else None
    seed_mean = per_user.groupby(["model", "user_id", "metric", "k"], as_index=False, sort=False)["value"].mean()
    stats = compare_to_baseline(seed_mean, cfg.baseline, alpha=cfg.stats.alpha)
    board = leaderboard(cfg, results, stats)
    _write_parquet(results, out / "results.parquet")
    _write_parquet(per_user, out / "per_user.parquet")
    _write_parquet(stats, out / "stats.parquet")
    if fairness is not None:
        _write_parquet(fairness, out / "fairness.parquet")
    elif (out / "fairness.parquet").exists():
        (out / "fairness.parquet").unlink()
    lock = {
        "experiment": cfg.model_dump(mode="json", exclude_none=True),
        "resolved": resolved,
        "search": searches,
        "data": {"source": data.source, "fingerprints": fp, "n_train": len(data.train),
                 "n_valid": len(data.valid) if data.valid is not None else 0, "n_test": len(data.test)},
        "versions": _versions(),
        "git_commit": commit,
        "command": " ".join(sys.argv),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(time.perf_counter() - t_start, 2),
        "executor": ("ray " + (ray_address or "local")) if use_ray else "local",
        "runs": [{"label": r.label, "seed": r.seed, "fit_seconds": round(float(r.fit_seconds), 3),
                  "reused": r.reused, "over_budget": bool(r.info.get("over_budget", False))} for r in runs],
    }
    import tomli_w

    _write_text(tomli_w.dumps(_tomlable(lock)), out / "experiment.lock.toml")
    report = write_report(out / "report.html", cfg, results, stats, board, fairness, lock)
    return ExperimentResult(out, results, per_user, stats, fairness, board, report, runs)
