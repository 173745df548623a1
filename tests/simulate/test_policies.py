"""Policies built from registered models: re-ranker wrappers, fold-in between retrainings,
the epoch budget, and the satiation-aware (long-term) wrapper."""

import numpy as np
import pandas as pd
import pytest

from longrec.errors import ConfigError
from longrec.simulate.config import PolicySettings, parse_config
from longrec.simulate.loop import run_policy
from longrec.simulate.policies import ModelPolicy, SatiationAware, make_policy
from longrec.simulate.users import UserState
from tests.simulate.conftest import sim_config

EASE = {"l2": 50.0, "tune_l2": False}


def _fitted(world, **kw) -> ModelPolicy:
    pol = ModelPolicy(PolicySettings(name="p", model="ease", params=EASE, **kw), seed=0)
    pol.fit(world.initial_frame, world)
    return pol


def test_rerank_policy_matches_recommend_reranked(syn_world):
    from longrec.rerank import recommend_reranked

    w = syn_world
    pol = _fitted(w, rerank="calibrated:0.5", candidates=50)
    users = np.arange(20)
    state = UserState.initial(w)
    top, score = pol.candidates(None, w, state, users, None, None, 5)
    ref = recommend_reranked(pol.model, users=w.user_ids[users], k=5, spec="calibrated:0.5", n_candidates=50)
    expect = pd.Index(w.item_ids).get_indexer(ref["item_id"].to_numpy()).reshape(20, 5)
    np.testing.assert_array_equal(top, expect)
    plain = _fitted(w).candidates(None, w, state, users, None, None, 5)[0]
    assert (top != plain).any()  # calibration changed some slates
    assert not state.consumed[users[:, None], top].any()


def test_rerank_policy_runs_in_the_loop(syn_dir, syn_world):
    pols = [{"name": "cal", "model": "ease", "params": EASE, "rerank": "exposure:0.7"},
            {"name": "ease", "model": "ease", "params": EASE}]
    cfg = sim_config(syn_dir, pols, steps=8)
    a = run_policy(cfg, syn_world, "cal", 0)
    b = run_policy(cfg, syn_world, "ease", 0)
    all_a, all_b = a[a.group == "all"], b[b.group == "all"]
    assert np.isfinite(all_a["welfare"]).all()
    # the exposure re-ranker shows less popular items than plain EASE
    assert all_a["rec_popularity"].mean() < all_b["rec_popularity"].mean()


def test_bad_rerank_spec_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        parse_config({"policies": [{"name": "x", "model": "ease", "rerank": "shuffle:0.3"}]}, source="my.toml")
    assert "[[policies]] #1 ('x').rerank" in str(e.value) and "unknown re-ranker" in str(e.value)
    with pytest.raises(ConfigError):
        parse_config({"policies": [{"name": "o", "model": "oracle", "rerank": "mmr:0.3"}]})
    # a re-ranker under a pool-based wrapper must have more candidates than the pool, else it keeps all
    with pytest.raises(ConfigError) as e:
        parse_config({"policies": [{"name": "x", "model": "ease", "rerank": "mmr:0.3", "satiation": {}}]})
    assert "candidates above 100" in str(e.value)
    parse_config({"policies": [{"name": "x", "model": "ease", "rerank": "mmr:0.3", "satiation": {}, "candidates": 200}]})


def test_fold_in_uses_todays_clicks_without_refitting(syn_world):
    w = syn_world
    users = np.arange(30)
    state = UserState.initial(w)
    on, off = _fitted(w), _fitted(w, fold_in=False)
    base = on.candidates(None, w, state, users, None, None, 5)[0]
    # every user clicks the first item of their slate; the world marks it consumed
    clicked = base[:, 0]
    state.consumed[users, clicked] = True
    pending = pd.DataFrame({"user_id": w.user_ids[users], "item_id": w.item_ids[clicked], "timestamp": 10**9})
    coef = on.model.B_.copy() if hasattr(on.model, "B_") else None
    top_on, score_on = on.candidates(None, w, state, users, None, pending, 5)
    top_off, score_off = off.candidates(None, w, state, users, None, pending, 5)
    if coef is not None:
        np.testing.assert_array_equal(coef, on.model.B_)  # no refit
    for top in (top_on, top_off):  # neither path offers a consumed item
        assert not state.consumed[users[:, None], np.maximum(top, 0)][top >= 0].any()
    # the clicked item is history for the folded-in model: its scores move, the other's do not
    assert not np.allclose(score_on, score_off)
    assert (top_off[:, :4] == base[:, 1:5]).all()  # without fold-in: the old list minus the click


