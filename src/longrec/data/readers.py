"""Readers for interaction, item and user tables, and `load_dataset`.

Formats, chosen by file name, then by content:

* RecBole atomic files (`x.inter`, `x.item`, `x.user`, optionally `.gz`): tab-separated,
  `name:type` header. Columns keep their bare name (`movie_title`, `class`, `age`, ...);
  `token`/`token_seq` columns stay strings (token_seq = space-separated), `float` columns
  become float64, or int64 when every value is a whole number.
* MovieLens originals: 100K `u.data`/`u.item`/`u.user`, 1M `ratings.dat`/`movies.dat`/
  `users.dat` (latin-1), latest-small `ratings.csv`/`movies.csv`. Items get `title` (with
  the year, as in the file) and `genres`: genre names joined by single spaces, the same
  convention as the atomic files' `class`/`genre` columns ("(no genres listed)" -> "").
* Any CSV/TSV (separator sniffed from the header unless `sep=`) or Parquet file, or a
  pandas DataFrame, with `columns={"file column": "canonical name"}`; well-known names
  (userId, movieId, ...) are recognised without a mapping.

Interaction tables come back as user_id, item_id[, rating][, timestamp] with IDs
normalised (see `longrec.data.ids`), rating float64 and timestamp int64 (Unix seconds;
date strings are converted). Repeated (user_id, item_id) pairs keep the last row by
default (`duplicates=`, see `longrec.data.validate`). Text is read as UTF-8 unless
`encoding=` says otherwise (MovieLens originals default to latin-1).
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.data.dataset import Dataset
from longrec.data.validate import (
    Source,
    _as_int_if_integral,
    apply_columns,
    check_ids,
    check_unknown_items,
    require_columns,
    validate_entities,
    validate_interactions,
)
from longrec.errors import DataError

PathLike = str | os.PathLike
INTER = ("user_id", "item_id", "rating", "timestamp")
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
_ROLE_OF_KIND = {"u.data": "inter", "ratings.dat": "inter", "u.item": "item", "movies.dat": "item",
                 "movies.csv": "item", "u.user": "user", "users.dat": "user"}
_ROLE_NAMES = {"inter": "interactions", "item": "items", "user": "users"}
_ATOMIC_HEADER = re.compile(r"^[^\t:]+:(token|token_seq|float|float_seq)(\t[^\t:]+:(token|token_seq|float|float_seq))*$")


# --------------------------------------------------------------------------- low level
def _bare(path: Path) -> str:
    n = path.name.lower()
    return n[:-3] if n.endswith(".gz") else n


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _first_line(path: Path, encoding: str) -> str:
    try:
        with _open_bytes(path) as f:
            raw = f.readline()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the file ({e}). Check that it is a complete, readable "
                        "file (a .gz file must be gzip-compressed).") from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty (or its first line is blank). Pass a file with a "
                        "header line and at least one data row.")
    try:
        return raw.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise _encoding_error(path, encoding, e) from None


def _encoding_error(path: Path, encoding: str, err: UnicodeDecodeError) -> DataError:
    where = ""
    try:
        with _open_bytes(path) as f:
            for n, raw in enumerate(f, 1):
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError as e:
                    where = f", line {n} (byte {raw[e.start:e.start + 1]!r})"
                    break
    except OSError:
        pass
    return DataError(
        f"{path}: the file is not valid {encoding}{where}. Pass the file's real encoding, e.g. "
        "encoding='latin-1' (MovieLens and many older datasets use latin-1), or re-save the file as UTF-8."
    )


def _csv(path: Path, encoding: str, **kw) -> pd.DataFrame:
    """pd.read_csv (C engine) with every failure turned into a DataError."""
    try:
        return pd.read_csv(path, encoding=encoding, engine="c", **kw)
    except UnicodeDecodeError as e:
        raise _encoding_error(path, encoding, e) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty. Pass a file with a header line and data rows.") from None
    except pd.errors.ParserError as e:
        msg = str(e).replace("Error tokenizing data. C error: ", "").strip()
        raise DataError(f"{path}: cannot parse the file ({msg}). Every line must have as many fields as "
                        "the header; check the separator (sep=) and quoting.") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the file ({e}).") from None


def _sniff_sep(line: str) -> str:
    counts = {s: line.count(s) for s in ("\t", ",", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _kind(path: Path, encoding: str) -> str:
    n = _bare(path)
    if n in _ROLE_OF_KIND:  # before the atomic suffixes: "u.item" ends in ".item"
        return n
    if n.endswith((".inter", ".item", ".user")):
        return "atomic"
    if n.endswith((".parquet", ".pq")):
        return "parquet"
    if n.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if n == "ratings.csv" or n.endswith(".csv") or n.endswith((".tsv", ".txt", ".dat")):
        return "delimited"
    return "atomic" if _ATOMIC_HEADER.match(_first_line(path, encoding)) else "delimited"


def _check_path(path: PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file. Check the path (relative paths start at {Path.cwd()}).")
    if p.is_dir():
        raise DataError(f"{p} is a directory; pass a file, or use load_dataset('{p}') to read a dataset folder.")
    return p


# --------------------------------------------------------------------------- formats
def _read_atomic(path: Path, encoding: str) -> pd.DataFrame:
    fields = _first_line(path, encoding).split("\t")
    names, types = [], []
    for f in fields:
        name, _, typ = f.partition(":")
        names.append(name.strip())
        types.append(typ.strip() or "token")
    floats = [n for n, t in zip(names, types) if t == "float" and n not in ("user_id", "item_id")]
    kw = dict(sep="\t", header=0, names=names, quoting=csv.QUOTE_NONE, keep_default_na=False,
              na_values={n: [""] for n in floats}, skip_blank_lines=False)
    try:
        df = _csv(path, encoding, dtype={n: ("float64" if n in floats else str) for n in names}, **kw)
    except ValueError:  # a non-number in a float column: re-read as text so validation can point at it
        return _csv(path, encoding, dtype=str, **kw)
    for n in floats:
        if n not in INTER and not df[n].isna().any():
            df[n] = _as_int_if_integral(df[n])
    return df


def _quoting_kw(escapechar: str | None, quotechar: str | None) -> dict:
    kw = {}
    if escapechar is not None:
        if len(escapechar) != 1:
            raise DataError(f"escapechar must be one character, got {escapechar!r} (e.g. escapechar='\\\\').")
        kw["escapechar"] = escapechar
    if quotechar is not None:
        if len(quotechar) != 1:
            raise DataError(f"quotechar must be one character, got {quotechar!r} (e.g. quotechar=\"'\").")
        kw["quotechar"] = quotechar
    return kw


def _read_delimited(path: Path, encoding: str, sep: str | None, header: bool | None,
                    columns: dict | None, wanted: tuple[str, ...], role: str,
                    quoting: dict | None = None) -> tuple[pd.DataFrame, bool]:
    quoting = quoting or {}
    first = _first_line(path, encoding)
    sep = sep or ("\t" if _bare(path).endswith(".tsv") else _sniff_sep(first))
    fields = next(csv.reader([first], delimiter=sep, **quoting)) if len(sep) == 1 else first.split(sep)
    if header is None:  # a first line of numbers only is data, not a header
        header = not (role == "inter" and all(re.fullmatch(r"-?[0-9.]+", f.strip()) for f in fields))
    if header:
        cols = pd.Index([f.strip() for f in fields])
    else:
        cols = pd.Index(list(INTER[:len(fields)]) + [f"column_{i + 1}" for i in range(4, len(fields))])
    renamed = apply_columns(pd.DataFrame(columns=cols), columns, wanted, Source(str(path)))
    raw = fields if header else list(cols)  # pandas keys dtype by the unstripped header names
    ids = [f for f, r in zip(raw, renamed.columns) if r in ("user_id", "item_id")]
    df = _csv(path, encoding, sep=sep, header=0 if header else None, names=None if header else list(cols),
              dtype={c: str for c in ids}, skip_blank_lines=False, **quoting)
    if header:
        df.columns = cols
    return df.rename(columns=dict(zip(cols, renamed.columns))), bool(header)


def _read_u_item(path: Path, encoding: str) -> pd.DataFrame:
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    df = _csv(path, encoding, sep="|", header=None, names=names, quoting=csv.QUOTE_NONE,
              keep_default_na=False, dtype={n: (str if n in names[:5] else "int8") for n in names})
    flags = df[list(ML100K_GENRES)].to_numpy(dtype=bool)
    genres = np.array(ML100K_GENRES, dtype=object)
    df["genres"] = [" ".join(genres[row]) for row in flags]
    return df[["item_id", "title", "release_date", "imdb_url", "genres"]]


def _read_colon_dat(path: Path, encoding: str, names: list[str], dtype: dict) -> pd.DataFrame:
    # "a::b::c" split on ":" gives a,"",b,"",c; the C engine is ~10x faster than a "::" regex
    return _csv(path, encoding, sep=":", header=None, usecols=list(range(0, 2 * len(names), 2)),
                names=[f"_{i}" for i in range(2 * len(names) - 1)], dtype=str, quoting=csv.QUOTE_NONE,
                keep_default_na=False).set_axis(names, axis=1).astype(dtype)


def _read_movies_dat(path: Path, encoding: str) -> pd.DataFrame:
    try:
        with _open_bytes(path) as f:
            text = f.read().decode(encoding)
    except UnicodeDecodeError as e:
        raise _encoding_error(path, encoding, e) from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split("::")
        if line and len(parts) != 3:
            raise DataError(f"{path}, line {n}: expected 'MovieID::Title::Genres', got {line[:80]!r}. "
                            "Check that this is MovieLens 1M's movies.dat.")
        if line:
            rows.append((parts[0], parts[1], parts[2].replace("|", " ")))
    return pd.DataFrame(rows, columns=["item_id", "title", "genres"])


def _genres_pipe_to_space(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.replace("(no genres listed)", "", regex=False).str.replace("|", " ", regex=False)


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    try:
        return pd.read_json(path, lines=True, dtype=False, encoding=encoding,
                            compression="gzip" if path.name.lower().endswith(".gz") else None)
    except UnicodeDecodeError as e:
        raise _encoding_error(path, encoding, e) from None
    except ValueError as e:
        raise DataError(f"{path}: cannot read the file as JSON lines ({e}). Each line must be one JSON "
                        "object such as {\"user_id\": 1, \"item_id\": 2}.") from None


def _read_raw(source: PathLike | pd.DataFrame, role: str, columns: dict | None, sep: str | None,
              encoding: str | None, header: bool | None = None, escapechar: str | None = None,
              quotechar: str | None = None) -> tuple[pd.DataFrame, Source]:
    """Read any supported input into a frame with canonical column names."""
    quoting = _quoting_kw(escapechar, quotechar)
    wanted = INTER if role == "inter" else (("item_id",) if role == "item" else ("user_id",))
    if isinstance(source, pd.DataFrame):
        src = Source("the DataFrame")
        return apply_columns(source, columns, wanted, src), src
    path = _check_path(source)
    kind = _kind(path, encoding or "utf-8")
    if kind in _ROLE_OF_KIND and _ROLE_OF_KIND[kind] != role:
        raise DataError(f"{path} holds {_ROLE_NAMES[_ROLE_OF_KIND[kind]]}, not {_ROLE_NAMES[role]}; "
                        f"pass it to read_{_ROLE_NAMES[_ROLE_OF_KIND[kind]]} or load_dataset('{path.parent}').")
    latin = encoding or "latin-1"
    src = Source(str(path), 1)
    if kind == "atomic":
        df = _read_atomic(path, encoding or "utf-8")
    elif kind == "parquet":
        src = Source(str(path), None)
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several unrelated types for a bad file
            raise DataError(f"{path}: cannot read the Parquet file ({type(e).__name__}: {e}). "
                            "Check that it is a complete Parquet file.") from None
    elif kind == "jsonl":
        src, df = Source(str(path), 0), _read_jsonl(path, encoding or "utf-8")
    elif kind == "u.data":
        src = Source(str(path), 0)
        df = _csv(path, latin, sep="\t", header=None, names=list(INTER), dtype=str, skip_blank_lines=False)
    elif kind == "u.item":
        src, df = Source(str(path), 0), _read_u_item(path, latin)
    elif kind == "u.user":
        src = Source(str(path), 0)
        df = _csv(path, latin, sep="|", header=None, names=["user_id", "age", "gender", "occupation", "zip_code"],
                  dtype={"user_id": str, "age": "int64", "gender": str, "occupation": str, "zip_code": str})
    elif kind == "ratings.dat":
        src = Source(str(path), 0)
        df = _read_colon_dat(path, latin, list(INTER), {})
    elif kind == "users.dat":
        src = Source(str(path), 0)
        df = _read_colon_dat(path, latin, ["user_id", "gender", "age", "occupation", "zip_code"],
                             {"age": "int64", "occupation": "int64"})
    elif kind == "movies.dat":
        src, df = Source(str(path), 0), _read_movies_dat(path, latin)
    elif kind == "movies.csv":
        df, _ = _read_delimited(path, encoding or "utf-8", sep, True, columns, wanted, role, quoting)
        if "genres" in df.columns:
            df["genres"] = _genres_pipe_to_space(df["genres"])
        return df, src
    else:
        df, had_header = _read_delimited(path, encoding or "utf-8", sep, header, columns, wanted, role, quoting)
        return df, (src if had_header else Source(str(path), 0))
    return apply_columns(df, columns, wanted, src), src


# --------------------------------------------------------------------------- public API
def read_interactions(path: PathLike | pd.DataFrame, columns: dict[str, str] | None = None,
                      sep: str | None = None, *, encoding: str | None = None, header: bool | None = None,
                      duplicates: str = "keep-last",
                      rating_range: tuple[float, float] | None = None,
                      escapechar: str | None = None, quotechar: str | None = None) -> pd.DataFrame:
    """Read and validate interactions -> `user_id, item_id[, rating][, timestamp]`.

    `columns` maps file column -> canonical name; `header=False` for a header-less file
    (columns then read as user_id, item_id, rating, timestamp by position; a first line of
    numbers only is taken as data automatically). `escapechar` / `quotechar` are passed to
    the CSV parser (e.g. escapechar="\\" for fields holding \" as in Book-Crossing).
    Raises DataError on bad input.
    """
    df, src = _read_raw(path, "inter", columns, sep, encoding, header, escapechar, quotechar)
    return validate_interactions(df, src, duplicates=duplicates, rating_range=rating_range)


def read_items(path: PathLike | pd.DataFrame, columns: dict[str, str] | None = None, *,
               sep: str | None = None, encoding: str | None = None, escapechar: str | None = None,
               quotechar: str | None = None) -> pd.DataFrame:
    """Read an item table: item_id (unique) first, every other column kept by name."""
    df, src = _read_raw(path, "item", columns, sep, encoding, None, escapechar, quotechar)
    return validate_entities(df, "item_id", src, "item")


def read_users(path: PathLike | pd.DataFrame, columns: dict[str, str] | None = None, *,
               sep: str | None = None, encoding: str | None = None, escapechar: str | None = None,
               quotechar: str | None = None) -> pd.DataFrame:
    """Read a user table: user_id (unique) first, every other column kept by name."""
    df, src = _read_raw(path, "user", columns, sep, encoding, None, escapechar, quotechar)
    return validate_entities(df, "user_id", src, "user")


def read_id_list(path: PathLike | pd.DataFrame, column: str = "item_id", *, sep: str | None = None,
                 encoding: str | None = None) -> np.ndarray:
    """IDs from one column of a CSV/Parquet file (e.g. candidate items, target users).

    A file with a single column is read whatever that column is called. IDs are
    normalised like everywhere else; repeats are dropped, first occurrence order kept.
    Returns an int64 array or an object array of str.
    """
    role = "user" if column == "user_id" else "item"
    df, src = _read_raw(path, role, None, sep, encoding)
    if column not in df.columns and len(df.columns) == 1:
        df = df.set_axis([column], axis=1)
    require_columns(df, (column,), src, what="id list")
    if len(df) == 0:
        raise DataError(f"{src.label}: the id list is empty. Pass a file with at least one {column}.")
    ids = check_ids(df, column, src).drop_duplicates()
    return ids.to_numpy(dtype=np.int64 if ids.dtype.kind in "iu" else object)


def dataset_from_frames(interactions: pd.DataFrame | PathLike, items: pd.DataFrame | PathLike | None = None,
                        users: pd.DataFrame | PathLike | None = None, columns: dict[str, str] | None = None,
                        unknown_items: str = "error", *, duplicates: str = "keep-last",
                        rating_range: tuple[float, float] | None = None, name: str = "",
                        encoding: str | None = None) -> Dataset:
    """Build a validated Dataset from DataFrames (or paths). `columns` applies to all three
    tables; interactions whose item is missing from `items` raise (unknown_items='error')
    or are dropped with a DataWarning (unknown_items='warn')."""
    inter = read_interactions(interactions, columns, encoding=encoding, duplicates=duplicates,
                              rating_range=rating_range)
    item_df = None if items is None else read_items(items, columns, encoding=encoding)
    user_df = None if users is None else read_users(users, columns, encoding=encoding)
    if item_df is not None:
        label = interactions if not isinstance(interactions, pd.DataFrame) else "the interactions"
        inter = check_unknown_items(inter, item_df, unknown_items, Source(str(label)))
    return Dataset(inter, item_df, user_df, name=name)


def from_dataframe(df: pd.DataFrame, columns: dict[str, str] | None = None, **kw) -> Dataset:
    """A Dataset from a pandas interactions DataFrame (keyword arguments as dataset_from_frames)."""
    return dataset_from_frames(df, columns=columns, **kw)


# --------------------------------------------------------------------------- datasets
def _pick(d: Path, *names: str) -> Path | None:
    for n in names:
        for cand in (d / n, d / f"{n}.gz"):
            if cand.is_file():
                return cand
    return None


def dataset_files(directory: PathLike) -> dict[str, Path | None] | None:
    """The interactions/items/users files of a dataset folder, or None if it holds none.

    Layouts: RecBole atomic (<name>.inter[.gz] + .item/.user), MovieLens 100K (u.data),
    1M (ratings.dat), latest-small (ratings.csv + movies.csv), or generic
    interactions.{csv,tsv,parquet} + items.* + users.*.
    """
    d = Path(directory)
    if not d.is_dir():
        return None
    inters = sorted(p for p in d.iterdir() if p.is_file() and _bare(p).endswith(".inter"))
    if inters:
        preferred = [p for p in inters if _bare(p) == f"{d.name.lower()}.inter"]
        inter = (preferred or inters)[0]
        stem = inter.name[: inter.name.lower().index(".inter")]
        return {"inter": inter, "item": _pick(d, f"{stem}.item"), "user": _pick(d, f"{stem}.user")}
    layouts = [("u.data", "u.item", "u.user"), ("ratings.dat", "movies.dat", "users.dat"),
               ("ratings.csv", "movies.csv", "users.csv")]
    exts = ("csv", "tsv", "parquet")
    layouts.append(tuple(tuple(f"{base}.{e}" for e in exts) for base in ("interactions", "items", "users")))
    for inter_n, item_n, user_n in layouts:
        as_tuple = lambda x: x if isinstance(x, tuple) else (x,)  # noqa: E731
        inter = _pick(d, *as_tuple(inter_n))
        if inter is not None:
            return {"inter": inter, "item": _pick(d, *as_tuple(item_n)), "user": _pick(d, *as_tuple(user_n))}
    return None
