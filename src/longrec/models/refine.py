"""Refinement: a follow-up sentence narrows or shifts a list just made.

    r = parse_refinement("something more recent, no horror", catalog, previous=[50, 181, 172])
    r.understood   # ('more recent: later years up', 'no horror: horror items removed')
    new = apply_refinement(scores, r, catalog, item_vectors)   # a new score row (-inf = removed)

What is understood comes only from what the item table supports:

- **year** (a year column, or "(1995)" in the title): "more recent" / "newer" / "older" /
  "classic" shift the list along the years; "from the 90s", "the nineties", "in 1995",
  "before 1980", "after 2000", "since 1990", "between 1980 and 1990" keep only those years.
- **categories** (genre, class, category, ... columns: any value of the catalogue, with
  plurals, and the synonyms of `SYNONYMS`, e.g. "funnier" -> comedy, "scary" -> horror):
  "more comedy" / "funnier" boost it, "less comedy" / "fewer comedies" lower it, "no horror" /
  "without horror" / "not horror" remove it, "only comedy" / "just comedy" keep only it.
  A few abstract words are mapped to categories explicitly (`CONCEPTS`, e.g. "less violent" ->
  action, crime, horror, thriller, war lowered) and only where the catalogue has them.
- **people** (author, publisher, brand, artist, director columns): "by Stephen King", "more from
  Penguin", "not by ..." (the name as the table spells it, any case).
- **similarity to an item of the previous list**: "like the second one", "like #3", "like the
  last one", or "like <a title in the list>" raise items whose text is close to that one's.

Clauses are split on "but", "and", commas and semicolons ("like the second one but funnier"
is two). Shifts move items by about one standard deviation of the list's scores. A sentence
from which nothing is understood gives a `Refinement` with `ok == False` and a message saying
so; applying it changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

#: words for a category (lower case) -> the category, used when the catalogue has that category
SYNONYMS = {
    "comedy": ("funny", "funnier", "fun", "comedies", "comedic", "comic", "humor", "humour", "hilarious",
               "laughs", "lighthearted comedy"),
    "horror": ("scary", "scarier", "scariest", "frightening", "creepy", "creepier", "spooky", "horrors"),
    "romance": ("romantic", "romances", "love story", "love stories"),
    "sci-fi": ("science fiction", "science-fiction", "scifi", "sci fi", "futuristic", "space"),
    "children's": ("kids", "kid", "children", "childrens", "for children", "family"),
    "animation": ("animated", "cartoon", "cartoons", "animations"),
    "thriller": ("thrilling", "thrillers", "suspense", "suspenseful"),
    "mystery": ("mysteries", "mysterious", "whodunit", "detective"),
    "film-noir": ("noir", "film noir"),
    "musical": ("musicals", "singing"),
    "western": ("westerns", "cowboy", "cowboys"),
    "war": ("wars", "military"),
    "crime": ("criminal", "gangster", "gangsters", "heist", "crimes"),
    "documentary": ("documentaries", "factual"),
    "drama": ("dramas", "dramatic"),
    "action": ("action-packed", "explosive"),
    "adventure": ("adventures", "adventurous"),
    "fantasy": ("magical", "magic", "fantasies"),
}
#: abstract words -> the categories they stand for (explicit, documented; used where present)
CONCEPTS = {
    "violent": ("action", "crime", "horror", "thriller", "war"),
    "violence": ("action", "crime", "horror", "thriller", "war"),
    "gory": ("horror",),
    "dark": ("crime", "film-noir", "horror", "thriller"),
    "darker": ("crime", "film-noir", "horror", "thriller"),
    "light": ("comedy", "children's", "animation", "musical", "romance"),
    "lighter": ("comedy", "children's", "animation", "musical", "romance"),
    "lighthearted": ("comedy", "children's", "animation", "musical", "romance"),
    "light-hearted": ("comedy", "children's", "animation", "musical", "romance"),
    "feel-good": ("comedy", "children's", "animation", "musical", "romance"),
    "uplifting": ("comedy", "children's", "animation", "musical", "romance"),
    "family-friendly": ("children's", "animation"),
    "family friendly": ("children's", "animation"),
    "serious": ("drama", "documentary"),
    "intense": ("action", "thriller"),
}
PEOPLE_COLUMNS = ("author", "book_author", "publisher", "brand", "artist", "director", "manufacturer")
CATEGORY_COLUMNS = ("class", "genre", "genres", "categories", "category", "tags", "classes", "class_name",
                    "department_name", "division_name", "department", "division")
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7,
             "8th": 8, "9th": 9, "10th": 10, "top": 1, "last": -1}
_DECADE_WORDS = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
                 "seventies": 1970, "eighties": 1980, "nineties": 1990}
#: polarity words: the last one before a term (in its clause) says what to do with the term
_POL = re.compile(r"\b(nothing but|only|just|exclusively|less|fewer|not so|not as|not too|too much|too many|"
                  r"no|without|not|nothing|none|exclude|excluding|skip|avoid|drop|don'?t want|never|minus|"
                  r"more|extra|plus|much more)\b")
_POL_KIND = {"nothing but": "only", "only": "only", "just": "only", "exclusively": "only",
             **{w: "down" for w in ("less", "fewer", "not so", "not as", "not too", "too much", "too many")},
             **{w: "up" for w in ("more", "extra", "plus", "much more")}}
_STRONG = re.compile(r"\b(much|a lot|way|lots|far|many)\s+more\b")
_RECENT = re.compile(r"\b(more recent|recent|newer|newest|latest|modern|contemporary|new(?:er)? ones?|"
                     r"more modern|later)\b")
_OLDER = re.compile(r"\b(older|oldest|old|classics?|vintage|retro|earlier)\b")
_YEAR = r"((?:19|20)\d\d)"
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10}

#: one standard deviation of the list's scores per shift
SHIFT = 1.0
YEAR_SHIFT = 0.75


@dataclass
class Catalog:
    """What refinement can use of a model's items (vocabulary order)."""
    titles: list[str]
    year: np.ndarray                       # float, NaN = unknown
    categories: dict[str, np.ndarray]      # lower-case category -> bool mask
    people: dict[str, np.ndarray]          # lower-case name -> bool mask
    people_kind: dict[str, str] = field(default_factory=dict)   # name -> its column ("author", ...)
    _cache: dict = field(default_factory=dict, repr=False)

    def phrases(self) -> list:
        """`_vocabulary(self)`, computed once."""
        if "vocab" not in self._cache:
            self._cache["vocab"] = _vocabulary(self)
        return self._cache["vocab"]

    def names(self) -> list[str]:
        """People's names, longest first, computed once."""
        if "names" not in self._cache:
            self._cache["names"] = sorted(self.people, key=len, reverse=True)
        return self._cache["names"]

    @classmethod
    def from_model(cls, model) -> "Catalog":
        """The catalogue of a fitted model's item table (cached on the model object)."""
        cached = getattr(model, "_refine_catalog", None)
        if cached is not None:
            return cached
        cat = cls.from_items(model.vocab_.items.ids, getattr(model, "items_", None))
        model._refine_catalog = cat
        return cat

    @classmethod
    def from_items(cls, item_ids, items) -> "Catalog":
        import pandas as pd

        from longrec.lm.text import MISSING_VALUES, SPACE_LIST_COLUMNS, TITLE_COLUMNS, YEAR_COLUMNS

        n = len(item_ids)
        titles = [str(i) for i in item_ids]
        year = np.full(n, np.nan)
        cats: dict[str, np.ndarray] = {}
        people: dict[str, np.ndarray] = {}
        kinds: dict[str, str] = {}
        if items is None or len(items) == 0:
            return cls(titles, year, cats, people)
        bare = {str(c).split(":", 1)[0].lower(): c for c in items.columns}
        if "item_id" not in bare:
            return cls(titles, year, cats, people)
        tab = items.drop_duplicates(bare["item_id"], keep="last")
        pos = pd.Index(tab[bare["item_id"]].astype(str)).get_indexer(pd.Series(list(item_ids), dtype=object).astype(str))
        have = np.flatnonzero(pos >= 0)
        rows = pos[have]

        def col(name):
            return tab[bare[name]].to_numpy(dtype=object)[rows]

        tcol = next((c for c in TITLE_COLUMNS if c in bare), None)
        if tcol is not None:
            for j, v in zip(have, col(tcol)):
                if isinstance(v, str) and v.strip():
                    titles[j] = v.strip()
        ycol = next((c for c in YEAR_COLUMNS if c in bare), None)
        if ycol is not None:
            y = pd.to_numeric(pd.Series(col(ycol)), errors="coerce").to_numpy(dtype=float, copy=True)
            y[(y < 1000) | (y > 2100)] = np.nan  # 0 = unknown (Book-Crossing)
            year[have] = y
        miss = np.isnan(year)
        for j in np.flatnonzero(miss):  # "Toy Story (1995)"
            m = re.search(r"\((\d{4})\)\s*$", titles[j])
            if m:
                year[j] = float(m.group(1))
        for c in CATEGORY_COLUMNS:
            if c not in bare:
                continue
            vals = col(c)
            lists = any(isinstance(v, str) and re.search(r"[|;,]", v) for v in vals)
            # MovieLens (RecBole token_seq): "Animation Children's Comedy" is three genres
            spaced = not lists and c in SPACE_LIST_COLUMNS and "movie_title" in bare
            for j, v in zip(have, vals):
                if not isinstance(v, str):
                    continue
                parts = re.split(r"[|;,]", v) if lists else (v.split() if spaced else [v])
                toks = {p.strip().lower() for p in parts} - MISSING_VALUES
                for t in toks:
                    cats.setdefault(t, np.zeros(n, bool))[j] = True
        for c in PEOPLE_COLUMNS:
            if c not in bare:
                continue
            for j, v in zip(have, col(c)):
                if isinstance(v, str) and v.strip() and v.strip().lower() not in MISSING_VALUES:
                    name = " ".join(v.lower().split())
                    people.setdefault(name, np.zeros(n, bool))[j] = True
                    kinds.setdefault(name, c.replace("book_", ""))
        return cls(titles, year, cats, people, kinds)


