"""A one-line pitch per intent result: grounded in the item's attributes that match the request;
a generator's line is shown only when it passes the grounding check (template otherwise)."""

from __future__ import annotations

import pandas as pd
import pytest

from longrec.explain.intent import intent_pitches
from test_explain import FixedGenerator  # a stand-in LLM with a fixed answer (tests/explain)




@pytest.fixture(scope="module")
def model():
    from longrec.data.dataset import Dataset
    from longrec.models.ease import EASE

    items = pd.DataFrame({"item_id": [1, 2, 3, 4], "title": ["Moon Base", "Laugh Riot", "Night Terror", "Laugh Again"],
                          "year": [1977, 1995, 1983, 1998], "genre": ["Sci-Fi|Adventure", "Comedy", "Horror", "Comedy"]})
    inter = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 2, 3, 4]})
    return EASE(l2=1.0, tune_l2=False).fit(Dataset(inter, items=items))


def test_template_names_what_matches_the_request(model):
    got = intent_pitches(model, [2, 1, 3], "a funny movie from the 90s")
    assert got[0]["text"] == "Laugh Riot (1995): Comedy, 1990s \u2014 as you asked." and got[0]["match"] == ["Comedy", "1990s"]
    assert got[1]["text"] == "Moon Base (1977): Sci-Fi, Adventure." and got[1]["match"] == []  # no claimed match
    assert all(p["generator"] == "template" and p["grounded"] for p in got)
    scary = intent_pitches(model, [3], "something scary")[0]
    assert scary["match"] == ["Horror"]


def test_generator_line_is_checked_and_falls_back_to_the_template(model):
    bad = FixedGenerator("Like Night Terror, but starring Tom Hanks!")  # another title and an invented person
    p = intent_pitches(model, [2], "a comedy", generator=bad)[0]
    assert not p["grounded"] and p["text"] == "Laugh Riot (1995): Comedy \u2014 as you asked."
    assert "Request: a comedy" in bad.prompts[0] and "It fits because it is Comedy" in bad.prompts[0]
    good = FixedGenerator("Laugh Riot is the comedy you asked for.")
    p = intent_pitches(model, [2], "a comedy", generator=good)[0]
    assert p["grounded"] and p["text"] == "Laugh Riot is the comedy you asked for."


def test_bad_inputs(model):
    from longrec.errors import LongrecError, UnknownIdError

    with pytest.raises(LongrecError):
        intent_pitches(model, [1], "  ")
    with pytest.raises((UnknownIdError, LongrecError)):
        intent_pitches(model, [99], "comedy")
