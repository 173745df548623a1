"""lm-twotower-dp: a two-tower recommender over frozen language-model item embeddings,
trainable with user-level differential privacy (DP-SGD through Opacus) or federated.

Towers (only small dense layers are trained; there is no per-user table at all and the only
per-item parameter is one bias scalar, so Opacus never materialises a big embedding gradient,
cf. opacus issue #350):

    t_i            frozen, L2-normalised LM embedding of item i's text (longrec.lm, cached)
    user tower     u = MLP(mean_{j in H_u} t_j)                      (H_u: the user's history)
    item tower     v_i = W t_i            (a linear projection of the text)
    score(u, i)    = <u, v_i> + c.t_i + b_i + a * p_i
    p_i            popularity prior (`popularity_prior`): log(1 + sum_u x_ui / sqrt(|H_u|)),
                   each user's contribution L2-normalised to 1; under DP the sums are released
                   once with the Gaussian mechanism (noise multiplier `prior_noise`) and the
                   release is composed with DP-SGD in the same accountant, so the target
                   epsilon covers both. a is one learned scalar.

The torch module is longrec.models.twotower_net.DPTwoTowerNet; the training loop is in
longrec.privacy.twotower_train.

Implementation trick that makes per-sample (per-user) gradients exact with Opacus's layer
hooks: <u, W t_i> = <W^T u, t_i>, so the item projection is applied to the *user* vector
(`net.item`, a Linear(dim -> d_text) whose batch dimension is the user) and the scores are
z @ T^T with T a buffer. Every trained layer therefore sees one row per user.

Training unit = one user (user-level privacy): each step draws users (Poisson sampling under
DP), splits each drawn user's history at random into an input part (mean-pooled text) and a
held-out part, and minimises the multinomial log-likelihood of the held-out items under a
full softmax over the catalogue, averaged per user. Under DP each user's gradient (from their
whole history) is clipped to `max_grad_norm` and Gaussian noise is added, so the guarantee is
(epsilon, delta)-DP with respect to adding/removing one user's entire history. epsilon is a
target: Opacus calibrates the noise multiplier for `epochs` passes; the spent epsilon (from
the accountant, RDP by default or PRV) is stored in meta.json under "privacy".

Fair training (`fair_attribute`, e.g. "gender": a column of the training Dataset's user table)
removes that attribute from the user vectors, which are what an attribute-inference attacker
sees (`user_embeddings()`); see docs/trust.md, "Fair training":
  leace        (default) LEACE closed-form linear concept erasure (Belrose et al. 2023) after
               training: an oblique rank-(#classes-1) map after which the class means of u
               coincide, so no linear attacker beats chance; applied as u -> u M (M saved with
               the model), then the item tower is re-fitted for fair_finetune_epochs.
  nullspace    iterative nullspace projection (Ravfogel et al., ACL 2020) after training: fit a
               linear probe for the attribute on the user vectors, project its direction out,
               repeat until a held-out probe's AUC is <= fair_stop_auc; the projection P is a
               buffer of the net (u -> P u, saved with the model), then the item tower is
               re-fitted for fair_finetune_epochs with the user tower frozen.
  adversarial  adversarial training (Ganin & Lempitsky 2015; FairRec-style, Wu et al. 2021): an
               MLP adversary learns to predict the attribute from u during training, and the
               user tower minimises fair_weight x the cross-entropy of the adversary's output
               to the uniform distribution (confusion loss; see _fit_adversarial for why not
               plain gradient reversal).
Fair training reads each user's attribute outside DP-SGD, so it cannot be combined with
dp_epsilon (or federated training).

Not covered by the guarantee (see docs/privacy.md): the item texts and the item vocabulary
(treated as public), hyper-parameter tuning on validation data, and the per-item popularity
fallback the base class serves to cold users with no history.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from longrec.errors import ConfigError
from longrec.models._lm_items import ItemTextConfig
from longrec.models.base import HistoryBatch, Recommender
from longrec.privacy.noise import REPRODUCIBLE_HELP, noise_seed
from longrec.fair.erasure import leace_eraser, nullspace_projection
from longrec.privacy.accounting import calibrate_noise, require_opacus
from longrec.privacy.guarantee import PrivacyGuarantee, privacy_record
from longrec.privacy.twotower_train import (
    build_net,
    history_features,
    popularity_prior,
    train_epochs,
    user_loader,
)


class DPTwoTowerConfig(ItemTextConfig):
    dim: int = Field(32, ge=4, description="width of the user/item vectors")
    hidden: int = Field(0, ge=0, description="hidden width of the user tower MLP (0 = linear tower)")
    epochs: int = Field(30, ge=1, description="passes over the users")
    batch_size: int = Field(128, ge=1, description="users per step (expected size under Poisson sampling)")
    lr: float = Field(0.01, gt=0)
    keep_prob: float = Field(0.5, gt=0, lt=1, description="share of a history used as input; the rest is predicted")
    dp_epsilon: float | None = Field(None, gt=0, description="target epsilon; None = no differential privacy")
    dp_delta: float | None = Field(None, gt=0, lt=1, description="delta; default 1/#training users")
    max_grad_norm: float = Field(1.0, gt=0, description="per-user gradient clipping bound (DP only)")
    popularity_prior: bool = Field(True, description="add a log-popularity prior to the item scores "
                                   "(a DP release under dp_epsilon; see the module docstring)")
    item_bias: bool = Field(True, description="learn one bias per item (under DP every one of them is "
                            "noised; with the popularity prior it can be dropped)")
    init: Literal["random", "pca"] = Field("pca", description="pca: both towers start as the projection "
                                           "on the top `dim` principal components of the item texts (public "
                                           "data), so training starts from a content-similarity model")
    prior_noise: float = Field(5.0, gt=0, description="noise multiplier of the DP popularity release "
                               "(each user's contribution has L2 norm 1); DP only")
    accountant: Literal["rdp", "prv"] = "rdp"
    reproducible_noise: bool = Field(False, description=REPRODUCIBLE_HELP)
    fair_attribute: str | None = Field(None, description="user-table column to remove from user vectors, e.g. 'gender'; None = off")
    fair_method: Literal["leace", "nullspace", "adversarial"] = "leace"
    fair_weight: float = Field(1.0, ge=0, description="adversarial: weight of the confusion loss against the adversary")
    fair_max_directions: int = Field(16, ge=1, description="nullspace: most probe rounds (one direction per class each)")
    fair_stop_auc: float = Field(0.52, gt=0.5, lt=1, description="nullspace: stop when a held-out linear probe's AUC is <= this")
    fair_finetune_epochs: int = Field(5, ge=0, description="leace/nullspace: epochs re-fitting the item tower after the projection")
    num_threads: int = Field(2, ge=1)
    progress: bool = False

    @model_validator(mode="before")
    @classmethod
    def _one_process(cls, values):
        from longrec.models._data_parallel import refuse_workers
        return refuse_workers(values, "lm-twotower-dp", "its per-user clipping and noise are not split across "
                              "Ray workers")


# ============================================================================ net
class DPTwoTower(PrivacyGuarantee, Recommender):
    """Two-tower over frozen LM item embeddings with optional user-level DP; see the module docstring."""

    name = "lm-twotower-dp"
    Config = DPTwoTowerConfig

    # ---------------------------------------------------------------- training
    _untrained = False

    def fit_untrained(self, train) -> "DPTwoTower":
        """Everything `fit` does except training the net: vocabulary, histories, item text and an
        initialised net. For drivers that train the parameters themselves (federated training
        sets them with `set_arrays`)."""
        self._untrained = True
        try:
            return self.fit(train)
        finally:
            self._untrained = False

    def _item_text(self) -> np.ndarray:
        from longrec.models._lm_items import model_item_text
        return model_item_text(self)

    def _fit(self, X, train, valid) -> None:
        import torch

        cfg = self.config
        torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        t0 = time.perf_counter()
        self.text_ = self._item_text()
        self.fit_info_["text_seconds"] = round(time.perf_counter() - t0, 2)
        if cfg.fair_attribute and (cfg.dp_epsilon is not None or self._untrained):
            raise ConfigError(
                "fair_attribute cannot be combined with dp_epsilon or federated training: the fairness step reads "
                "every user's attribute and vector outside DP-SGD / the clients, which the privacy guarantee does "
                "not cover. Train either a private or a fair model (remove dp_epsilon or fair_attribute).")
        labels = self._fair_labels(train) if cfg.fair_attribute else None
        self.net_ = build_net(self.text_, cfg)
        if self._untrained:  # fit_untrained: the caller (the federated driver) trains the net
            self.privacy_ = {"private": False}
            self._finish()
            return
        if cfg.popularity_prior and cfg.dp_epsilon is None:  # under DP: a noisy release, in _fit_private
            self.net_.prior.copy_(torch.from_numpy(popularity_prior(X)))
        opt = torch.optim.Adam([p for p in self.net_.parameters() if p.requires_grad], lr=cfg.lr)
        loader = user_loader(X.shape[0], cfg.batch_size, cfg.seed)
        t1 = time.perf_counter()
        if cfg.fair_attribute and cfg.fair_method == "adversarial":
            losses = self._fit_adversarial(X, loader, labels, rng)
            self.privacy_ = {"private": False}
        elif cfg.dp_epsilon is None:
            losses = train_epochs(self.net_, X, self.text_, loader, opt, cfg.epochs, cfg.keep_prob, rng, cfg.progress)
            self.privacy_ = {"private": False}
        else:
            losses = self._fit_private(X, loader, opt, rng)
        self.fit_info_["train_seconds"] = round(time.perf_counter() - t1, 2)
        self.fit_info_["loss_curve"] = [round(v, 5) for v in losses]
        if cfg.fair_attribute and cfg.fair_method in ("leace", "nullspace"):
            t2 = time.perf_counter()
            self._fit_nullspace(X, labels, rng)
            self.fit_info_["fair_seconds"] = round(time.perf_counter() - t2, 2)
        self._finish()
        if valid is not None and len(valid):
            from longrec.models.validation import valid_ndcg
            self.fit_info_["valid_ndcg@10"] = round(valid_ndcg(self, valid), 6)

    # ---------------------------------------------------------------- fair training
    def _fair_labels(self, train) -> np.ndarray:
        """Class index of every vocabulary user's `fair_attribute` (-1 = unknown); the class
        names go to fit_info_["fair"]."""
        import pandas as pd

        col = self.config.fair_attribute
        users = train.users
        if users is None or col not in users.columns:
            have = [] if users is None else [c for c in users.columns if c != "user_id"]
            raise ConfigError(f"fair_attribute={col!r} needs that column in the training data's user table; "
                              f"the user table has {have or 'no columns'}. Attach a user table (Dataset(..., users=...)) "
                              "or pick one of its columns.")
        tab = users.drop_duplicates("user_id", keep="last")
        vals = pd.Series(tab[col].to_numpy(), index=tab["user_id"].astype(str).to_numpy(), dtype=object)
        v = vals.reindex(pd.Series(self.vocab_.users.ids, dtype=object).astype(str).to_numpy())
        known = v.notna().to_numpy()
        classes, idx = np.unique(v[known].astype(str).to_numpy(), return_inverse=True)
        counts = np.bincount(idx, minlength=len(classes))
        if len(classes) < 2 or counts.min() < 4:
            raise ConfigError(f"fair_attribute={col!r} needs >= 2 values with >= 4 training users each; "
                              f"got {dict(zip(classes.tolist(), counts.tolist()))}. Bucket rare values together.")
        labels = np.full(len(v), -1, dtype=np.int64)
        labels[known] = idx
        self.fit_info_["fair"] = {"attribute": col, "method": self.config.fair_method, "classes": classes.tolist()}
        return labels

    def _fit_adversarial(self, X, loader, labels: np.ndarray, rng) -> list[float]:
        """Train with an adversary on the user vector: the adversary learns to predict the
        attribute from u (its gradient does not reach the user tower), and the user tower is
        pushed to make the adversary's prediction uniform (the confusion loss of Alvi et al.
        2018). Plain gradient reversal (maximising the adversary's cross-entropy) lets the
        tower flip the adversary instead of hiding the attribute: on the tests' planted-gender
        data it left the attacker AUC at 0.99 for weights 1 to 100."""
        import torch
        from torch import nn
        from torch.func import functional_call

        cfg = self.config
        n_cls = int(labels.max()) + 1
        adv = nn.Sequential(nn.Linear(cfg.dim, 32), nn.ReLU(), nn.Linear(32, n_cls))
        lab = torch.from_numpy(labels)
        net = self.net_

        def aux(rows, x):
            y = lab[rows]
            ok = y >= 0
            if not bool(ok.any()):
                return torch.zeros(())
            u = net.user_vectors(torch.from_numpy(x[ok.numpy()]))
            fit_adv = nn.functional.cross_entropy(adv(u.detach()), y[ok])
            frozen = {k: v.detach() for k, v in adv.named_parameters()}
            logp = torch.log_softmax(functional_call(adv, frozen, (u,)), 1)
            confuse = -logp.mean(1).mean()  # cross-entropy to the uniform distribution
            return fit_adv + cfg.fair_weight * confuse

        # a faster adversary: the user tower only hides what a well-fitted adversary can see
        opt = torch.optim.Adam([{"params": net.parameters()}, {"params": adv.parameters(), "lr": 10 * cfg.lr}], lr=cfg.lr)
        return train_epochs(net, X, self.text_, loader, opt, cfg.epochs, cfg.keep_prob, rng, cfg.progress, aux=aux)

    def _fit_nullspace(self, X, labels: np.ndarray, rng) -> None:
        """Linear erasure of the attribute from the user vectors (LEACE or iterative nullspace
        projection), then re-fit the item side with the user tower frozen."""
        import torch

        cfg = self.config
        with torch.no_grad():
            U = self.net_.user(torch.from_numpy(history_features(X, self.text_))).numpy().astype(np.float64)
        ok = (labels >= 0) & (np.diff(X.indptr) > 0)  # users with no history all share one vector
        if cfg.fair_method == "leace":
            P = leace_eraser(U[ok], labels[ok])
            self.fit_info_["fair"].update(removed_directions=int(labels.max()))
        else:
            P, rounds = nullspace_projection(U[ok], labels[ok], cfg.fair_stop_auc, cfg.fair_max_directions, cfg.seed)
            self.fit_info_["fair"].update(removed_directions=int(round(cfg.dim - np.trace(P))), probe_auc=rounds)
        self.net_.fair_proj.copy_(torch.from_numpy(P.astype(np.float32)))
        if cfg.fair_finetune_epochs:
            for p in self.net_.user.parameters():
                p.requires_grad_(False)
            opt = torch.optim.Adam([*self.net_.item.parameters(), *self.net_.bias.parameters()], lr=cfg.lr)
            loader = user_loader(X.shape[0], cfg.batch_size, cfg.seed + 1)
            curve = train_epochs(self.net_, X, self.text_, loader, opt, cfg.fair_finetune_epochs, cfg.keep_prob, rng)
            for p in self.net_.user.parameters():
                p.requires_grad_(True)
            self.fit_info_["fair"]["finetune_loss_curve"] = [round(v, 5) for v in curve]

    def debiased(self, train, valid=None, **options) -> DPTwoTower:
        """A copy of this fitted model with the nullspace fair step applied post hoc (the same
        step `fit` runs after training when fair_method="nullspace"), e.g. to sweep
        fair_stop_auc without retraining. `train` must be the data this model was fitted on;
        options: fair_attribute (required unless configured), fair_stop_auc,
        fair_max_directions, fair_finetune_epochs."""
        import copy

        from longrec.models.base import make_config

        self._require_fitted()
        if self.is_private or getattr(self.net_, "fair_proj", None) is not None:
            raise ConfigError("debiased() needs a non-private model trained without the nullspace option.")
        if train.fingerprint() != self.meta_.get("data_fingerprint"):
            raise ConfigError("debiased() needs the training Dataset this model was fitted on (the fingerprint differs).")
        new = copy.deepcopy(self)
        new.config = make_config(type(self.config), {"fair_method": "leace", **self.config.model_dump(), **options})
        if new.config.fair_method == "adversarial":
            raise ConfigError("debiased() applies fair_method 'leace' or 'nullspace'; 'adversarial' needs fit().")
        if not new.config.fair_attribute:
            raise ConfigError("debiased() needs fair_attribute=COLUMN (a column of the user table).")
        state = new.net_.state_dict()
        new.net_ = build_net(new.text_, new.config)
        new.net_.load_state_dict(state, strict=False)  # all but the (identity) projection
        X = new.training_matrix()
        t0 = time.perf_counter()
        new._fit_nullspace(X, new._fair_labels(train), np.random.default_rng(new.config.seed))
        new.fit_info_["fair_seconds"] = round(time.perf_counter() - t0, 2)
        new._finish()
        if valid is not None and len(valid):
            from longrec.models.validation import valid_ndcg
            new.fit_info_["valid_ndcg@10"] = round(valid_ndcg(new, valid), 6)
        return new

    def _fit_private(self, X, loader, opt, rng) -> list[float]:
        import warnings

        cfg = self.config
        require_opacus()
        from opacus import PrivacyEngine

        n_users = X.shape[0]
        delta = cfg.dp_delta if cfg.dp_delta is not None else 1.0 / n_users
        import torch

        prior_noise = cfg.prior_noise if cfg.popularity_prior else None
        steps = cfg.epochs * len(loader)  # Opacus's Poisson loader: sample rate 1/len(loader)
        sigma = calibrate_noise(cfg.dp_epsilon, delta, 1.0 / len(loader), steps, prior_noise, cfg.accountant)
        gen, prior_rng = None, rng  # reproducible_noise: the streams seeded from cfg.seed in _fit
        if not cfg.reproducible_noise:
            # Poisson sampling, gradient noise and the prior's noise each from its own kept-nowhere
            # seed: one seed for the sampler and the noise would tie the noise to who was sampled
            loader = user_loader(n_users, cfg.batch_size, noise_seed(cfg.seed, False))
            gen = torch.Generator().manual_seed(noise_seed(cfg.seed, False))
            prior_rng = np.random.default_rng(noise_seed(cfg.seed, False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns about secure RNG and full backward hooks
            engine = PrivacyEngine(accountant=cfg.accountant)
            if prior_noise is not None:
                self.net_.prior.copy_(torch.from_numpy(popularity_prior(X, prior_noise, prior_rng)))
                engine.accountant.history.append((prior_noise, 1.0, 1))  # one Gaussian release
            net, dp_opt, dp_loader = engine.make_private(
                module=self.net_, optimizer=opt, data_loader=loader, noise_multiplier=sigma,
                max_grad_norm=cfg.max_grad_norm, poisson_sampling=True, noise_generator=gen)
            losses = train_epochs(net, X, self.text_, dp_loader, dp_opt, cfg.epochs, cfg.keep_prob, rng, cfg.progress)
            spent = float(engine.get_epsilon(delta))
        # the trained weights live in the wrapped module; keep a plain module for inference/saving
        state = {k.removeprefix("_module."): v for k, v in net.state_dict().items()}
        self.net_ = build_net(self.text_, cfg)
        self.net_.load_state_dict(state)
        self.privacy_ = privacy_record(
            "DP-SGD (Opacus, Poisson sampling)", epsilon_target=cfg.dp_epsilon, epsilon_spent=round(spent, 4),
            delta=delta, noise_multiplier=round(float(dp_opt.noise_multiplier), 5),
            reproducible_noise=cfg.reproducible_noise, accountant=cfg.accountant, max_grad_norm=cfg.max_grad_norm,
            sample_rate=round(1.0 / len(dp_loader), 6),
            steps=int(sum(h[2] for h in engine.accountant.history if h[1] < 1.0)), n_users=n_users,
            popularity_prior=None if prior_noise is None else {"mechanism": "Gaussian, per-user L2 norm 1",
                                                               "noise_multiplier": prior_noise})
        return losses

    def _finish(self) -> None:
        self.net_.eval()
        self.privacy_ = getattr(self, "privacy_", {"private": False})

    # ---------------------------------------------------------------- inference
    def user_embeddings(self, users=None, histories=None) -> tuple[np.ndarray, np.ndarray]:
        """(caller user IDs, (n, dim) user vectors) from the users' histories — what an
        attribute-inference attacker would see."""
        import torch

        ids, hist = self._users_and_histories(users, histories)
        with torch.no_grad():
            u = self.net_.user_vectors(torch.from_numpy(history_features(hist.matrix(), self.text_)))
        return ids, u.numpy()

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        import torch

        torch.set_num_threads(self.config.num_threads)
        with torch.no_grad():
            return self.net_(torch.from_numpy(history_features(hist.matrix(), self.text_))).numpy()

    # ---------------------------------------------------------------- arrays (persistence, federation)
    def get_arrays(self) -> dict[str, np.ndarray]:
        """The trained parameters (what FedAvg averages); the frozen text is not included."""
        return {k: v.detach().numpy().copy() for k, v in self.net_.state_dict().items() if k != "text"}

    def set_arrays(self, arrays: dict[str, Any]) -> None:
        import torch

        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}
        state["text"] = self.net_.text
        self.net_.load_state_dict(state)

    def _state(self) -> dict[str, np.ndarray]:
        return {"text": self.text_, **{f"net.{k}": v for k, v in self.get_arrays().items()}}

    def _check_state(self, d, t, n_users, n_items) -> None:
        from longrec.models.artifacts import check_tensors

        # the net's own names and shapes are checked by torch (load_state_dict, strict)
        check_tensors(d, {k: v for k, v in t.items() if not k.startswith("net.")}, {"text": ("f", (n_items, None))})

    def _set_state(self, t: dict[str, np.ndarray]) -> None:
        self.text_ = np.asarray(t["text"], dtype=np.float32)
        self.net_ = build_net(self.text_, self.config)
        self.set_arrays({k[4:]: v for k, v in t.items() if k.startswith("net.")})
        self._finish()