@dataclass
class Op:
    kind: str            # "boost" | "filter" | "year-shift" | "like"
    weight: float = 0.0  # boost: + up, - down; year-shift: + recent, - older
    mask: np.ndarray | None = None   # boost/filter: the items concerned (filter keeps them)
    ref: int | None = None           # like: the item's vocabulary index


@dataclass
class Refinement:
    """What a follow-up sentence was understood to ask (`understood`, readable) and the
    operations that do it (`ops`); `ok` is False when nothing was understood."""
    text: str
    understood: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    #: set when the follow-up was understood but no item of the list's pool satisfies it
    nothing_left: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.ops)

    @property
    def message(self) -> str:
        if self.nothing_left:
            return f"no item of the list's pool matches ({self.nothing_left}); the list is unchanged."
        if not self.ok:
            return (f"not understood: {self.text!r} (try e.g. 'more recent', 'from the 90s', 'no horror', "
                    f"'more comedy', 'less violent', 'like the second one'); the list is unchanged.")
        msg = "understood: " + "; ".join(self.understood)
        if self.not_understood:
            msg += " (not understood: " + "; ".join(repr(c) for c in self.not_understood) + ")"
        return msg

    def as_dict(self) -> dict:
        return {"text": self.text, "applied": self.ok, "understood": list(self.understood),
                "not_understood": list(self.not_understood), "message": self.message}


