"""Item facts an explanation may use: display titles, genres, years; taste attributes."""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd

_CATALOGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class Catalog:
    """Per item index: display title, bare titles (all forms), genres, year."""

    titles: list[str]
    forms: list[list[str]]
    genres: list[list[str]]
    years: np.ndarray            # int, 0 = unknown

    @property
    def all_genres(self) -> list[str]:
        return sorted({g for gs in self.genres for g in gs})


def _col(items: pd.DataFrame, names) -> str | None:
    cols = {str(c).split(":", 1)[0].lower(): c for c in items.columns}
    return next((cols[n] for n in names if n in cols), None)


def build_catalog(item_ids: np.ndarray, items: pd.DataFrame | None) -> Catalog:
    from longrec.lm.text import GENRE_COLUMNS, TITLE_COLUMNS, YEAR_COLUMNS, readable_title, split_list

    n = len(item_ids)
    raw = [str(i) for i in item_ids]
    genres: list[list[str]] = [[] for _ in range(n)]
    years = np.zeros(n, dtype=np.int64)
    if items is not None and "item_id" in items.columns and len(items):
        from longrec.metrics.ranking import _align_ids

        a, b = _align_ids(pd.Series(item_ids), items["item_id"])
        pos = pd.Index(b.to_numpy()).get_indexer(a.to_numpy())   # item index -> row of the table
        ok = pos >= 0
        tcol, ycol, gcol = _col(items, TITLE_COLUMNS), _col(items, YEAR_COLUMNS), _col(items, GENRE_COLUMNS)
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
        if gcol is not None:
            vals = items[gcol].to_numpy()
            for i in np.flatnonzero(ok):
                v = vals[pos[i]]
                genres[i] = split_list(v) if isinstance(v, str) else (list(v) if isinstance(v, (list, tuple)) else [])
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
    return Catalog(titles, forms, genres, years)


def catalog_of(model) -> Catalog:
    """The (cached) catalogue of a fitted model's items."""
    cat = _CATALOGS.get(model)
    if cat is None:
        cat = build_catalog(model.vocab_.items.ids, getattr(model, "items_", None))
        _CATALOGS[model] = cat
    return cat


def era(year: int) -> str:
    return f"{(int(year) // 10) * 10}s" if year else ""


def shared_attributes(cat: Catalog, hist: np.ndarray, item: int, min_share: float = 0.1) -> list[dict]:
    """Attributes of ``item`` that are part of the user's taste: each of its genres held by at
    least ``min_share`` of the history, and its decade if at least ``2 * min_share`` of the
    history is from that decade. ``share`` = fraction of history items with the attribute."""
    out = []
    n = len(hist)
    if n == 0:
        return out
    for g in cat.genres[item]:
        share = sum(g in cat.genres[h] for h in hist) / n
        if share >= min_share:
            out.append({"type": "genre", "value": g, "share": round(share, 4)})
    out.sort(key=lambda a: -a["share"])
    y = cat.years[item]
    if y:
        dec = (cat.years[hist] // 10 == y // 10) & (cat.years[hist] > 0)
        share = float(dec.mean())
        if share >= 2 * min_share:
            out.append({"type": "era", "value": era(y), "share": round(share, 4)})
    return out
