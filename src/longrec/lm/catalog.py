"""Item-table helpers for people reading results: near-duplicate merging (two editions of a
book) and readable columns (titles) next to item ids.

>>> import pandas as pd
>>> items = pd.DataFrame({"item_id": ["a", "b", "c"],
...                       "title": ["The Hobbit", "Hobbit, The", "Dune"],
...                       "author": ["J.R.R. Tolkien", "J. R. R. Tolkien", "Frank Herbert"]})
>>> kept, mapping = dedupe_items(items, popularity={"b": 5, "a": 2})
>>> list(kept["item_id"]), mapping
(['b', 'c'], {'a': 'b'})
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

import pandas as pd

from longrec.lm.text import (
    TITLE_COLUMNS, YEAR_COLUMNS, _bare, _clean, _label, _present, _year, item_lists, readable_title,
)

#: Columns that name who made an item (used for duplicate detection and display).
CREATOR_COLUMNS = ("author", "book_author", "artist", "brand", "creator", "director", "manufacturer")
# bracketed edition notes ("(Penguin Classics)"); a note with a number ("(Book 2)") names a
# volume and is kept
_PAREN = re.compile(r"\s*[\(\[][^\)\]\d]*[\)\]]\s*")
_LEAD_ARTICLE = re.compile(r"^(the|a|an) ")


def _col(columns: Iterable[str], names: Iterable[str]) -> str | None:
    lower = {_bare(c).lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def normalise_text(s, drop_brackets: bool = True) -> str:
    """Case, accents, punctuation, bracketed edition notes and a leading article removed, so
    that "The Hobbit (Paperback)" and "Hobbit, The" agree ("(Book 2)" is kept).

    >>> normalise_text("Hobbit, The (Paperback)"), normalise_text("J. R. R. Tolkien")
    ('hobbit', 'j r r tolkien')
    """
    t = _clean(s)
    if t is None:
        return ""
    t = readable_title(t)
    if drop_brackets:
        t = _PAREN.sub(" ", t)
    t = unicodedata.normalize("NFKD", t)
    t = "".join(ch for ch in t if not unicodedata.combining(ch)).casefold()
    t = re.sub(r"[^\w]+", " ", t).strip()
    return _LEAD_ARTICLE.sub("", t)


def _author_key(s) -> str:
    # "J.R.R. Tolkien" and "J. R. R. Tolkien" -> the same key
    return normalise_text(s).replace(" ", "")


def duplicate_key(items: pd.DataFrame) -> pd.Series | None:
    """A key per row (normalised title + creator); None when the table has no title and
    creator (author, artist, brand, ...) columns. Rows with an empty title get a unique key."""
    tcol, acol = _col(items.columns, TITLE_COLUMNS), _col(items.columns, CREATOR_COLUMNS)
    if tcol is None or acol is None:
        return None
    title = items[tcol].map(normalise_text)
    author = items[acol].map(_author_key)
    key = title + "\x1f" + author
    blank = title == ""
    return key.where(~blank, "\x00row" + pd.Series(range(len(items)), index=items.index).astype(str))


def can_dedupe(items: pd.DataFrame | None) -> bool:
    """Whether the table has the columns duplicate detection needs (a title and an author)."""
    return items is not None and _col(items.columns, TITLE_COLUMNS) is not None and \
        _col(items.columns, CREATOR_COLUMNS) is not None


def dedupe_items(items: pd.DataFrame, popularity: Mapping | pd.Series | None = None
                 ) -> tuple[pd.DataFrame, dict]:
    """Merge near-duplicate items (same normalised title and author, e.g. two editions of a
    book) into one row each.

    The row kept is the most popular id of its group (``popularity``: item id -> count, e.g.
    interactions per item), ties and ids without a count keeping the first row in table order.
    Returns (the table without the other rows, in the original order; {dropped id: kept id}).
    A table without title + author columns is returned unchanged with an empty mapping.
    """
    key = duplicate_key(items)
    if key is None or len(items) == 0:
        return items, {}
    ids = items["item_id"]
    if popularity is not None:
        pop = pd.Series(popularity, dtype="float64") if not isinstance(popularity, pd.Series) else popularity
        pop.index = pop.index.astype(str)
        score = ids.astype(str).map(pop).fillna(0.0).to_numpy()
    else:
        score = [0.0] * len(items)
    order = pd.DataFrame({"key": key.to_numpy(), "score": score, "pos": range(len(items))})
    order = order.sort_values(["key", "score", "pos"], ascending=[True, False, True], kind="stable")
    first = order.drop_duplicates("key", keep="first")
    keep_pos = first.set_index("key")["pos"]
    kept_of_row = order["key"].map(keep_pos)
    id_arr = ids.to_numpy(dtype=object)
    mapping = {id_arr[p]: id_arr[k] for p, k in zip(order["pos"], kept_of_row) if p != k}
    kept = items.iloc[sorted(keep_pos.to_numpy())]
    return kept, mapping


def duplicate_groups(items: pd.DataFrame) -> list[list]:
    """The groups of item ids `dedupe_items` would merge (groups of 2 or more), largest first."""
    key = duplicate_key(items)
    if key is None:
        return []
    g = pd.Series(items["item_id"].to_numpy(dtype=object), index=key.to_numpy()).groupby(level=0, sort=False)
    groups = [list(v) for _, v in g if len(v) > 1]
    return sorted(groups, key=len, reverse=True)


def display_table(items: pd.DataFrame) -> pd.DataFrame:
    """item_id + readable columns: ``title`` (article moved to the front, year appended when
    known and not 0), then the creator (author, artist, brand, ...), publisher and the
    category column as a comma list (``genres``, ``class``, ``tags``) when present."""
    cols = list(items.columns)
    out = pd.DataFrame({"item_id": items["item_id"].to_numpy()})
    tcol, ycol = _col(cols, TITLE_COLUMNS), _col(cols, YEAR_COLUMNS)
    if tcol is not None:
        years = [_year(v) for v in items[ycol]] if ycol is not None else [None] * len(items)
        titles = []
        for t, y in zip(items[tcol], years):
            t = _present(_clean(t))
            if t is None:
                titles.append("")
                continue
            t = readable_title(t)
            titles.append(f"{t} ({y})" if y and not re.search(r"\(\d{4}\)\s*$", t) else t)
        out["title"] = titles
    for c in (_col(cols, CREATOR_COLUMNS), _col(cols, ("publisher",))):
        if c is not None and _bare(c) not in out.columns:
            out[_bare(c)] = [(_present(_clean(v)) or "") for v in items[c]]
    lists, c = item_lists(items)
    if c is not None:   # the category column as a comma list, named by its label ("genres" for ML's class)
        name = _label(c, cols).lower()
        out[name if name not in out.columns else _bare(c)] = [", ".join(v) for v in lists]
    return out


def add_display_columns(recs: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    """``recs`` (user_id,item_id,rank,score,...) with the `display_table` columns of each item
    appended (empty for items missing from ``items``); row order kept."""
    if items is None or "item_id" not in items.columns:
        return recs
    tab = display_table(items.drop_duplicates("item_id", keep="last"))
    extra = [c for c in tab.columns if c != "item_id" and c not in recs.columns]
    if not extra:
        return recs
    pos = pd.Index(tab["item_id"].astype(str)).get_indexer(recs["item_id"].astype(str))
    out = recs.copy()
    for c in extra:
        vals = tab[c].to_numpy(dtype=object)
        out[c] = [vals[p] if p >= 0 else "" for p in pos]
    return out
