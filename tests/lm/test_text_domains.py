"""Item text, category lists, explanations, duplicates and readable output for domains other
than movies (books, clothing), and the MovieLens text pinned byte for byte."""

from __future__ import annotations

import hashlib
import tomllib

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from longrec.errors import ConfigError
from longrec.lm.catalog import add_display_columns, dedupe_items, display_table, duplicate_groups, normalise_text
from longrec.lm.text import item_lists, item_text, item_texts, parse_list_column, split_list

BOOKS = pd.DataFrame({
    "item_id": ["b1", "b2", "b3", "b4", "b5", "b6"],
    "title": ["The Hobbit", "Hobbit, The (Paperback)", "The Silmarillion", "Dune", "[Live] Children of Dune", "Emma"],
    "author": ["J.R.R. Tolkien", "J. R. R. Tolkien", "J.R.R. Tolkien", "Frank Herbert", "Frank Herbert", "Jane Austen"],
    "year": [1937, 0, 1977, 1965, 0, 1815],
    "publisher": ["Allen", "Unwin", "Allen", "Chilton", "Putnam", "unknown"],
})


# ------------------------------------------------------------------ item text
def test_book_text_labels_and_missing_values():
    t = item_texts(BOOKS)
    assert t[0] == "The Hobbit (1937). Author: J.R.R. Tolkien. Publisher: Allen."
    assert t[1] == "The Hobbit (Paperback). Author: J. R. R. Tolkien. Publisher: Unwin."   # year 0: no "(0)"
    assert t[5] == "Emma (1815). Author: Jane Austen."                                     # "unknown" left out
    assert not any("(0)" in x or "Genres" in x for x in t)
    assert item_text({"title": "X", "year": 0.0}) == "X."
    assert item_text({"title": "X", "year": "0"}) == "X."


def test_clothing_class_is_not_genres():
    row = {"item_id": 1078, "title": "Soft knit dress", "class": "Fine gauge", "Department Name": "Tops",
           "Division Name": "General"}
    assert item_text(row) == "Soft knit dress. Class: Fine gauge. Department: Tops. Division: General."
    assert item_text({"Class Name": "Dresses"}) == "Class: Dresses."
    # MovieLens's `class` (next to movie_title) stays a genre list
    assert item_text({"movie_title": "Heat", "class": "Action Crime"}) == "Heat. Genres: Action, Crime."


def test_text_columns_choose_and_order():
    t = item_texts(BOOKS, columns=["author", "title", "year"])
    assert t[0] == "Author: J.R.R. Tolkien. The Hobbit (1937)."
    assert t[1] == "Author: J. R. R. Tolkien. The Hobbit (Paperback)."
    assert item_texts(BOOKS, columns=["Title"])[3] == "Dune."        # case-insensitive names
    assert item_texts(BOOKS, columns=["publisher"])[5] == ""           # only an unknown value
    # a number chosen by name is used; zero is not
    assert item_text({"title": "A", "pages": 300}, columns=["title", "pages"]) == "A. Pages: 300."
    assert item_text({"title": "A", "pages": 0}, columns=["title", "pages"]) == "A."
    with pytest.raises(ConfigError, match="'isbn'.*author"):
        item_texts(BOOKS, columns=["title", "isbn"])


def test_item_texts_for_models_use_text_columns():
    from longrec.models._lm_items import item_texts_for

    ids = np.array(["b4", "zz"], dtype=object)
    assert item_texts_for(ids, BOOKS, columns=["title", "author"]) == ["Dune. Author: Frank Herbert.", "Item zz"]
    assert item_texts_for(ids, BOOKS)[0] == "Dune (1965). Author: Frank Herbert. Publisher: Chilton."
    with pytest.raises(ConfigError):
        item_texts_for(ids, BOOKS, columns=["nope"])