def _variants(term: str) -> set[str]:
    out = {term}
    if term.endswith("ies"):
        out.add(term[:-3] + "y")
    if term.endswith("es"):
        out.add(term[:-2])
    if term.endswith("s"):
        out.add(term[:-1])
    out |= {term + "s", term + "es", term[:-1] + "ies" if term.endswith("y") else term + "s"}
    return out


def _vocabulary(cat: Catalog) -> list[tuple[str, tuple[str, ...], str]]:
    """(phrase, categories it means, label) for every phrase the parser looks for, longest first."""
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for c in cat.categories:
        for v in _variants(c):
            out.setdefault(v, ((c,), c))
    for canon, words in SYNONYMS.items():
        if canon in cat.categories:
            for w in words:
                out.setdefault(w, ((canon,), canon))
    for w, cs in CONCEPTS.items():
        have = tuple(c for c in cs if c in cat.categories)
        if have:
            out.setdefault(w, (have, f"{w} ({', '.join(have)})"))
    return sorted(((p, cs, lab) for p, (cs, lab) in out.items()), key=lambda t: -len(t[0]))


def _polarity(clause: str, start: int, end: int) -> str:
    """up / down / exclude / only for the term at clause[start:end]: the last polarity word
    before it, else "only" written after it ("comedy only"), else up."""
    before = list(_POL.finditer(clause[:start]))
    if before:
        w = re.sub(r"\s+", " ", before[-1].group(1))
        return _POL_KIND.get(w, "exclude")
    if re.search(r"\b(only|alone)\b", clause[end:]):
        return "only"
    return "up"


