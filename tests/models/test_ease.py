"""EASE: the float32 Cholesky solve against an independent float64 closed form, the λ search
(edge warning, the λ recorded), the fit estimate and the memory refusal."""

from __future__ import annotations

import math
import tomllib
import warnings

import numpy as np
import pytest

from longrec.data.dataset import Dataset
from longrec.errors import ConfigError
from longrec.models import ease as ease_mod
from longrec.topk import topk
from longrec.models.ease import EASE
from tests.conftest import make_synthetic


def _split(n_users=40, n_items=30, per_user=8):
    inter, items = make_synthetic(n_users, n_items, per_user)
    last = inter.groupby("user_id").tail(1)
    return (Dataset(inter.drop(last.index).reset_index(drop=True), items),
            Dataset(last.reset_index(drop=True), items))


def _closed_form(X: np.ndarray, lam: float) -> np.ndarray:
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


@pytest.mark.parametrize("lam", [0.5, 7.0, 300.0])
def test_weights_match_float64_closed_form(lam):
    train, _ = _split()
    m = EASE(l2=lam, tune_l2=False, progress=False).fit(train)
    X = m.seen_.toarray().astype(np.float64)
    B = _closed_form(X, lam)
    assert m.B_.dtype == np.float32
    np.testing.assert_allclose(m.B_, B, rtol=0, atol=2e-5 * max(1.0, np.abs(B).max()))
    assert m.config.l2 == lam and m.fit_info_["l2"] == lam


def test_untuned_default_is_scaled_by_mean_popularity():
    train, _ = _split()
    m = EASE(tune_l2=False, progress=False).fit(train)
    X = m.seen_.toarray()
    assert m.fit_info_["l2"] == pytest.approx(3.0 * X.sum() / X.shape[1], rel=1e-5)


def test_simulator_uses_the_same_solve():
    from longrec.simulate.world import _ease_scores

    train, _ = _split()
    m = EASE(l2=5.0, tune_l2=False, progress=False).fit(train)
    np.testing.assert_allclose(_ease_scores(m.seen_, 5.0), m.seen_ @ m.B_, atol=1e-5)


def _peaked_search(monkeypatch, best_lam_units: float):
    """Replace the validation score by a known curve peaked at best_lam_units x mean popularity."""
    seen = []
    real = ease_mod.ease_weights

    def weights(G, lam, out=None, **kw):
        seen.append(lam)
        return real(G, lam, out=out, **kw)

    monkeypatch.setattr(ease_mod, "ease_weights", weights)
    box = {}

    def fake_valid(model, valid, k=10, metric=None):
        box.setdefault("unit", seen[0])  # the search starts at 1 x the mean item popularity
        return 1.0 - (math.log(seen[-1]) - math.log(best_lam_units * box["unit"])) ** 2 / 100

    monkeypatch.setattr("longrec.models.validation.valid_ndcg", fake_valid)
    return seen, box


def test_search_refines_inside_and_records_the_lambda_used(monkeypatch, tmp_path):
    train, valid = _split()
    seen, box = _peaked_search(monkeypatch, 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no edge warning
        m = EASE(progress=False).fit(train, valid)
    lam = m.fit_info_["l2"]
    assert len(seen) == 4  # 3 + one refinement
    assert lam == pytest.approx(5.0 * box["unit"], rel=0.3)
    assert "l2_at_edge" not in m.fit_info_
    assert m.config.l2 == lam
    m.save(tmp_path / "m")
    saved = tomllib.loads((tmp_path / "m" / "config.toml").read_text())
    assert saved["config"]["l2"] == lam
    assert EASE.load(tmp_path / "m").config.l2 == lam


def test_search_warns_when_the_best_is_at_the_edge(monkeypatch):
    train, valid = _split()
    seen, box = _peaked_search(monkeypatch, 1e4)
    with pytest.warns(UserWarning, match="largest value searched"):
        m = EASE(progress=False, l2_extend=2).fit(train, valid)
    assert m.fit_info_["l2_at_edge"] is True
    assert len(seen) == 5 and m.fit_info_["l2"] == pytest.approx(max(seen), rel=1e-4)


def test_explicit_grid_is_searched_whole_and_warns_at_its_edge():
    train, valid = _split()
    with pytest.warns(UserWarning, match="value searched"):
        m = EASE(l2_grid=[0.1, 1000.0], progress=False).fit(train, valid)
    assert set(m.fit_info_["valid_ndcg@10"]) == {"0.1", "1000"}
    assert m.config.l2 in (0.1, 1000.0)


def test_refuses_with_advice_when_memory_is_short():
    train, valid = _split()
    with pytest.raises(ConfigError, match="itemknn"):
        EASE(max_memory_gb=1e-9, progress=False).fit(train, valid)


def test_prints_an_estimate_before_a_long_fit(monkeypatch, capsys):
    train, _ = _split()
    monkeypatch.setattr(ease_mod, "ESTIMATE_ABOVE_S", 0.0)
    EASE(tune_l2=False, progress=True).fit(train)
    err = capsys.readouterr().err
    assert "expect ~" in err and "GiB" in err
    EASE(tune_l2=False, progress=False).fit(train)
    assert "expect" not in capsys.readouterr().err


def test_top_k_matches_a_stable_sort_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = int(rng.integers(1, 200)), int(rng.integers(1, 8))
        k = int(rng.integers(1, n + 1))
        s = rng.integers(0, 4, size=(m, n)).astype(np.float64)
        s[rng.random((m, n)) < 0.3] = -np.inf
        np.testing.assert_array_equal(topk(s, k)[0], np.argsort(-s, axis=1, kind="stable")[:, :k])


def test_popularity_penalty_matches_its_closed_form():
    train, _ = _split()
    m = EASE(l2=2.0, pop_l2=0.5, tune_l2=False, progress=False).fit(train)
    X = m.seen_.toarray().astype(np.float64)
    G = X.T @ X
    P = np.linalg.inv(G + np.diag(2.0 + 0.5 * np.diag(G)))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    np.testing.assert_allclose(m.B_, B, rtol=0, atol=2e-5 * max(1.0, np.abs(B).max()))
