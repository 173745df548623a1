"""Privacy attacks that measure what a trained recommender still gives away.

membership_inference()  Zhang et al., "Membership Inference Attacks Against Recommender
    Systems", CCS 2021. The attacker sees, for a user, the items they consumed (their history)
    and the list the recommender returns for them. Feature = centroid of the history's item
    vectors minus the centroid of the recommended items' vectors; an attack classifier learns
    member vs non-member on a *shadow* recommender that the attacker trains on data it owns,
    and is then applied to the *target* recommender. Reported: ROC AUC on the target's members
    and non-members (0.5 = the attacker learns nothing).
    Difference to the paper: the paper's non-members receive popular items (the system does not
    know them); here every user, member or not, is served from their history through the same
    `recommend(histories=...)` path (folding-in), so the attack measures what the *model* leaked
    about its training users, which is what differential privacy bounds.

attribute_inference_auc()  predict a sensitive attribute (e.g. gender) from user embeddings
    with a cross-validated logistic regression; ROC AUC (one-vs-rest macro for >2 classes).
    Shared with the fairness work: it only needs an embedding matrix and labels.

scikit-learn is imported lazily (the longrec[privacy] extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from longrec.data.dataset import Dataset
from longrec.errors import LongrecError


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise LongrecError("the privacy attacks need scikit-learn: pip install scikit-learn "
                           "(the longrec[privacy] extra).") from None


# ============================================================================ attribute inference
def attribute_inference_auc(embeddings: np.ndarray, labels, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Cross-validated ROC AUC of a logistic regression predicting `labels` from `embeddings`.

    embeddings: (n, d) array, one row per user; labels: n values (missing values are dropped).
    Returns {"auc", "n", "classes", "majority_share"}; auc 0.5 = no information.
    """
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(embeddings, dtype=np.float64)
    y = pd.Series(list(labels), dtype=object)
    if len(y) != len(X):
        raise LongrecError(f"attribute inference got {len(X)} embeddings but {len(y)} labels; pass one label per row.")
    ok = y.notna().to_numpy()
    X, y = X[ok], y[ok].astype(str).to_numpy()
    classes, yi = np.unique(y, return_inverse=True)
    counts = np.bincount(yi)
    if len(classes) < 2 or counts.min() < folds:
        raise LongrecError(f"attribute inference needs >= 2 classes with >= {folds} users each; got {dict(zip(classes, counts))}.")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(clf, X, yi, cv=cv, method="predict_proba")
    auc = roc_auc_score(yi, proba[:, 1]) if len(classes) == 2 else roc_auc_score(yi, proba, multi_class="ovr")
    return {"auc": float(auc), "n": int(len(yi)), "classes": [str(c) for c in classes],
            "majority_share": float(counts.max() / counts.sum())}


