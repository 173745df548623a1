"""Plain-text descriptions of items and users, to embed or to put in prompts.

Everything here is a pure function of a row (a pandas Series, a dict, or any mapping).

>>> item_text({"item_id": 1, "movie_title": "Toy Story", "release_year": 1995,
...            "class": "Animation Children's Comedy"})
"Toy Story (1995). Genres: Animation, Children's, Comedy."
>>> item_text({"item_id": "Toy Story (1995)", "movie_title": "Toy Story", "release_year": 1995.0,
...            "genre": "Animation Children's Comedy"})
"Toy Story (1995). Genres: Animation, Children's, Comedy."
>>> item_text({"movie_title": "Birdcage, The", "release_year": 1996, "class": "Comedy"})
'The Birdcage (1996). Genres: Comedy.'
>>> item_text({"title": "Merino sweater", "brand": "Acme", "description": "Warm and soft."})
'Merino sweater. Brand: Acme. Description: Warm and soft.'
>>> item_text({"movie_title": "Heat", "release_year": 1995}, template="{movie_title} [{release_year}]")
'Heat [1995]'
>>> user_text(history_titles=["Alien (1979)", "Heat (1995)"], statement="I like thrillers.")
'I like thrillers. Recently watched: Heat (1995); Alien (1979).'
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from typing import Any, Iterable

#: Columns that hold the item's name, most specific first.
TITLE_COLUMNS = ("title", "movie_title", "book_title", "product_title", "product_name", "name",
                 "item_name", "track_name", "song", "headline")
#: Columns that hold a year.
YEAR_COLUMNS = ("release_year", "year", "year_of_publication", "publication_year")
#: Columns that hold a list of categories ("Animation Children's Comedy", "a|b", "a, b").
GENRE_COLUMNS = ("class", "genre", "genres", "categories", "category", "tags", "tag", "keywords",
                 "topics", "classes")
#: Label overrides for known columns; others get their name in Title Case.
LABELS = {"class": "Genres", "genre": "Genres", "genres": "Genres", "categories": "Categories",
          "category": "Category", "tags": "Tags", "tag": "Tags", "keywords": "Keywords",
          "topics": "Topics", "classes": "Genres", "book_author": "Author", "author": "Author",
          "artist": "Artist", "publisher": "Publisher", "brand": "Brand"}
#: Columns never put into item text (ids, urls, images, ratings).
SKIP_RE = re.compile(r"(^|_)(id|ids|url|urls|uri|image|img|images|isbn|sku|rating|ratings|"
                     r"timestamp|count|price_range)$|^image_url|^img_", re.I)
_GENRE_PLACEHOLDERS = {"unknown", "(no genres listed)", "none", "nan", ""}
_ARTICLE_RE = re.compile(r"^(?P<body>.+?), (?P<art>The|A|An|Les|Le|La|L'|Il|Die|Der|Das|El|Los|Las)"
                         r"(?P<rest>(?: \(.*\))?)$")
_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
MAX_FIELD_CHARS = 600


def _clean(v: Any) -> str | None:
    """A value as trimmed text; None for missing values (None, NaN, NA, empty)."""
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return str(int(v))
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, (list, tuple, set)):
        parts = [p for p in (_clean(x) for x in v) if p]
        return ", ".join(parts) or None
    s = str(v).strip()
    return s or None


def _row_dict(row) -> dict[str, Any]:
    if isinstance(row, Mapping):
        return dict(row)
    if hasattr(row, "to_dict"):
        return row.to_dict()
    if hasattr(row, "_asdict"):
        return row._asdict()
    raise TypeError(f"item_text() needs a mapping or a pandas row, got {type(row).__name__}")


def _bare(col: str) -> str:
    return str(col).split(":", 1)[0].strip()


def _find(d: dict[str, Any], names: Iterable[str]) -> str | None:
    lower = {_bare(k).lower(): k for k in d}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def split_list(value: str) -> list[str]:
    """Split a category list: on | ; or , if present, else on whitespace (RecBole token_seq).

    >>> split_list("Animation Children's Comedy")
    ['Animation', "Children's", 'Comedy']
    >>> split_list("Science Fiction|Drama")
    ['Science Fiction', 'Drama']
    """
    for sep in ("|", ";", ","):
        if sep in value:
            parts = value.split(sep)
            break
    else:
        parts = value.split()
    return [p.strip() for p in parts if p.strip() and p.strip().lower() not in _GENRE_PLACEHOLDERS]


def readable_title(title: str) -> str:
    """Move a trailing article to the front: 'Birdcage, The (1996)' -> 'The Birdcage (1996)'.

    >>> readable_title("Shawshank Redemption, The (1994)")
    'The Shawshank Redemption (1994)'
    """
    m = _ARTICLE_RE.match(title)
    if not m:
        return title
    art = m.group("art")
    sep = "" if art.endswith("'") else " "
    return f"{art}{sep}{m.group('body')}{m.group('rest')}"


def _label(col: str) -> str:
    b = _bare(col)
    return LABELS.get(b.lower()) or b.replace("_", " ").strip().capitalize()


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", "!", "?", "。", "！", "？")) else s + "."


def item_text(row, template: str | None = None, max_chars: int = 2000) -> str:
    """One item's text.

    Default: ``"<Title> (<year>). Genres: a, b, c. <Label>: <value>. ..."`` using every
    text-like column: a title column (or a non-numeric ``item_id`` such as
    ``"Toy Story (1995)"`` when there is none), a year (not repeated when the title already
    ends with it), genre-like columns as a list, then other text columns
    (description, brand, author, ...) with their names as labels. ID, URL, image and
    rating columns are left out. RecBole ``name:type`` headers are understood.

    ``template``: a ``str.format`` string over the row's bare column names, e.g.
    ``"{movie_title} ({release_year}): {genre}"``; missing or empty values become "".
    """
    d = {_bare(k): v for k, v in _row_dict(row).items()}
    if template is not None:
        return _format_template(template, d)[:max_chars]
    used: set[str] = set()
    parts: list[str] = []

    tcol = _find(d, TITLE_COLUMNS)
    title = _clean(d.get(tcol)) if tcol else None
    if tcol:
        used.add(tcol)
    if title is None and "item_id" in d:
        iid = _clean(d.get("item_id"))
        if iid and not re.fullmatch(r"[-+]?\d+", iid):
            title = iid
    used.add("item_id")
    ycol = _find(d, YEAR_COLUMNS)
    year = _clean(d.get(ycol)) if ycol else None
    if ycol:
        used.add(ycol)
    if title:
        title = readable_title(title)
        if year and not _YEAR_IN_TITLE.search(title):
            title = f"{title} ({year})"
        parts.append(_sentence(title))
    elif year:
        parts.append(f"Year: {year}.")

    for col in d:
        if col in used or SKIP_RE.search(col):
            continue
        val = d[col]
        if _bare(col).lower() in GENRE_COLUMNS:
            used.add(col)
            s = _clean(val)
            items = split_list(s) if s else []
            if items:
                parts.append(f"{_label(col)}: {', '.join(items)}.")
            continue
        if isinstance(val, bool) or not isinstance(val, (str, list, tuple)):
            continue  # numbers, dates, booleans: not text
        s = _clean(val)
        if not s:
            continue
        used.add(col)
        s = re.sub(r"\s+", " ", s)[:MAX_FIELD_CHARS]
        parts.append(f"{_label(col)}: {_sentence(s)}")
    return " ".join(parts)[:max_chars]


class _Blank(dict):
    def __missing__(self, key):
        return ""


def _format_template(template: str, d: dict[str, Any]) -> str:
    vals = _Blank({k: (_clean(v) or "") for k, v in d.items()})
    try:
        return string.Formatter().vformat(template, (), vals).strip()
    except (ValueError, IndexError) as e:
        from longrec.errors import ConfigError

        raise ConfigError(f"bad item text template {template!r}: {e}. Use {{column}} fields, "
                          f"e.g. '{{movie_title}} ({{release_year}})'.") from e


def item_texts(items, template: str | None = None) -> list[str]:
    """`item_text` of every row of an item table (a DataFrame), in row order."""
    if items is None:
        raise TypeError("item_texts() needs an item DataFrame, got None")
    cols = [_bare(c) for c in items.columns]
    return [item_text(dict(zip(cols, rec)), template=template)
            for rec in items.itertuples(index=False, name=None)]


def user_text(attributes: Mapping[str, Any] | None = None, history_titles: Iterable[str] | None = None,
              statement: str | None = None, n_recent: int = 10, use_attributes: bool = False) -> str:
    """A user's text: free-text statement, then recent history, then (opt-in) attributes.

    ``history_titles`` is in time order (oldest first, as interactions are stored); the text
    lists the ``n_recent`` most recent first. ``attributes`` (age, gender, ...) are left out
    unless ``use_attributes=True``: demographic data should not leak into prompts or
    embeddings by default. ID columns are never used.

    >>> user_text({"age": 25, "gender": "F"}, ["A", "B"], use_attributes=True)
    'Recently watched: B; A. About me: Age: 25; Gender: F.'
    """
    parts: list[str] = []
    s = _clean(statement) if statement is not None else None
    if s:
        parts.append(_sentence(re.sub(r"\s+", " ", s)))
    if history_titles is not None:
        hist = [t for t in (_clean(h) for h in history_titles) if t]
        recent = hist[::-1][:max(int(n_recent), 0)]
        if recent:
            parts.append("Recently watched: " + "; ".join(readable_title(t) for t in recent) + ".")
    if use_attributes and attributes:
        attrs = [f"{_label(k)}: {v}" for k, v in ((k, _clean(v)) for k, v in dict(attributes).items())
                 if v and not SKIP_RE.search(str(k))]
        if attrs:
            parts.append("About me: " + "; ".join(attrs) + ".")
    return " ".join(parts)
