"""Grounding check: generated text may name only what is in its facts.

A text is rejected when, after the fact strings themselves are blanked out, it still names

* a catalogue title (any known form: "Star Wars (1977)", "Star Wars", "Usual Suspects, The"),
* an attribute value of the catalogue (a genre) or a year / decade that is not a fact,
* anything quoted, or a capitalised name that is not a fact and not an ordinary sentence word
  (this is what catches invented titles and people, which no catalogue lists).

The check errs on the side of rejecting: a rejected text is replaced by the template text,
which is built from the facts alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

#: capitalised words that are ordinary sentence words, not names
COMMON = set("""
a about after again all also an and another any are as at because before best both but by can classic
could do does don't enjoy enjoyed enjoying every fans fan favorite favourite film films for from fun
great has have he her here his how i i'd i'm if in into is it it's its just like liked likely love loved
loves many may more most movie movies my new next no not now of on one only or our out perfect pick
picks recommend recommended recommendation recommendations same see she similar since so some such
than that the their them then there these they this those to too try us viewers want watch watched
we we're what when where which while who why will with would yes you you'll you're your yours
because watchers lover lovers thanks based given here's check
""".split())

#: word forms that name a genre without its exact name ("a romantic story" names Romance)
GENRE_FORMS = {
    "romance": ["romantic", "romcom", "rom-com", "love story"], "comedy": ["comedic", "comedies"],
    "drama": ["dramatic", "dramas"], "animation": ["animated", "cartoon"], "thriller": ["thrilling", "thrillers"],
    "horror": ["horrifying", "scary"], "sci-fi": ["science fiction", "sci fi", "scifi", "science-fiction"],
    "children's": ["children", "kids", "family film"], "mystery": ["mysterious", "mysteries"],
    "fantasy": ["fantastical"], "crime": ["criminal", "gangster"], "adventure": ["adventurous", "adventures"],
    "film-noir": ["noir", "film noir"], "musical": ["musicals"], "documentary": ["documentaries"],
    "western": ["westerns", "cowboy"], "war": ["wartime"], "action": ["action-packed"],
}

_QUOTED = re.compile(r"[\"\u201c\u201d\u00ab\u00bb\u300a\u300b]([^\"\u201c\u201d\u00ab\u00bb\u300a\u300b]{2,})"
                     r"[\"\u201c\u201d\u00ab\u00bb\u300a\u300b]")
_YEARS = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)s?(?!\d)|(?<![\w\d])'?(\d0)s\b")
_CAP = re.compile(r"\b[A-Z][\w'\-]*[A-Za-z]\b|\b[A-Z]\b")
_SENT_START = re.compile(r"(^|[.!?:;]\s+|\n)\s*$")


def _norm(s: str) -> str:
    return (s.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"'))


def _title_forms(s: str) -> list[str]:
    """Other ways to write a fact title: without its year; "The X" <-> "X, The"."""
    bare = re.sub(r"\s*\(\d{4}\)\s*$", "", s).strip()
    out = [bare] if bare != s else []
    m = re.match(r"^(The|A|An) (.+)$", bare)
    if m:
        out += [f"{m.group(2)}, {m.group(1)}", m.group(2)]
    m = re.match(r"^(.+), (The|A|An)$", bare)
    if m:
        out += [f"{m.group(2)} {m.group(1)}"]
    return out


class GroundingChecker:
    """Built once per catalogue: ``titles`` (every form of every item title) and ``attributes``
    (every genre / categorical value). ``check(text, facts)`` -> list of violations."""

    def __init__(self, titles: Iterable[str], attributes: Iterable[str] = ()) -> None:
        multi, single = set(), set()
        for t in titles:
            t = _norm(str(t)).strip()
            if len(t) < 3:
                continue
            (multi if " " in t else single).add(t)
        # longest first so that "Star Wars (1977)" wins over "Star Wars"
        self._multi = self._alternation(multi, re.IGNORECASE)
        self._single = self._alternation(single, 0)   # one-word titles: case-sensitive ("Heat", not "heat")
        attrs = {_norm(str(a)).strip() for a in attributes if str(a).strip()}
        self._forms = {a.lower(): GENRE_FORMS.get(a.lower(), []) for a in attrs}
        attrs |= {f for forms in self._forms.values() for f in forms}
        self._attrs = self._alternation(attrs, re.IGNORECASE)

    @staticmethod
    def _alternation(strings: set, flags: int):
        if not strings:
            return None
        body = "|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True))
        return re.compile(rf"(?<![\w])(?:{body})(?![\w])", flags)

    @staticmethod
    def fact_strings(facts: Mapping) -> list[str]:
        out: list[str] = []

        def add(v):
            if v is None:
                return
            if isinstance(v, Mapping):
                for x in v.values():
                    add(x)
            elif isinstance(v, (list, tuple, set)):
                for x in v:
                    add(x)
            else:
                s = _norm(str(v)).strip()
                if s:
                    out.append(s)

        add(facts)
        return out

    def check(self, text: str, facts: Mapping, extra_allowed: Iterable[str] = ()) -> list[str]:
        """Violations (empty = grounded). ``facts``: every string the text may mention (nested
        lists/dicts are flattened); ``extra_allowed``: other harmless strings."""
        if not isinstance(text, str) or not text.strip():
            return ["empty text"]
        work = _norm(text)
        allowed = self.fact_strings(facts) + [_norm(s) for s in extra_allowed]
        allowed += [f for a in allowed for f in self._forms.get(a.lower(), [])]
        allowed += [f for a in allowed for f in _title_forms(a)]
        # blank out fact strings (longest first), keeping offsets for sentence-start detection
        for s in sorted(set(allowed), key=len, reverse=True):
            if len(s) >= 2:
                work = re.sub(rf"(?<![\w]){re.escape(s)}(?![\w])", lambda m: " " * len(m.group(0)), work,
                              flags=re.IGNORECASE)
        allowed_lower = {a.lower() for a in allowed}
        allowed_words = {w.lower() for a in allowed for w in re.findall(r"[\w'\-]+", a)}
        bad: list[str] = []
        for rx, what in ((self._multi, "title"), (self._single, "title"), (self._attrs, "attribute")):
            if rx is not None:
                for m in rx.finditer(work):
                    bad.append(f"{what} not in facts: {m.group(0)!r}")
                    work = work[:m.start()] + " " * len(m.group(0)) + work[m.end():]
        for m in _QUOTED.finditer(work):
            if m.group(1).strip() and m.group(1).strip().lower() not in allowed_lower:
                bad.append(f"quoted name not in facts: {m.group(1).strip()!r}")
        fact_years = {y for a in allowed for y in re.findall(r"(?<!\d)(\d{4})(?!\d)", a)}
        fact_decades = {y[:3] for y in fact_years} | {a[:3] for a in allowed if re.fullmatch(r"\d{3}0s", a)}
        for m in _YEARS.finditer(work):
            if m.group(1):
                y = m.group(1)
                ok = y in fact_years if not m.group(0).endswith("s") else y[:3] in fact_decades
            else:
                ok = any(d[1:3] == m.group(2) for d in fact_decades)
            if not ok:
                bad.append(f"year not in facts: {m.group(0)!r}")
        for m in _CAP.finditer(work):
            w = m.group(0)
            lw = w.lower()
            if lw in COMMON or lw in allowed_words:
                continue
            if _SENT_START.search(work[:m.start()]) and len(w) > 1 and not self._looks_like_name(work, m):
                continue
            bad.append(f"name not in facts: {w!r}")
        return bad

    @staticmethod
    def _looks_like_name(work: str, m: re.Match) -> bool:
        """A sentence-initial capitalised word counts as a name only when another capitalised
        word follows it ("Tom Hanks ...", not "Great pick")."""
        rest = work[m.end():]
        return bool(re.match(r"\s+[A-Z][\w'\-]*", rest))
