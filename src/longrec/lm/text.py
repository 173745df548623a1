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
import numbers
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
#: ``class`` is MovieLens's genre list only in a movie table (one with a ``movie_title``
#: column, the RecBole MovieLens schema); elsewhere (e.g. a clothing class) it is one value.
GENRE_COLUMNS = ("class", "genre", "genres", "categories", "category", "tags", "tag", "keywords",
                 "topics", "classes")
#: List columns whose values may be separated by spaces (RecBole ``token_seq``), when no
#: value of the column uses | ; or ,.
SPACE_LIST_COLUMNS = ("class", "classes", "genre", "genres")
#: Label overrides for known columns; others get their name in Sentence case, a trailing
#: "name" dropped ("Class Name" -> "Class").
LABELS = {"genre": "Genres", "genres": "Genres", "categories": "Categories",
          "category": "Category", "tags": "Tags", "tag": "Tags", "keywords": "Keywords",
          "topics": "Topics", "classes": "Classes", "class": "Class", "book_author": "Author",
          "author": "Author", "artist": "Artist", "publisher": "Publisher", "brand": "Brand"}
#: Columns never put into item text (ids, urls, images, ratings) unless asked for by name.
SKIP_RE = re.compile(r"(^|_)(id|ids|url|urls|uri|image|img|images|isbn|sku|rating|ratings|"
                     r"timestamp|count|price_range)$|^image_url|^img_", re.I)
#: Values that mean "no value" in any column (compared case-insensitively).
MISSING_VALUES = {"unknown", "(no genres listed)", "none", "nan", "null", "n/a", "na", "-", "?", ""}
_GENRE_PLACEHOLDERS = MISSING_VALUES
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


_SEPS = ("|", ";", ",")


def split_list(value, sep: str | None = None, spaces: bool = True) -> list[str]:
    """Split a category list into its values; placeholders ("unknown", ...) are dropped.

    ``sep``: the separator; None = the first of | ; , found in the value, else whitespace
    (RecBole ``token_seq``) when ``spaces`` is true, else the value is one category.
    A list/tuple/set is returned cleaned; None/NaN gives [].

    >>> split_list("Animation Children's Comedy")
    ['Animation', "Children's", 'Comedy']
    >>> split_list("Science Fiction|Drama")
    ['Science Fiction', 'Drama']
    >>> split_list("Fine gauge", spaces=False)
    ['Fine gauge']
    """
    if isinstance(value, (list, tuple, set)) or (hasattr(value, "tolist") and not isinstance(value, str)):
        items = [_clean(x) for x in (value.tolist() if hasattr(value, "tolist") else value)]
        return [x for x in items if x and x.lower() not in MISSING_VALUES]
    value = _clean(value)
    if value is None:
        return []
    if sep is None:
        sep = next((c for c in _SEPS if c in value), None)
    parts = value.split(sep) if sep else (value.split() if spaces else [value])
    return [p.strip() for p in parts if p.strip() and p.strip().lower() not in MISSING_VALUES]


def is_list_column(col: str, columns: Iterable[str] = ()) -> bool:
    """Whether column ``col`` holds a list of categories (genres, tags, ...). ``columns``: the
    other columns of the table (``class`` is a genre list only next to ``movie_title``)."""
    b = _bare(col).lower()
    if b == "class":
        return "movie_title" in {_bare(c).lower() for c in columns}
    return b in GENRE_COLUMNS


def list_separator(values: Iterable, col: str = "genres") -> str | None:
    """The separator one list column uses for all its values: the first of | ; , that any value
    contains; else " " for a genre column (RecBole token_seq); else None (one value per row).
    Deciding per column keeps "Science Fiction" whole in a "Drama|Science Fiction" table.

    >>> list_separator(["Drama", "Science Fiction|Drama"])
    '|'
    >>> list_separator(["Comedy Drama"], "class"), list_separator(["Hats"], "tags")
    (' ', None)
    """
    strs = [v for v in values if isinstance(v, str)]
    for sep in _SEPS:
        if any(sep in v for v in strs):
            return sep
    return " " if _bare(col).lower() in SPACE_LIST_COLUMNS else None


