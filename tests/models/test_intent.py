"""Intent-aware ranking: the fused list follows the query and the history, for every kind of
user, and the library, the CLI and the files give the same list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.data.dataset import Dataset
from longrec.errors import LongrecError
from longrec.models.intent import fuse, recommend_with_queries


@pytest.fixture
def world():
    """Two kinds of items (comedy / horror) with text saying so; users like one kind."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame({"item_id": np.arange(1, 41),
                          "title": [f"A {'funny comedy' if i % 2 else 'scary horror'} film number {i}" for i in range(1, 41)]})
    rows = []
    for u in range(1, 31):
        pool = np.arange(1 + (u % 2), 41, 2)  # odd users like even (horror) items and vice versa
        for i in rng.choice(pool, 6, replace=False):
            rows.append((u, int(i)))
    train = Dataset(pd.DataFrame(rows, columns=["user_id", "item_id"]), items=items)
    from longrec.models.ease import EASE

    return EASE(l2=10.0, tune_l2=False).fit(train), items


def test_fused_list_follows_the_query(world):
    model, items = world
    funny = set(items.loc[items["title"].str.contains("comedy"), "item_id"])
    user = 1  # likes horror (even items)
    plain = model.recommend(users=[user], k=5)
    assert not set(plain["item_id"]) & funny
    fused = recommend_with_queries(model, users=[user], queries={user: "a funny comedy"}, k=5, encoder="hash")
    assert set(fused["item_id"]) <= funny and len(fused) == 5
    assert fused.attrs["signals"][user] == {"history": True, "text": True, "popularity": False}


def test_new_user_with_only_a_sentence(world):
    model, items = world
    recs = recommend_with_queries(model, users=["stranger"], queries={"stranger": "scary horror"}, k=5, encoder="hash")
    assert len(recs) == 5 and recs["item_id"].mod(2).eq(0).all()  # horror items are even
    assert recs.attrs["signals"]["stranger"] == {"history": False, "text": True, "popularity": True}


def test_users_without_a_query_get_the_plain_ranking(world):
    model, _ = world
    both = recommend_with_queries(model, users=[1, 2], queries={1: "funny"}, k=5, encoder="hash")
    plain = model.recommend(users=[2], k=5)
    assert list(both.loc[both["user_id"] == 2, "item_id"]) == list(plain["item_id"])


def test_fuse_gate_and_bad_settings(world):
    S = np.array([[3.0, 2.0, 1.0, 0.0]])
    R = np.array([[0.0, 0.1, 0.9, 0.8]])
    F = fuse(S, R, np.ones(4, bool), query_weight=0.0, query_gate=0.5)
    assert np.isinf(F[0, :2]).all() and F[0, 2] > F[0, 3]  # only the top half by R passes; S orders it
    model, _ = world
    with pytest.raises(LongrecError):
        recommend_with_queries(model, users=[1], queries={1: "x"}, query_gate=0.0, encoder="hash")
    with pytest.raises(LongrecError):
        recommend_with_queries(model, users=[1], queries={1: "   "}, encoder="hash")


def test_cli_library_and_files_agree(world, tmp_path, monkeypatch):
    """`longrec recommend --queries FILE` writes the list `recommend_with_queries` returns."""
    from longrec.cli.main import app
    from longrec.models import intent

    model, _ = world
    model.save(tmp_path / "m")
    pd.DataFrame({"user_id": [1, 2], "query": ["a funny comedy", "scary horror"]}).to_csv(tmp_path / "q.csv", index=False)
    real = intent.recommend_with_queries
    monkeypatch.setattr(intent, "recommend_with_queries",
                        lambda *a, **kw: real(*a, **{**kw, "encoder": "hash"}))
    out = CliRunner().invoke(app, ["recommend", "--model", str(tmp_path / "m"), "--k", "5",
                                   "--queries", str(tmp_path / "q.csv"), "--output", str(tmp_path / "r.csv")])
    assert out.exit_code == 0, out.output
    got = pd.read_csv(tmp_path / "r.csv")
    from longrec.models import Recommender

    lib = real(Recommender.load(tmp_path / "m"), users=[1, 2], queries={1: "a funny comedy", 2: "scary horror"},
               k=5, encoder="hash")
    assert list(got["item_id"]) == list(lib["item_id"]) and list(got["user_id"]) == list(lib["user_id"])
    bad = CliRunner().invoke(app, ["recommend", "--model", str(tmp_path / "m"), "--k", "5", "--query", "x",
                                   "--queries", str(tmp_path / "q.csv"), "--output", str(tmp_path / "r2.csv")])
    assert bad.exit_code == 2 and "not both" in bad.output and not (tmp_path / "r2.csv").exists()


