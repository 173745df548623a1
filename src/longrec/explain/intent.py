"""A one-line pitch per item of an intent result, grounded in the item's attributes that match
the request.

    intent_pitches(model, [50, 181], "an old sci-fi adventure")
    -> [{"item_id": 50, "text": "Star Wars (1977): Sci-Fi, Adventure, 1970s — as you asked.",
         "match": ["Sci-Fi", "Adventure", "1970s"], "generator": "template", "grounded": true}, ...]

The facts of an item are its title, its genres (or the table's category column), and `match`:
the values of its genres / categories / other categorical columns (author, publisher, ...) that
the request names (by name, plural, or the synonyms of `longrec.models.refine.SYNONYMS`,
e.g. "funny" names Comedy), and its decade when the request names years that include it. With
no match the pitch only states the item's genres (it never claims a match it did not find).

The template generator (default) writes the line from the facts alone. A language-model
generator ("local": the packaged Gemma 3 270M through llama.cpp; "http") is given the same
facts and its line must pass the grounding check of `longrec.explain` (no title, person,
attribute or year outside the facts); otherwise the template line is shown and `grounded` is
false.
"""

from __future__ import annotations

import re

import numpy as np

from longrec.errors import LongrecError
from longrec.explain.core import _fill, _is_template, checker_of, generate_line, get_explain_generator
from longrec.explain.facts import catalog_of, era

PITCH_TEMPLATES = [(("title", "match"), "{title}: {match} \u2014 as you asked."),
                   (("title", "genres"), "{title}: {genres}."),
                   (("title",), "{title}.")]
PITCH_PROMPTS = [(("title", "match", "genres"),
                  "Request: {query}\nPick: {title} ({genres}).\nIt fits because it is {match}.\nOne-line pitch:"),
                 (("title", "genres"), "Request: {query}\nPick: {title} ({genres}).\nOne-line pitch:"),
                 (("title",), "Request: {query}\nPick: {title}.\nOne-line pitch:")]


def _forms(value: str) -> set[str]:
    from longrec.explain.grounding import GENRE_FORMS
    from longrec.models.refine import SYNONYMS

    v = value.lower().strip()
    out = {v, v + "s", v + "es", v.rstrip("s")}
    if v.endswith("y"):
        out.add(v[:-1] + "ies")
    out |= set(GENRE_FORMS.get(v, [])) | set(SYNONYMS.get(v, ()))
    return {f for f in out if len(f) >= 3}


def matching_attributes(cat, item: int, query: str) -> list[str]:
    """The item's attribute values (genres/categories, other categorical columns, decade) that
    `query` names."""
    from longrec.models.refine import _year_filter

    q = " " + " ".join(str(query).lower().replace("\u2019", "'").split()) + " "
    out = []
    for typ, per_item in [(cat.genre_type, cat.genres), *cat.attributes.items()]:
        for v in per_item[item]:
            if any(re.search(r"(?<![\w-])" + re.escape(f) + r"(?![\w-])", q) for f in _forms(v)):
                out.append(v if typ == cat.genre_type else f"{typ} {v}")
    y = int(cat.years[item])
    yf = _year_filter(q)
    if y and yf is not None and yf[0] <= y <= yf[1]:
        out.append(era(y))
    return list(dict.fromkeys(out))


def intent_pitches(model, item_ids, query: str, generator="template", max_tokens: int = 40) -> list[dict]:
    """One pitch per item (in the order given) for the request `query`; see the module doc."""
    if not isinstance(query, str) or not query.strip():
        raise LongrecError("a pitch needs the request text (a non-empty string).")
    cat = catalog_of(model)
    idx = model.vocab_.items.index(list(item_ids), "item")
    gen, name = get_explain_generator(generator)
    checker = checker_of(model, cat)
    out = []
    for i, t in zip(item_ids, np.asarray(idx)):
        match = matching_attributes(cat, int(t), query)
        facts = {"title": cat.titles[t], "genres": list(cat.genres[t]), "match": match}
        fallback = _fill(PITCH_TEMPLATES, facts)
        text = fallback
        grounded = True
        if not _is_template(gen):
            text = generate_line(gen, _fill(PITCH_PROMPTS, {**facts, "query": query}), max_tokens)
            if checker.check(text, facts, extra_allowed=[query]):
                text, grounded = fallback, False
        out.append({"item_id": i.item() if isinstance(i, np.generic) else i, "text": text, "match": match,
                    "generator": name, "grounded": grounded})
    return out
