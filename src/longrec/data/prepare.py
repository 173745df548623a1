"""Turn raw files into a prepared dataset folder (`longrec prepare`), and read one back.

A prepared folder holds::

    train.csv valid.csv test.csv   user_id,item_id[,rating][,timestamp][,extra columns]
    items.csv                      item_id + item columns (+ description from reviews)
    users.csv                      user_id + user columns (only with a user table)
    cold_items.csv                 item_id (cold-items split only)
    dataset.toml                   how it was read and made (files + sha256, reader options,
                                   column maps, filters, split, seed, repeat_consumption, version)
    DATA_CARD.md                   counts after each step, rows dropped per reason, density, text coverage

Steps, in this order (each one optional except reading): read -> drop users -> drop unknown items
-> rating filter -> de-duplicate -> k-core -> split. See `PrepareOptions` for each setting
and `prepare_dataset` for the entry point; `PreparedDataset.load(DIR)` reads a folder back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from longrec.data.readers import PathLike, _read_raw
from longrec.data.validate import (
    Source,
    _as_int_if_integral,
    apply_duplicates,
    check_ids,
    require_columns,
    validate_entities,
    validate_interactions,
)
from longrec.errors import ConfigError, DataError

SPLITS = ("random", "loo", "temporal", "cold-items", "basket", "none")
DEDUPE = ("keep-last", "keep-first", "drop", "error", "keep-all")
ID_ORDERS = ("numeric", "text")
MARKER = "longrec prepare"  # dataset.toml's made_by: what makes a folder safe to --overwrite
PARTS = ("train", "valid", "test")


# --------------------------------------------------------------------------- options
@dataclass
class ReaderOptions:
    """How to parse one input file (None: sniff the separator / UTF-8 / the parser's defaults).

    `columns` maps canonical name -> file column (e.g. {"item_id": "ISBN"}); the other
    direction (file column -> canonical name) is accepted as well.
    """

    sep: str | None = None
    encoding: str | None = None
    escapechar: str | None = None
    quotechar: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


@dataclass
class PrepareOptions:
    """Filters and split of `prepare_dataset` (the CLI flags of `longrec prepare`)."""

    min_rating: float | None = None          # keep rows rated >= min_rating ...
    implicit_value: float | None = None      # ... or rated exactly this (an implicit interaction, e.g. 0)
    drop_unknown_items: bool = False         # keep only interactions whose item is in the item table
    drop_users: tuple = ()                   # user ids removed before anything else (e.g. a truncated user)
    k_core: int = 0                          # iterative: every user and every item keeps >= k rows
    dedupe: str = "keep-last"                # repeated (user, item) pairs: see longrec.data.validate
    keep_repeats: bool = False               # repeat consumption: no de-duplication, consumed items stay eligible
    split: str = "random"                    # random | loo | temporal | cold-items | basket | none
    ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 2026
    id_order: str = "numeric"                # random split: users/items visited as numbers or as text
    group_by: str | None = None              # basket split: the basket (order) column
    order_by: str | None = None              # basket split: the column ordering a user's baskets
    # reviews -> item description
    review_text: str | None = None
    review_rating: str | None = None
    min_review_rating: float | None = None
    helpful: str | None = None
    max_chars: int | None = None

    def check(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}.")
        if self.dedupe not in DEDUPE:
            raise ConfigError(f"unknown --dedupe {self.dedupe!r}; choose one of {', '.join(DEDUPE)}.")
        if self.id_order not in ID_ORDERS:
            raise ConfigError(f"unknown --id-order {self.id_order!r}; choose numeric or text.")
        if self.k_core < 0:
            raise ConfigError(f"--k-core must be 0 (off) or a positive integer, got {self.k_core}.")
        if self.split == "basket" and not self.group_by:
            raise ConfigError("--split basket needs --group-by COLUMN (the order/basket id column, e.g. order_id).")
        if self.group_by and self.split != "basket":
            raise ConfigError("--group-by is for --split basket; leave it out or pass --split basket.")
        if self.implicit_value is not None and self.min_rating is None:
            raise ConfigError("--implicit-value only makes sense with --min-rating (keep implicit rows "
                              "rated IMPLICIT_VALUE or explicit rows rated >= MIN_RATING).")
        r = [float(x) for x in self.ratios]
        if any(x < 0 for x in r) or abs(sum(r) - 1) > 1e-9 or not 2 <= len(r) <= 3:
            raise ConfigError(f"--ratios {','.join(map(str, self.ratios))} must be 2 or 3 non-negative "
                              "numbers that sum to 1, e.g. 0.8,0.1,0.1.")
        if self.max_chars is not None and self.max_chars < 1:
            raise ConfigError(f"--max-chars must be a positive integer, got {self.max_chars}.")


def parse_columns(text: str | None) -> dict[str, str]:
    """'user_id=User-ID,item_id=ISBN' -> {'user_id': 'User-ID', 'item_id': 'ISBN'} (canonical -> file)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, eq, col = part.partition("=")
        if not eq or not name.strip() or not col.strip():
            raise ConfigError(f"--columns entries look like NAME=FILE_COLUMN (e.g. item_id=ISBN); got {part!r} "
                              f"in {text!r}.")
        out[name.strip()] = col.strip()
    return out


def _file_to_canon(columns: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in columns.items()}


# --------------------------------------------------------------------------- data card
@dataclass
class Step:
    name: str
    rows: int
    users: int
    items: int
    dropped: int = 0
    reason: str = ""


@dataclass
class DataCard:
    name: str
    steps: list[Step] = field(default_factory=list)
    parts: dict[str, dict] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, df: pd.DataFrame | None, before: int | None = None, reason: str = "") -> None:
        if df is None:
            return
        rows = len(df)
        self.steps.append(Step(name, rows, int(df["user_id"].nunique()) if "user_id" in df else 0,
                               int(df["item_id"].nunique()), 0 if before is None else before - rows, reason))

    def to_markdown(self) -> str:
        lines = [f"# Data card: {self.name}", "", "## Steps", "",
                 "| step | rows | users | items | rows dropped | reason |", "|---|---:|---:|---:|---:|---|"]
        for s in self.steps:
            lines.append(f"| {s.name} | {s.rows:,} | {s.users:,} | {s.items:,} | {s.dropped:,} | {s.reason} |")
        if self.parts:
            lines += ["", "## Split", "", "| part | rows | users | items |", "|---|---:|---:|---:|"]
            for p, c in self.parts.items():
                lines.append(f"| {p} | {c['rows']:,} | {c['users']:,} | {c['items']:,} |")
        lines += ["", "## Summary", "", "| | |", "|---|---|"]
        for k, v in self.summary.items():
            lines.append(f"| {k} | {_fmt(v)} |")
        return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.5g}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


