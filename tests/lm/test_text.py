import doctest

import numpy as np
import pandas as pd
import pytest

import longrec.lm.generators
import longrec.lm.index
import longrec.lm.prompts
import longrec.lm.text
from longrec.errors import ConfigError
from longrec.lm.text import item_text, item_texts, readable_title, split_list, user_text


@pytest.mark.parametrize("mod", [longrec.lm.text, longrec.lm.prompts, longrec.lm.index, longrec.lm.generators])
def test_doctests(mod):
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0


def test_ml100k_row():
    row = pd.Series({"item_id": 1, "movie_title": "Toy Story", "release_year": 1995,
                     "class": "Animation Children's Comedy"})
    assert item_text(row) == "Toy Story (1995). Genres: Animation, Children's, Comedy."


def test_ml1m_row_year_not_repeated_and_float_year():
    row = {"item_id": "Toy Story (1995)", "movie_title": "Toy Story", "release_year": 1995.0,
           "genre": "Animation Children's Comedy"}
    assert item_text(row) == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    # title already carrying the year
    assert item_text({"title": "Heat (1995)", "year": 1995}) == "Heat (1995)."
    # no title column: a non-numeric item_id is the title
    assert item_text({"item_id": "Heat (1995)", "genre": "Action"}) == "Heat (1995). Genres: Action."
    # numeric item ids are never text
    assert item_text({"item_id": 7, "genre": "Action"}) == "Genres: Action."


def test_recbole_headers_and_missing_values():
    row = {"item_id:token": 3, "movie_title:token_seq": "Four Rooms", "release_year:token": np.nan,
           "class:token_seq": "unknown"}
    assert item_text(row) == "Four Rooms."
    assert item_text({"item_id": 1}) == ""


def test_other_text_columns_and_skips():
    row = {"item_id": 9, "product_name": "Wool hat", "brand": "Acme", "categories": "Hats|Winter",
           "description": "  Warm\n and soft ", "image_url": "http://x/y.png", "price": 9.5,
           "avg_rating": "4.5", "in_stock": True}
    assert item_text(row) == "Wool hat. Brand: Acme. Categories: Hats, Winter. Description: Warm and soft."


def test_long_fields_are_cut():
    t = item_text({"title": "X", "description": "word " * 10_000})
    assert len(t) <= 2000


def test_template():
    row = {"movie_title": "Heat", "release_year": 1995.0, "class": None}
    assert item_text(row, template="{movie_title} ({release_year}) [{class}]") == "Heat (1995) []"
    assert item_text(row, template="{unknown_col}!") == "!"
    with pytest.raises(ConfigError, match="template"):
        item_text(row, template="{movie_title")


def test_item_texts_dataframe(ml100k_items):
    texts = item_texts(ml100k_items)
    assert len(texts) == len(ml100k_items) == 1682
    assert texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert all(isinstance(t, str) and t for t in texts)
    sw = ml100k_items.index[ml100k_items["movie_title"] == "Star Wars"][0]
    assert texts[sw] == "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War."


def test_split_and_titles():
    assert split_list("a, b ,c") == ["a", "b", "c"]
    assert split_list("unknown") == []
    assert readable_title("Birdcage, The (1996)") == "The Birdcage (1996)"
    assert readable_title("Jour se lève, Le (1939)") == "Le Jour se lève (1939)"
    assert readable_title("Plain Title") == "Plain Title"


def test_user_text_order_privacy_and_limits():
    hist = [f"M{i}" for i in range(20)]  # oldest first
    t = user_text({"age": 30, "gender": "M", "user_id": 5}, hist, statement="  I love  westerns ")
    assert t.startswith("I love westerns. Recently watched: M19; M18;")
    assert t.count(";") == 9  # 10 titles
    assert "30" not in t and "gender" not in t.lower()  # attributes off by default
    t2 = user_text({"age": 30, "user_id": 5}, ["A"], use_attributes=True, n_recent=1)
    assert t2 == "Recently watched: A. About me: Age: 30."
    assert user_text() == ""
    assert user_text(history_titles=["A", "B", "C"], n_recent=2) == "Recently watched: C; B."
