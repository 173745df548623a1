import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from longrec.errors import DataError, LongrecError, ModelError, UnknownIdError
from longrec.lm.cache import CachedEncoder
from longrec.lm.errors import LMError
from longrec.lm.index import ItemIndex
from longrec.lm.query import QueryError, recommend_text

from .conftest import FakeEncoder


def test_index_search_candidates_exclude_ties():
    v = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    idx = ItemIndex(["a", "b", "c", "d"], v)
    ids, sc = idx.search(np.array([2.0, 0.0]), k=3)
    assert ids.tolist() == [["a", "b", "d"]]  # tie a/b broken by index order
    assert sc.dtype == np.float32 and np.allclose(sc[0], [1, 1, np.sqrt(0.5)])
    ids, _ = idx.search(np.array([[1.0, 0.0], [0.0, 1.0]]), k=2, candidates=["c", "b", "zz"], exclude=["b"])
    assert ids.tolist() == [["c"], ["c"]]
    ids, sc = idx.search(np.array([1.0, 0.0]), k=10)
    assert ids.shape == (1, 4)
    ids, sc = idx.search(np.array([1.0, 0.0]), k=2, candidates=[])
    assert ids.shape == (1, 0)
    with pytest.raises(ValueError, match="columns"):
        idx.search(np.ones(3), k=1)
    with pytest.raises(ValueError, match="more than once"):
        ItemIndex([1, 1], np.ones((2, 2)))


def test_index_int_ids_coercion_and_roundtrip(tmp_path):
    idx = ItemIndex([10, 20, 30], np.eye(3, dtype=np.float32), identity="fake|x")
    assert idx.positions(["20", 30, 99]).tolist() == [1, 2, -1]
    idx.save(tmp_path / "ix")
    back = ItemIndex.load(tmp_path / "ix")
    assert back.item_ids.tolist() == [10, 20, 30] and back.item_ids.dtype.kind == "i"
    assert np.array_equal(back.vectors, idx.vectors) and back.identity == "fake|x"
    s = ItemIndex(["Toy Story (1995)", "x"], np.eye(2, dtype=np.float32))
    s.save(tmp_path / "s")
    assert ItemIndex.load(tmp_path / "s").item_ids.tolist() == ["Toy Story (1995)", "x"]
    with pytest.raises(ModelError, match="no item index"):
        ItemIndex.load(tmp_path / "nothing")
    with pytest.raises(UnknownIdError):
        idx.vectors_for([99])


def test_recommend_text_frame(small_items, tmp_path):
    enc = CachedEncoder(FakeEncoder(), tmp_path / "c.sqlite")
    recs = recommend_text("animation children", small_items, k=3, encoder=enc)
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert recs["rank"].tolist() == [1, 2, 3]
    assert recs["user_id"].isna().all()
    assert set(recs["item_id"][:2]) == {1, 3}
    assert recs["score"].is_monotonic_decreasing
    r2 = recommend_text("animation children", small_items, k=5, encoder=enc, exclude=[1], candidates=[1, 3, 4],
                        user_id="u7")
    assert r2["item_id"].tolist()[0] == 3 and 1 not in r2["item_id"].tolist() and len(r2) == 2
    assert (r2["user_id"] == "u7").all()
    # precomputed vectors and an index give the same answer
    idx = ItemIndex.from_items(small_items, enc)
    r3 = recommend_text("animation children", None, k=3, encoder=enc, item_vectors=idx)
    r4 = recommend_text("animation children", small_items, k=3, encoder=enc, item_vectors=idx.vectors)
    pd.testing.assert_frame_equal(r3, recs)
    pd.testing.assert_frame_equal(r4, recs)


def test_recommend_text_errors(small_items, tmp_path):
    enc = FakeEncoder()
    for bad, msg in ((None, "None"), ("", "empty"), ("   ", "empty"), (5, "string"), ("x" * 100_000, "characters")):
        with pytest.raises(QueryError, match=msg):
            recommend_text(bad, small_items, encoder=enc)
    with pytest.raises(QueryError, match="k must"):
        recommend_text("x", small_items, k=0, encoder=enc)
    with pytest.raises(UnknownIdError, match="candidate"):
        recommend_text("x", small_items, encoder=enc, candidates=[99, 98])
    with pytest.raises(DataError, match="empty"):
        recommend_text("x", small_items.iloc[:0], encoder=enc)
    with pytest.raises(DataError, match="rows"):
        recommend_text("x", small_items, encoder=enc, item_vectors=np.ones((2, 64)))
    with pytest.raises(DataError):
        recommend_text("x", small_items.drop(columns="item_id"), encoder=enc)
    other = ItemIndex.from_items(small_items, FakeEncoder(name="v2"))
    with pytest.raises(LMError, match="another encoder"):
        recommend_text("x", small_items, encoder=enc, item_vectors=other)
    assert isinstance(QueryError("x"), LongrecError)


@pytest.fixture
def cli(monkeypatch):
    import longrec.lm.encoders as E
    from longrec.cli._common import handle_errors
    from longrec.cli.ask import ask

    fake = FakeEncoder()
    monkeypatch.setattr(E, "default_encoder", lambda: fake)
    app = typer.Typer()
    app.command()(handle_errors(ask))
    app.command("noop")(lambda: None)  # keep a multi-command app, like the real one
    return app


def test_cli_ask(cli, small_items, tmp_path):
    items = tmp_path / "items.csv"
    small_items.to_csv(items, index=False)
    out = tmp_path / "out" / "RECS.csv"
    r = CliRunner().invoke(cli, ["ask", "animation children", "--items", str(items), "--k", "2",
                                 "--output", str(out)])
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(out)
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"] and len(recs) == 2
    assert set(recs["item_id"]) == {1, 3}
    # candidates file + a saved ItemIndex as --model
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"item_id": [2, 4]}).to_csv(cand, index=False)
    ItemIndex.from_items(small_items, FakeEncoder()).save(tmp_path / "model")
    r = CliRunner().invoke(cli, ["ask", "animation children", "--items", str(items), "--candidates", str(cand),
                                 "--model", str(tmp_path / "model"), "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert set(pd.read_csv(out)["item_id"]) == {2, 4}


@pytest.mark.parametrize("args,msg", [
    (["", "--items", "ITEMS"], "empty"),
    (["x", "--items", "ITEMS", "--k", "0"], "--k"),
    (["x", "--items", "MISSING"], ""),
    (["x", "--items", "ITEMS", "--model", "MISSING"], "does not exist"),
    (["x", "--items", "ITEMS", "--candidates", "CAND"], "candidate"),
])
def test_cli_ask_errors(cli, small_items, tmp_path, args, msg):
    items = tmp_path / "items.csv"
    small_items.to_csv(items, index=False)
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"item_id": [77]}).to_csv(cand, index=False)
    sub = {"ITEMS": str(items), "MISSING": str(tmp_path / "nope"), "CAND": str(cand)}
    args = [sub.get(a, a) for a in args]
    r = CliRunner().invoke(cli, ["ask", *args, "--output", str(tmp_path / "o.csv")])
    assert r.exit_code != 0
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert msg in r.output
