"""Refinement: each supported kind of follow-up moves the list the way it says, says what it
understood, and a follow-up that is not understood leaves the list unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.models.intent import recommend_with_queries
from longrec.models.refine import Catalog, apply_refinement, parse_refinement, refine_row

GENRES = ["Comedy", "Horror", "Action", "Romance", "Drama", "War"]
AUTHORS = ["Ann Lee", "Bob Stone", "Cy Twombly"]


@pytest.fixture(scope="module")
def world():
    from longrec.data.dataset import Dataset
    from longrec.models.ease import EASE

    n = 60
    ids = np.arange(1, n + 1)
    items = pd.DataFrame({
        "item_id": ids,
        "title": [f"A {GENRES[i % 6].lower()} story number {i}" for i in ids],
        "year": [1950 + (i * 7) % 60 for i in ids],
        "genre": [GENRES[i % 6] + ("|Comedy" if i % 12 == 2 else "") for i in ids],
        "author": [AUTHORS[i % 3] for i in ids],
    })
    rng = np.random.default_rng(1)
    rows = [(u, int(i)) for u in range(1, 41) for i in rng.choice(ids, 8, replace=False)]
    model = EASE(l2=5.0, tune_l2=False).fit(Dataset(pd.DataFrame(rows, columns=["user_id", "item_id"]), items=items))
    return model, items.set_index("item_id")


def lists(model, refine=None, k=10, user=1, query="a story"):
    recs = recommend_with_queries(model, users=[user], queries={user: query} if query else {}, k=k,
                                  encoder="hash", refine=refine)
    return recs["item_id"].tolist(), recs.attrs.get("refinement", {}).get(user)


def test_catalog_reads_years_categories_people(world):
    model, items = world
    cat = Catalog.from_model(model)
    assert {"comedy", "horror", "war"} <= set(cat.categories) and "ann lee" in cat.people
    assert np.isfinite(cat.year).all() and cat.year.min() >= 1950


def test_more_recent_and_older_shift_the_years(world):
    model, items = world
    before, _ = lists(model)
    recent, said = lists(model, "something more recent")
    older, said_old = lists(model, "older ones please")
    y = items["year"]
    assert y[recent].mean() > y[before].mean() > y[older].mean()
    assert said[0]["applied"] and "later years up" in said[0]["understood"][0]
    assert "earlier years up" in said_old[0]["understood"][0]


@pytest.mark.parametrize("text,lo,hi", [("from the 90s", 1990, 1999), ("something from the seventies", 1970, 1979),
                                        ("before 1970", 0, 1969), ("after 1995", 1996, 3000),
                                        ("between 1960 and 1975", 1960, 1975)])
def test_year_ranges_narrow_the_list(world, text, lo, hi):
    model, items = world
    got, said = lists(model, text)
    assert got and all(lo <= items.loc[i, "year"] <= hi for i in got), (text, said)
    assert said[0]["applied"] and "only those years kept" in said[0]["understood"][0]


def test_genre_more_less_no_only(world):
    model, items = world
    has = lambda ids, g: sum(g in items.loc[i, "genre"] for i in ids)  # noqa: E731
    before, _ = lists(model, query=None)
    more, said = lists(model, "more comedy", query=None)
    assert has(more, "Comedy") > has(before, "Comedy") and said[0]["understood"] == ["more comedy: up-weighted"]
    funnier, _ = lists(model, "funnier", query=None)
    assert funnier == more  # a synonym says the same
    fewer, _ = lists(model, "fewer dramas", query=None)
    assert has(fewer, "Drama") < max(has(before, "Drama"), 1)
    none, said = lists(model, "no horror", query=None)
    assert has(none, "Horror") == 0 and len(none) == 10 and said[0]["understood"] == ["no horror: removed"]
    only, _ = lists(model, "only war films", query=None)
    assert all("War" in items.loc[i, "genre"] for i in only)


def test_less_violent_uses_the_explicit_mapping(world):
    model, items = world
    violent = lambda ids: sum(items.loc[i, "genre"].split("|")[0] in ("Action", "Horror", "War") for i in ids)  # noqa: E731
    before, _ = lists(model, query=None)
    after, said = lists(model, "less violent", query=None)
    assert violent(after) < violent(before)
    assert said[0]["understood"] == ["less violent (action, horror, war): down-weighted"]  # only the categories present


def test_by_author(world):
    model, items = world
    bob = lambda ids: sum(items.loc[i, "author"] == "Bob Stone" for i in ids)  # noqa: E731
    before, _ = lists(model)
    got, said = lists(model, "more by bob stone")
    assert bob(got) > bob(before)
    assert said[0]["understood"] == ["more author bob stone: up-weighted"]
    got, _ = lists(model, "nothing by Ann Lee")
    assert not any(items.loc[i, "author"] == "Ann Lee" for i in got)


def test_like_the_second_one_raises_its_neighbours(world):
    from longrec.models.intent import item_text_vectors

    model, items = world
    before, _ = lists(model, query=None)
    got, said = lists(model, "like the second one", query=None)
    assert said[0]["understood"][0].startswith("like #2 (")
    V = item_text_vectors(model, "hash")
    j2 = int(model.vocab_.items.lookup([before[1]])[0])
    sim = lambda ids: np.mean([V[int(model.vocab_.items.lookup([i])[0])] @ V[j2] for i in ids])  # noqa: E731
    assert sim(got) > sim(before)
    both, said = lists(model, "like the second one but funnier", query=None)
    assert [s.split(":")[0] for s in said[0]["understood"]] == [said[0]["understood"][0].split(":")[0], "more comedy"]
    titled, said_t = lists(model, f"like {items.loc[before[2], 'title']}", query=None)
    assert said_t[0]["understood"][0].startswith("like #3 (")


@pytest.mark.parametrize("text", ["asdf qwerty", "the weather is nice today", "", "   ", "like the 14th one", "!!!"])
def test_nonsense_is_not_understood_and_changes_nothing(world, text):
    model, _ = world
    before = recommend_with_queries(model, users=[1], queries={1: "a story"}, k=10, encoder="hash")
    after = recommend_with_queries(model, users=[1], queries={1: "a story"}, k=10, encoder="hash", refine=text)
    said = after.attrs["refinement"].get(1)
    if text.strip():
        assert said[0]["applied"] is False and "not understood" in said[0]["message"]
    assert after["item_id"].tolist() == before["item_id"].tolist()
    assert np.allclose(after["score"], before["score"])


def test_a_filter_that_leaves_nothing_changes_nothing(world):
    model, _ = world
    cat = Catalog.from_model(model)
    row = np.linspace(1, 0, len(cat.titles))
    for text in ("before 1900", "from the 1880s", "only war, only comedy"):
        ref = parse_refinement(text, cat, [0, 1, 2])
        assert ref.ok, text  # understood ...
        new, ref = apply_refinement(row, ref, cat)
        assert not ref.ok and "no item" in ref.message and np.array_equal(new, row), text  # ... but nothing is left


def test_follow_ups_chain_in_order(world):
    model, items = world
    cat = Catalog.from_model(model)
    row = np.random.default_rng(0).normal(size=len(cat.titles))
    _, said = refine_row(row, ["no horror", "from the 70s", "blah"], cat, None, 10)
    assert [s["applied"] for s in said] == [True, True, False]
    got, _ = lists(model, ["no horror", "from the 70s"], query=None)
    assert all(1970 <= items.loc[i, "year"] <= 1979 and "Horror" not in items.loc[i, "genre"] for i in got)
