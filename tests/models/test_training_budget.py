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


def test_fit_estimate_caps_by_budget():
    from longrec.models._training import fit_estimate

    assert fit_estimate(2.0, 50, None) == 100.0
    assert fit_estimate(2.0, 50, 30.0) == 32.0      # the epoch that runs past the cap counts
    assert fit_estimate(2.0, 5, 600.0) == 10.0


def test_estimate_line_after_the_first_epoch(monkeypatch):
    """A fit whose epochs may add up to over 30 s says so once, after its first epoch; a short one says nothing."""
    import time as _time

    from longrec.models import _progress, _training

    said = []
    monkeypatch.setattr(_progress, "report", lambda enabled, msg: said.append((enabled, msg)))
    _training._say_estimate("lm-seq", 2.0, 50, 600.0, True)
    assert said == [(True, "lm-seq: the first epoch took 2.0 s; the fit takes at most ~1.7 min "
                           "(50 epochs, capped by max_seconds = 600; early stopping may end it sooner)")]
    said.clear()
    _training._say_estimate("lm-seq", 0.5, 50, None, True)   # 25 s: no line
    assert said == []

    calls = []
    monkeypatch.setattr(_training, "_say_estimate", lambda *a: calls.append(a))
    _training.train_with_early_stopping(lambda e: _time.sleep(0.01), None, lambda: None, lambda s: None,
                                        epochs=3, max_seconds=60.0, progress=None, estimate="lm-twotower")
    assert len(calls) == 1
    name, epoch_s, epochs, cap, progress = calls[0]
    assert (name, epochs, cap, progress) == ("lm-twotower", 3, 60.0, False) and 0.005 < epoch_s < 5
