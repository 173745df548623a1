"""ItemKNN and BPR-MF against independent references on tiny data: ItemKNN against a dense
cosine similarity from scikit-learn with the top-k neighbours picked by a plain sort; BPR's
first Adam step against the BPR gradient written out in numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.data.dataset import Dataset


def _random_data(n_users=40, n_items=25, density=0.25, seed=0) -> tuple[Dataset, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < density).astype(np.float64)
    X[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # nobody without history
    X[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1.0  # no item without users
    u, i = np.nonzero(X)
    df = pd.DataFrame({"user_id": u + 1, "item_id": i + 1})
    return Dataset(df), X


@pytest.mark.parametrize("k,shrink", [(24, 0.0), (5, 0.0), (5, 2.0)])
def test_itemknn_matches_dense_cosine_reference(k, shrink):
    from sklearn.metrics.pairwise import cosine_similarity

    from longrec.models.itemknn import ItemKNN

    ds, X = _random_data()
    m = ItemKNN(k=k, shrink=shrink).fit(ds)
    # the model's vocabulary orders ids as they appear; map the reference into that order
    order = m.vocab_.items.lookup(np.arange(1, X.shape[1] + 1))
    Xm = np.zeros_like(X)
    Xm[:, order] = X
    counts = Xm.sum(0)
    if shrink == 0:
        S = cosine_similarity(Xm.T)
    else:
        S = (Xm.T @ Xm) / (np.sqrt(counts)[:, None] * np.sqrt(counts)[None, :] + shrink)
    np.fill_diagonal(S, 0.0)
    kept = np.zeros_like(S)
    ambiguous = []
    for j in range(S.shape[1]):  # target item j keeps its k most similar items
        col = S[:, j]
        srt = np.sort(col)[::-1]
        if k < len(col) - 1 and srt[k - 1] == srt[k] and srt[k] > 0:
            ambiguous.append(j)  # a tie at the cut: either choice is right
        top = np.argsort(-col, kind="stable")[:k]
        kept[top, j] = col[top]
    users = m.vocab_.users.lookup(np.arange(1, X.shape[0] + 1))
    H = np.zeros_like(Xm)
    H[users] = Xm
    expected = H @ kept
    got = m.score(users=list(range(1, X.shape[0] + 1))).to_numpy()
    cols = [j for j in range(S.shape[1]) if j not in ambiguous]
    assert len(cols) > S.shape[1] // 2
    np.testing.assert_allclose(got[:, cols], expected[users][:, cols], rtol=1e-5, atol=1e-6)


def test_bpr_first_step_matches_numpy_gradient():
    torch = pytest.importorskip("torch")
    from longrec.models.bpr import BPRMF

    ds, X = _random_data(n_users=12, n_items=9, seed=3)
    cfg = {"factors": 4, "epochs": 1, "lr": 0.01, "reg": 0.05, "seed": 5, "num_threads": 1}
    n_pos = int(X.sum())
    cfg["batch_size"] = n_pos  # one batch: exactly one Adam step
    m = BPRMF(cfg).fit(ds)
    n_users, n_items = len(m.vocab_.users), len(m.vocab_.items)

    # the same initial factors and triples as the model draws them
    gen = torch.Generator().manual_seed(cfg["seed"])
    P0 = torch.empty(n_users, 4).normal_(std=0.1, generator=gen).numpy().astype(np.float64)
    Q0 = torch.empty(n_items, 4).normal_(std=0.1, generator=gen).numpy().astype(np.float64)
    b0 = np.zeros(n_items)
    coo = m.training_matrix().tocoo()
    rng = np.random.default_rng(cfg["seed"])
    perm = rng.permutation(n_pos)
    neg = rng.integers(0, n_items, n_pos)
    u, i, j = coo.row[perm], coo.col[perm], neg

    # BPR loss: -mean log σ(x) + reg * (|p_u|² + |q_i|² + |q_j|²) / N, x = p_u·(q_i − q_j) + b_i − b_j
    x = (P0[u] * (Q0[i] - Q0[j])).sum(1) + b0[i] - b0[j]
    g = -(1.0 - 1.0 / (1.0 + np.exp(-x))) / n_pos  # d loss / d x
    gP, gQ, gb = np.zeros_like(P0), np.zeros_like(Q0), np.zeros_like(b0)
    np.add.at(gP, u, g[:, None] * (Q0[i] - Q0[j]) + 2 * cfg["reg"] * P0[u] / n_pos)
    np.add.at(gQ, i, g[:, None] * P0[u] + 2 * cfg["reg"] * Q0[i] / n_pos)
    np.add.at(gQ, j, -g[:, None] * P0[u] + 2 * cfg["reg"] * Q0[j] / n_pos)
    np.add.at(gb, i, g)
    np.add.at(gb, j, -g)

    def adam_first_step(w, grad):  # m̂ = g, v̂ = g²: w − lr · g / (|g| + eps)
        return w - cfg["lr"] * grad / (np.abs(grad) + 1e-8)

    np.testing.assert_allclose(m.P_, adam_first_step(P0, gP), atol=1e-6)
    np.testing.assert_allclose(m.Q_, adam_first_step(Q0, gQ), atol=1e-6)
    np.testing.assert_allclose(m.b_, adam_first_step(b0, gb), atol=1e-6)
    # scores are ⟨p_u, q_i⟩ + b_i
    s = m.score(users=[m.vocab_.users.ids[0]]).to_numpy()[0]
    np.testing.assert_allclose(s, m.P_[0] @ m.Q_.T + m.b_, rtol=1e-5, atol=1e-6)
