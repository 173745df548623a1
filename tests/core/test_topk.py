"""`longrec.topk` against the definition: a stable descending sort, cut at k."""

import numpy as np
import pytest
from hypothesis import given, settings
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
