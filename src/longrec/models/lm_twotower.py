"""lm-twotower: a two-tower model in a joint user-item space built on language-model text
embeddings.

Item tower   f(i) = P(t_i) + id_i                 t_i: frozen LM embedding of the item text,
             b_i  = p_b(t_i) + β_i                P, p_b: learned projections (MLPs by default);
                                                  b_i = text-predicted prior + learned offset
User tower   g(u) = MLP( pool(f(history)) + W_u · t_u )
             pool = mean, or attention with a learned query; t_u: LM embedding of the
             user's text (user-table attributes, opt-in) when there is one
Score        s(u, i) = ⟨g(u), f(i)⟩ + b_i,   P(u, i) = σ(s(u, i))

The ID embedding (and β_i) is dropped for a random `id_dropout` share of items at every
training step, so the text path must carry each item on its own; items with no training
interactions have no ID part at all and are scored through their text (cold start).

Training: each step takes (user, held-out item) pairs; the user's history minus that item
is the input, the item is the target. Loss: full softmax over the items seen in training
(sampled softmax with log-Q correction above `full_softmax_max_items`), or BPR with one
sampled negative. Early stopping keeps the epoch with the best validation NDCG@10.
`workers > 1` trains data-parallel on Ray Train (longrec.models._data_parallel): each worker
takes its share of every batch (so sampled softmax's in-batch negatives come from that share)
and the gradients are averaged.

`interaction="additive"` is the ablation P(u, i) = σ(W_u·h_u + W_i·h_i + b): the user
term is the same for every item, so the ranking of items is identical for every user
(a learned popularity list). It is kept to show, in the benchmark, why the default is the
inner product.

The config, training loop and scoring live here; the torch module is
longrec.models.twotower_net.TwoTowerNet (which also holds lm-twotower-dp's net).
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from longrec.models._training import module_checkpoints, train_with_early_stopping
from longrec.models._lm_items import ItemTextConfig
from longrec.models.base import HistoryBatch, Recommender
from longrec.models._windows import last_items


class LMTwoTowerConfig(ItemTextConfig):
    use_id: bool = Field(True, description="add a learned ID embedding to the item tower")
    id_dropout: float = Field(0.5, ge=0, le=1, description="share of items whose ID part is dropped per step")
    user_text: bool = Field(False, description="embed user-table attributes as user text (opt-in: "
                            "demographics stay out of models unless asked for)")
    item_layers: Literal[1, 2] = Field(2, description="item tower depth over the text embedding "
                                        "(2 = an MLP: generalises better to cold items)")
    pooling: Literal["mean", "attention"] = "mean"
    interaction: Literal["dot", "additive"] = "dot"
    loss: Literal["softmax", "bpr"] = "softmax"
    dim: int = Field(64, ge=4)
    dropout: float = Field(0.2, ge=0, lt=1)
    temperature: float = Field(1.0, gt=0, description="softmax logits are divided by this")
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(512, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    full_softmax_max_items: int = Field(
        10_000, ge=1, description="above this many trained items: sampled softmax with log-Q correction, the item "
        "tower run on a step's items only. 10,000 puts Book-Crossing B1 (12,339 books) on it: 0.72x the time per "
        "epoch of the full softmax, valid NDCG@10 at parity for the same wall time (bench/NOTES.md)")
    n_negatives: int = Field(2048, ge=1, description="sampled negatives per step (sampled softmax); 1024 lost "
                             "~4% valid NDCG@10 on B1 after 2 epochs, 2048 did not")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="training matrix multiplies: fp32, or bf16 (torch autocast for both towers and the "
        "scores; the softmax/loss in float32; fast on CPUs with AMX / AVX-512 BF16). Weights, optimiser and "
        "scoring stay float32")
    eval_every: int = Field(1, ge=1)
    patience: int = Field(8, ge=1)
    valid_items: Literal["all", "cold"] = Field(
        "all", description="early stopping ranks all items, or only the items without training "
        "interactions (select for cold start: pass a validation split whose items are cold)")
    max_seconds: float | None = Field(None, gt=0)
    num_threads: int = Field(2, ge=1, description="torch threads (shared among the workers when workers > 1)")
    workers: int = Field(1, ge=1, description="data-parallel training processes on Ray Train; 1 = this process")
    ray_address: str | None = Field(None, description="with workers > 1: the Ray cluster to join "
                                    "(default: a local Ray started for the fit)")
    progress: bool = False


def _build_net(text: np.ndarray, user_text_dim: int, cfg: LMTwoTowerConfig):
    from longrec.models.twotower_net import TwoTowerNet

    return TwoTowerNet(text, cfg.dim, item_layers=cfg.item_layers, use_id=cfg.use_id, user_text_dim=user_text_dim,
                       pooling=cfg.pooling, dropout=cfg.dropout, interaction=cfg.interaction)


def _upgrade_state(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Saved nets with one-layer item towers named their layers `proj.weight`/`bias_text.weight`
    (a bare Linear); the same layers are now `proj.0.*`/`bias_text.0.*` (TextMLP): rename."""
    out = {}
    for k, v in t.items():
        for old in ("net.proj.", "net.bias_text."):
            if k in (old + "weight", old + "bias"):
                k = old + "0." + k[len(old):]
        out[k] = v
    return out


