"""Item facts an explanation may use: display titles, genres (or the table's category column),
years, and any other categorical item column (author, publisher, brand, ...); taste attributes."""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

_CATALOGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class Catalog:
    """Per item index: display title, bare titles (all forms), genres, year, and the values of
    other categorical columns (``attributes``: type -> values per item, e.g. "author")."""

    titles: list[str]
    forms: list[list[str]]
    genres: list[list[str]]
    years: np.ndarray            # int, 0 = unknown
    attributes: dict[str, list[list[str]]] = field(default_factory=dict)
    genre_type: str = "genre"    # the type name of `genres` ("genre", or e.g. "class")

    @property
    def all_genres(self) -> list[str]:
        return sorted({g for gs in self.genres for g in gs})

    def small_attribute_values(self, limit: int = 2000) -> list[str]:
        """Values of the other attribute columns with at most ``limit`` distinct values (a
        grounding check names them; a huge list such as every author is left out)."""
        out: set[str] = set()
        for per_item in self.attributes.values():
            vals = {v for vs in per_item for v in vs}
            if len(vals) <= limit:
                out |= vals
        return sorted(out)


def _col(items: pd.DataFrame, names) -> str | None:
    cols = {str(c).split(":", 1)[0].lower(): c for c in items.columns}
    return next((cols[n] for n in names if n in cols), None)


#: Columns of free text (never an attribute an explanation cites).
FREE_TEXT = re.compile(r"(^|_| )(description|summary|overview|plot|text|review|reviews|synopsis|about|content|"
                       r"body|comment|comments|notes?)$", re.I)


def attribute_columns(items: pd.DataFrame, exclude=()) -> list[str]:
    """Categorical item columns an explanation may cite: text columns that are not the title,
    year, an id/url/rating column or free text (a description; or values averaging over 60
    characters), e.g. author, publisher, brand, department."""
    from longrec.lm.text import SKIP_RE, TITLE_COLUMNS, YEAR_COLUMNS, _bare

    skip = {_col(items, TITLE_COLUMNS), _col(items, YEAR_COLUMNS), "item_id", *exclude}
    out = []
    for c in items.columns:
        b = _bare(c)
        if c in skip or SKIP_RE.search(b) or FREE_TEXT.search(b):
            continue
        v = items[c]
        if not (pd.api.types.is_string_dtype(v) or v.dtype == object):
            continue
        sv = v.dropna().astype(str)
        if len(sv) == 0 or sv.str.len().mean() > 60:
            continue
        out.append(c)
    return out


def build_catalog(item_ids: np.ndarray, items: pd.DataFrame | None) -> Catalog:
    from longrec.lm.text import TITLE_COLUMNS, YEAR_COLUMNS, _label, is_list_column, item_lists, parse_list_column
    from longrec.lm.text import readable_title, split_list

    n = len(item_ids)
    raw = [str(i) for i in item_ids]
    genres: list[list[str]] = [[] for _ in range(n)]
    years = np.zeros(n, dtype=np.int64)
    attributes: dict[str, list[list[str]]] = {}
    gtype = "genre"
    if items is not None and "item_id" in items.columns and len(items):
        from longrec.metrics.ranking import _align_ids

        a, b = _align_ids(pd.Series(item_ids), items["item_id"])
        pos = pd.Index(b.to_numpy()).get_indexer(a.to_numpy())   # item index -> row of the table
        ok = pos >= 0
        tcol, ycol = _col(items, TITLE_COLUMNS), _col(items, YEAR_COLUMNS)
        if tcol is not None:
            vals = items[tcol].to_numpy()
            for i in np.flatnonzero(ok):
                v = vals[pos[i]]
                if isinstance(v, str) and v.strip():
                    raw[i] = v.strip()
        if ycol is not None:
            y = pd.to_numeric(items[ycol], errors="coerce").to_numpy()
            yy = np.where(ok, y[np.maximum(pos, 0)], np.nan)
            years = np.where(np.isfinite(yy), yy, 0).astype(np.int64)
        cat_lists, gcol = item_lists(items)   # the one category parser (text, simulator, here)
        if gcol is not None:
            genres = [list(cat_lists[pos[i]]) if ok[i] else [] for i in range(n)]
            label = _label(gcol, items.columns).lower()
            gtype = "genre" if label in ("genres", "genre") else label
        for c in attribute_columns(items, exclude=(gcol,)):
            col_vals = items[c].to_numpy(dtype=object)
            per_row = (parse_list_column(col_vals, c) if is_list_column(c, items.columns)
                       else [split_list(v, spaces=False) if isinstance(v, str) else [] for v in col_vals])
            typ = _label(c, items.columns).lower()
            attributes[typ] = [list(per_row[pos[i]]) if ok[i] else [] for i in range(n)]
    titles, forms = [], []
    for i, t in enumerate(raw):
        m = _YEAR.search(t)
        if m and not years[i]:
            years[i] = int(m.group(1))
        bare = _YEAR.sub("", t).strip()
        nice = readable_title(bare)
        display = f"{nice} ({years[i]})" if years[i] else nice
        titles.append(display)
        forms.append(list(dict.fromkeys([display, nice, bare, t])))
    return Catalog(titles, forms, genres, years, attributes, gtype)


def catalog_of(model) -> Catalog:
    """The (cached) catalogue of a fitted model's items."""
    cat = _CATALOGS.get(model)
    if cat is None:
        cat = build_catalog(model.vocab_.items.ids, getattr(model, "items_", None))
        _CATALOGS[model] = cat
    return cat


def era(year: int) -> str:
    return f"{(int(year) // 10) * 10}s" if year else ""


def _key(v: str) -> str:
    return re.sub(r"[\W_]+", "", str(v).casefold())


def shared_attributes(cat: Catalog, hist: np.ndarray, item: int, min_share: float = 0.1) -> list[dict]:
    """Attributes of ``item`` that are part of the user's taste: each of its genres (or values
    of the table's category column, type e.g. "class") and of other categorical columns
    (type "author", "publisher", ...) held by at least ``min_share`` of the history, then its
    decade if at least ``2 * min_share`` of the history is from that decade. ``share`` =
    fraction of history items with the attribute."""
    out = []
    n = len(hist)
    if n == 0:
        return out
    for typ, per_item in [(cat.genre_type, cat.genres), *cat.attributes.items()]:
        found = []
        hist_keys = [{_key(v) for v in per_item[h]} for h in hist]
        for g in per_item[item]:
            k = _key(g)   # "J.R.R. Tolkien" and "J. R. R. Tolkien" are one author
            share = sum(k in hk for hk in hist_keys) / n
            if share >= min_share:
                found.append({"type": typ, "value": g, "share": round(share, 4)})
        found.sort(key=lambda a: -a["share"])
        out += found
    y = cat.years[item]
    if y:
        dec = (cat.years[hist] // 10 == y // 10) & (cat.years[hist] > 0)
        share = float(dec.mean())
        if share >= 2 * min_share:
            out.append({"type": "era", "value": era(y), "share": round(share, 4)})
    return out