# --------------------------------------------------------------------------- reading
def _sha256(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _raw(path: PathLike, role: str, opt: ReaderOptions) -> tuple[pd.DataFrame, Source]:
    """Read a file keeping every column; mapped columns renamed to their canonical names."""
    cols = _file_to_canon(opt.columns) if opt.columns else None
    return _read_raw(path, role, cols, opt.sep, opt.encoding, None, opt.escapechar, opt.quotechar)


def _select(df: pd.DataFrame, opt: ReaderOptions, key: str) -> pd.DataFrame:
    """With a mapping that names more than the id, keep only the mapped columns (in mapping order)."""
    names = [c for c in opt.columns if c != key]
    if not names:
        return df
    return df[[key] + [c for c in names if c in df.columns]]


def read_interaction_file(path: PathLike, opt: ReaderOptions, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Interactions with every row kept (no de-duplication yet), plus the `extra` raw columns."""
    df, src = _raw(path, "inter", opt)
    missing = [c for c in extra if c not in df.columns]
    if missing:
        raise DataError(f"{src.label}: no column {missing[0]!r} (columns found: {', '.join(map(str, df.columns))}). "
                        "Check --group-by / --order-by, or map it with --columns.")
    clean = validate_interactions(df, src, duplicates="keep-all")
    for c in extra:
        if c not in clean.columns:
            clean[c] = df[c].to_numpy()
    return clean


def aggregate_reviews(reviews: pd.DataFrame, text: str, *, item: str = "item_id", rating: str | None = None,
                      min_rating: float | None = None, helpful: str | None = None,
                      max_chars: int | None = None, sep: str = " ") -> pd.DataFrame:
    """One `description` per item from its reviews: item_id, description, n_reviews.

    Empty texts are skipped; with `rating` and `min_rating` only reviews rated >= min_rating
    count; with `helpful` the most helpful reviews come first (ties keep file order); with
    `max_chars` whole reviews are added while they fit (the first one is cut if it alone is
    longer). Items are returned in order of first appearance.
    """
    for c in (item, text, rating, helpful):
        if c is not None and c not in reviews.columns:
            raise DataError(f"the reviews have no column {c!r} (columns found: "
                            f"{', '.join(map(str, reviews.columns))}). Check --review-text / --review-rating / --helpful.")
    df = reviews[[c for c in dict.fromkeys((item, text, rating, helpful)) if c is not None]].copy()
    df["_pos"] = np.arange(len(df))
    df["_text"] = df[text].fillna("").astype(str).str.split().str.join(" ")  # one line per review
    df = df[df["_text"] != ""]
    if rating is not None and min_rating is not None:
        r = pd.to_numeric(df[rating], errors="coerce")
        df = df[r >= min_rating]
    order = ["_item_pos"]
    first = df.groupby(item, sort=False)["_pos"].transform("min")
    df["_item_pos"] = first
    if helpful is not None:
        df["_help"] = -pd.to_numeric(df[helpful], errors="coerce").fillna(0)
        order.append("_help")
    df = df.sort_values(order + ["_pos"], kind="stable")
    rows = []
    for iid, texts in df.groupby(item, sort=False)["_text"]:
        out, n = "", 0
        for t in texts:
            cand = t if not out else out + sep + t
            if max_chars is not None and len(cand) > max_chars:
                if not out:
                    out, n = t[:max_chars], 1
                break
            out, n = cand, n + 1
        rows.append((iid, out, n))
    res = pd.DataFrame(rows, columns=["item_id", "description", "n_reviews"])
    res["item_id"] = check_ids(res, "item_id", Source("the reviews")).to_numpy()
    return res


# --------------------------------------------------------------------------- filters
def _rating_filter(df: pd.DataFrame, opt: PrepareOptions) -> pd.DataFrame:
    if "rating" not in df.columns:
        raise DataError("--min-rating needs a rating column, but the interactions have none. Map it with "
                        "--columns rating=YOUR_COLUMN, or leave out --min-rating for implicit data.")
    keep = df["rating"] >= opt.min_rating
    if opt.implicit_value is not None:
        keep |= df["rating"] == opt.implicit_value
    return df.loc[keep.to_numpy()].reset_index(drop=True)


def _k_core(df: pd.DataFrame, k: int) -> tuple[pd.DataFrame, int]:
    """Each round drops users with < k rows, then items with < k rows; stops after a round that
    dropped nothing (rounds counts that last one too). The result is the unique k-core."""
    out, rounds = df, 0
    while True:
        n = len(out)
        out = out.loc[(out.groupby("user_id", sort=False)["user_id"].transform("size") >= k).to_numpy()]
        out = out.loc[(out.groupby("item_id", sort=False)["item_id"].transform("size") >= k).to_numpy()]
        rounds += 1
        if len(out) == n:
            return out.reset_index(drop=True), rounds


# --------------------------------------------------------------------------- splits
def _text_key(s: pd.Series) -> pd.Series:
    return s.astype(str)


def split_random(df: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 2026,
                 id_order: str = "numeric") -> dict[str, pd.DataFrame]:
    """Per-user random split with RecBole's arithmetic (`longrec.data.splits.split_per_user_random`).

    id_order="numeric" visits users as longrec orders ids (integers numerically; this reproduces
    the ml-100k P1 split); "text" sorts user and item ids as strings (the Book-Crossing B1 rule:
    users in ascending order of the User-ID string, each user's rows sorted by ISBN).
    """
    from longrec.data import splits

    if id_order == "numeric":
        return splits.split_per_user_random(df, ratios, seed)
    key = pd.DataFrame({"u": _text_key(df["user_id"]), "i": _text_key(df["item_id"])})
    by = ["u"] + (["t"] if "timestamp" in df.columns else []) + ["i"]
    if "timestamp" in df.columns:
        key["t"] = df["timestamp"].to_numpy()
    order = key.sort_values(by, kind="stable").index.to_numpy()
    d = df.iloc[order].reset_index(drop=True)
    # group boundaries must follow the text order: label on a frame whose user_id is that text
    lab = splits._per_user_random_labels(d.assign(user_id=key["u"].to_numpy()[order]),
                                         [float(x) for x in ratios], seed)
    names = PARTS[: len(ratios)]
    return {n: d[lab == j].reset_index(drop=True) for j, n in enumerate(names)}


def split_basket(df: pd.DataFrame, group_by: str, order_by: str | None = None) -> dict[str, pd.DataFrame]:
    """Per user: the last basket is test, the one before valid, every row of earlier baskets train.

    Baskets are ordered by `order_by` (else by timestamp, else by first appearance in the file).
    Train keeps repeat rows; valid and test keep each (user, item) once (a basket is a set).
    Users with one basket only have a test basket; with two, valid + test.
    """
    d = df.reset_index(drop=True).copy()
    d["_pos"] = np.arange(len(d))
    if order_by is not None:
        if order_by not in d.columns:
            raise DataError(f"--order-by {order_by!r}: no such column (columns: {', '.join(map(str, d.columns))}).")
        key = pd.to_numeric(d[order_by], errors="coerce")
        if key.isna().any():
            raise DataError(f"--order-by column {order_by!r} must be numeric on every row "
                            f"({int(key.isna().sum())} rows are not).")
        d["_ord"] = key.to_numpy()
    elif "timestamp" in d.columns:
        d["_ord"] = d["timestamp"].to_numpy()
    else:
        d["_ord"] = d["_pos"]
    baskets = d.groupby(["user_id", group_by], sort=False).agg(_o=("_ord", "min"), _p=("_pos", "min")).reset_index()
    baskets = baskets.sort_values(["user_id", "_o", "_p"], kind="stable")
    rank_from_end = baskets.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    baskets["_part"] = np.select([rank_from_end == 0, rank_from_end == 1], [2, 1], 0)
    d = d.merge(baskets[["user_id", group_by, "_part"]], on=["user_id", group_by], how="left")
    d = d.sort_values(["user_id", "_ord", "_pos"], kind="stable")
    out = {}
    for j, name in enumerate(PARTS):
        part = d[d["_part"].to_numpy() == j].drop(columns=["_pos", "_ord", "_part"])
        if j > 0:
            part = part.drop_duplicates(["user_id", "item_id"], keep="first")
        out[name] = part.reset_index(drop=True)
    return out


def make_split(df: pd.DataFrame, opt: PrepareOptions) -> dict[str, Any]:
    from longrec.data import splits

    ratios = tuple(float(x) for x in opt.ratios)
    if opt.split == "random":
        return split_random(df, ratios, opt.seed, opt.id_order)
    if opt.split == "loo":
        return splits.split_p2(df)
    if opt.split == "temporal":
        return splits.split_temporal(df, ratios)
    if opt.split == "cold-items":
        return splits.split_p3(df, seed=opt.seed)
    if opt.split == "basket":
        return split_basket(df, opt.group_by, opt.order_by)
    return {"train": df.reset_index(drop=True)}


# --------------------------------------------------------------------------- main entry
@dataclass
class PrepareResult:
    out: Path
    card: DataCard
    meta: dict


def _is_prepared(d: Path) -> bool:
    f = d / "dataset.toml"
    if not f.is_file():
        return False
    try:
        return tomllib.loads(f.read_text(encoding="utf-8")).get("made_by") == MARKER
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return False


def check_out(out: PathLike, overwrite: bool) -> Path:
    """Refuse a non-empty `out` unless it is a previous prepare output and overwrite is set."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; pass a folder path (it is created).")
    if out.is_dir() and any(out.iterdir()):
        if not _is_prepared(out):
            raise DataError(f"--out {out} is not empty and was not made by `longrec prepare`; nothing was "
                            "written. Pass a new or empty folder (prepare never replaces other data).")
        if not overwrite:
            raise DataError(f"--out {out} already holds a prepared dataset; nothing was written. Pass "
                            "--overwrite to replace it, or choose another folder.")
    return out


def prepare_dataset(interactions: PathLike | None, out: PathLike, *, items: PathLike | None = None,
                    users: PathLike | None = None, reviews: PathLike | None = None,
                    reader: ReaderOptions | None = None, item_reader: ReaderOptions | None = None,
                    user_reader: ReaderOptions | None = None, options: PrepareOptions | None = None,
                    overwrite: bool = False, name: str | None = None) -> PrepareResult:
    """Read, filter, split and write a prepared dataset folder; returns its data card.

    `reader` parses the interactions (and the reviews), `item_reader` / `user_reader` the item
    and user tables (their reader options default to `reader`'s, their column maps do not).
    Without `interactions`, only `reviews` is read and the folder holds items.csv (an item
    table with review descriptions) and no split. The folder is written to a temporary
    sibling and renamed into place, so a failure leaves nothing half-written.
    """
    from longrec._version import __version__

    opt = options or PrepareOptions()
    opt.check()
    reader = reader or ReaderOptions()

    def inherit(r: ReaderOptions | None) -> ReaderOptions:
        r = r or ReaderOptions()
        return ReaderOptions(r.sep if r.sep is not None else reader.sep,
                             r.encoding if r.encoding is not None else reader.encoding,
                             r.escapechar if r.escapechar is not None else reader.escapechar,
                             r.quotechar if r.quotechar is not None else reader.quotechar, dict(r.columns))

    item_reader, user_reader = inherit(item_reader), inherit(user_reader)
    if interactions is None and reviews is None:
        raise ConfigError("pass --interactions FILE (and optionally --items / --users / --reviews), or "
                          "--reviews FILE alone to build an item table from reviews.")
    if reviews is not None and not opt.review_text:
        raise ConfigError("--reviews needs --review-text COLUMN (the column holding the review text).")
    if opt.drop_unknown_items and items is None:
        raise ConfigError("--drop-unknown-items needs an item table: pass --items FILE.")
    out = check_out(out, overwrite)
    card = DataCard(name or out.name)
    files: dict[str, dict] = {}

    def record(role: str, path, r: ReaderOptions) -> None:
        files[role] = {"path": str(Path(path).resolve()), "sha256": _sha256(path), **r.to_dict()}

    # ---- item / user tables
    item_df = user_df = None
    if items is not None:
        record("items", items, item_reader)
        raw, src = _raw(items, "item", item_reader)
        item_df = validate_entities(_select(raw, item_reader, "item_id"), "item_id", src, "item")
    if users is not None:
        record("users", users, user_reader)
        raw, src = _raw(users, "user", user_reader)
        user_df = validate_entities(_select(raw, user_reader, "user_id"), "user_id", src, "user")

    # ---- reviews -> description
    desc = None
    if reviews is not None:
        rr = ReaderOptions(reader.sep, reader.encoding, reader.escapechar, reader.quotechar,
                           {k: v for k, v in item_reader.columns.items()})
        record("reviews", reviews, rr)
        raw, src = _raw(reviews, "item", rr)
        require_columns(raw, ("item_id",), src, what="reviews")
        desc = aggregate_reviews(raw, opt.review_text, rating=opt.review_rating, min_rating=opt.min_review_rating,
                                 helpful=opt.helpful, max_chars=opt.max_chars)
        if item_df is None:  # the item table comes from the reviews: first value of each mapped column
            keep = [c for c in item_reader.columns if c != "item_id" and c in raw.columns]
            base = raw[["item_id", *keep]].copy()
            base["item_id"] = check_ids(base, "item_id", src).to_numpy()
            item_df = base.drop_duplicates("item_id", keep="first").reset_index(drop=True)
        item_df = item_df.merge(desc, on="item_id", how="left")
        item_df["description"] = item_df["description"].fillna("")
        item_df["n_reviews"] = item_df["n_reviews"].fillna(0).astype("int64")

    # ---- interactions and filters
    parts: dict[str, Any] = {}
    inter = None
    if interactions is not None:
        record("interactions", interactions, reader)
        extra = tuple(c for c in dict.fromkeys((opt.group_by, opt.order_by)) if c)
        inter = read_interaction_file(interactions, reader, extra)
        card.add("read", inter)
        if opt.drop_users:
            n = len(inter)
            wanted = {str(u) for u in opt.drop_users}
            inter = inter.loc[~inter["user_id"].astype(str).isin(wanted).to_numpy()].reset_index(drop=True)
            card.add("drop users", inter, n, f"user listed in --drop-users ({', '.join(sorted(wanted))})")
        if opt.drop_unknown_items:
            n = len(inter)
            inter = inter.loc[inter["item_id"].isin(item_df["item_id"]).to_numpy()].reset_index(drop=True)
            card.add("drop unknown items", inter, n, "item not in the item table")
        if opt.min_rating is not None:
            n = len(inter)
            inter = _rating_filter(inter, opt)
            why = f"rating < {opt.min_rating:g}" + (f" and != {opt.implicit_value:g} (implicit)"
                                                      if opt.implicit_value is not None else "")
            card.add("rating filter", inter, n, why)
        policy = "keep-all" if opt.keep_repeats else opt.dedupe
        if policy != "keep-all":
            n = len(inter)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inter = apply_duplicates(inter, policy, Source(str(interactions), 1))
            card.add("dedupe", inter, n, f"repeated (user, item) pair ({policy})")
        if opt.k_core > 1:
            n = len(inter)
            inter, rounds = _k_core(inter, opt.k_core)
            card.add("k-core", inter, n, f"user or item with < {opt.k_core} rows ({rounds} rounds)")
        if len(inter) == 0:
            raise DataError("no interactions are left after the filters (see the steps above: "
                            f"{'; '.join(f'{s.name}: {s.rows:,}' for s in card.steps)}). Loosen the filters.")
        parts = make_split(inter, opt)
        for p in ("train", "valid", "test"):
            if p in parts:
                df = parts[p]
                card.parts[p] = {"rows": len(df), "users": int(df["user_id"].nunique()),
                                 "items": int(df["item_id"].nunique())}
        kept_items = pd.Index(inter["item_id"].unique())
        if item_df is not None:
            item_df = item_df.loc[item_df["item_id"].isin(kept_items).to_numpy()].reset_index(drop=True)
            missing = kept_items[~kept_items.isin(item_df["item_id"])]
            if len(missing):
                item_df = pd.concat([item_df, pd.DataFrame({"item_id": missing})], ignore_index=True)
        else:
            item_df = pd.DataFrame({"item_id": np.sort(kept_items.to_numpy())})
        if user_df is not None:
            user_df = user_df.loc[user_df["user_id"].isin(inter["user_id"].unique())].reset_index(drop=True)

    # ---- summary
    n_users = int(inter["user_id"].nunique()) if inter is not None else 0
    n_items = len(item_df) if item_df is not None else 0
    s: dict[str, Any] = {}
    if inter is not None:
        s.update(users=n_users, items=int(inter["item_id"].nunique()), interactions=len(inter),
                 density=len(inter) / max(1, n_users * int(inter["item_id"].nunique())))
        if "rating" in inter.columns and opt.implicit_value is not None:
            s["implicit share"] = float((inter["rating"] == opt.implicit_value).mean())
    s["items in items.csv"] = n_items
    if item_df is not None:
        text_cols = [c for c in item_df.columns if c != "item_id"
                     and (item_df[c].dtype.kind in "OSUT" or str(item_df[c].dtype).startswith("str"))]
        if text_cols:
            has = np.zeros(len(item_df), dtype=bool)
            for c in text_cols:
                has |= item_df[c].fillna("").astype(str).str.strip().ne("").to_numpy()
            s["text coverage of items"] = f"{has.mean():.1%} ({int(has.sum()):,} of {len(item_df):,}; columns: {', '.join(text_cols)})"
        if "description" in item_df.columns:
            d = item_df["description"].astype(str)
            s["items with a review description"] = int((d != "").sum())
            s["mean description chars"] = float(d[d != ""].str.len().mean()) if (d != "").any() else 0.0
    s["repeat consumption"] = bool(opt.keep_repeats)
    card.summary = s

    # ---- dataset.toml
    made = {k: v for k, v in asdict(opt).items() if v not in (None, (), [])}
    made["ratios"] = [float(x) for x in opt.ratios]
    if "drop_users" in made:
        made["drop_users"] = [str(u) for u in opt.drop_users]
    meta = {"made_by": MARKER, "longrec_version": __version__, "name": card.name,
            "created_at": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "repeat_consumption": bool(opt.keep_repeats), "split": opt.split, "seed": int(opt.seed),
            "files": files, "prepare": made,
            "counts": {k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            "parts": card.parts}
    _write(out, parts, item_df, user_df, meta, card)
    return PrepareResult(out, card, meta)


def _write(out: Path, parts: dict, item_df, user_df, meta: dict, card: DataCard) -> None:
    import tomli_w

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for p in PARTS:
            if p in parts:
                df = parts[p]
                for c in ("rating", "timestamp"):
                    if c in df.columns and df[c].dtype.kind == "f" and len(df):
                        df = df.assign(**{c: _as_int_if_integral(df[c])})
                df.to_csv(tmp / f"{p}.csv", index=False)
        if "cold_items" in parts:
            pd.DataFrame({"item_id": np.asarray(parts["cold_items"])}).to_csv(tmp / "cold_items.csv", index=False)
        if item_df is not None:
            item_df.to_csv(tmp / "items.csv", index=False)
        if user_df is not None:
            user_df.to_csv(tmp / "users.csv", index=False)
        (tmp / "dataset.toml").write_text(tomli_w.dumps(_tomlable(meta)), encoding="utf-8")
        (tmp / "DATA_CARD.md").write_text(card.to_markdown(), encoding="utf-8")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: Path, out: Path) -> None:
    """Put the finished folder `tmp` at `out` (a sibling path), replacing an older `out` only once
    the new one is complete: a reader never sees a half-written dataset folder."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _tomlable(v):
    if isinstance(v, dict):
        return {str(k): _tomlable(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_tomlable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------- reading back
@dataclass
class PreparedDataset:
    """A prepared dataset folder (`longrec prepare` output, or any folder with train.csv)."""

    root: Path
    meta: dict

    @classmethod
    def load(cls, directory: PathLike) -> PreparedDataset:
        d = Path(directory).expanduser()
        if not d.is_dir():
            raise DataError(f"--data {d}: no such folder. Pass a folder made by `longrec prepare` "
                            "(train.csv, valid.csv, test.csv, items.csv, dataset.toml).")
        if not (d / "train.csv").is_file():
            raise DataError(f"--data {d}: the folder has no train.csv. Pass a folder made by `longrec prepare`, "
                            "or give the files with --train/--valid/--items.")
        meta = {}
        if (d / "dataset.toml").is_file():
            try:
                meta = tomllib.loads((d / "dataset.toml").read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise DataError(f"{d / 'dataset.toml'}: not valid TOML ({e}). Re-run `longrec prepare`.") from None
        return cls(d, meta)

    def path(self, part: str) -> Path | None:
        p = self.root / f"{part}.csv"
        return p if p.is_file() else None

    def require(self, part: str) -> Path:
        p = self.path(part)
        if p is None:
            raise DataError(f"--data {self.root}: the folder has no {part}.csv (split: "
                            f"{self.meta.get('split', 'unknown')}). Pass the file explicitly instead.")
        return p

    @property
    def repeat_consumption(self) -> bool:
        return bool(self.meta.get("repeat_consumption", False))

    @property
    def duplicates(self) -> str:
        return "keep-all" if self.repeat_consumption else "keep-last"

    def interactions(self, part: str) -> pd.DataFrame:
        from longrec.data.readers import read_interactions

        return read_interactions(self.require(part), duplicates=self.duplicates)

    def history_paths(self, stage: str = "test") -> list[Path]:
        """What a model may know when recommending: train (valid stage), train + valid (test stage)."""
        if stage not in ("valid", "test"):
            raise ConfigError(f"--stage must be valid or test, got {stage!r}.")
        return [self.require("train")] + ([self.require("valid")] if stage == "test" else [])

    def truth_path(self, stage: str = "test") -> Path:
        return self.require("test" if stage == "test" else "valid")


# --------------------------------------------------------------------------- CLI helpers
def reader_kwargs(sep: str | None = None, encoding: str | None = None, columns: str | dict | None = None) -> dict:
    """Reader options from CLI flags (--sep --encoding --columns NAME=COL,...) as read_* keyword
    arguments; {} when none is given. `columns` is file column -> canonical name."""
    cols = parse_columns(columns) if isinstance(columns, str) else dict(columns or {})
    kw: dict = {}
    if sep:
        kw["sep"] = "\t" if sep in ("\\t", "tab", "TAB") else sep
    if encoding:
        kw["encoding"] = encoding
    if cols:
        kw["columns"] = _file_to_canon(cols)
    return kw


def data_paths(directory: PathLike, command: str, stage: str = "test") -> dict[str, Any]:
    """The files a command takes from a prepared folder (`--data DIR`).

    train:     train=train.csv, valid=valid.csv, items=items.csv, users=users.csv (those present)
    recommend: histories=train (+ valid at stage test), users=the users of the stage's part
    evaluate:  truth=test.csv (valid.csv at stage valid), catalog=items.csv
    """
    ds = PreparedDataset.load(directory)
    if command == "train":
        return {"train": ds.require("train"), "valid": ds.path("valid"), "items": ds.path("items"),
                "users": ds.path("users")}
    if command == "recommend":
        return {"histories": ds.history_paths(stage), "users": ds.truth_path(stage),
                "repeat_consumption": ds.repeat_consumption}
    if command == "evaluate":
        return {"truth": ds.truth_path(stage), "catalog": ds.path("items")}
    raise ValueError(command)
