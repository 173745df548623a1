from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from longrec.errors import LongrecError
from longrec.privacy.attacks import attribute_inference_auc, difference_vectors, membership_inference

pytest.importorskip("sklearn")


def test_attribute_inference_detects_signal_and_noise():
    rng = np.random.default_rng(0)
    y = np.array(["M", "F"] * 100)
    signal = rng.normal(size=(200, 8)) + (y == "M")[:, None] * 1.5
    noise = rng.normal(size=(200, 8))
    assert attribute_inference_auc(signal, y)["auc"] > 0.9
    res = attribute_inference_auc(noise, y)
    assert 0.35 < res["auc"] < 0.65 and res["n"] == 200 and res["classes"] == ["F", "M"]


def test_attribute_inference_drops_missing_and_rejects_one_class():
    x = np.random.default_rng(1).normal(size=(30, 3))
    assert attribute_inference_auc(x, ["a", "b"] * 14 + [None, None])["n"] == 28
    with pytest.raises(LongrecError, match="2 classes"):
        attribute_inference_auc(x, ["a"] * 30)


def test_difference_vectors_are_centroid_differences():
    hist = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    vec = np.array([[1.0, 0], [3.0, 0], [0, 2.0], [0, 4.0]], dtype=np.float32)
    rec = np.array([[2, 3], [0, -1]])
    out = difference_vectors(hist, rec, vec)
    np.testing.assert_allclose(out, [[2.0, -3.0], [-1.0, 2.0]])


def test_membership_inference_end_to_end(split3):
    """Shadow + target models are trained on disjoint user pools and the report is well formed
    (80 users -> four pools of 20; the classifier fits its own shadow data at least at chance)."""
    from longrec.models.itemknn import ItemKNN

    res = membership_inference(lambda: ItemKNN(), split3["train"], k=5, classifier="logreg")
    assert 0.0 <= res["auc"] <= 1.0 and res["n_target"] == 40 and res["n_shadow"] == 40
    assert res["shadow_auc"] >= 0.5
