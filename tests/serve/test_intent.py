"""Intent-aware /recommend: `text` with `user_id` and/or `history` gives the fused list, the same
one the library and `longrec recommend --queries` give, and says which signals it used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    """Two kinds of items (comedy / horror) with text saying so; odd users like horror."""
    from longrec.data.dataset import Dataset
    from longrec.models.ease import EASE

    rng = np.random.default_rng(0)
    items = pd.DataFrame({"item_id": np.arange(1, 41),
                          "title": [f"A {'funny comedy' if i % 2 else 'scary horror'} film number {i}" for i in range(1, 41)]})
    rows = []
    for u in range(1, 31):
        pool = np.arange(1 + (u % 2), 41, 2)
        for i in rng.choice(pool, 6, replace=False):
            rows.append((u, int(i)))
    d = tmp_path_factory.mktemp("intent") / "m"
    EASE(l2=10.0, tune_l2=False).fit(Dataset(pd.DataFrame(rows, columns=["user_id", "item_id"]), items=items)).save(d)
    return d


@pytest.fixture
def iclient(make_client, world_dir):
    return make_client(model=world_dir)


def ids(resp):
    assert resp.status_code == 200, resp.text
    return [it["item_id"] for it in resp.json()["items"]]


def test_fused_for_a_known_user_says_its_signals(iclient):
    r = iclient.post("/recommend", json={"user_id": 1, "text": "a funny comedy", "k": 5})
    body = r.json()
    assert body["signals"] == ["history", "text"]
    assert all(i % 2 == 1 for i in ids(r))  # comedies (odd), although user 1 likes horror
    assert {it["source"] for it in body["items"]} == {"fused"}
    plain = iclient.post("/recommend", json={"user_id": 1, "k": 5}).json()
    assert plain["signals"] == ["history"] and all(i % 2 == 0 for i in ids(iclient.post("/recommend", json={"user_id": 1, "k": 5})))


def test_brand_new_user_is_text_plus_popularity(iclient):
    body = iclient.post("/recommend", json={"user_id": "nobody", "text": "scary horror", "k": 5}).json()
    assert body["signals"] == ["text", "popularity"]
    assert len(body["items"]) == 5 and all(it["item_id"] % 2 == 0 for it in body["items"])
    assert iclient.post("/recommend", json={"text": "scary horror", "k": 5}).json()["signals"] == ["text"]
    empty = iclient.post("/recommend", json={"history": [], "text": "scary horror", "k": 5}).json()
    assert empty["signals"] == ["text", "popularity"] and [it["item_id"] for it in empty["items"]] == \
        [it["item_id"] for it in body["items"]]


def test_query_vector_is_cached(iclient):
    from longrec.serve.intent import intent_state

    iclient.post("/recommend", json={"user_id": 2, "text": "scary horror", "k": 3})
    svc = iclient.app.state.service
    cache = intent_state(svc.state, svc.encoder).queries
    misses = cache.misses
    for _ in range(3):
        iclient.post("/recommend", json={"user_id": 3, "text": "scary horror", "k": 3})
    assert cache.misses == misses and cache.hits >= 3


def test_query_cache_is_an_lru():
    from longrec.serve.intent import QueryCache

    c = QueryCache(maxsize=2)
    calls = []
    f = lambda t: calls.append(t) or np.array([len(t)])  # noqa: E731
    c.get("a", f), c.get("bb", f), c.get("a", f), c.get("ccc", f)  # "bb" is the least recently used
    c.get("a", f)
    c.get("bb", f)
    assert calls == ["a", "bb", "ccc", "bb"] and len(c) == 2


def test_cli_library_and_api_give_the_same_fused_list(iclient, world_dir, tmp_path, monkeypatch):
    """One contract: a known user, a user given only a history, and a brand-new user given only
    a sentence get the same fused list from the library, the CLI and the API."""
    from longrec.cli.main import app
    from longrec.models import Recommender, intent

    queries = {"1": "a funny comedy", "stranger": "scary horror", "nobody": "funny comedy film"}
    history = {"stranger": [2, 4, 6]}
    real = intent.recommend_with_queries
    monkeypatch.setattr(intent, "recommend_with_queries", lambda *a, **kw: real(*a, **{**kw, "encoder": "hash"}))
    lib = real(Recommender.load(world_dir), users=list(queries), histories=history, queries=queries, k=6,
               encoder="hash")

    pd.DataFrame({"user_id": list(queries), "query": list(queries.values())}).to_csv(tmp_path / "q.csv", index=False)
    pd.DataFrame({"user_id": "stranger", "item_id": history["stranger"]}).to_csv(tmp_path / "h.csv", index=False)
    out = CliRunner().invoke(app, ["recommend", "--model", str(world_dir), "--k", "6", "--queries", str(tmp_path / "q.csv"),
                                   "--history", str(tmp_path / "h.csv"), "--output", str(tmp_path / "r.csv")])
    assert out.exit_code == 0, out.output
    cli = pd.read_csv(tmp_path / "r.csv", dtype={"user_id": str})

    for u, q in queries.items():
        body = {"user_id": u, "text": q, "k": 6, **({"history": history[u]} if u in history else {})}
        api = ids(iclient.post("/recommend", json=body))
        want = lib.loc[lib["user_id"] == u, "item_id"].tolist()
        assert api == want == cli.loc[cli["user_id"] == u, "item_id"].tolist(), u
        assert len(want) == 6
    # a history alone (no user_id) is the same user as far as the fusion goes
    assert ids(iclient.post("/recommend", json={"history": [2, 4, 6], "text": "scary horror", "k": 6})) == \
        lib.loc[lib["user_id"] == "stranger", "item_id"].tolist()


def test_refine_field_matches_the_library_and_says_what_it_understood(iclient, world_dir):
    from longrec.models import Recommender
    from longrec.models.intent import recommend_with_queries

    model = Recommender.load(world_dir)
    for body, refine in [({"user_id": 1, "text": "a funny comedy"}, "like the second one"),
                         ({"history": [2, 4], "text": "scary horror"}, ["like the first one", "like #3"]),
                         ({"user_id": 1}, "like the last one")]:  # this table has titles only
        r = iclient.post("/recommend", json={**body, "k": 5, "refine": refine}).json()
        u = body.get("user_id", "h")
        lib = recommend_with_queries(model, users=[u], histories={u: body["history"]} if "history" in body else None,
                                     queries={u: body["text"]} if "text" in body else {}, k=5, encoder="hash",
                                     refine=refine)
        assert [it["item_id"] for it in r["items"]] == lib["item_id"].tolist(), body
        assert [x["understood"] for x in r["refinement"]] == [x["understood"] for x in lib.attrs["refinement"][u]]
        assert all(x["applied"] for x in r["refinement"])


def test_refine_nonsense_leaves_the_list_unchanged(iclient):
    body = {"user_id": 1, "text": "a funny comedy", "k": 5}
    plain = ids(iclient.post("/recommend", json=body))
    r = iclient.post("/recommend", json={**body, "refine": "purple monkey dishwasher"})
    assert ids(r) == plain
    said = r.json()["refinement"][0]
    assert said["applied"] is False and said["message"].startswith("not understood")
    bad = iclient.post("/recommend", json={"text": "comedy", "refine": "more recent"})
    assert bad.status_code == 422 and "refine needs user_id or history" in bad.json()["message"]


def test_ask_with_user_or_history_gives_the_api_list(iclient, world_dir, tmp_path, monkeypatch):
    from longrec.cli.main import app
    from longrec.models import intent

    real = intent.recommend_with_queries
    monkeypatch.setattr(intent, "recommend_with_queries", lambda *a, **kw: real(*a, **{**kw, "encoder": "hash"}))
    cases = [(["--user", "1"], {"user_id": 1}),
             (["--history", "2,4,6"], {"history": [2, 4, 6]}),
             (["--user", "brand-new"], {"user_id": "brand-new"}),
             (["--user", "1", "--refine", "like the second one", "--refine", "like #4"],
              {"user_id": 1, "refine": ["like the second one", "like #4"]})]
    for n, (args, body) in enumerate(cases):
        out = tmp_path / f"r{n}.csv"
        res = CliRunner().invoke(app, ["ask", "a funny comedy", "--model", str(world_dir), "--k", "6", *args,
                                       "--output", str(out)])
        assert res.exit_code == 0, res.output
        api = iclient.post("/recommend", json={**body, "text": "a funny comedy", "k": 6}).json()
        assert pd.read_csv(out)["item_id"].tolist() == [it["item_id"] for it in api["items"]], args
        assert "signals: " + ", ".join(api["signals"]) in " ".join(res.output.split())
    assert "understood: like #2" in " ".join(res.output.split())


def test_ask_fused_errors_are_one_clear_paragraph(world_dir, tmp_path):
    from longrec.cli.main import app

    r = CliRunner()
    no_model = r.invoke(app, ["ask", "comedy", "--user", "1", "--output", str(tmp_path / "x.csv")])
    assert no_model.exit_code == 2 and "--model" in no_model.output
    refine_alone = r.invoke(app, ["ask", "comedy", "--items", str(world_dir / "items.parquet"), "--refine", "older",
                                  "--output", str(tmp_path / "x.csv")])
    assert refine_alone.exit_code == 2 and "--refine" in refine_alone.output
    no_items = r.invoke(app, ["ask", "comedy", "--output", str(tmp_path / "x.csv")])
    assert no_items.exit_code == 2 and "--items" in no_items.output
    assert not (tmp_path / "x.csv").exists()
    said = r.invoke(app, ["ask", "comedy", "--model", str(world_dir), "--user", "1", "--refine", "zzz qqq",
                          "--output", str(tmp_path / "y.csv")])
    assert said.exit_code == 0 and "not understood" in said.output


def test_pitch_on_fused_results(iclient, world_dir, tmp_path, monkeypatch):
    from longrec.cli.main import app
    from longrec.models import intent

    real = intent.recommend_with_queries
    monkeypatch.setattr(intent, "recommend_with_queries", lambda *a, **kw: real(*a, **{**kw, "encoder": "hash"}))
    r = iclient.post("/recommend", json={"user_id": 1, "text": "a funny comedy", "k": 3, "pitch": True}).json()
    assert all(it["pitch"].startswith(it["title"]) for it in r["items"])
    assert "pitch" not in iclient.post("/recommend", json={"user_id": 1, "text": "a funny comedy", "k": 3}).json()["items"][0]
    res = CliRunner().invoke(app, ["ask", "a funny comedy", "--model", str(world_dir), "--user", "1", "--k", "3",
                                   "--pitch", "--output", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "p.csv")["pitch"].tolist() == [it["pitch"] for it in r["items"]]


def test_attribute_prior_same_in_library_and_api(make_client, tmp_path, monkeypatch):
    """A sentence naming a genre of the item table: /recommend and `longrec ask` give the
    library's list, and ask says what it read."""
    from longrec.cli.main import app
    from longrec.data.dataset import Dataset
    from longrec.models import intent
    from longrec.models import Recommender
    from longrec.models.ease import EASE
    from longrec.models.intent import recommend_with_queries

    rng = np.random.default_rng(1)
    items = pd.DataFrame({"item_id": np.arange(1, 41), "title": [f"Picture {i}" for i in range(1, 41)],
                          "genre": ["Comedy" if i % 2 else "Horror" for i in range(1, 41)]})
    rows = [(u, int(i)) for u in range(1, 31) for i in rng.choice(np.arange(1 + (u % 2), 41, 2), 6, replace=False)]
    d = tmp_path / "g"
    EASE(l2=10.0, tune_l2=False).fit(Dataset(pd.DataFrame(rows, columns=["user_id", "item_id"]), items=items)).save(d)
    c = make_client(model=d)
    lib = Recommender.load(d)
    for text in ("something funny", "a picture, no horror", "qwzx blorp"):
        got = recommend_with_queries(lib, users=[1], queries={1: text}, k=6, encoder="hash")
        want = got["item_id"].tolist()
        assert got.attrs["query_attributes"][1] == {"something funny": ["comedy"], "qwzx blorp": [],
                                                     "a picture, no horror": ["not horror"]}[text]
        assert ids(c.post("/recommend", json={"user_id": 1, "text": text, "k": 6})) == want, text
    real = intent.recommend_with_queries
    monkeypatch.setattr(intent, "recommend_with_queries", lambda *a, **kw: real(*a, **{**kw, "encoder": "hash"}))
    res = CliRunner().invoke(app, ["ask", "something funny", "--model", str(d), "--user", "1", "--k", "6",
                                   "--output", str(tmp_path / "a.csv")])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "a.csv")["item_id"].tolist() == \
        recommend_with_queries(lib, users=[1], queries={1: "something funny"}, k=6, encoder="hash")["item_id"].tolist()
    assert "read from the sentence: comedy" in " ".join(res.output.split())


