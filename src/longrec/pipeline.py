"""File-in, file-out steps shared by the CLI and the benchmarks (one code path).

    train_from_files("ease", train="train.csv", valid="valid.csv", items="ml.item", out="runs/ease")
    recommend_to_file("runs/ease", k=10, histories=["valid.csv"], users="test_users.csv", output="recs.csv")
    evaluate_files("recs.csv", "test.csv", ks=[10, 20], output="metrics.json")
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.data.dataset import Dataset
from longrec.errors import ConfigError, DataError, LongrecError

PathLike = str | os.PathLike


def load_model_config(path: PathLike | None, model: str) -> dict:
    """Read a model config TOML in one of three layouts: flat keys; a [config] table; or a
    [model] table. A top-level `model = "NAME"` (or
    `name` in the [model] table) must agree with --model. Keys outside the chosen layout are an
    error, never silently dropped."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist.")
    try:
        doc = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p} is not valid TOML: {e}.") from e
    except RecursionError:
        raise ConfigError(f"{p} is nested too deeply to be a model config; a config is a flat table of settings.") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p} ({e.strerror or e}).") from None
    named = doc.get("model")
    if isinstance(named, dict):  # a [model] table holds the settings
        table, named = dict(named), named.get("name")
        table.pop("name", None)
        rest = [k for k in doc if k != "model"]
        where = "[model]"
    elif "config" in doc:
        table, rest, where = doc["config"], [k for k in doc if k not in ("config", "model")], "[config]"
    else:
        table, rest, where = {k: v for k, v in doc.items() if k != "model"}, [], ""
    if named is not None and (not isinstance(named, str) or named.lower() != model.lower()):
        raise ConfigError(f"{p} is a config for model {named!r} but --model is {model!r}.")
    if not isinstance(table, dict):
        raise ConfigError(f"{p}: [config] must be a table of model settings.")
    if rest:
        raise ConfigError(f"{p}: the settings are in its {where} table, so the other keys ({', '.join(rest)}) "
                          f"would be ignored; move them into {where}.")
    return table


def read_dataset_files(train: PathLike, items: PathLike | None = None, users: PathLike | None = None,
                       unknown_items: str = "warn", name: str = "", duplicates: str = "keep-last",
                       reader: dict | None = None) -> Dataset:
    """`reader`: read_interactions keyword arguments (sep, encoding, columns); the item and user
    tables get its sep/encoding."""
    from longrec.data.readers import dataset_from_frames, read_interactions, read_items, read_users

    if reader:
        table_kw = {k: v for k, v in reader.items() if k in ("sep", "encoding")}
        return dataset_from_frames(read_interactions(train, **{"duplicates": duplicates, **reader}),
                                   items=None if items is None else read_items(items, **table_kw),
                                   users=None if users is None else read_users(users, **table_kw),
                                   unknown_items=unknown_items, name=name or Path(train).stem,
                                   duplicates=reader.get("duplicates", duplicates))
    return dataset_from_frames(train, items=items, users=users, unknown_items=unknown_items,
                               name=name or Path(train).stem, duplicates=duplicates)