class LMTwoTower(Recommender):
    """Two towers in one LM-initialised space; see the module docstring."""

    name = "lm-twotower"
    Config = LMTwoTowerConfig
    fresh_scores = True  # _score builds its matrix per call

    # ---------------------------------------------------------------- data
    def _user_texts(self, train) -> np.ndarray | None:
        if not self.config.user_text or train.users is None or len(train.users.columns) < 2:
            return None
        from longrec.lm.text import user_text
        from longrec.models._lm_items import embed_texts

        tab = train.users.drop_duplicates("user_id", keep="last")
        pos = pd.Index(tab["user_id"].astype(str)).get_indexer(pd.Series(self.vocab_.users.ids, dtype=object).astype(str))
        cols = [c for c in tab.columns if c != "user_id"]
        recs = tab[cols].to_dict("records")
        texts = [user_text(recs[p], use_attributes=True) if p >= 0 else "" for p in pos]
        texts = [t or "unknown user" for t in texts]
        return embed_texts(texts, self.config.encoder)

    def _fit(self, X, train, valid) -> None:
        import torch

        from longrec.models._lm_items import model_item_text

        cfg = self.config
        torch.set_num_threads(cfg.num_threads)
        t0 = time.perf_counter()
        text = model_item_text(self)
        self.user_text_ = self._user_texts(train)
        self.fit_info_["text_seconds"] = round(time.perf_counter() - t0, 2)
        from longrec.models._training import run_training

        self.fit_info_.update(run_training(self, X, valid, text))
        self._finish()

    def _train(self, X, valid, text, comm=None) -> dict:
        """The training loop; returns the fit_info entries. `comm` (longrec.models._data_parallel)
        makes it one of several data-parallel workers: each takes its share of every batch, the
        gradients are averaged across workers, and the first worker's validation score (and
        clock) decides for all. Without it the loop is the plain one-process fit."""
        import torch
        import torch.nn.functional as F_

        cfg = self.config
        rank, world = (comm.rank, comm.world) if comm is not None else (0, 1)
        torch.set_num_threads(cfg.num_threads if comm is None else comm.threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        n_users, n_items = X.shape
        utext = self.user_text_
        self.net_ = _build_net(text, 0 if utext is None else utext.shape[1], cfg)  # the same start on every worker
        if rank > 0:  # dropout, ID-dropout and negatives differ per worker
            torch.manual_seed(cfg.seed + 7919 * rank)
        warm = self.popularity_ > 0
        self.net_.id_mask.copy_(torch.from_numpy(warm.astype(np.float32)))
        Ut = None if utext is None else torch.from_numpy(utext)
        # padded histories (n_users, H): the training histories, most recent H items
        H = int(min(np.diff(self.seen_.indptr).max(), 200))
        seq, lens = last_items(self.seen_.indptr, self.seen_.indices, H)
        seq_t, w_t = torch.from_numpy(seq), torch.from_numpy((np.arange(H)[None, :] < lens[:, None]).astype(np.float32))
        # (user, slot) training pairs: every history slot is a target once per epoch
        pu = np.repeat(np.arange(n_users), lens)
        ps = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        warm_idx = torch.from_numpy(np.flatnonzero(warm))
        remap = torch.full((n_items,), -1, dtype=torch.long)
        remap[warm_idx] = torch.arange(len(warm_idx))
        sampled = len(warm_idx) > cfg.full_softmax_max_items
        all_warm = len(warm_idx) == n_items
        q = np.power(self.popularity_[warm] + 1.0, 0.75)
        q = torch.from_numpy((q / q.sum()).astype(np.float32))
        opt = torch.optim.AdamW(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        from longrec.models._training import Budget

        budget = Budget(cfg.max_seconds)

        def tempered(logits):  # / temperature; x / 1.0 == x, so the default skips a (B, n_items) pass and its backward
            return logits if cfg.temperature == 1.0 else logits / cfg.temperature

        bf16 = cfg.precision == "bf16"

        def amp():  # bf16 autocast for the towers and the score products (a no-op in fp32)
            return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

        def sampled_loss(u, slot):
            """Sampled softmax with log-Q correction: the batch's targets (in-batch negatives for
            the other rows) and `n_negatives` items drawn from q. The item tower runs only on the
            items the step reads (the histories, targets and negatives), each with its own ID-
            dropout draw, instead of on the whole catalogue."""
            n = len(u)
            neg = torch.multinomial(q, cfg.n_negatives, replacement=True)  # positions in warm_idx
            hist = seq_t[u]
            tgt = hist[torch.arange(n), slot]
            cand = torch.cat([remap[tgt], neg])
            need, inv = torch.unique(torch.cat([hist.reshape(-1), warm_idx[cand]]), return_inverse=True)
            keep = (torch.rand(len(need)) >= cfg.id_dropout).float()
            w = w_t[u].clone()
            w[torch.arange(n), slot] = 0.0                                # hold the target out of the input
            rows = inv[hist.numel():]
            with amp():
                Fi, bi = self.net_.item_vectors(keep, idx=need)         # rows of `need` only
                U = self.net_.user_vectors(Fi, inv[:hist.numel()].view_as(hist), w, None if Ut is None else Ut[u])
                logits = self.net_.scores(U, Fi[rows], bi[rows])
            logits = tempered(logits.float() if bf16 else logits)
            logits = logits - torch.log(q[cand] * cfg.n_negatives)[None, :]
            # each row's positive sits in column r; other rows' positives are negatives too
            logits[:, :n] = logits[:, :n].masked_fill(
                (cand[:n][None, :] == cand[:n][:, None]) & ~torch.eye(n, dtype=torch.bool), float("-inf"))
            logits[:, n:] = logits[:, n:].masked_fill(cand[n:][None, :] == cand[:n][:, None], float("-inf"))
            return F_.cross_entropy(logits, torch.arange(n))

        def run_epoch(epoch: int) -> None:
            self.net_.train()
            perm = rng.permutation(len(pu))  # the same order on every worker
            for s in range(0, len(perm), cfg.batch_size):
                if comm is None and budget.spent():  # max_seconds inside an epoch too (workers stop
                    break                            # together at epoch ends only: they must agree)
                b = perm[s:s + cfg.batch_size][rank::world]  # this worker's share of the batch
                if not len(b):
                    opt.zero_grad()
                    comm.average_gradients(self.net_)  # the others' gradients (this share is empty)
                    opt.step()
                    continue
                u, slot = torch.from_numpy(pu[b]), torch.from_numpy(ps[b])
                if sampled and cfg.loss == "softmax":
                    loss = sampled_loss(u, slot)
                    opt.zero_grad()
                    loss.backward()
                    if comm is not None:
                        comm.average_gradients(self.net_)
                    opt.step()
                    continue
                keep = (torch.rand(n_items) >= cfg.id_dropout).float()
                w = w_t[u].clone()
                w[torch.arange(len(b)), slot] = 0.0            # hold the target out of the input
                tgt = seq_t[u, slot]
                with amp():
                    Fi, bi = self.net_.item_vectors(keep)
                    U = self.net_.user_vectors(Fi, seq_t[u], w, None if Ut is None else Ut[u])
                    if cfg.loss == "bpr" or (not sampled and all_warm):  # the same logits without copying Fi/bi
                        su = self.net_.scores(U, Fi, bi)
                    else:
                        su = self.net_.scores(U, Fi[warm_idx], bi[warm_idx])
                if bf16:
                    su = su.float()
                if cfg.loss == "bpr":
                    neg = warm_idx[torch.randint(len(warm_idx), (len(b),))]
                    x = su[torch.arange(len(b)), tgt] - su[torch.arange(len(b)), neg]
                    loss = -F_.logsigmoid(x).mean()
                elif not sampled and all_warm:
                    loss = F_.cross_entropy(tempered(su), tgt)
                else:
                    loss = F_.cross_entropy(tempered(su), remap[tgt])
                opt.zero_grad()
                loss.backward()
                if comm is not None:
                    comm.average_gradients(self.net_)
                opt.step()

        def score() -> float:
            self._finish()
            if comm is None:
                return self._valid_score(valid)
            return comm.score_on_first(lambda: self._valid_score(valid))

        has_valid = valid is not None if comm is None else comm.has_valid
        return train_with_early_stopping(
            run_epoch, score if has_valid else None, *module_checkpoints(self.net_),
            epochs=cfg.epochs, eval_every=cfg.eval_every, patience=cfg.patience, max_seconds=cfg.max_seconds,
            progress="lm-twotower epochs" if cfg.progress and rank == 0 else None, budget=budget,
            estimate="lm-twotower" if rank == 0 else None, agree=None if comm is None else comm.agree)

    def _valid_score(self, valid) -> float:
        from longrec.metrics.ranking import evaluate
        from longrec.models.validation import valid_ndcg

        if self.config.valid_items == "all":
            return valid_ndcg(self, valid)
        cold = self.vocab_.items.ids[self.popularity_ == 0]
        vi = valid.interactions[valid.interactions["item_id"].astype(str).isin(set(map(str, cold)))]
        if len(vi) == 0 or len(cold) == 0:
            return valid_ndcg(self, valid)
        recs = self.recommend(users=vi["user_id"].unique(), k=10, candidates=cold)
        return float(evaluate(recs, vi[["user_id", "item_id"]], ks=(10,))["NDCG@10"])

    def _finish(self) -> None:
        import torch

        self.net_.eval()
        with torch.no_grad():
            self._F, self._b = self.net_.item_vectors()

    # ---------------------------------------------------------------- inference
    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        import torch

        torch.set_num_threads(self.config.num_threads)
        H = int(max(hist.lengths().max(initial=1), 1))
        seq, lens = last_items(hist.indptr, hist.indices, H)
        w = (np.arange(H)[None, :] < lens[:, None]).astype(np.float32)
        ut = None
        if self.user_text_ is not None:
            ut = np.zeros((len(users), self.user_text_.shape[1]), dtype=np.float32)
            ut[users >= 0] = self.user_text_[users[users >= 0]]
            ut = torch.from_numpy(ut)
        with torch.no_grad():
            U = self.net_.user_vectors(self._F, torch.from_numpy(seq), torch.from_numpy(w), ut)
            return self.net_.scores(U, self._F, self._b).numpy().astype(np.float32, copy=False)

    # ---------------------------------------------------------------- persistence
    def _state(self) -> dict[str, np.ndarray]:
        out = {f"net.{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}
        if self.user_text_ is not None:
            out["user_text"] = self.user_text_
        return out

    def _check_state(self, d, t, n_users, n_items) -> None:
        from longrec.models.artifacts import check_tensors

        # the net's own names and shapes are checked by torch (load_state_dict, strict)
        own = {k: v for k, v in t.items() if not k.startswith("net.") or k == "net.text"}
        check_tensors(d, own, {"net.text": ("f", (n_items, None)), "user_text": ("f", (n_users, None))},
                      optional=("user_text",))

    def _set_state(self, t: dict[str, np.ndarray]) -> None:
        import torch

        t = _upgrade_state(t)
        self.user_text_ = t.get("user_text")
        ud = 0 if self.user_text_ is None else self.user_text_.shape[1]
        self.net_ = _build_net(t["net.text"], ud, self.config)
        self.net_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in t.items() if k.startswith("net.")})
        self._finish()
