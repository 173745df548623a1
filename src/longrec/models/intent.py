"""Intent-aware ranking: a user's history-based scores and a free-text intent, fused into one list.

    recs = recommend_with_queries(model, users=[42], queries={42: "a light comedy for tonight"}, k=10)
    recs = model.recommend(users=[42], queries={42: "a light comedy for tonight"}, k=10)   # the same

For every user with a query, the items whose text is among the `query_gate` share most similar
to the query (cosine in the language-model space) may be ranked, and they are ordered by

    fused = z(model score) + w * z(cos(query, item text))

where z standardises a score row over the items that may be ranked (mean 0, std 1), so the two
signals are on one scale whatever the model; w is `query_weight`. The gate makes the list follow
the intent; the model orders what matches it by the user's taste. The item texts are the
model's own item table (`longrec.lm.item_texts`), embedded by the packaged text encoder through
the on-disk cache, as the query is (a repeated query costs one cache look-up). Works for every
model: known users, users given only a history, and a brand-new user given only a sentence (then
the model's score row is its cold-user score, popularity by default, so the result is text
relevance with a popularity prior). Users without a query get the model's plain ranking.

Attribute prior: the sentence is also read for the catalogue's own attribute words (category
values such as genres or classes, with plurals and the synonyms of `longrec.models.refine`, e.g.
"funny" -> comedy, "scary" -> horror, and people such as authors or publishers, as the item table
spells them). Items carrying a recognised attribute pass the gate and get `+attribute_weight`
(in the standard deviations of the fused score); an attribute negated just before it ("no
horror", "not too scary", "less violent") gets `-attribute_weight` instead and does not pass the
gate (a sentence saying "no horror" embeds close to horror items). This reads only the
sentence and the item table; a sentence with no recognised word is fused exactly as without it.

The defaults (gate, weight, attribute weight) are the best of a grid on ml-100k P1 valid
(bench/intent.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from longrec.errors import LongrecError
from longrec.topk import topk

#: fused = z(model) + w z(text) over the gate; both chosen on ml-100k P1 valid (bench/intent.py)
DEFAULT_QUERY_WEIGHT = 0.25
DEFAULT_QUERY_GATE = 0.3
#: the attribute prior (standard deviations of the fused score); chosen on ml-100k P1 valid
DEFAULT_ATTRIBUTE_WEIGHT = 2.0


def _z(rows: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Standardise each row over the allowed columns (others become -inf later)."""
    a = rows[:, allowed]
    mu = a.mean(1, keepdims=True)
    sd = a.std(1, keepdims=True)
    out = np.zeros_like(rows, dtype=np.float64)
    out[:, allowed] = (a - mu) / np.where(sd > 1e-12, sd, 1.0)
    return out


def fuse(S: np.ndarray, R: np.ndarray, allowed: np.ndarray, query_weight: float, query_gate: float,
         prior: np.ndarray | None = None, attribute_weight: float = 0.0) -> np.ndarray:
    """The fused rows for model scores S and query–item similarities R (same shape): z(S) +
    w z(R) over the allowed items, -inf outside the query's gate (its top `query_gate` share by R).
    prior (same shape, values in {-1, 0, +1}; `attribute_prior`): + attribute_weight * prior; the
    items with prior > 0 pass the gate whatever their R, those with prior < 0 only when no gate."""
    rows = _z(S, allowed) + float(query_weight) * _z(R, allowed)
    use_prior = prior is not None and float(attribute_weight) != 0.0
    if use_prior:
        rows += float(attribute_weight) * prior
    if query_gate < 1.0:
        vals = np.where(allowed, R, -np.inf)
        if use_prior:  # what the sentence rules out does not pass its gate by text likeness
            vals = np.where(prior < 0, -np.inf, vals)
        n_keep = max(1, int(np.ceil(float(query_gate) * allowed.sum())))
        thr = -np.partition(-vals, n_keep - 1, axis=1)[:, n_keep - 1:n_keep]
        out = vals < thr
        if use_prior:
            out &= ~(prior > 0)
        rows[out] = -np.inf
    rows[:, ~allowed] = -np.inf
    return rows