def train_from_files(model: str, train: PathLike, out: PathLike, valid: PathLike | None = None,
                     items: PathLike | None = None, users: PathLike | None = None,
                     config: PathLike | dict | None = None, seed: int | None = None,
                     meta: dict | None = None, dp_epsilon: float | None = None,
                     workers: int | None = None, ray_address: str | None = None,
                     text_columns: Sequence[str] | str | None = None, duplicates: str = "keep-last",
                     reader: dict | None = None, overwrite: bool = True):
    """Train `model` on the files, save it to `out`, return the fitted model.

    duplicates: what to do with repeated (user, item) rows of the training file (see
    `longrec.data.validate`); "keep-all" keeps re-consumption (repeat purchases) for the models
    that use it (top-frequency, tifu-knn).

    overwrite: replace `out` if it holds a longrec model (the CLI passes --overwrite, default
    off). A file or a folder that is not a model directory is never replaced (ModelError,
    raised before any training).

    dp_epsilon: train with user-level differential privacy at this ε (models with a
    `dp_epsilon` setting; `lm-twotower` is trained by its private variant `lm-twotower-dp`).
    workers, ray_address: data-parallel training on Ray Train (models with a `workers` setting).
    text_columns: the item columns that make an item's text, in order (models that embed item
    text; saved in the model's config as `item_text_columns`)."""
    from longrec.data.readers import read_interactions
    from longrec.models.artifacts import check_model_output
    from longrec.models.registry import DP_VARIANTS, get_model_class

    check_model_output(out, overwrite)  # before hours of training, not after
    cfg = dict(config) if isinstance(config, dict) else load_model_config(config, model)
    if dp_epsilon is not None:
        if dp_epsilon <= 0:
            raise ConfigError(f"--dp-epsilon must be positive, got {dp_epsilon}.")
        model = DP_VARIANTS.get(model.lower(), model)
        if "dp_epsilon" not in get_model_class(model).Config.model_fields:
            raise ConfigError(f"model {model!r} has no differentially private training; use "
                              f"{' or '.join(sorted(DP_VARIANTS))} with --dp-epsilon.")
        cfg["dp_epsilon"] = dp_epsilon
    klass = get_model_class(model)
    if workers is not None or ray_address is not None:
        if "workers" not in klass.Config.model_fields:
            what = "differentially private training" if cfg.get("dp_epsilon") is not None else "model"
            raise ConfigError(f"{what} {model!r} trains in one process; --workers and --ray-address are "
                              "available for lm-seq, lm-twotower and bpr (without --dp-epsilon).")
        if workers is not None:
            cfg["workers"] = workers
        if ray_address is not None:
            cfg["ray_address"] = ray_address
    if text_columns is not None:
        from longrec.lm.text import parse_text_columns

        if "item_text_columns" not in klass.Config.model_fields:
            raise ConfigError(f"model {model!r} does not use item text, so --text-columns does not apply to it; "
                              "use it with a language-model model (lm-seq, lm-twotower, lm-linear-dp, ...).")
        cfg["item_text_columns"] = parse_text_columns(text_columns)
    if seed is not None:
        cfg["seed"] = seed
    m = klass(cfg)  # validates the config before any data is read
    train_ds = read_dataset_files(train, items, users, duplicates=duplicates, reader=reader)
    if cfg.get("item_text_columns") and train_ds.items is not None:
        from longrec.lm.text import _resolve_columns

        _resolve_columns(cfg["item_text_columns"], train_ds.items.columns)  # fail before training
    if meta:
        train_ds.meta.update(meta)
    valid_ds = train_ds.with_interactions(read_interactions(valid, **(reader or {}))) if valid is not None else None
    m.fit(train_ds, valid_ds)
    m.save(out, overwrite=overwrite)
    return m