# ------------------------------------------------------------------ one list parser
def test_one_list_parser():
    assert split_list("Science Fiction|Drama") == ["Science Fiction", "Drama"]
    # one separator per column: "Science Fiction" alone stays whole in a |-separated column
    assert parse_list_column(["Science Fiction|Drama", "Science Fiction", None], "genres") == \
        [["Science Fiction", "Drama"], ["Science Fiction"], []]
    assert parse_list_column(["Animation Children's Comedy"], "class") == [["Animation", "Children's", "Comedy"]]
    assert parse_list_column(["dark comedy", "heist"], "tags") == [["dark comedy"], ["heist"]]
    tags = pd.DataFrame({"item_id": [1, 2], "title": ["A", "B"], "tags": ["space, robots", "robots"]})
    lists, col = item_lists(tags, [2, 1, 9])
    assert col == "tags" and lists == [["robots"], ["space", "robots"], []]
    assert item_texts(tags)[0] == "A. Tags: space, robots."


def test_simulator_uses_the_shared_parser():
    """Regression: the simulator had its own copy (whitespace split, no tags): a CSV item table
    with "Science Fiction|Drama" gave it the genres `Science` and `Fiction|Drama`."""
    from longrec.simulate.world import _genres

    items = pd.DataFrame({"item_id": [1, 2, 3], "title": ["A", "B", "C"],
                          "genres": ["Science Fiction|Drama", "Drama", "Science Fiction"]})
    M, names = _genres(items, np.array([1, 2, 3]))
    assert names == ["Drama", "Science Fiction"]
    np.testing.assert_allclose(M, [[0.5, 0.5], [1, 0], [0, 1]])
    tagged = pd.DataFrame({"item_id": [1, 2], "tags": ["space|robots", "robots"]})
    M, names = _genres(tagged, np.array([1, 2]))
    assert names == ["robots", "space"] and M.shape == (2, 2)


def test_rerank_uses_the_shared_parser():
    from longrec.rerank.core import _genre_lists

    items = pd.DataFrame({"item_id": [1, 2], "genres": ["Science Fiction|Drama", "Science Fiction"]})
    assert list(_genre_lists(items)) == [["Science Fiction", "Drama"], ["Science Fiction"]]


# ------------------------------------------------------------------ explanations
def _book_model():
    from longrec.data.dataset import Dataset
    from longrec.models.registry import get_model_class

    inter = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4],
                          "item_id": ["b1", "b3", "b4", "b4", "b5", "b6", "b1", "b3", "b2", "b6", "b4"]})
    return get_model_class("ease")({"l2": 1.0, "tune_l2": False}).fit(Dataset(inter, BOOKS.copy()))


def test_explanation_cites_the_shared_author():
    from longrec.explain import explain
    from longrec.explain.facts import catalog_of

    m = _book_model()
    out = explain(m, 1, "b2")
    assert {"type": "author", "value": "J. R. R. Tolkien", "share": 0.6667} in out["attributes"]
    assert "author J. R. R. Tolkien" in out["text"] and out["grounded"] is True
    cat = catalog_of(m)
    assert set(cat.attributes) == {"author", "publisher"} and cat.titles[1] == "The Hobbit (Paperback)"
    # a generator that names an author outside the facts is rejected
    from tests.explain.test_explain import FixedGenerator

    bad = explain(m, 1, "b2", generator=FixedGenerator("You will love this Jane Austen classic."))
    assert bad["grounded"] is False and "Austen" not in bad["text"]


# ------------------------------------------------------------------ duplicates, display
def test_dedupe_keeps_the_most_popular_id():
    kept, mapping = dedupe_items(BOOKS, popularity={"b2": 10, "b1": 3})
    assert mapping == {"b1": "b2"} and list(kept["item_id"]) == ["b2", "b3", "b4", "b5", "b6"]
    kept, mapping = dedupe_items(BOOKS)                           # no popularity: the first row
    assert mapping == {"b2": "b1"}
    assert duplicate_groups(BOOKS) == [["b1", "b2"]]
    assert normalise_text("Harry Potter (Book 2)") != normalise_text("Harry Potter (Book 1)")
    no_author = BOOKS.drop(columns="author")
    assert dedupe_items(no_author)[1] == {} and duplicate_groups(no_author) == []


