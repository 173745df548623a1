"""`longrec.topk` against the definition: a stable descending sort, cut at k."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from longrec.topk import topk


def reference(s: np.ndarray, k: int):
    s = np.where(np.isnan(s), -np.inf, s)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(s, top, 1)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 200)),
              elements=st.sampled_from([0.0, 1.0, 2.0, -1.5, 3.25, -np.inf, np.nan])),
       st.integers(0, 220))
def test_matches_a_stable_sort_with_many_ties(s, k):
    top, vals = topk(s, k)
    ref_top, ref_vals = reference(s, min(k, s.shape[1]))
    np.testing.assert_array_equal(top, ref_top)
    np.testing.assert_array_equal(vals, ref_vals)


def test_one_dimensional_and_large():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 50, size=100_000).astype(np.float32)  # heavy ties
    top, vals = topk(s, 25)
    ref = np.argsort(-s, kind="stable")[:25]
    np.testing.assert_array_equal(top, ref)
    np.testing.assert_array_equal(vals, s[ref])


def test_bad_shape():
    with pytest.raises(ValueError):
        topk(np.zeros((2, 2, 2)), 1)


@pytest.fixture
def torch_path(monkeypatch):
    """topk's torch.topk path (taken for large matrices when torch is loaded) on small ones."""
    pytest.importorskip("torch")
    import longrec.topk as mod

    monkeypatch.setattr(mod, "TORCH_MIN_ENTRIES", 1)


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # the fixture holds for every example
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(65, 300)),
              elements=st.sampled_from([0.0, -0.0, 1.0, 2.0, -1.5, 3.25, -np.inf, np.nan])),
       st.integers(0, 320))
def test_torch_path_matches_a_stable_sort_with_many_ties(torch_path, s, k):
    top, vals = topk(s, k)
    ref_top, ref_vals = reference(s, min(k, s.shape[1]))
    np.testing.assert_array_equal(top, ref_top)
    np.testing.assert_array_equal(vals, ref_vals)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_path_on_distinct_and_tied_scores(torch_path, dtype):
    rng = np.random.default_rng(0)
    s = rng.standard_normal((50, 5_000)).astype(dtype)
    s[::3] = np.round(s[::3], 1)                      # heavy ties, also at the k-th place
    s[1, 10:4_990] = -np.inf                          # fewer than k finite scores
    s[2, 7] = np.nan
    s.setflags(write=False)                           # read-only input stays untouched
    for k in (1, 10, 100):
        top, vals = topk(s, k)
        ref_top, ref_vals = reference(s, k)
        np.testing.assert_array_equal(top, ref_top)
        np.testing.assert_array_equal(vals, ref_vals)
        assert vals.dtype == s.dtype


@pytest.fixture
def segment_path(monkeypatch):
    """topk's segment path (taken for long rows and small k) on small matrices: segments of 4."""
    import longrec.topk as mod

    monkeypatch.setattr(mod, "TORCH_MIN_ENTRIES", 1)
    monkeypatch.setattr(mod, "SEGMENT", 4)
    monkeypatch.setattr(mod, "SEGMENT_MIN_SEGMENTS", 1)
    monkeypatch.setattr(mod, "SEGMENT_MAX_GATHER", 1 << 30)  # never handed on: ties go through it too


@settings(max_examples=400, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 120)),
              elements=st.sampled_from([0.0, -0.0, 1.0, 2.0, -1.5, 3.25, np.inf, -np.inf, np.nan])),
       st.integers(1, 30))
def test_segment_path_matches_a_stable_sort_with_many_ties(segment_path, s, k):
    top, vals = topk(s, k)  # the segment path where the row has >= 4k entries, else the others
    ref_top, ref_vals = reference(s, min(k, s.shape[1]))
    np.testing.assert_array_equal(top, ref_top)
    np.testing.assert_array_equal(vals, ref_vals)
    np.testing.assert_array_equal(np.signbit(vals), np.signbit(ref_vals))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_path_on_a_large_matrix(dtype):
    import longrec.topk as mod

    rng = np.random.default_rng(1)
    s = rng.standard_normal((64, 30_001)).astype(dtype)   # a tail segment shorter than the others
    s[::4] = np.round(s[::4], 1)                          # heavy ties at the k-th place
    s[1, :29_990] = -np.inf                               # fewer finite scores than k in the segments...
    s[2, 5:] = np.nan                                     # ... and NaN (ranked as -inf)
    s[3, 30_000] = 50.0                                   # the best score in the tail
    s.setflags(write=False)
    for k in (1, 10, 14):
        assert 30_001 >= mod.SEGMENT_MIN_SEGMENTS * mod.SEGMENT * k  # the segment path
        top, vals = topk(s, k)
        ref_top, ref_vals = reference(s, k)
        np.testing.assert_array_equal(top, ref_top)
        np.testing.assert_array_equal(vals, ref_vals)
        assert vals.dtype == s.dtype and top[3, 0] == 30_000


def test_segment_path_hands_a_matrix_of_ties_to_the_other_paths():
    import longrec.topk as mod

    s = np.zeros((6, 30_001), dtype=np.float32)  # every segment holds the k-th value
    s[0, 20_000] = 1.0
    s[1] = np.round(np.random.default_rng(2).standard_normal(30_001), 0)
    assert mod._segment_topk(s, 10) is None
    for k in (1, 10):
        top, vals = topk(s, k)
        ref_top, ref_vals = reference(s, k)
        np.testing.assert_array_equal(top, ref_top)
        np.testing.assert_array_equal(vals, ref_vals)