def _fast_served(client) -> int:
    mw = client.app.middleware_stack
    while mw is not None and type(mw).__name__ != "FastPathMiddleware":
        mw = getattr(mw, "app", None)
    assert mw is not None
    return mw.fast.served


def test_fused_requests_with_a_cached_query_take_the_fast_path_and_answer_the_same(make_client, world_dir, tmp_path):
    fast = make_client(model=world_dir, db_url=f"sqlite:///{tmp_path / 'fast.db'}")
    slow = make_client(model=world_dir, db_url=f"sqlite:///{tmp_path / 'slow.db'}", fast_path=False)
    bodies = [{"user_id": 1, "text": "a funny comedy", "k": 5}, {"user_id": 2, "text": "a funny comedy"},
              {"user_id": "nobody", "text": "scary horror", "k": 3, "exclude_seen": False},
              {"user_id": 3, "text": "scary horror", "k": 4, "explain": True}]
    assert fast.get("/health").status_code == 200  # builds the middleware stack
    for body in bodies:
        before = _fast_served(fast)
        a, b = fast.post("/recommend", json=body), slow.post("/recommend", json=body)
        assert a.status_code == b.status_code == 200 and a.content == b.content, body
        # a sentence seen before (its vector cached) is answered by the fast path, a first use is not
        first_use = body["text"] not in [x["text"] for x in bodies[:bodies.index(body)]]
        assert _fast_served(fast) == before + (0 if first_use else 1), body
    # not the fast path's shape: the full path answers, the same way in both apps
    for body in ({"user_id": 1, "text": ""}, {"user_id": 1, "text": 5}, {"user_id": 1, "text": "a\x00b"},
                 {"user_id": 1, "text": "a funny comedy", "pitch": True}, {"user_id": 1, "text": "x" * 6000}):
        before = _fast_served(fast)
        a, b = fast.post("/recommend", json=body), slow.post("/recommend", json=body)
        assert a.status_code == b.status_code and a.json() == b.json(), body
        assert _fast_served(fast) == before, body