def test_display_columns():
    d = display_table(BOOKS)
    assert list(d.columns) == ["item_id", "title", "author", "publisher"]
    assert d["title"].tolist()[:2] == ["The Hobbit (1937)", "The Hobbit (Paperback)"]
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": ["b6", "zz"], "rank": [1, 2], "score": [0.5, 0.1]})
    out = add_display_columns(recs, BOOKS)
    assert out.columns.tolist()[:4] == ["user_id", "item_id", "rank", "score"]
    assert out["title"].tolist() == ["Emma (1815)", ""] and out["publisher"].tolist() == ["", ""]
    movies = pd.DataFrame({"item_id": [1], "movie_title": ["Usual Suspects, The"], "release_year": ["1995"],
                           "class": ["Crime Thriller"]})
    assert display_table(movies).to_dict("records") == [
        {"item_id": 1, "title": "The Usual Suspects (1995)", "genres": "Crime, Thriller"}]


# ------------------------------------------------------------------ CLI
@pytest.fixture
def books_files(tmp_path):
    items = tmp_path / "items.csv"
    BOOKS.to_csv(items, index=False)
    inter = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4],
                          "item_id": ["b1", "b3", "b4", "b4", "b5", "b6", "b1", "b3", "b2", "b6", "b4"]})
    train = tmp_path / "train.csv"
    inter.to_csv(train, index=False)
    return tmp_path, items, train


@pytest.fixture
def ask_cli(monkeypatch):
    import longrec.lm.encoders as E
    from longrec.cli._common import handle_errors
    from longrec.cli.ask import ask
    from tests.lm.conftest import FakeEncoder

    fake = FakeEncoder()
    monkeypatch.setattr(E, "default_encoder", lambda: fake)
    app = typer.Typer()
    app.command()(handle_errors(ask))
    app.command("noop")(lambda: None)
    return app


def test_cli_ask_dedupe_titles_text_columns(ask_cli, books_files):
    tmp, items, _ = books_files
    out = tmp / "o.csv"
    r = CliRunner().invoke(ask_cli, ["ask", "hobbit tolkien", "--items", str(items), "--k", "6",
                                     "--output", str(out), "--with-titles", "--text-columns", "title,author"])
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(out)
    assert "b2" not in set(recs["item_id"]) and len(recs) == 5          # dedupe is on by default
    assert recs.columns.tolist() == ["user_id", "item_id", "rank", "score", "title", "author", "publisher"]
    r = CliRunner().invoke(ask_cli, ["ask", "hobbit", "--items", str(items), "--k", "6", "--no-dedupe",
                                     "--output", str(out)])
    assert r.exit_code == 0 and len(pd.read_csv(out)) == 6
    assert pd.read_csv(out).columns.tolist() == ["user_id", "item_id", "rank", "score"]
    # a candidate that is a dropped edition is answered by the kept one
    cand = tmp / "cand.csv"
    pd.DataFrame({"item_id": ["b2", "b6"]}).to_csv(cand, index=False)
    r = CliRunner().invoke(ask_cli, ["ask", "hobbit", "--items", str(items), "--candidates", str(cand),
                                     "--output", str(out)])
    assert r.exit_code == 0 and set(pd.read_csv(out)["item_id"]) == {"b1", "b6"}
    r = CliRunner().invoke(ask_cli, ["ask", "hobbit", "--items", str(items), "--text-columns", "title,isbn",
                                     "--output", str(out)])
    assert r.exit_code == 2 and "isbn" in r.output and "Traceback" not in r.output
    no_author = tmp / "no_author.csv"
    BOOKS.drop(columns="author").to_csv(no_author, index=False)
    r = CliRunner().invoke(ask_cli, ["ask", "hobbit", "--items", str(no_author), "--dedupe", "--output", str(out)])
    assert r.exit_code == 2 and "author" in r.output