def test_model_recommend_takes_queries_and_refine(world, monkeypatch):
    """The issue's contract: model.recommend(users=..., queries={user: text}, k=...) is the fused list."""
    from longrec.models import intent

    model, _ = world
    real = intent.recommend_with_queries
    monkeypatch.setattr(intent, "recommend_with_queries", lambda *a, **kw: real(*a, **{**kw, "encoder": "hash"}))
    got = model.recommend(users=[1, 2], queries={1: "a funny comedy"}, k=5)
    want = real(model, users=[1, 2], queries={1: "a funny comedy"}, k=5, encoder="hash")
    assert got["item_id"].tolist() == want["item_id"].tolist() and got.attrs["signals"] == want.attrs["signals"]
    refined = model.recommend(users=[1], queries={1: "a funny comedy"}, refine="like the third one", k=5)
    assert refined.attrs["refinement"][1][0]["applied"]
    assert model.recommend(users=[1], k=5)["item_id"].tolist() == real(model, users=[1], k=5, encoder="hash")["item_id"].tolist()


@pytest.fixture
def genre_world():
    """Items whose titles say nothing of their genre (the genre is a column only); users like
    one genre (odd users horror, even users comedy)."""
    rng = np.random.default_rng(1)
    items = pd.DataFrame({"item_id": np.arange(1, 41), "title": [f"Picture {i}" for i in range(1, 41)],
                          "genre": ["Comedy" if i % 2 else "Horror" for i in range(1, 41)]})
    rows = []
    for u in range(1, 31):
        for i in rng.choice(np.arange(1 + (u % 2), 41, 2), 6, replace=False):
            rows.append((u, int(i)))
    from longrec.models.ease import EASE

    return EASE(l2=10.0, tune_l2=False).fit(Dataset(pd.DataFrame(rows, columns=["user_id", "item_id"]), items=items)), items


def test_a_recognised_attribute_raises_matching_items(genre_world):
    model, _ = genre_world
    user = 1  # likes horror (even items)
    off = recommend_with_queries(model, users=[user], queries={user: "something funny tonight"}, k=5, encoder="hash",
                                 attribute_weight=0.0)
    on = recommend_with_queries(model, users=[user], queries={user: "something funny tonight"}, k=5, encoder="hash",
                                attribute_weight=3.0)
    assert on.attrs["query_attributes"][user] == ["comedy"]  # "funny" is a synonym of the genre column's value
    assert on["item_id"].mod(2).eq(1).all()  # all comedies (odd) for a horror fan
    assert on["item_id"].mod(2).eq(1).sum() > off["item_id"].mod(2).eq(1).sum()


def test_a_negated_attribute_lowers_matching_items(genre_world):
    model, _ = genre_world
    user = 1
    plain = recommend_with_queries(model, users=[user], queries={user: "a picture for tonight"}, k=5, encoder="hash")
    no = recommend_with_queries(model, users=[user], queries={user: "a picture for tonight, no horror"}, k=5,
                                encoder="hash", attribute_weight=3.0)
    assert no.attrs["query_attributes"][user] == ["not horror"]
    assert no["item_id"].mod(2).eq(0).sum() < plain["item_id"].mod(2).eq(0).sum()


def test_an_unknown_word_changes_nothing(genre_world):
    model, _ = genre_world
    q = {1: "qwzx blorp", 2: "something for the weekend"}
    on = recommend_with_queries(model, users=[1, 2], queries=q, k=8, encoder="hash")
    off = recommend_with_queries(model, users=[1, 2], queries=q, k=8, encoder="hash", attribute_weight=0.0)
    assert on.attrs["query_attributes"] == {1: [], 2: []}
    pd.testing.assert_frame_equal(on, off)
    with pytest.raises(LongrecError):
        recommend_with_queries(model, users=[1], queries=q, encoder="hash", attribute_weight=-1.0)


def test_query_attributes_reads_people_and_negation():
    from longrec.models.intent import query_attributes
    from longrec.models.refine import Catalog

    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "title": ["One", "Two", "Three", "Four"],
                          "author": ["Stephen King", "Stephen King", "Vintage", "Agatha Christie"]})
    cat = Catalog.from_items(items["item_id"].to_numpy(), items)
    got = query_attributes("I want to read a book by Stephen King", cat)
    assert [(lab, list(m), s) for lab, m, s in got] == [("author stephen king", [True, True, False, False], 1)]
    assert query_attributes("a vintage paperback", cat) == []  # a one-word name needs its capital
    assert [lab for lab, _, _ in query_attributes("Something by Vintage", cat)] == ["author vintage"]
    assert [s for _, _, s in query_attributes("anything but not Agatha Christie", cat)] == [-1]
    # a negation further back does not flip it: "I have not read any Agatha Christie" asks for her
    assert [s for _, _, s in query_attributes("I have not read any Agatha Christie books", cat)] == [1]