#: single words never taken for a person's name (the words of a request, not of a catalogue)
_NOT_NAMES = frozenset("""a an the i me my we you it is are am be to of in on at by for from with and or but not no
any some more most less few something anything everything nothing someone book books novel novels read reading movie
movies film films watch watching show want wanted like love good great best new old recommend recommended please
tonight today one two top other another again""".split())
_EDGE = ".,!?;:\"'()[]{}“”‘’"


def _attribute_index(catalog) -> tuple[dict, int]:
    """{phrase: (label, mask, needs a capital)} of the catalogue's attribute words (refine's vocabulary of
    categories, plurals, synonyms and concepts, then people's names), and the longest phrase in
    words; cached on the catalogue."""
    got = catalog._cache.get("intent_index")
    if got is not None:
        return got
    index: dict[str, tuple[str, np.ndarray, bool]] = {}
    for phrase, cats, label in catalog.phrases():
        mask = np.zeros(len(catalog.titles), bool)
        for c in cats:
            mask |= catalog.categories[c]
        index.setdefault(phrase, (label, mask, False))
    for name, mask in catalog.people.items():
        if len(name) >= 3 and name not in _NOT_NAMES:
            # a one-word name ("Vintage", "Speak") only when the sentence capitalises it
            index.setdefault(name, (f"{catalog.people_kind.get(name, 'by')} {name}", mask, " " not in name))
    longest = max((len(p.split()) for p in index), default=1)
    catalog._cache["intent_index"] = (index, longest)
    return index, longest


def query_attributes(text: str, catalog) -> list[tuple[str, np.ndarray, int]]:
    """The catalogue attributes a sentence names: [(label, item mask, +1 or -1)], longest phrases
    first, each word used once. -1 when a negation or "less" ends at most one word before the
    phrase ("no horror", "nothing too scary", "less violent", "without any horror")."""
    from longrec.models.refine import _POL, _POL_KIND

    index, longest = _attribute_index(catalog)
    if not index or not isinstance(text, str):
        return []
    clauses = re.split(r"\bbut\b|[,;]|\.\s", " ".join(text.replace("’", "'").split()), flags=re.I)
    out = []
    for clause in clauses:
        cased = clause.split()
        words = [w.lower() for w in cased]
        i = 0
        while i < len(words):
            hit = None
            for n in range(min(longest, len(words) - i), 0, -1):
                raw = " ".join(words[i:i + n]).strip(_EDGE)
                for cand in (raw, raw[:-2] if raw.endswith("'s") else None):
                    if cand and cand in index and not (index[cand][2] and not cased[i].strip(_EDGE)[:1].isupper()):
                        hit = (n, cand)
                        break
                if hit:
                    break
            if hit is None:
                i += 1
                continue
            n, phrase = hit
            label, mask, _ = index[phrase]
            before = " ".join(words[:i])
            pols = list(_POL.finditer(before))
            sign = 1
            if pols and len(before[pols[-1].end():].split()) <= 1:
                kind = _POL_KIND.get(re.sub(r"\s+", " ", pols[-1].group(1)), "exclude")
                sign = -1 if kind in ("exclude", "down") else 1
            out.append(((f"not {label}" if sign < 0 else label), mask, sign))
            i += n
    return out


def attribute_prior(model, texts: list[str]) -> tuple[np.ndarray, list[list[str]]]:
    """(rows in {-1, 0, +1} over the model's items, one per text; the labels recognised per text):
    +1 for items with an attribute the text asks for, -1 for one it rules out (that wins)."""
    from longrec.models.refine import Catalog

    catalog = Catalog.from_model(model)
    P = np.zeros((len(texts), len(catalog.titles)), dtype=np.float64)
    labels = []
    for r, t in enumerate(texts):
        found = query_attributes(t, catalog)
        for _, mask, sign in found:
            if sign > 0:
                P[r, mask & (P[r] >= 0)] = 1.0
        for _, mask, sign in found:
            if sign < 0:
                P[r, mask] = -1.0
        labels.append([lab for lab, _, _ in found])
    return P, labels