def _year_filter(clause: str) -> tuple | None:
    """(lo, hi, label, span): years lo <= y <= hi the clause asks for, else None."""
    m = re.search(rf"\bbetween\s+{_YEAR}\s+(?:and|to|-)\s+{_YEAR}\b", clause) or \
        re.search(rf"\bfrom\s+{_YEAR}\s*(?:to|-|until|till)\s*{_YEAR}\b", clause) or \
        re.search(rf"\b{_YEAR}\s*-\s*{_YEAR}\b", clause)
    if m:
        a, b = sorted((int(m.group(1)), int(m.group(2))))
        return a, b, f"{a}-{b}", m.span()
    m = re.search(r"\b(?:the\s+)?'?((?:1\d|20)?\d)0'?s\b", clause)
    if m:
        d = m.group(1)
        start = int(d) * 10 if len(d) == 3 else (2000 + int(d) * 10 if int(d) <= 2 else 1900 + int(d) * 10)
        return start, start + 9, f"the {start}s", m.span()
    for w, start in _DECADE_WORDS.items():
        mw = re.search(rf"\b{w}\b", clause)
        if mw:
            return start, start + 9, f"the {start}s", mw.span()
    m = re.search(rf"\b(before|until|pre|prior to|earlier than|older than)\s*-?\s*{_YEAR}\b", clause)
    if m:
        y = int(m.group(2))
        return -np.inf, y - 1, f"before {y}", m.span()
    m = re.search(rf"\b(after|post|later than|newer than)\s*-?\s*{_YEAR}\b", clause)
    if m:
        y = int(m.group(2))
        return y + 1, np.inf, f"after {y}", m.span()
    m = re.search(rf"\b(since|from|onwards? from)\s+{_YEAR}\s+on(?:wards?)?\b", clause) or \
        re.search(rf"\bsince\s+{_YEAR}\b", clause)
    if m:
        y = int(m.group(m.lastindex))
        return y, np.inf, f"{y} or later", m.span()
    m = re.search(rf"\b(?:in|from|of)\s+{_YEAR}\b", clause) or re.fullmatch(rf"\s*{_YEAR}\s*", clause)
    if m:
        y = int(m.group(1))
        return y, y, f"{y}", m.span()
    return None


