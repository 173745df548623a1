"""Explanations and recommendation copy for a (user, item), grounded in computed facts.

    explain(model, user=1, item=50)
    -> {"user_id": 1, "item_id": 50,
        "because": [{"item_id": 181, "title": "Return of the Jedi (1983)", "weight": 0.21}, ...],
        "attributes": [{"type": "genre", "value": "Sci-Fi", "share": 0.18}, ...],
        "text": "We recommend Star Wars (1977) (Action, Adventure, ...) because you enjoyed ...",
        "generator": "template", "grounded": true}

``because`` holds only items of the user's history with a positive weight, strongest first
(see `longrec.explain.attribution`). The sentence comes from a `longrec.lm` generator that is
given only the facts (target title, its genres, the top "because" titles, the shared era); a
`GroundingChecker` rejects any text naming a title, person or attribute outside the facts, and
then the template text is shown instead. ``grounded`` is true when the requested generator's
own text was shown, false when it was rejected and replaced by the template; ``text`` is
always grounded.

Generators: ``template`` (default), ``local`` (llama.cpp, the packaged Gemma 3 270M) and
``http`` (an OpenAI-compatible server at $LONGREC_GENERATOR_URL, default
http://127.0.0.1:8000, model $LONGREC_GENERATOR_MODEL), or any `longrec.lm.Generator`.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from longrec.errors import LongrecError
from longrec.explain.attribution import history_weights, user_history
from longrec.explain.facts import Catalog, catalog_of, shared_attributes
from longrec.explain.grounding import GroundingChecker

EXPLAIN_KEYS = ("user_id", "item_id", "because", "attributes", "text", "generator", "grounded")
_CHECKERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ALIASES = {"template": "template", "local": "llama-cpp", "llama-cpp": "llama-cpp", "llama.cpp": "llama-cpp",
            "gemma": "llama-cpp", "http": "openai", "openai": "openai"}

#: recommendation copy (a short pitch): completion prompts and deterministic templates
PITCH_PROMPTS = [(("title", "genres", "because"), "Movie: {title} ({genres}).\nFor fans of {because}.\nOne-line pitch:"),
                 (("title", "genres"), "Movie: {title} ({genres}).\nOne-line pitch:"),
                 (("title",), "Movie: {title}.\nOne-line pitch:")]
PITCH_TEMPLATES = [(("title", "genres", "because"), "{title}: {genres}. For fans of {because}."),
                   (("title", "genres"), "{title}: {genres}."),
                   (("title",), "{title}.")]


def _native(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def checker_of(model, catalog: Catalog | None = None) -> GroundingChecker:
    chk = _CHECKERS.get(model)
    if chk is None:
        cat = catalog or catalog_of(model)
        chk = GroundingChecker([f for forms in cat.forms for f in forms], cat.all_genres + cat.small_attribute_values())
        _CHECKERS[model] = chk
    return chk


def get_explain_generator(generator="template"):
    """(generator object, its name) from a name (template|local|http) or a Generator."""
    if not isinstance(generator, str):
        if not hasattr(generator, "generate"):
            raise LongrecError(f"generator must be 'template', 'local', 'http' or a longrec.lm Generator, "
                               f"got {type(generator).__name__}.")
        return generator, getattr(generator, "name", None) or type(generator).__name__
    key = generator.strip().lower()
    if key not in _ALIASES:
        raise LongrecError(f"unknown generator {generator!r}; use template, local (llama.cpp Gemma) or http "
                           "(an OpenAI-compatible server at $LONGREC_GENERATOR_URL).")
    from longrec.lm.generators import get_generator

    backend = _ALIASES[key]
    kw: dict = {}
    if backend == "openai":
        kw["base_url"] = os.environ.get("LONGREC_GENERATOR_URL", "http://127.0.0.1:8000")
        if os.environ.get("LONGREC_GENERATOR_MODEL"):
            kw["model"] = os.environ["LONGREC_GENERATOR_MODEL"]
    return get_generator(backend, **kw), key


def _is_template(gen) -> bool:
    from longrec.lm.generators import TemplateGenerator

    return isinstance(gen, TemplateGenerator)


def _fill(variants, facts: dict) -> str:
    from longrec.lm.prompts import _fact_str

    have = {k for k, v in facts.items() if v not in (None, "", [], ())}
    for keys, tmpl in variants:
        if set(keys) <= have:
            return tmpl.format(**{k: _fact_str(v, "en") for k, v in facts.items()})
    raise LongrecError("facts need at least a title")


def generate_line(gen, prompt: str, max_tokens: int = 60) -> str:
    """The first non-empty line a generator writes after ``prompt`` (base models often start
    with a newline, so stop only at a blank line and cut here)."""
    raw = gen.generate(prompt, max_tokens=max_tokens, stop=["\n\n"])
    return next((line.strip() for line in str(raw).splitlines() if line.strip()), "")


def grounded_text(task: str, facts: dict, gen, checker: GroundingChecker, max_tokens: int = 60,
                  language: str = "en") -> tuple[str, bool, list[str]]:
    """(text shown, whether the generator's own text was shown, violations found). ``task``:
    "explain" (longrec.lm.prompts) or "pitch". The fallback is the task's template."""
    from longrec.lm.prompts import build_prompt, render_template

    if task == "explain":
        fallback = render_template("explain", facts, language)
        prompt = build_prompt("explain", facts, language)
    elif task == "pitch":
        fallback, prompt = _fill(PITCH_TEMPLATES, facts), _fill(PITCH_PROMPTS, facts)
    else:
        raise LongrecError(f"unknown text task {task!r}; use explain or pitch.")
    text = fallback if _is_template(gen) else generate_line(gen, prompt, max_tokens)
    bad = checker.check(text, facts)
    if not bad:
        return text, True, []
    fallback_bad = checker.check(fallback, facts)
    if fallback_bad:  # cannot happen for well-formed facts; never show unchecked text
        return f"We recommend {facts['title']}.", False, bad + fallback_bad
    return fallback, False, bad


def explanation_facts(model, user, item, history=None, max_because: int = 3, method: str = "auto") -> dict:
    """The computed facts behind an explanation (no text): because, attributes, the facts
    given to a generator, and the attribution method."""
    if isinstance(model, (str, Path)):
        from longrec.models.base import Recommender

        model = Recommender.load(model)
    model._require_fitted()
    t = int(model.vocab_.items.index([item], "item")[0])
    uidx, hist = user_history(model, user, history)
    if len(hist) == 0:
        raise LongrecError(f"user {user!r} has no history the model knows, so there is nothing to explain the "
                           f"recommendation from; pass their interactions with --history FILE (history=...).")
    hist = hist[hist != t]
    w, used = history_weights(model, uidx, hist, t, method=method)
    order = np.argsort(-w, kind="stable")
    order = order[w[order] > 0][:max_because]
    cat = catalog_of(model)
    ids = model.vocab_.items.ids
    because = [{"item_id": _native(ids[hist[p]]), "title": cat.titles[hist[p]], "weight": round(float(w[p]), 6)}
               for p in order]
    attributes = shared_attributes(cat, hist, t)
    titles = [b["title"] for b in because[:2]]
    # "because" reads as one phrase in the templates; the titles stay separate for the checker
    facts: dict = {"title": cat.titles[t], "genres": list(cat.genres[t]),
                   "because": " and ".join(titles), "because_titles": titles}
    # shared values of other item columns (author, publisher, ...): "author Frank Herbert"
    shared = [f"{a['type']} {a['value']}" for a in attributes if a["type"] not in ("genre", "era", cat.genre_type)]
    if shared:
        facts["shared"] = shared[:2]
    eras = [a["value"] for a in attributes if a["type"] == "era"]
    if eras:
        facts["era"] = eras[0]
    uid = _native(model.vocab_.users.ids[uidx]) if uidx >= 0 else _native(user)
    return {"user_id": uid, "item_id": _native(ids[t]), "because": because, "attributes": attributes,
            "facts": facts, "method": used, "model": model}


def explain(model, user, item, history=None, generator="template", *, max_because: int = 3,
            method: str = "auto", language: str = "en") -> dict:
    """Explain why ``model`` recommends ``item`` to ``user`` (see the module docstring for the
    returned JSON contract). model: a fitted Recommender or a model directory. history: extra
    interactions of the user (a list of item ids, {user: [...]}, or a DataFrame)."""
    f = explanation_facts(model, user, item, history, max_because=max_because, method=method)
    gen, name = get_explain_generator(generator)
    text, ok, _ = grounded_text("explain", f["facts"], gen, checker_of(f["model"]), language=language)
    return {"user_id": f["user_id"], "item_id": f["item_id"], "because": f["because"],
            "attributes": f["attributes"], "text": text, "generator": name, "grounded": ok}


def pitch(model, user, item, history=None, generator="template", *, max_because: int = 3) -> dict:
    """A one-line recommendation copy for (user, item), under the same grounding rule:
    ``{"user_id", "item_id", "text", "generator", "grounded"}``."""
    f = explanation_facts(model, user, item, history, max_because=max_because)
    gen, name = get_explain_generator(generator)
    text, ok, _ = grounded_text("pitch", f["facts"], gen, checker_of(f["model"]))
    return {"user_id": f["user_id"], "item_id": f["item_id"], "text": text, "generator": name, "grounded": ok}