# ============================================================================ membership inference
def difference_vectors(hist: sp.csr_matrix, rec_idx: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """Zhang et al.'s feature: centroid of each user's history items minus the centroid of
    their recommended items. hist: (n_users, n_items) binary CSR; rec_idx: (n_users, k) item
    indices (-1 = padding); item_vectors: (n_items, d)."""
    cnt = np.maximum(np.asarray(hist.sum(1)).ravel(), 1)
    h = np.asarray(hist @ item_vectors) / cnt[:, None]
    valid = rec_idx >= 0
    r = (item_vectors[np.maximum(rec_idx, 0)] * valid[..., None]).sum(1) / np.maximum(valid.sum(1), 1)[:, None]
    return (h - r).astype(np.float32)


def svd_item_vectors(interactions: pd.DataFrame, item_ids: np.ndarray, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Item vectors the attacker factorises from interaction data it owns (as in the paper):
    truncated SVD of the binary user-item matrix; items absent from the data get zeros."""
    from scipy.sparse.linalg import svds

    users, u = np.unique(interactions["user_id"].astype(str), return_inverse=True)
    i = pd.Index(pd.Series(item_ids, dtype=object).astype(str)).get_indexer(interactions["item_id"].astype(str))
    ok = i >= 0
    m = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (u[ok], i[ok])), shape=(len(users), len(item_ids)))
    m.data[:] = 1.0
    k = max(1, min(dim, min(m.shape) - 1))
    _, s, vt = svds(m.astype(np.float64), k=k, random_state=seed)
    return (vt.T * np.sqrt(s)).astype(np.float32)


def _features(model, members: np.ndarray, nonmembers: np.ndarray, inter: pd.DataFrame,
              item_ids: np.ndarray, item_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Difference vectors for members (served from the model's training history) and
    non-members (served from the same kind of history, passed at inference)."""
    hist_nm = inter[inter["user_id"].isin(set(nonmembers))]
    recs = pd.concat([model.recommend(users=members, k=k),
                      model.recommend(users=nonmembers, histories=hist_nm, k=k)], ignore_index=True)
    users = np.concatenate([members, nonmembers]).astype(object)
    upos = pd.Index(pd.Series(users, dtype=object).astype(str))
    ipos = pd.Index(pd.Series(item_ids, dtype=object).astype(str))
    # history matrix in the attacker's item index
    hu = upos.get_indexer(inter["user_id"].astype(str))
    hi = ipos.get_indexer(inter["item_id"].astype(str))
    ok = (hu >= 0) & (hi >= 0)
    hist = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (hu[ok], hi[ok])), shape=(len(users), len(item_ids)))
    hist.data[:] = 1.0
    rec_idx = np.full((len(users), k), -1, dtype=np.int64)
    ru = upos.get_indexer(recs["user_id"].astype(str))
    rec_idx[ru, recs["rank"].to_numpy() - 1] = ipos.get_indexer(recs["item_id"].astype(str))
    X = difference_vectors(hist, rec_idx, item_vectors)
    y = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    return X, y


def membership_inference(make_model: Callable[[], Any], data: Dataset, k: int = 10, seed: int = 0,
                         item_vectors: np.ndarray | None = None, classifier: str = "mlp",
                         shadow_model: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Shadow-model membership inference on `data` (users split at random in four equal
    pools: shadow members / shadow non-members / target members / target non-members).

    make_model(): a fresh, unfitted recommender (the target algorithm); shadow_model(): the
    attacker's guess of it (default: the same algorithm). item_vectors: (n_items, d) in
    data.vocabulary() item order; default: SVD of the shadow pools' interactions (data the
    attacker owns). classifier: "mlp" (as in the paper) or "logreg".
    Returns {"auc", "shadow_auc", "n_target", ...}.
    """
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    inter = data.interactions
    users = np.array(sorted(pd.unique(inter["user_id"]), key=str), dtype=object)
    if len(users) < 40:
        raise LongrecError(f"membership inference needs >= 40 users (four pools); the data has {len(users)}.")
    perm = np.random.default_rng(seed).permutation(len(users))
    s_in, s_out, t_in, t_out = (users[p] for p in np.array_split(perm, 4))
    item_ids = data.vocabulary().items.ids
    if item_vectors is None:
        item_vectors = svd_item_vectors(inter[inter["user_id"].isin(set(np.r_[s_in, s_out]))], item_ids, seed=seed)

    def fit_on(pool, factory):
        return factory().fit(data.with_interactions(inter[inter["user_id"].isin(set(pool))].reset_index(drop=True)))

    shadow = fit_on(s_in, shadow_model or make_model)
    target = fit_on(t_in, make_model)
    Xs, ys = _features(shadow, s_in, s_out, inter, item_ids, item_vectors, k)
    Xt, yt = _features(target, t_in, t_out, inter, item_ids, item_vectors, k)
    if classifier == "mlp":
        clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32, 8), max_iter=2000,
                                                            alpha=1e-3, random_state=seed))
    elif classifier == "logreg":
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    else:
        raise LongrecError(f"unknown attack classifier {classifier!r}; use 'mlp' or 'logreg'.")
    clf.fit(Xs, ys)
    return {"auc": float(roc_auc_score(yt, clf.predict_proba(Xt)[:, 1])),
            "shadow_auc": float(roc_auc_score(ys, clf.predict_proba(Xs)[:, 1])),
            "n_target": int(len(yt)), "n_shadow": int(len(ys)), "k": k, "classifier": classifier,
            "target_privacy": getattr(target, "meta_", {}).get("privacy")}