def _item_ref(clause: str, cat: Catalog, previous: list[int]) -> tuple[int, str, tuple[int, int]] | None:
    """(vocabulary index, label, span in the clause) of the item of the previous list the
    clause points at ("like the second one", "like #3", "like <title>")."""
    if not previous or not re.search(r"\b(like|similar to|as)\b", clause):
        return None
    m = re.search(r"\b(?:like|similar to|as)\s+(?:the\s+)?(?:(?:number|no\.?|#)\s*(\d+)|#(\d+)|"
                  r"(" + "|".join(_ORDINALS) + r")|(" + "|".join(_WORD_NUMBERS) + r"))(?!\w)"
                  r"(?:\s+(?:one|item|movie|film|book|product|title|pick|result))?", clause)
    if m:
        if m.group(1) or m.group(2):
            n = int(m.group(1) or m.group(2))
        elif m.group(3):
            n = _ORDINALS[m.group(3)]
        else:
            n = _WORD_NUMBERS[m.group(4)]
        if n == -1:
            n = len(previous)
        if 1 <= n <= len(previous):
            j = previous[n - 1]
            return j, f"#{n} ({cat.titles[j]})", m.span()
        return None
    if not re.search(r"\b(like|similar to)\b", clause):
        return None
    best = None
    for r, j in enumerate(previous):  # a title of the list named in the clause (longest match)
        t = re.sub(r"\s*\(\d{4}\)\s*$", "", cat.titles[j]).strip().lower()
        hit = re.search(r"(?<!\w)" + re.escape(t) + r"(?!\w)", clause) if len(t) >= 3 else None
        if hit and (best is None or len(t) > best[0]):
            best = (len(t), j, r + 1, hit.span())
    if best:
        return best[1], f"#{best[2]} ({cat.titles[best[1]]})", best[3]
    return None


def _clauses(text: str) -> list[str]:
    t = " ".join(text.lower().replace("’", "'").split())
    t = re.sub(rf"\bbetween\s+{_YEAR}\s+and\s+{_YEAR}\b", r"between \1 to \2", t)  # not split on "and"
    return [c.strip(" .!?") for c in re.split(r"\bbut\b|\band\b|\bplus\b|[,;]|\.\s", t) if c.strip(" .!?")]


def parse_refinement(text: str, catalog: Catalog, previous: list[int] | None = None) -> Refinement:
    """What `text` asks of the list; `previous`: the vocabulary indices of the list shown (best
    first), for "like the second one"."""
    ref = Refinement(text=str(text) if text is not None else "")
    if not isinstance(text, str) or not text.strip() or len(text) > 2000:
        return ref
    previous = list(previous or [])
    vocab = catalog.phrases()
    have_year = bool(np.isfinite(catalog.year).any())
    people = catalog.names()
    for clause in _clauses(text):
        got = False

        def blank(span):  # a matched phrase is used once
            nonlocal clause
            clause = clause[:span[0]] + " " * (span[1] - span[0]) + clause[span[1]:]

        hit = _item_ref(clause, catalog, previous)
        if hit is not None:
            ref.ops.append(Op("like", SHIFT, ref=hit[0]))
            ref.understood.append(f"like {hit[1]}: items similar to it up")
            blank(hit[2])
            got = True
        if have_year:
            yf = _year_filter(clause)
            m_new, m_old = _RECENT.search(clause), _OLDER.search(clause)
            if yf is not None:
                lo, hi, lab, span = yf
                keep = (catalog.year >= lo) & (catalog.year <= hi)
                if _polarity(clause, *span) in ("exclude", "down"):
                    ref.ops.append(Op("filter", mask=~keep))
                    ref.understood.append(f"not {lab}: those years removed")
                else:
                    ref.ops.append(Op("filter", mask=keep))
                    ref.understood.append(f"{lab}: only those years kept")
                blank(span)
                got = True
            elif m_new or m_old:
                m = m_new or m_old
                sign = 1.0 if m is m_new else -1.0
                negated = _polarity(clause, *m.span()) in ("down", "exclude")
                sign = -sign if negated else sign
                ref.ops.append(Op("year-shift", sign * YEAR_SHIFT))
                ref.understood.append(f"{'not ' if negated else ''}{m.group(1)}: "
                                      f"{'later' if sign > 0 else 'earlier'} years up")
                blank(m.span())
                got = True
        for name in people:
            if len(name) < 3 or name not in clause:  # a substring test first: thousands of names
                continue
            hitp = re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", clause)
            if hitp:
                _category_op(ref, _polarity(clause, *hitp.span()), catalog.people[name],
                             f"{catalog.people_kind.get(name, 'by')} {name}")
                blank(hitp.span())
                got = True
        used: set[str] = set()
        for phrase, cats, label in vocab:
            if phrase not in clause or set(cats) <= used:
                continue
            hitc = re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", clause)
            if hitc:
                mask = np.zeros(len(catalog.titles), bool)
                for c in cats:
                    mask |= catalog.categories[c]
                strong = 2.0 if _STRONG.search(clause[:hitc.start()]) else 1.0
                _category_op(ref, _polarity(clause, *hitc.span()), mask, label, strong)
                used |= set(cats)
                blank(hitc.span())
                got = True
        if not got:
            ref.not_understood.append(clause.strip())
    return ref


