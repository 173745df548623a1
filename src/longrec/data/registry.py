"""Named datasets: where to find them, and the fixed ml-100k evaluation splits.

Lookup order for a name such as "ml-100k":
  1. every folder in $LONGREC_DATA_DIR (os.pathsep-separated; relative paths start at
     the working directory), as <dir>/<name>/;
  2. the cache ($LONGREC_CACHE_DIR or ~/.cache/longrec), as <cache>/<name>/;
  3. a download from GroupLens (MovieLens names only), into the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.data.dataset import Dataset
from longrec.data.download import URLS, cache_dir, download_dataset
from longrec.data.readers import (
    PathLike,
    _bare,
    _pick,
    dataset_files,
    dataset_from_frames,
    read_id_list,
    read_interactions,
    read_items,
    read_users,
)
from longrec.errors import DataError

KNOWN: dict[str, str] = {
    "ml-100k": "MovieLens 100K: 100,000 ratings, 943 users, 1,682 items",
    "ml-1m": "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 rated items",
    "ml-latest-small": "MovieLens latest-small: ~100,000 ratings, 610 users, ~9,700 items",
}
_ALIASES = {"ml100k": "ml-100k", "movielens-100k": "ml-100k", "ml1m": "ml-1m", "movielens-1m": "ml-1m",
            "ml-latest": "ml-latest-small", "movielens-latest-small": "ml-latest-small"}
PROTOCOLS = ("p1", "p2", "p3")
PARTS = ("train", "valid", "test")


def canonical_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def is_known(name: str) -> bool:
    return canonical_name(name) in KNOWN


def known_names() -> list[str]:
    return list(KNOWN)


def data_dirs() -> list[Path]:
    env = os.environ.get("LONGREC_DATA_DIR", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]


def find_dataset(name: str) -> Path | None:
    """The local folder holding dataset `name` ($LONGREC_DATA_DIR, then the cache), or None."""
    wanted = {name, canonical_name(name)}
    for root in [*data_dirs(), cache_dir()]:
        for n in wanted:
            d = root / n
            if dataset_files(d) is not None:
                return d
    return None


def locate(name: str, download: bool = True) -> Path:
    """find_dataset, else download (known MovieLens names), else a DataError."""
    found = find_dataset(name)
    if found is not None:
        return found
    canon = canonical_name(name)
    if download and canon in URLS:
        return download_dataset(canon)
    dirs = ", ".join(str(d) for d in data_dirs()) or "not set"
    raise DataError(f"dataset {name!r} not found in LONGREC_DATA_DIR ({dirs}) or the cache ({cache_dir()}). "
                    f"Pass a path, e.g. load_dataset('/path/to/{name}'), or set LONGREC_DATA_DIR to a folder "
                    f"that contains {name}/ (known names: {', '.join(KNOWN)}).")


def load_registered(name: str, download: bool = True, **kw) -> Dataset:
    """load_dataset for a dataset name; keyword arguments as load_dataset."""
    kw.setdefault("name", canonical_name(name))
    ds = load_dataset(locate(name, download=download), **kw)
    return ds


def load_split(name: str = "ml-100k", protocol: str = "p1", download: bool = True, **kw) -> dict:
    """Train/valid/test Datasets of an evaluation protocol (p1 general top-K, p2 next item,
    p3 cold-start items; p3 adds "cold_items", an id array).

    Reads <dataset>/splits/<protocol>/{train,valid,test}.csv when present (the published
    splits); otherwise computes them with `longrec.data.splits.split_<protocol>`. Every part
    carries the dataset's item and user tables.
    """
    protocol = protocol.lower()
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    d = locate(name, download=download)
    canon = canonical_name(name)
    split_dir = d / "splits" / protocol
    if not all(_pick(split_dir, f"{p}.csv", f"{p}.parquet") for p in PARTS):
        return _computed_split(d, canon, protocol, **kw)
    files = dataset_files(d) or {}
    enc = kw.get("encoding")
    items = read_items(files["item"], encoding=enc) if files.get("item") else None
    users = read_users(files["user"], encoding=enc) if files.get("user") else None
    out: dict = {}
    for part in PARTS:
        inter = read_interactions(_pick(split_dir, f"{part}.csv", f"{part}.parquet"),
                                  duplicates=kw.get("duplicates", "keep-last"))
        out[part] = Dataset(inter, items, users, name=f"{canon}/{protocol}/{part}",
                            meta={"source": str(split_dir), "split": protocol, "part": part})
    cold = _pick(split_dir, "cold_items.csv", "cold_items.parquet")
    if cold is not None:
        out["cold_items"] = read_id_list(cold, "item_id")
    return out


def _computed_split(d: Path, canon: str, protocol: str, **kw) -> dict:
    from longrec.data import splits  # lazy: only needed without published split files

    full = load_dataset(d, name=canon, **kw)
    res = getattr(splits, f"split_{protocol}")(full.interactions)
    out: dict = {}
    for part in PARTS:
        ds = full.with_interactions(pd.DataFrame(res[part]), name=f"{canon}/{protocol}/{part}")
        ds.meta.update(split=protocol, part=part, computed=True)
        out[part] = ds
    if "cold_items" in res:
        out["cold_items"] = np.asarray(res["cold_items"])
    return out


def load_dataset(source: PathLike | pd.DataFrame, *, columns: dict[str, str] | None = None,
                 encoding: str | None = None, duplicates: str = "keep-last",
                 rating_range: tuple[float, float] | None = None, unknown_items: str = "error",
                 name: str | None = None, download: bool = True) -> Dataset:
    """Load a Dataset from a folder, an interactions file, a DataFrame, or a registered name.

    A path is tried first; otherwise a registered name ("ml-100k", "ml-1m",
    "ml-latest-small") is looked up in $LONGREC_DATA_DIR, then the cache, then
    downloaded (see `locate`).
    """
    kw = dict(columns=columns, encoding=encoding, duplicates=duplicates, rating_range=rating_range,
              unknown_items=unknown_items)
    if isinstance(source, pd.DataFrame):
        return dataset_from_frames(source, name=name or "", **kw)
    path = Path(source).expanduser()
    if not path.exists():
        if is_known(str(source)) or find_dataset(str(source)) is not None:
            return load_registered(str(source), download=download, **kw)
        raise DataError(f"{source}: no such file or folder, and not a known dataset name (known: "
                        f"{', '.join(known_names())}). Pass a path to a dataset folder or "
                        "interactions file, or set LONGREC_DATA_DIR to a folder that contains it.")
    if path.is_file():
        n = _bare(path)
        if n in ("u.data", "ratings.dat") or (n == "ratings.csv" and _pick(path.parent, "movies.csv")):
            files = dataset_files(path.parent) or {"inter": path, "item": None, "user": None}
        elif n.endswith(".inter"):
            stem = path.name[: path.name.lower().index(".inter")]
            files = {"inter": path, "item": _pick(path.parent, f"{stem}.item"), "user": _pick(path.parent, f"{stem}.user")}
        else:
            files = {"inter": path, "item": None, "user": None}
        default_name = path.name.split(".")[0]
    else:
        files = dataset_files(path)
        if files is None:
            raise DataError(
                f"{path}: no dataset files found. Expected RecBole atomic files (<name>.inter[.gz] with "
                "optional .item/.user), MovieLens originals (u.data, ratings.dat, or ratings.csv + "
                "movies.csv), or interactions.csv/.parquet with optional items.* and users.*.")
        default_name = path.resolve().name
    ds = dataset_from_frames(files["inter"], files["item"], files["user"], name=name or default_name, **kw)
    ds.meta.setdefault("source", str(path))
    return ds