def parse_list_column(values, col: str = "genres") -> list[list[str]]:
    """Every value of one list column as a list of categories, with one separator for the
    whole column (`list_separator`). The single parser of genre/tag/category lists: item text,
    explanations and the simulator all use it.

    >>> parse_list_column(["Science Fiction|Drama", "Science Fiction"])
    [['Science Fiction', 'Drama'], ['Science Fiction']]
    """
    vals = list(values)
    sep = list_separator(vals, col)
    return [split_list(v, sep=sep if sep != " " else None, spaces=sep == " ") if isinstance(v, str)
            else split_list(v) if isinstance(v, (list, tuple, set)) or hasattr(v, "tolist") else []
            for v in vals]


def category_column(columns: Iterable[str]) -> str | None:
    """The table's main category column (genres, a clothing class, tags, ...), or None."""
    cols = list(columns)
    lower = {_bare(c).lower(): c for c in cols}
    for n in ("class", "genre", "genres", "classes", "categories", "category", "tags", "tag",
              "keywords", "topics", "class_name", "class name"):
        if n in lower:
            return lower[n]
    return None


def item_lists(items, item_ids=None, col: str | None = None) -> tuple[list[list[str]], str | None]:
    """(categories of each item, the column used) from the item table's category column
    (`category_column`); aligned with ``item_ids`` when given (items without a row get []).
    A list column is split with `parse_list_column`; any other category column (a clothing
    class) gives one category per item."""
    import pandas as pd

    if items is None or len(items) == 0:
        return ([[] for _ in range(0 if item_ids is None else len(item_ids))], None)
    col = col or category_column(items.columns)
    if col is None:
        return ([[] for _ in range(len(items) if item_ids is None else len(item_ids))], None)
    vals = items[col]
    if item_ids is not None:
        tab = items.drop_duplicates("item_id", keep="last")
        pos = pd.Index(tab["item_id"].astype(str)).get_indexer(pd.Series(list(item_ids), dtype=object).astype(str))
        raw = tab[col].to_numpy(dtype=object)
        vals = [raw[p] if p >= 0 else None for p in pos]
    else:
        vals = list(vals.to_numpy(dtype=object))
    if is_list_column(col, items.columns):
        return parse_list_column(vals, col), col
    return [split_list(v, spaces=False) if v is not None else [] for v in vals], col


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


def _label(col: str, columns: Iterable[str] = ()) -> str:
    b = _bare(col)
    if b.lower() == "class" and is_list_column(b, columns):
        return "Genres"
    if b.lower() in LABELS:
        return LABELS[b.lower()]
    words = re.sub(r"[_\s]+", " ", b).strip()
    short = re.sub(r"\s+name$", "", words, flags=re.I)
    return (short if short else words).capitalize()


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", "!", "?", "。", "！", "？")) else s + "."


def _present(s: str | None) -> str | None:
    return None if s is None or s.strip().lower() in MISSING_VALUES else s


def _year(v: Any) -> str | None:
    """A year as text; None for missing, zero ("year 0 = unknown") or placeholder values."""
    s = _present(_clean(v))
    if s is None or re.fullmatch(r"[-+]?0+(\.0*)?", s):
        return None
    return s


def _resolve_columns(names: Iterable[str], available: Iterable[str]) -> list[str]:
    """User-chosen text columns matched (case-insensitively, RecBole types ignored) to the
    table's columns, in the user's order; an unknown name raises ConfigError."""
    avail = {_bare(c).lower(): _bare(c) for c in available}
    out, bad = [], []
    for n in names:
        key = _bare(str(n)).strip().lower()
        if not key:
            continue
        (out if key in avail else bad).append(avail.get(key, str(n)))
    if bad:
        from longrec.errors import ConfigError

        raise ConfigError(f"text column(s) {', '.join(map(repr, bad))} are not in the item table; its columns "
                          f"are {', '.join(sorted(avail.values()))}. Pass names from that list, e.g. "
                          f"--text-columns title,author.")
    return list(dict.fromkeys(out))


def parse_text_columns(spec) -> list[str] | None:
    """``"title, author"`` or a list -> ["title", "author"]; None/"" -> None (all columns)."""
    if spec is None:
        return None
    parts = spec.split(",") if isinstance(spec, str) else [str(x) for x in spec]
    parts = [p.strip() for p in parts if p.strip()]
    return parts or None