def _category_op(ref: Refinement, pol: str, mask: np.ndarray, label: str, strong: float = 1.0) -> None:
    if pol == "exclude":
        ref.ops.append(Op("filter", mask=~mask))
        ref.understood.append(f"no {label}: removed")
    elif pol == "only":
        ref.ops.append(Op("filter", mask=mask))
        ref.understood.append(f"only {label}: the rest removed")
    elif pol == "down":
        ref.ops.append(Op("boost", -SHIFT * strong, mask=mask))
        ref.understood.append(f"less {label}: down-weighted")
    else:
        ref.ops.append(Op("boost", SHIFT * strong, mask=mask))
        ref.understood.append(f"more {label}: up-weighted")


def _zfinite(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    if ok.any():
        v = x[ok]
        sd = v.std()
        out[ok] = (v - v.mean()) / (sd if sd > 1e-12 else 1.0)
    return out


def apply_refinement(scores: np.ndarray, ref: Refinement, catalog: Catalog,
                     item_vectors=None) -> tuple[np.ndarray, Refinement]:
    """A new score row (`item_vectors`: the items' L2-normalised text vectors, or a function
    returning them, for "like the second one"): the finite scores standardised, then each operation (boosts in standard
    deviations, filters to -inf). When the filters leave nothing, or nothing was understood,
    the row is returned unchanged (and the refinement says why)."""
    s = np.asarray(scores, dtype=np.float64)
    if not ref.ok:
        return s.copy(), ref
    ok = np.isfinite(s)
    out = _zfinite(s, ok)
    keep = ok.copy()
    for op in ref.ops:
        if op.kind == "boost":
            out += op.weight * op.mask
        elif op.kind == "filter":
            keep &= op.mask
        elif op.kind == "year-shift":
            y = catalog.year
            known = ok & np.isfinite(y)
            if known.any():
                out += op.weight * np.where(known, _zfinite(np.nan_to_num(y), known), 0.0)
        elif op.kind == "like" and item_vectors is not None:
            V = item_vectors() if callable(item_vectors) else item_vectors
            sim = V @ V[op.ref]
            out += op.weight * _zfinite(sim, ok)
    if not keep.any():
        ref.ops = []
        ref.nothing_left = "; ".join(ref.understood)
        return s.copy(), ref
    out[~keep] = -np.inf
    return out, ref


def refine_row(scores: np.ndarray, texts, catalog: Catalog, item_vectors, k: int) -> tuple[np.ndarray, list[dict]]:
    """Apply follow-ups in order (a str or a list of str) to one score row; each one sees the
    top-k list the previous step gives. Returns (row, [refinement.as_dict() per follow-up])."""
    from longrec.topk import topk

    if isinstance(texts, str):
        texts = [texts]
    row = np.asarray(scores, dtype=np.float64)
    said = []
    for t in texts:
        top, vals = topk(row[None, :], k)
        previous = [int(j) for j, v in zip(top[0], vals[0]) if np.isfinite(v)]
        ref = parse_refinement(t, catalog, previous)
        row, ref = apply_refinement(row, ref, catalog, item_vectors)
        said.append(ref.as_dict())
    return row, said