def test_cli_recommend_with_titles_and_show(books_files):
    from longrec.cli.main import app

    tmp, items, train = books_files
    run = CliRunner().invoke
    assert run(app, ["train", "--model", "ease", "--train", str(train), "--items", str(items),
                     "--out", str(tmp / "m")]).exit_code == 0
    r = run(app, ["recommend", "--model", str(tmp / "m"), "--k", "2", "--output", str(tmp / "r.csv"), "--with-titles"])
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(tmp / "r.csv", keep_default_na=False)
    assert {"title", "author"} <= set(recs.columns) and all(recs["title"])
    r = run(app, ["show", "--user", "2", "--model", str(tmp / "m"), "--k", "3"])
    assert r.exit_code == 0, r.output
    assert "[Live] Children of Dune" in r.output          # escaped, not eaten as markup
    assert "Emma (1815)" in r.output and "score" in r.output
    r = run(app, ["show", "--user", "99", "--model", str(tmp / "m")])
    assert r.exit_code == 2 and "--history" in r.output
    r = run(app, ["train", "--model", "ease", "--train", str(train), "--items", str(items),
                  "--out", str(tmp / "m2"), "--text-columns", "title"])
    assert r.exit_code == 2 and "does not use item text" in r.output


def test_cli_train_text_columns_saved_with_the_model(books_files):
    from longrec.cli.main import app

    tmp, items, train = books_files
    cfg = tmp / "seq.toml"
    cfg.write_text('encoder = "hash"\nepochs = 1\ndim = 8\nn_layers = 1\nn_heads = 1\nmax_len = 5\nnum_threads = 1\n')
    r = CliRunner().invoke(app, ["train", "--model", "lm-seq", "--train", str(train), "--items", str(items),
                                 "--config", str(cfg), "--out", str(tmp / "m"), "--text-columns", "title,author"])
    assert r.exit_code == 0, r.output
    saved = tomllib.loads((tmp / "m" / "config.toml").read_text())
    assert saved["config"]["item_text_columns"] == ["title", "author"]
    r = CliRunner().invoke(app, ["train", "--model", "lm-seq", "--train", str(train), "--items", str(items),
                                 "--config", str(cfg), "--out", str(tmp / "m3"), "--text-columns", "title,isbn"])
    assert r.exit_code == 2 and "isbn" in r.output and not (tmp / "m3").exists()


# ------------------------------------------------------------------ real data
#: sha256 of "\n".join(item_texts(...)) of the whole item table, made before the change that
#: added text_columns; the embedding cache and earlier figures depend on these texts.
ML100K_SHA = "ebdb527ea22dd07b2058844277a73d499aa924633d74492a99376df4edbc926e"
ML1M_SHA = "ab7f2117ef4eef799a636430f074f2519882ca93fdee9095372ff78e26b44621"


@pytest.mark.realdata
def test_movielens_text_byte_identical(real_data_dir):
    from longrec.data import read_items

    t = item_texts(read_items(real_data_dir / "ml-100k" / "ml-100k.item"))
    assert t[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert t[49] == "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War."
    assert t[266] == "unkonwn (unkonwn)." and t[1372] == "Good Morning (1971)."
    assert hashlib.sha256("\n".join(t).encode()).hexdigest() == ML100K_SHA
    t = item_texts(read_items(real_data_dir / "ml-1m" / "ml-1m.item.gz"))
    assert t[49] == "The Usual Suspects (1995). Genres: Crime, Thriller."
    assert hashlib.sha256("\n".join(t).encode()).hexdigest() == ML1M_SHA


@pytest.mark.realdata
def test_book_crossing_b1(real_data_dir):
    from longrec.data import read_items

    items = read_items(real_data_dir / "book-crossing" / "splits" / "b1" / "items.csv")
    t = item_texts(items)
    assert t[0] == "Angelas Ashes. Author: Frank Mccourt. Publisher: Harpercollins Uk."
    assert all("Author:" in x and "Publisher:" in x for x in t[:100])
    assert not any("(0)" in x or "Genres:" in x for x in t)
    groups = duplicate_groups(items)
    assert len(groups) > 100
    wh = next(g for g in groups if "0553211412" in g)                   # Wuthering Heights, Bantam
    assert "0141439556" in wh                                           # ... and Penguin Classics
    kept, mapping = dedupe_items(items)
    assert len(kept) == len(items) - len(mapping) and set(mapping.values()) <= set(kept["item_id"])
