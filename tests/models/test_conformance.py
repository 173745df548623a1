"""The conformance suite every model passes (add new models to FAST_CONFIGS if their
defaults are slow; everything else is automatic through the registry)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from longrec.data.dataset import Dataset
from longrec.errors import ConfigError, LongrecError, UnknownIdError
from longrec.models import Recommender, available_models, get_model_class
from tests.conftest import make_synthetic

_SEQ = {"encoder": "hash", "epochs": 3, "dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 10, "num_threads": 1}
FAST_CONFIGS = {
    "bpr": {"epochs": 4, "eval_every": 2, "factors": 8},
    "lm-seq": _SEQ,
    "lm-twotower": {"encoder": "hash", "epochs": 3, "dim": 16, "num_threads": 1},
    "blend": {"models": [{"name": "ease", "config": {"tune_l2": False, "l2": 10.0}}, {"name": "lm-seq", "config": _SEQ}],
              "weight_step": 0.25},
    "lm-twotower-dp": {"encoder": "hash", "epochs": 3, "batch_size": 8, "num_threads": 1},
    "lm-linear-dp": {"encoder": "hash"},
    "lm-linear": {"encoder": "hash"},
    # the private path (DP-SGD) when Opacus's accountant is installed, plain lm-seq otherwise
    "lm-seq-dp": {**_SEQ, "dp_epochs": 2, "dp_batch_size": 16,
                  **({"dp_epsilon": 8.0, "reproducible_noise": True}
                     if __import__("importlib").util.find_spec("opacus") else {})},
}
MODELS = available_models()


def fast(name: str) -> dict:
    return dict(FAST_CONFIGS.get(name, {}))


@pytest.fixture(params=MODELS)
def name(request):
    return request.param


@pytest.fixture
def fitted(name, synthetic):
    train, valid = synthetic
    return get_model_class(name)(fast(name)).fit(train, valid)


def test_default_construction_does_no_work(name):
    m = get_model_class(name)()
    assert not m.is_fitted
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(m))


def test_config_round_trip(name):
    klass = get_model_class(name)
    cfg = klass.Config(**fast(name))
    again = klass(cfg.model_dump()).config
    assert again == cfg


def test_bad_config_is_a_clear_error(name):
    with pytest.raises(ConfigError, match="no_such_option"):
        get_model_class(name)({"no_such_option": 1})


def test_save_load_identical_scores(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is type(fitted) and loaded.config == fitted.config
    users = fitted.vocab_.users.ids[:10]
    pd.testing.assert_frame_equal(fitted.score(users=users), loaded.score(users=users))
    pd.testing.assert_frame_equal(fitted.recommend(users=users, k=5), loaded.recommend(users=users, k=5))
    assert not list(tmp_path.glob(".m.*")), "temporary directories left behind"


def test_recommend_shape_and_order(fitted):
    users = fitted.vocab_.users.ids[:7]
    recs = fitted.recommend(users=users, k=5)
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert recs.groupby("user_id").size().eq(5).all() and set(recs["user_id"]) == set(users)
    for _, g in recs.groupby("user_id"):
        assert list(g["rank"]) == [1, 2, 3, 4, 5]
        assert (np.diff(g["score"].to_numpy()) <= 0).all()


def test_exclude_seen(fitted, synthetic):
    train, _ = synthetic
    recs = fitted.recommend(users=train.user_ids, k=10)
    seen = set(zip(train.interactions["user_id"], train.interactions["item_id"]))
    assert not any((u, i) in seen for u, i in zip(recs["user_id"], recs["item_id"]))
    with_seen = fitted.recommend(users=train.user_ids[:3], k=40, exclude_seen=False)
    assert with_seen.groupby("user_id").size().eq(40).all()


def test_candidates_restrict(fitted):
    cands = list(fitted.vocab_.items.ids[::3])
    recs = fitted.recommend(users=fitted.vocab_.users.ids[:5], k=4, candidates=cands)
    assert set(recs["item_id"]) <= set(cands) and len(recs) == 20


def test_unknown_user_popularity_fallback_or_error(fitted):
    recs = fitted.recommend(users=["nobody-knows-me"], k=5)
    if getattr(fitted, "is_private", False):
        # a private model serves them from its released weights, never the exact training popularity
        assert len(recs) == 5 and recs["item_id"].is_unique
    else:
        expected = fitted.vocab_.items.ids[np.argsort(-fitted.popularity_, kind="stable")[:5]]
        assert list(recs["item_id"]) == list(expected)
    with pytest.raises(LongrecError):
        fitted.recommend(users=["nobody-knows-me"], k=5, on_unknown_user="error")


def test_unknown_item_in_history_is_ignored_with_warning(fitted):
    with pytest.warns(UserWarning, match="unknown"):
        a = fitted.recommend(histories={"new": [2, 4, "no-such-item"]}, k=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = fitted.recommend(histories={"new": [2, 4]}, k=5)
    pd.testing.assert_frame_equal(a, b)


def test_empty_history_new_user(fitted):
    recs = fitted.recommend(histories={"fresh": []}, k=5)
    assert len(recs) == 5 and set(recs["user_id"]) == {"fresh"}


def test_history_only_new_user(fitted):
    hist = [2, 4, 6, 8]
    recs = fitted.recommend(histories={"new": hist}, k=10)
    assert len(recs) == 10 and not set(hist) & set(recs["item_id"])


def test_history_is_used_for_known_users(fitted, synthetic):
    train, _ = synthetic
    u = train.user_ids[0]
    extra = [i for i in fitted.vocab_.items.ids if i not in set(train.interactions.loc[train.interactions.user_id == u, "item_id"])][:3]
    recs = fitted.recommend(users=[u], histories={u: extra}, k=30)
    assert not set(extra) & set(recs["item_id"])


def test_batch_equals_one_by_one(fitted):
    users = list(fitted.vocab_.users.ids[:6]) + ["stranger"]
    together = fitted.recommend(users=users, k=5, batch_size=4)
    apart = pd.concat([fitted.recommend(users=[u], k=5) for u in users], ignore_index=True)
    pd.testing.assert_frame_equal(together, apart)


def test_unknown_candidate_and_bad_k(fitted):
    with pytest.raises(LongrecError):
        fitted.recommend(users=fitted.vocab_.users.ids[:1], k=0)
    with pytest.raises(UnknownIdError):
        fitted.score(users=fitted.vocab_.users.ids[:1], items=["nope"])


def test_same_seed_same_result(name, synthetic):
    train, valid = synthetic
    a = get_model_class(name)(fast(name), seed=7).fit(train, valid)
    b = get_model_class(name)(fast(name), seed=7).fit(train, valid)
    users = a.vocab_.users.ids
    pd.testing.assert_frame_equal(a.recommend(users=users, k=5), b.recommend(users=users, k=5))


def test_string_ids(name):
    inter, items = make_synthetic(str_ids=True)
    m = get_model_class(name)(fast(name)).fit(Dataset(inter, items))
    recs = m.recommend(users=["u1", "u2"], k=3)
    assert recs["item_id"].str.startswith("i").all() and len(recs) == 6


def test_not_fitted_is_a_clear_error(name):
    with pytest.raises(LongrecError, match="not fitted"):
        get_model_class(name)().recommend(users=[1], k=3)