def test_response_says_which_catalogue_attributes_the_sentence_named(make_client, tmp_path):
    from longrec.data.dataset import Dataset
    from longrec.models.ease import EASE

    items = pd.DataFrame({"item_id": np.arange(1, 21), "title": [f"Film number {i}" for i in range(1, 21)],
                          "genre": ["Comedy" if i % 2 else "Horror" for i in range(1, 21)]})
    rows = [(u, int(i)) for u in range(1, 13) for i in range(1 + (u % 2), 21, 4)]
    d = tmp_path / "g"
    EASE(l2=10.0, tune_l2=False).fit(Dataset(pd.DataFrame(rows, columns=["user_id", "item_id"]), items=items)).save(d)
    c = make_client(model=d)
    body = c.post("/recommend", json={"user_id": 1, "text": "a comedy please, no horror", "k": 5}).json()
    assert body["understood"] == ["comedy", "not horror"]
    assert all(it["item_id"] % 2 == 1 for it in body["items"])  # comedies only
    again = c.post("/recommend", json={"user_id": 1, "text": "a comedy please, no horror", "k": 5})  # cached: fast path
    assert again.json() == body
    none = c.post("/recommend", json={"user_id": 1, "text": "something for tonight", "k": 5}).json()
    assert none["understood"] == []
    assert "understood" not in c.post("/recommend", json={"user_id": 1, "k": 5}).json()
