"""content-tfidf: TF-IDF of the item table's text, cold items scored from text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.data.dataset import Dataset
from longrec.errors import ConfigError
from longrec.models import Recommender, get_model_class


def books():
    items = pd.DataFrame({
        "item_id": ["b1", "b2", "b3", "b4", "b5"],
        "title": ["Red Moon", "Red Sun", "Blue Sea", "Moon Rising", "Green Hills"],
        "author": ["Ann Lee", "Bo Kim", "Ann Lee", "Cy Park", "Bo Kim"],
        "year": [2001, 2002, 2003, 2004, 2005],  # numeric: not a text column
    })
    # b4 and b5 are never interacted with: cold items
    inter = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["b1", "b3", "b2", "b3", "b2"]})
    return Dataset(inter, items)


def test_tfidf_scores_by_hand():
    from longrec.models.content_tfidf import ContentTFIDFConfig, tfidf_matrix

    ds = books()
    X = tfidf_matrix(ds.items, np.array(["b1", "b2", "b3", "b4", "b5"], dtype=object),
                     ContentTFIDFConfig(columns=["title"]))
    # N = 5 documents; df: red 2, moon 2, sun 1, ...; idf = ln(6 / (1 + df)) + 1; rows L2-normalised
    idf2, idf1 = np.log(6 / 3) + 1, np.log(6 / 2) + 1
    b1 = np.array([idf2, idf2]) / np.hypot(idf2, idf2)          # red, moon
    b4_moon = idf2 / np.hypot(idf2, idf1)                        # moon, rising
    assert X[0].toarray().max() == pytest.approx(b1[0], rel=1e-6)
    assert (X[0] @ X[3].T).toarray()[0, 0] == pytest.approx(b1[1] * b4_moon, rel=1e-5)
    assert X[0].nnz == 2 and X[3].nnz == 2


def test_cold_items_are_ranked_from_text():
    m = get_model_class("content-tfidf")().fit(books())
    # user 1 read two Ann Lee books (b1 Red Moon, b3 Blue Sea): among the cold items b4 "Moon Rising"
    # shares "moon" with b1; b5 shares nothing
    recs = m.recommend(users=[1], k=2, candidates=["b4", "b5"])
    assert list(recs["item_id"]) == ["b4", "b5"]
    assert recs["score"].iloc[0] > 0 and recs["score"].iloc[1] == 0
    # user 3 read a Bo Kim book: the cold Bo Kim book b5 comes first
    assert m.recommend(users=[3], k=1, candidates=["b4", "b5"])["item_id"].tolist() == ["b5"]


def test_score_is_the_cosine_of_the_mean_profile():
    m = get_model_class("content-tfidf")().fit(books())
    X = m.X_.toarray()
    p = X[[0, 2]].mean(axis=0)
    expect = X @ p / np.linalg.norm(p)
    got = m.score(users=[1]).loc[1].to_numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


def test_value_columns_make_an_author_token():
    plain = get_model_class("content-tfidf")({"columns": ["title"]}).fit(books())
    author = get_model_class("content-tfidf")({"columns": ["title"], "value_columns": ["author"]}).fit(books())
    # user 3 (Bo Kim's "Red Sun"): with titles only b1 "Red Moon" wins; the author token brings b5
    assert plain.recommend(users=[3], k=1, candidates=["b1", "b5"])["item_id"].tolist() == ["b1"]
    s = author.score(users=[3], items=["b5"]).iloc[0, 0]
    assert s > 0 and plain.score(users=[3], items=["b5"]).iloc[0, 0] == 0


def test_neighbours_text_knn():
    m = get_model_class("content-tfidf")({"neighbours": 1}).fit(books())
    N = (m.N_T_.T).toarray()
    X = m.X_.toarray()
    sims = X @ X[[0, 1, 2]].T  # training items b1, b2, b3
    for j in range(5):
        s = sims[j].copy()
        if j < 3:
            s[j] = -np.inf
        best = int(np.argmax(s))
        assert N[j, best] == pytest.approx(s[best], rel=1e-5) and (N[j] > 0).sum() <= 1
    # score(u, j) = similarity of j's nearest training item if the user read it
    sc = m.score(users=[1]).loc[1].to_numpy()
    np.testing.assert_allclose(sc, N[:, [0, 2]].sum(axis=1), rtol=1e-5, atol=1e-7)


def test_save_load_and_errors(tmp_path):
    m = get_model_class("content-tfidf")({"value_columns": ["author"], "neighbours": 2}).fit(books())
    m.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.score(users=[1, 2]), again.score(users=[1, 2]))
    with pytest.raises(ConfigError, match="item table"):
        get_model_class("content-tfidf")().fit(Dataset(books().interactions))
    with pytest.raises(ConfigError, match="no column"):
        get_model_class("content-tfidf")({"columns": ["blurb"]}).fit(books())