def test_epoch_budget_applies_unless_params_set():
    p = make_policy(PolicySettings(name="b", model="bpr"), seed=0, epochs=2)
    assert p.model.config.epochs == 2
    p = make_policy(PolicySettings(name="b", model="bpr", params={"epochs": 7}), seed=0, epochs=2)
    assert p.model.config.epochs == 7
    p = make_policy(PolicySettings(name="e", model="ease"), seed=0, epochs=2)  # no epochs field: ignored
    assert not hasattr(p.model.config, "epochs")


def test_satiation_aware_rests_consumed_genres(syn_world):
    w = syn_world
    pol = make_policy(PolicySettings(name="s", model="ease", params=EASE,
                                     satiation={"weight": 5.0, "decay": 0.0}), seed=0)
    assert isinstance(pol, SatiationAware)
    pol.fit(w.initial_frame, w)
    users = np.arange(30)
    state = UserState.initial(w)
    before = pol.candidates(None, w, state, users, None, None, 5)[0]
    g = w.genres[before[:, 0]]          # genre mix of each user's top item
    for _ in range(3):                   # the user took three items like it
        pol.observe(w, users, before[:, 0])
    after = pol.candidates(None, w, state, users, None, None, 5)[0]
    share_before = np.einsum("ng,nkg->n", g, w.genres[before]) / 5
    share_after = np.einsum("ng,nkg->n", g, w.genres[after]) / 5
    assert share_after.mean() < share_before.mean()


def test_history_models_run_as_policies(syn_dir, syn_world):
    pols = [{"name": "lin", "model": "lm-linear", "params": {"encoder": "hash"}},
            {"name": "seq", "model": "lm-seq", "params": {"encoder": "hash", "dim": 16, "max_len": 10}},
            {"name": "knn", "model": "itemknn"}]
    cfg = sim_config(syn_dir, pols, steps=6, retrain_every=3, epochs=1)
    for p in ("lin", "seq", "knn"):
        df = run_policy(cfg, syn_world, p, 0)
        assert np.isfinite(df[df.group == "all"]["welfare"]).all() and len(df) == 6 * len(syn_world.groups)


def test_impression_discount_rotates_skipped_items_and_crowd_penalty(syn_world):
    w = syn_world
    pol = make_policy(PolicySettings(name="s", model="ease", params=EASE,
                                     satiation={"weight": 0.0, "decay": 0.0, "impression_weight": 10.0}), seed=0)
    pol.fit(w.initial_frame, w)
    users = np.arange(30)
    state = UserState.initial(w)
    first = pol.candidates(None, w, state, users, None, None, 5)[0]
    pol.observe(w, users, np.full(30, -1), first)     # shown, nobody chose
    second = pol.candidates(None, w, state, users, None, None, 5)[0]
    overlap = np.mean([len(set(a) & set(b)) for a, b in zip(first, second)])
    assert overlap < 1.0                               # skipped items make way for the next ones
    # without slates (or with weight 0) nothing changes
    plain = make_policy(PolicySettings(name="p", model="ease", params=EASE,
                                       satiation={"weight": 0.0, "decay": 0.0}), seed=0)
    plain.fit(w.initial_frame, w)
    plain.observe(w, users, np.full(30, -1), first)
    np.testing.assert_array_equal(plain.candidates(None, w, state, users, None, None, 5)[0], first)
    # crowd: when every user chose their top item, the items chosen by many move down
    crowd = make_policy(PolicySettings(name="c", model="ease", params=EASE,
                                       satiation={"weight": 0.0, "decay": 0.0, "crowd_weight": 5.0}), seed=0)
    crowd.fit(w.initial_frame, w)
    top = crowd.candidates(None, w, state, users, None, None, 5)[0]
    popular = np.bincount(top[:, 0], minlength=w.n_items).argmax()
    crowd.observe(w, users, np.full(30, popular))
    after = crowd.candidates(None, w, state, users, None, None, 5)[0]
    assert (after == popular).sum() < (top == popular).sum()


BANDIT = {"name": "bandit", "model": "ease", "params": EASE, "bandit": {"pool": 40, "noise": 0.5}}