def _atomic_write(path: PathLike, write) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def recommend_to_file(model_dir: PathLike, k: int, output: PathLike, histories: Sequence[PathLike] = (),
                      users: PathLike | None = None, all_users: bool = False,
                      candidates: PathLike | None = None, progress: bool = False,
                      rerank: str | None = None, with_titles: bool = False,
                      keep_seen: bool = False, reader: dict | None = None,
                      query: str | None = None, queries: PathLike | None = None) -> pd.DataFrame:
    """Recommend for users and write RECS.csv (user_id,item_id,rank,score) + RECS.csv.meta.json.
    with_titles: add the items' title (and author, publisher, category) columns.
    query / queries: a free-text intent for every listed user, or a CSV user_id,query (one per
    user): their lists fuse the model's scores with the intent (longrec.models.intent).

    Training interactions are always history; each history file adds interactions known at
    inference time; every history item is excluded, unless `keep_seen` (repeat consumption:
    items consumed before stay eligible). Users: from `users` (a file with a
    user_id column), or every user seen in training or the histories (`all_users`, the
    default when no users file is given)."""
    from longrec.data.readers import read_id_list, read_interactions
    from longrec.models.base import Recommender

    if k < 1:
        raise LongrecError(f"--k must be a positive integer, got {k}.")
    _check_output_path(output)
    if rerank is not None:
        from longrec.rerank import parse_rerank

        parse_rerank(rerank)  # a bad spec fails before any work
    model = Recommender.load(model_dir)
    hist = [read_interactions(h, **(reader or {})) for h in histories]
    hist_df = pd.concat(hist, ignore_index=True) if hist else None
    user_ids = _target_users(model, hist_df, users, all_users)
    cand = read_id_list(candidates, "item_id") if candidates is not None else None
    intents = _read_queries(query, queries, user_ids)
    if queries is not None and users is None and not all_users:
        user_ids = np.array(list(intents), dtype=object)  # the users with a query
    if intents and rerank is not None:
        raise LongrecError("--query/--queries and --rerank cannot be combined yet; pick one.")
    if intents:
        from longrec.models.intent import recommend_with_queries

        recs = recommend_with_queries(model, users=user_ids, histories=hist_df, queries=intents, k=k,
                                      exclude_seen=not keep_seen, candidates=cand)
    elif rerank is None:
        recs = model.recommend(users=user_ids, histories=hist_df, k=k, exclude_seen=not keep_seen, candidates=cand,
                               progress=progress)
    else:
        from longrec.rerank import recommend_reranked

        recs = recommend_reranked(model, users=user_ids, histories=hist_df, k=k, spec=rerank,
                                  n_candidates=max(100, k), candidates=cand, exclude_seen=not keep_seen,
                                  progress=progress)
    if with_titles:
        from longrec.lm.catalog import add_display_columns

        if model.items_ is None:
            import warnings

            warnings.warn("--with-titles: the model was trained without an item table, so there are no titles "
                          "to add; retrain with --items ITEMS to get them.")
        recs = add_display_columns(recs, model.items_)
    meta = {k2: model.meta_.get(k2) for k2 in ("model", "data_fingerprint", "protocol", "split_seed", "seed", "dataset")}
    meta.update({"model_dir": str(model_dir), "k": k, "histories": [str(h) for h in histories],
                 "candidates": str(candidates) if candidates else None, "n_users": int(len(user_ids)),
                 "rerank": rerank, "keep_seen": keep_seen,
                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    _atomic_write_pair(output, lambda tmp: recs.to_csv(tmp, index=False),
                       f"{output}.meta.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2, default=str)))
    return recs


def _target_users(model, hist_df: pd.DataFrame | None, users: PathLike | None, all_users: bool) -> np.ndarray:
    """The users to recommend for: a --users file, or every user seen in training or the histories."""
    from longrec.data.readers import read_id_list

    if users is not None and all_users:
        raise LongrecError("pass either --users FILE or --all-users, not both.")
    if users is not None:
        return read_id_list(users, "user_id")
    known = pd.Series(model.vocab_.users.ids[np.diff(model.seen_.indptr) > 0], dtype=object)
    extra = pd.Series(hist_df["user_id"].unique() if hist_df is not None else [], dtype=object)
    return pd.unique(pd.concat([known, extra], ignore_index=True))


def recommend_on_ray_to_path(model_dir: PathLike, k: int, output: PathLike, histories: Sequence[PathLike] = (),
                             users: PathLike | None = None, all_users: bool = False,
                             candidates: PathLike | None = None, keep_seen: bool = False,
                             reader: dict | None = None, address: str | None = None,
                             workers: int | None = None, chunk: int | None = None) -> dict:
    """`recommend_to_file` for many users, scored in parallel on Ray Data (`longrec recommend
    --ray`); the rows are the same as the one-process path's, in the same order.

    output: a path ending in .csv gets one RECS file (user_id,item_id,rank,score), as
    `recommend_to_file` writes it; any other path (e.g. recs.parquet, or a directory) gets a
    Parquet dataset, a folder of part-NNNNN.parquet files in user order. Either way
    OUTPUT.meta.json records the provenance. address: an existing Ray cluster (default: a local
    Ray); workers: scoring processes (default: one per CPU); chunk: users per unit of work (a
    multiple of 1024; default 16,384). Returns {"rows", "users", "chunks", "workers", ...}."""
    from longrec.data.readers import read_id_list, read_interactions
    from longrec.models._ray_batch import recommend_on_ray
    from longrec.models.base import Recommender

    if k < 1:
        raise LongrecError(f"--k must be a positive integer, got {k}.")
    out = Path(output)
    as_csv = out.suffix.lower() == ".csv"
    if as_csv:
        _check_output_path(out)
    elif out.is_file():
        raise LongrecError(f"{out} is a file; a Parquet dataset is written to a directory (or pass a .csv path).")
    elif out.is_dir() and any(not p.name.startswith("part-") for p in out.iterdir()):
        raise LongrecError(f"{out} is a directory with other files in it; pass a new or empty directory "
                           "(or a previous recommendation dataset) for the Parquet output.")
    model = Recommender.load(model_dir)
    hist = [read_interactions(h, **(reader or {})) for h in histories]
    hist_df = pd.concat(hist, ignore_index=True) if hist else None
    user_ids = _target_users(model, hist_df, users, all_users)
    cand = read_id_list(candidates, "item_id") if candidates is not None else None
    model_meta = model.meta_
    del model  # the workers load their own copy
    meta_path = Path(f"{out}.meta.json")  # beside the file or folder (a trailing slash is dropped)

    def run(sink) -> dict:
        return recommend_on_ray(model_dir, user_ids, hist_df, k, sink, exclude_seen=not keep_seen,
                                candidates=cand, address=address, workers=workers,
                                **({} if chunk is None else {"chunk": chunk}))

    summary: dict = {}
    if as_csv:
        def write_csv(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                first = [True]

                def sink(part: pd.DataFrame) -> None:
                    part.to_csv(f, header=first[0], index=False)
                    first[0] = False

                summary.update(run(sink))
                if first[0]:
                    f.write(",".join(["user_id", "item_id", "rank", "score"]) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        n_parts = [0]

        def sink(part: pd.DataFrame) -> None:
            pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp_dir / f"part-{n_parts[0]:05d}.parquet")
            n_parts[0] += 1

    def meta_text() -> str:
        import longrec

        meta = {k2: model_meta.get(k2) for k2 in ("model", "data_fingerprint", "protocol", "split_seed", "seed", "dataset")}
        meta.update({"model_dir": str(model_dir), "k": k, "histories": [str(h) for h in histories],
                     "candidates": str(candidates) if candidates else None, "n_users": int(len(user_ids)),
                     "rerank": None, "keep_seen": keep_seen, "ray": {**summary, "address": address},
                     "format": "csv" if as_csv else "parquet-dataset", "longrec": longrec.__version__,
                     "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return json.dumps(meta, indent=2, default=str)

    if as_csv:
        _atomic_write_pair(output, write_csv, meta_path, lambda tmp: Path(tmp).write_text(meta_text()))
    else:
        import shutil

        try:
            summary.update(run(sink))
            if n_parts[0] == 0:  # no rows: one empty part keeps the columns (and the folder readable)
                sink(pd.DataFrame({"user_id": pd.Series([], dtype=object), "item_id": pd.Series([], dtype=object),
                                   "rank": pd.Series([], dtype=np.int64), "score": pd.Series([], dtype=np.float64)}))
            if out.is_dir():
                shutil.rmtree(out)
            os.replace(tmp_dir, out)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(meta_text()))
    return {**summary, "output": str(output), "format": "csv" if as_csv else "parquet-dataset"}


def _atomic_write_pair(path: PathLike, write, side: PathLike, write_side) -> None:
    """Write a file and its sidecar to temporaries, then rename both: on failure neither the
    new file nor a new sidecar remains (no CSV without its provenance)."""
    tmps = []
    try:
        for target, fn in ((Path(path), write), (Path(side), write_side)):
            if target.is_dir():
                raise IsADirectoryError(21, "Is a directory", str(target))
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(fd)
            tmps.append(tmp)
            fn(tmp)
        os.replace(tmps[1], side)
        try:
            os.replace(tmps[0], path)
        except BaseException:
            Path(side).unlink(missing_ok=True)
            raise
    except BaseException:
        for tmp in tmps:
            Path(tmp).unlink(missing_ok=True)
        raise


def _checked_ks(ks: Sequence[int], recs: pd.DataFrame, truth: pd.DataFrame, catalog) -> list[int]:
    """Cut-offs above the catalogue size are clamped to it (a list cannot be longer; a huge k
    would only allocate memory), with a warning; a k above the longest list is warned about
    (its figures only score the items the lists have)."""
    import warnings

    items = [recs["item_id"], truth["item_id"]] + ([pd.Series(list(catalog), dtype=object)] if catalog is not None else [])
    n_cat = max(int(pd.unique(pd.concat(items, ignore_index=True).astype(str)).size), 1)
    out = sorted({min(int(k), n_cat) for k in ks})
    if max(ks) > n_cat:
        warnings.warn(f"--k {max(ks)} is above the catalogue size ({n_cat:,} items in the recommendations, truth "
                      f"and catalog): cut-offs above it are clamped to {n_cat:,}.", stacklevel=3)
    longest = int(recs.groupby("user_id").size().max()) if len(recs) else 0
    over = [k for k in out if k > longest]
    if over and len(recs):
        warnings.warn(f"--k {','.join(map(str, over))} exceeds the longest recommendation list ({longest} items): "
                      f"@{over[0]} scores only those {longest} items (Recall/NDCG/Hit/MRR equal @{longest}). "
                      f"Recommend with --k {max(over)} for a meaningful @{max(over)}.", stacklevel=3)
    return out


def _check_output_path(path: PathLike) -> None:
    """Fail before any work when an output file cannot be written there."""
    p = Path(path)
    if p.is_dir():
        raise LongrecError(f"{p} is a directory; pass a file path for the output.")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise LongrecError(f"cannot write {p}: {parent} is a file, not a directory.")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise LongrecError(f"cannot write {p}: permission denied. Choose a path you can write.")


def _read_queries(query: str | None, queries: PathLike | None, user_ids) -> dict:
    """{user_id: text} from --query (every listed user) or --queries (a CSV user_id,query)."""
    if query is not None and queries is not None:
        raise LongrecError("pass either --query TEXT (one intent for every user) or --queries FILE, not both.")
    if query is not None:
        return {u: query for u in user_ids}
    if queries is None:
        return {}
    p = Path(queries)
    if not p.is_file():
        raise DataError(f"--queries {p}: no such file. Pass a CSV with columns user_id,query.")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"--queries {p}: cannot read it as CSV ({e}). Expected columns user_id,query.") from None
    if not {"user_id", "query"} <= set(df.columns):
        raise DataError(f"--queries {p}: needs columns user_id,query; found {list(df.columns)}.")
    dup = df["user_id"][df["user_id"].duplicated()]
    if len(dup):
        raise DataError(f"--queries {p}: one query per user; user {dup.iloc[0]!r} has several.")
    from longrec.data.ids import normalize_ids

    ids = normalize_ids(df["user_id"])
    return dict(zip(ids, df["query"]))


def read_recs(path: PathLike) -> pd.DataFrame:
    p = Path(path)
    dataset = p.is_dir() and any(p.glob("part-*.parquet"))  # `recommend --ray` writes a Parquet dataset
    if not p.is_file() and not dataset:
        raise DataError(f"recommendations file {p} does not exist.")
    try:
        recs = pd.read_parquet(p) if p.suffix == ".parquet" or dataset else pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{p}: cannot read recommendations ({e}). Expected CSV with user_id,item_id,rank,score.") from e
    missing = {"user_id", "item_id"} - set(recs.columns)
    if missing or not ({"rank", "score"} & set(recs.columns)):
        raise DataError(f"{p}: recommendations need columns user_id,item_id and rank or score; "
                        f"found {list(recs.columns)}.")
    return recs


def evaluate_files(recs: PathLike, truth: PathLike, ks: Sequence[int] = (10,), catalog: PathLike | None = None,
                   output: PathLike | None = None, extra_meta: dict | None = None,
                   users: PathLike | None = None, fairness: bool = False, train: PathLike | None = None,
                   reader: dict | None = None) -> dict:
    """Metrics of saved recommendations against held-out truth; writes METRICS.json if asked."""
    from longrec.data.readers import read_id_list, read_interactions
    from longrec.metrics.ranking import evaluate

    if output is not None:
        _check_output_path(output)
    r = read_recs(recs)
    t = read_interactions(truth, **(reader or {}))
    cat = read_id_list(catalog, "item_id") if catalog is not None else None
    ks = _checked_ks(ks, r, t, cat)
    metrics = evaluate(r, t, ks=tuple(ks), catalog=cat)
    side = Path(f"{recs}.meta.json")
    provenance = json.loads(side.read_text()) if side.is_file() else {}
    result = {
        "metrics": {k: (float(v) if not isinstance(v, (int, np.integer)) else int(v)) for k, v in metrics.items()},
        "ks": list(ks),
        "recs": str(recs), "truth": str(truth), "catalog": str(catalog) if catalog else None,
        "truth_fingerprint": Dataset(t).fingerprint(),
        "protocol": provenance.get("protocol"), "split_seed": provenance.get("split_seed"),
        "seed": provenance.get("seed"), "model": provenance.get("model"),
        "train_fingerprint": provenance.get("data_fingerprint"),
        **(extra_meta or {}),
    }
    if fairness:
        result["fairness"] = fairness_report_files(recs, truth, users=users, train=train, k=min(ks))
    elif users is not None:
        raise LongrecError("--users on evaluate is for the fairness report: add --fairness.")
    if output is not None:
        _atomic_write(output, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2, default=str)))
    return result


def fairness_report_files(recs: PathLike, truth: PathLike, users: PathLike | None = None,
                          train: PathLike | None = None, k: int = 10, **kw) -> dict:
    """`longrec.metrics.fairness.fairness_report` from files (what `longrec evaluate --fairness` calls).

    train: training interactions file; if None, the training data is taken from the model
    directory named in ``RECS.csv.meta.json`` (written by `longrec recommend`), if there is one.
    """
    from longrec.data.readers import read_interactions, read_users
    from longrec.metrics.fairness import fairness_report
    from longrec.models.base import Recommender

    r = read_recs(recs)
    t = read_interactions(truth)
    u = read_users(users) if users is not None else None
    tr = read_interactions(train) if train is not None else None
    if tr is None:
        side = Path(f"{recs}.meta.json")
        model_dir = json.loads(side.read_text()).get("model_dir") if side.is_file() else None
        if model_dir and Path(model_dir).is_dir():
            m = Recommender.load(model_dir)
            rows = np.repeat(np.arange(m.seen_.shape[0]), np.diff(m.seen_.indptr))
            tr = pd.DataFrame({"user_id": m.vocab_.users.ids[rows], "item_id": m.vocab_.items.ids[m.seen_.indices]})
    return fairness_report(r, t, u, tr, k, **kw)