def item_text(row, template: str | None = None, max_chars: int = 2000, columns: Iterable[str] | None = None,
              _seps: Mapping[str, str | None] | None = None) -> str:
    """One item's text.

    Default: ``"<Title> (<year>). Genres: a, b, c. <Label>: <value>. ..."`` using every
    text-like column: a title column (or a non-numeric ``item_id`` such as
    ``"Toy Story (1995)"`` when there is none), a year (not repeated when the title already
    ends with it; 0 = unknown is left out), genre-like columns as a list, then other text
    columns (description, brand, author, ...) labelled by their own names ("Author",
    "Publisher", "Class"; "Genres" only for a genre column). ID, URL, image and rating
    columns are left out, and so are empty, NaN and "unknown" values. RecBole ``name:type``
    headers are understood.

    ``columns``: the columns to use, in this order (e.g. ``["title", "author", "publisher"]``);
    the title leads as a sentence (with the year when a year column is chosen too), every
    other chosen column is ``"<Label>: <value>."`` (numbers included when chosen by name).

    ``template``: a ``str.format`` string over the row's bare column names, e.g.
    ``"{movie_title} ({release_year}): {genre}"``; missing or empty values become "".
    """
    d = {_bare(k): v for k, v in _row_dict(row).items()}
    if template is not None:
        return _format_template(template, d)[:max_chars]
    seps = _seps or {}
    chosen = _resolve_columns(columns, d) if columns is not None else None

    def listed(col) -> str | None:
        sep = seps.get(col, "auto")
        items = (split_list(d[col], spaces=_bare(col).lower() in SPACE_LIST_COLUMNS) if sep == "auto" else
                 split_list(d[col], sep=sep if sep != " " else None, spaces=sep == " "))
        return f"{_label(col, d)}: {', '.join(items)}." if items else None

    used: set[str] = set()
    parts: list[str] = []
    pool = chosen if chosen is not None else list(d)
    tcol = _find({c: None for c in pool}, TITLE_COLUMNS)
    title = _present(_clean(d.get(tcol))) if tcol else None
    if tcol:
        used.add(tcol)
    if title is None and chosen is None and "item_id" in d:
        iid = _clean(d.get("item_id"))
        if iid and not re.fullmatch(r"[-+]?\d+", iid):
            title = iid
    if chosen is None:
        used.add("item_id")
    ycol = _find({c: None for c in pool}, YEAR_COLUMNS)
    year = _year(d.get(ycol)) if ycol else None
    if ycol:
        used.add(ycol)
    head = None
    if title:
        title = readable_title(title)
        if year and not _YEAR_IN_TITLE.search(title):
            title = f"{title} ({year})"
        head = _sentence(title)
    elif year:
        head = f"Year: {year}."

    if chosen is None:
        if head:
            parts.append(head)
        for col in d:
            if col in used or SKIP_RE.search(col):
                continue
            val = d[col]
            if is_list_column(col, d):
                used.add(col)
                s = listed(col)
                if s:
                    parts.append(s)
                continue
            if isinstance(val, bool) or not isinstance(val, (str, list, tuple)):
                continue  # numbers, dates, booleans: not text
            s = _present(_clean(val))
            if not s:
                continue
            used.add(col)
            s = re.sub(r"\s+", " ", s)[:MAX_FIELD_CHARS]
            parts.append(f"{_label(col, d)}: {_sentence(s)}")
        return " ".join(parts)[:max_chars]

    for col in chosen:
        if col in (tcol, ycol):
            if head and col == (tcol or ycol):
                parts.append(head)
            continue
        if is_list_column(col, d):
            s = listed(col)
            if s:
                parts.append(s)
            continue
        val = d[col]
        if isinstance(val, numbers.Number) and not isinstance(val, bool) and val == 0:
            continue
        s = _present(_clean(val))
        if s:
            s = re.sub(r"\s+", " ", s)[:MAX_FIELD_CHARS]
            parts.append(f"{_label(col, d)}: {_sentence(s)}")
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


def item_texts(items, template: str | None = None, columns: Iterable[str] | None = None) -> list[str]:
    """`item_text` of every row of an item table (a DataFrame), in row order. List columns
    (genres, tags, ...) are split with one separator per column (`list_separator`).
    ``columns``: the text columns to use, in order (see `item_text`); unknown names raise
    ConfigError."""
    if items is None:
        raise TypeError("item_texts() needs an item DataFrame, got None")
    cols = [_bare(c) for c in items.columns]
    if columns is not None:
        columns = _resolve_columns(columns, cols)
    seps = {c: list_separator(items.iloc[:, j].to_numpy(dtype=object), c)
            for j, c in enumerate(cols) if is_list_column(c, cols)}
    return [item_text(dict(zip(cols, rec)), template=template, columns=columns, _seps=seps)
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
