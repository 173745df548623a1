"""max_seconds is honoured inside an epoch: the batch loop stops at the budget, the partial epoch
is scored and the best state so far is kept."""

from __future__ import annotations

import time

import numpy as np

from longrec.models._training import Budget, train_with_early_stopping


def test_budget_stops_inside_an_epoch_and_keeps_the_best_state():
    state = {"w": 0, "batches": 0}
    budget = Budget(0.05)

    def run_epoch(epoch):
        for _ in range(10_000):  # one long epoch: 10,000 batches of 1 ms would take 10 s
            if budget.spent():
                break
            time.sleep(0.001)
            state["w"] += 1
            state["batches"] += 1

    restored = []
    t0 = time.perf_counter()
    info = train_with_early_stopping(run_epoch, lambda: float(state["w"]), lambda: state["w"], restored.append,
                                     epochs=5, max_seconds=0.05, budget=budget)
    assert time.perf_counter() - t0 < 2.0
    assert state["batches"] < 10_000
    assert info["best_epoch"] == 1 and restored == [state["w"]]
    assert len(info["valid_curve"]) == 1


def test_budget_without_cap_never_spent():
    assert not Budget(None).spent()


def test_lm_twotower_honours_max_seconds_within_the_first_epoch(synthetic):
    from longrec.models.lm_twotower import LMTwoTower

    train, valid = synthetic
    m = LMTwoTower({"encoder": "hash", "dim": 8, "epochs": 50, "batch_size": 1, "max_seconds": 0.2,
                    "num_threads": 1}).fit(train, valid)
    assert m.fit_info_["best_epoch"] == 1 and m.fit_info_["train_seconds"] < 5.0
    s = m.score(users=train.interactions["user_id"].unique()[:3]).to_numpy()
    assert np.isfinite(s).all()