def item_text_vectors(model, encoder: str = "default") -> np.ndarray:
    """L2-normalised text embeddings of the model's items (vocabulary order), kept on the model
    object after the first call (and in the on-disk embedding cache)."""
    from longrec.models._lm_items import embed_texts, item_texts_for

    cache = getattr(model, "_intent_vectors", None)
    if cache is not None and cache[0] == encoder:
        return cache[1]
    vecs = embed_texts(item_texts_for(model.vocab_.items.ids, getattr(model, "items_", None)), encoder)
    model._intent_vectors = (encoder, vecs)
    return vecs


def query_vectors(texts: list[str], encoder: str = "default") -> np.ndarray:
    from longrec.lm.query import check_query
    from longrec.models._lm_items import embed_texts

    return embed_texts([check_query(t) for t in texts], encoder)


def recommend_with_queries(model, users=None, histories=None, queries: Mapping | None = None, k: int = 10,
                           exclude_seen: bool = True, candidates: Iterable | None = None,
                           query_weight: float = DEFAULT_QUERY_WEIGHT, query_gate: float = DEFAULT_QUERY_GATE,
                           encoder: str = "default", attribute_weight: float = DEFAULT_ATTRIBUTE_WEIGHT,
                           on_unknown_user: str = "popular", refine=None) -> pd.DataFrame:
    """Top-k per user (user_id, item_id, rank, score) fusing the model's scores with each user's
    query; `queries` maps user_id -> text. Users default to those with a query or a history.
    The result's `attrs["signals"]` says, per user, which signals were used
    ({"history": bool, "text": bool, "popularity": bool}: popularity stands in for a user with
    neither training data nor history).

    refine: follow-up sentences applied to each user's list (`longrec.models.refine`): one
    text or a list of texts (in order) for every user, or {user_id: text or list}. Then
    `attrs["refinement"]` holds, per refined user, what each follow-up was understood to ask.
    `attrs["query_attributes"]`: per user with a query, the catalogue attributes it named (the
    attribute prior, `attribute_weight`; 0 turns it off)."""
    queries = dict(queries or {})
    if not (np.isfinite(query_weight) and float(query_weight) >= 0.0):
        raise LongrecError(f"query_weight must be a finite number >= 0, got {query_weight!r}.")
    if not (np.isfinite(attribute_weight) and float(attribute_weight) >= 0.0):
        raise LongrecError(f"attribute_weight must be a finite number >= 0, got {attribute_weight!r}.")
    if not 0.0 < float(query_gate) <= 1.0:
        raise LongrecError(f"query_gate must be in (0, 1] (the share of items the query lets through), got {query_gate!r}.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise LongrecError(f"k must be a positive integer, got {k!r}.")
    if users is None:
        users = list(queries)
        if histories is not None:
            users += [u for u in model._user_list(None, model._history_frame(histories)) if u not in queries]
        if not users:
            raise LongrecError("recommend() with queries needs users=[...], histories=... or queries={user: text}.")
    ids, uidx, hist = model.histories(users, histories)
    S = np.asarray(model.score_batch(uidx, hist, on_unknown_user), dtype=np.float64)
    n_items = S.shape[1]
    allowed = np.ones(n_items, dtype=bool)
    if candidates is not None:
        cand = model.vocab_.items.lookup(list(candidates))
        allowed[:] = False
        allowed[cand[cand >= 0]] = True
    has_history = (uidx >= 0) | (hist.lengths() > 0)
    by_str = {str(u): t for u, t in queries.items()}  # ids match as the model matches them: by their text
    qrows = [r for r, u in enumerate(ids) if str(u) in by_str]
    fused = S.copy()
    named = {}
    if qrows:
        texts = [by_str[str(ids[r])] for r in qrows]
        R = (query_vectors(texts, encoder) @ item_text_vectors(model, encoder).T).astype(np.float64)
        P, labels = attribute_prior(model, texts) if attribute_weight else (None, [[] for _ in texts])
        fused[qrows] = fuse(S[qrows], R, allowed, query_weight, query_gate, P, attribute_weight)
        named = {ids[r]: lab for r, lab in zip(qrows, labels)}
    fused[:, ~allowed] = -np.inf
    if exclude_seen and len(hist.indices):
        fused[np.repeat(np.arange(len(hist)), hist.lengths()), hist.indices] = -np.inf
    said = {}
    if refine is not None:
        from longrec.models.refine import Catalog, refine_row

        per_user = ({str(u): t for u, t in refine.items()} if isinstance(refine, Mapping)
                    else {str(u): refine for u in ids})
        catalog = Catalog.from_model(model)
        vecs = lambda: item_text_vectors(model, encoder)  # noqa: E731  (only "like #n" needs them)
        for r, u in enumerate(ids):
            t = per_user.get(str(u))
            if t:
                fused[r], said[u] = refine_row(fused[r], t, catalog, vecs, k)
    top, vals = topk(fused, k)
    ok = np.isfinite(vals)
    kk = top.shape[1]
    recs = pd.DataFrame({
        "user_id": np.repeat(np.asarray(ids, dtype=object), kk)[ok.ravel()],
        "item_id": model.vocab_.items.ids[top[ok]],
        "rank": np.broadcast_to(np.arange(1, kk + 1), top.shape)[ok].astype(np.int64),
        "score": vals[ok],
    })
    qset = set(qrows)
    recs.attrs["signals"] = {u: {"history": bool(has_history[r]), "text": r in qset,
                                 "popularity": not bool(has_history[r])} for r, u in enumerate(ids)}
    recs.attrs["query_attributes"] = named
    if refine is not None:
        recs.attrs["refinement"] = said
    return recs


#: the caller id of an `ask` without --user (a history only)
ASK_USER = "\x00ask"


def ask(model, text: str | None, user=None, history=None, k: int = 10, candidates: Iterable | None = None,
        refine=None, exclude_seen: bool = True, encoder: str = "default") -> pd.DataFrame:
    """One user's list for a sentence (`longrec ask "TEXT" --model DIR --user U / --history ITEMS`):
    `recommend_with_queries` for `user` (a training user, or a new one) and/or the items of
    `history` (ids, oldest first), refined by `refine` (a follow-up or a list of them). Ids are
    matched as the model spells them ("50" finds item 50). `text` None: the model's own list
    (then `refine` is what shapes it). attrs: "signals" (a list: history/text/popularity) and,
    with `refine`, "refinement" (what each follow-up was understood to ask)."""
    from longrec.data.ids import coerce_like

    if user is None and history is None:
        raise LongrecError("ask with a model needs a user (--user) or a history (--history).")
    uid = coerce_like([user], model.vocab_.users.kind)[0] if user is not None else ASK_USER
    items = list(coerce_like(list(history), model.vocab_.items.kind)) if history is not None else []
    unknown = [i for i, j in zip(items, model.vocab_.items.lookup(items) if items else []) if j < 0]
    known = [i for i in items if i not in set(unknown)]
    recs = recommend_with_queries(model, users=[uid], histories={uid: known} if known else None,
                                  queries={uid: text} if text is not None else {}, k=k, exclude_seen=exclude_seen,
                                  candidates=candidates, encoder=encoder, refine=refine)
    sig = recs.attrs["signals"][uid]
    signals = [s for s in ("history", "text", "popularity") if sig[s]]
    said = recs.attrs.get("refinement", {}).get(uid)
    if user is None:
        recs["user_id"] = ""
    recs.attrs = {"signals": signals, "unknown_history_items": unknown,
                  "query_attributes": recs.attrs.get("query_attributes", {}).get(uid, [])}
    if refine is not None:
        recs.attrs["refinement"] = said or []
    return recs