def test_bandit_policy_runs_is_deterministic_and_learns(syn_dir, syn_world):
    from longrec.simulate.policies import LinearBandit

    cfg = sim_config(syn_dir, [BANDIT, {"name": "ease", "model": "ease", "params": EASE}], steps=12)
    a = run_policy(cfg, syn_world, "bandit", 0)
    b = run_policy(cfg, syn_world, "bandit", 0)
    pd.testing.assert_frame_equal(a, b)  # a pure function of (config, policy, seed)
    assert np.isfinite(a.loc[a.group == "all", "welfare"]).all()
    assert a.loc[a.group == "all", "welfare"].sum() > 0
    assert set(a.attrs["learned_weights"]) == set(LinearBandit.FEATURES)  # recorded per run
    c = run_policy(cfg, syn_world, "bandit", 1)
    assert not np.allclose(a["welfare"].to_numpy(), c["welfare"].to_numpy())
    # its learned weights move with the feedback it observes
    pol = make_policy(cfg.policy("bandit"), seed=0)
    assert isinstance(pol, LinearBandit)
    pol.fit(syn_world.initial_frame, syn_world)
    w0 = pol.weights.copy()
    state = UserState.initial(syn_world)
    users = np.arange(syn_world.n_users)
    rng = np.random.default_rng(0)
    util = state.effective_utility(syn_world, users)
    slates = pol.slate(rng, syn_world, state, users, util, None, 5)
    assert (slates >= 0).all() and not state.consumed[users[:, None], slates].any()
    # before any feedback the bandit's slate is the base model's top 5
    base = pol.base.slate(rng, syn_world, state, users, util, None, 5)
    np.testing.assert_array_equal(np.sort(slates, 1), np.sort(base, 1))
    chosen = slates[:, 0].copy()          # every user takes the first item ...
    chosen[users % 3 == 0] = -1           # ... except a third who take nothing
    pol.observe(syn_world, users, chosen, slates)
    w1 = pol.weights
    assert not np.allclose(w0, w1)
    assert pol.n_obs == slates.size and pol.n_clicks == int((chosen >= 0).sum())
    # clicks on the first slot only: the click model's weights now differ user by user, and
    # the next slate (after this feedback and a Thompson draw) differs from the first
    slates2 = pol.slate(rng, syn_world, state, users, util, None, 5)
    assert (slates2 != slates).any()


def test_bandit_rewards_follow_clicks(syn_world):
    """Clicks only on items with a high logged popularity: the popularity weight goes up."""
    pol = make_policy(PolicySettings(**BANDIT), seed=0)
    pol.fit(syn_world.initial_frame, syn_world)
    state = UserState.initial(syn_world)
    users = np.arange(syn_world.n_users)
    rng = np.random.default_rng(1)
    util = state.effective_utility(syn_world, users)
    i_pop = LinearBandit_features().index("log_popularity")
    for _ in range(5):
        slates = pol.slate(rng, syn_world, state, users, util, None, 5)
        pop = pol.logpop[np.maximum(slates, 0)]
        chosen = np.take_along_axis(slates, pop.argmax(1)[:, None], 1)[:, 0]
        pol.observe(syn_world, users, chosen, slates)
    assert pol.weights[i_pop] > 0.01


def LinearBandit_features():
    from longrec.simulate.policies import LinearBandit

    return list(LinearBandit.FEATURES)


def test_bandit_config_errors():
    with pytest.raises(ConfigError) as e:
        parse_config({"policies": [{"name": "x", "model": "ease", "bandit": {}, "satiation": {}}]})
    assert "bandit or satiation" in str(e.value)
    with pytest.raises(ConfigError):
        parse_config({"policies": [{"name": "o", "model": "oracle", "bandit": {}}]})
    with pytest.raises(ConfigError):
        parse_config({"policies": [{"name": "x", "model": "ease", "bandit": {"noise": -1}}]})


def test_policies_by_name_and_presets():
    from longrec.simulate.config import POLICY_PRESETS

    cfg = parse_config({"policies": ["itemknn", "long-term-bandit", "oracle",
                                     {"name": "ease", "model": "ease", "params": EASE}]})
    assert [p.name for p in cfg.policies] == ["itemknn", "long-term-bandit", "oracle", "ease"]
    bandit = cfg.policy("long-term-bandit")
    assert bandit.model == "itemknn" and bandit.bandit.crowd_weight == POLICY_PRESETS["long-term-bandit"]["bandit"]["crowd_weight"]
    assert cfg.policy("itemknn").bandit is None and cfg.policy("itemknn").model == "itemknn"
    for name in POLICY_PRESETS:
        parse_config({"policies": [name]})
    with pytest.raises(ConfigError) as e:
        parse_config({"policies": ["long-term-bandits"]}, source="s.toml")
    assert "unknown model 'long-term-bandits'" in str(e.value)
