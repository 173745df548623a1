"""The issue's scientific checks, at small sizes on a synthetic world.

Chaney, Stewart & Engelhardt (RecSys 2018): a model retrained on its own feedback homogenises
users' consumption (Jaccard of consumed sets) more than random recommendations, and the
homogenisation does not buy utility (relative to an oracle it does not rise).
Mansoury et al. (CIKM 2020): across retraining rounds the popularity of recommended items
grows for a popularity-prone policy.
"""

import numpy as np

from longrec.simulate.loop import run_policy
from tests.simulate.conftest import sim_config

EASE = {"name": "ease", "model": "ease", "params": {"l2": 50.0, "tune_l2": False}}


def _all(df):
    return df[df.group == "all"].set_index("step")


def test_chaney_homogenisation_sign_pattern(syn_dir, syn_world):
    cfg = sim_config(syn_dir, [EASE, {"name": "random", "model": "random"}], steps=40, retrain_every=5, seeds=[0, 1])
    for seed in (0, 1):
        e = _all(run_policy(cfg, syn_world, "ease", seed))
        r = _all(run_policy(cfg, syn_world, "random", seed))
        rise_e = e["jaccard_consumed"].iloc[-1] - e["jaccard_consumed"].iloc[0]
        rise_r = r["jaccard_consumed"].iloc[-1] - r["jaccard_consumed"].iloc[0]
        assert rise_e > 0 and rise_e > 3 * max(rise_r, 0.0), (rise_e, rise_r)
        first, last = e["utility_vs_oracle"].iloc[:5].mean(), e["utility_vs_oracle"].iloc[-5:].mean()
        assert last <= first + 0.02, (first, last)


def test_mansoury_popularity_grows_across_rounds(syn_dir, syn_world):
    cfg = sim_config(syn_dir, [{"name": "pop", "model": "pop"}, {"name": "random", "model": "random"}],
                     steps=40, retrain_every=5)
    p = _all(run_policy(cfg, syn_world, "pop", 0))
    by_round = p.groupby("round")["rec_popularity"].mean().to_numpy()
    assert by_round[-1] > by_round[0]
    assert np.corrcoef(np.arange(len(by_round)), by_round)[0, 1] > 0.5  # a trend, not one jump
    r = _all(run_policy(cfg, syn_world, "random", 0))
    rr = r.groupby("round")["rec_popularity"].mean().to_numpy()
    assert by_round[-1] - by_round[0] > rr[-1] - rr[0]
