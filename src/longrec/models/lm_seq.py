"""lm-seq: a SASRec-style sequential transformer whose item embeddings start from a language
model (Kang & McAuley, ICDM 2018; text-initialised items as in UniSRec/Recformer-style work).

The config, training and scoring live here; the torch modules in longrec.models.lm_seq_net
(imported lazily).

Item table  e_i = W · t_i + id_i        (mode "lm+id", the default)
            e_i = W · t_i               (mode "text-only": no per-item parameters)
            e_i = id_i                  (mode "id-only": classic SASRec)
where t_i is the frozen LM embedding of the item's text (longrec.lm, cached on disk) and
W a learned projection. The same table embeds the input sequence and scores the output
(tied weights), so an item that never occurred in training still gets a vector from its
text: after training, the ID part of items without training interactions is reset to zero
(the softmax only ever pushed it down), and they are scored through their text alone.

Sequence model: causal self-attention blocks (pre-norm, GELU, dropout) over the last
`max_len` items of each history with learned positional embeddings; the hidden state at a
position predicts the next item. Loss: full-softmax cross-entropy over the catalogue while
it has at most `full_softmax_max_items` items, else sampled softmax with `n_negatives`
shared negatives drawn ∝ popularity^0.75 and the log-Q correction (logit − log(K·q)).
Training keeps the epoch with the best validation NDCG@10 (early stopping).

At inference any history (training interactions + new ones passed to recommend()) is
encoded as it is: new users and new clicks need no retraining.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from longrec.models._training import Budget, module_checkpoints, train_with_early_stopping
from longrec.models._windows import last_items
from longrec.models._lm_items import ItemTextConfig
from longrec.models.base import HistoryBatch, Recommender


#: padded lengths of the inference buckets (see LMSeq._last_hidden); rows longer run at max_len
LAST_HIDDEN_BUCKETS = (16, 32)


# ============================================================================ config
class LMSeqConfig(ItemTextConfig):
    mode: Literal["lm+id", "id-only", "text-only"] = Field(
        "lm+id", description="item embedding: LM text projection + ID (default) or an ablation")
    id_init: Literal["zero", "text", "normal"] = Field(
        "zero", description="start of the ID embeddings: zero (text carries the item at first), "
        "text (the top principal components of the LM embeddings: LM-initialised IDs) or normal")
    text_norm: bool = Field(False, description="LayerNorm after the text projection")
    text_adapter: Literal["linear", "mlp", "moe"] = Field(
        "linear", description="map from the LM embedding to the item space: linear, mlp (one GELU hidden "
        "layer) or moe (UniSRec's mixture of whitening experts)")
    moe_experts: int = Field(4, ge=1, description="experts of the moe adapter")
    id_dropout: float = Field(0.0, ge=0, lt=1, description="share of items whose ID part is dropped "
                              "at each training step (the text path must carry them)")
    dim: int = Field(64, ge=8)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    ff_mult: int = Field(1, ge=1, description="feed-forward width = ff_mult x dim (SASRec: 1)")
    max_len: int = Field(50, ge=2, description="most recent history items the model reads")
    dropout: float = Field(0.3, ge=0, lt=1)
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    window_stride: int | None = Field(None, ge=1, description="training windows every N items "
                                      "(default max_len: long histories give several windows)")
    full_softmax_max_items: int = Field(50_000, ge=1, description="above: sampled softmax with log-Q")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="training matrix multiplies: fp32, or bf16 (torch autocast for the network, bf16 "
        "products with float32 softmax and accumulation for the loss; fast on CPUs with AMX / AVX-512 BF16). "
        "Weights, optimiser and scoring stay float32")
    n_negatives: int = Field(512, ge=1, description="shared negatives per batch (sampled softmax)")
    eval_every: int = Field(1, ge=1)
    patience: int = Field(10, ge=1, description="validation checks without improvement before stopping")
    max_seconds: float | None = Field(None, gt=0, description="stop training after this long")
    num_threads: int = Field(2, ge=1, description="torch threads (shared among the workers when workers > 1)")
    workers: int = Field(1, ge=1, description="data-parallel training processes on Ray Train; 1 = this process")
    ray_address: str | None = Field(None, description="with workers > 1: the Ray cluster to join "
                                    "(default: a local Ray started for the fit)")
    progress: bool = False


def _fused_linear_cross_entropy(bf16: bool = False):
    """Mean cross-entropy of softmax(h · Wᵀ) against y, computed in row chunks with the
    gradients taken in the same pass, so the (N, n_items) logit matrix never exists whole:
    the same values as F.cross_entropy(h @ W.T, y), about 2.5x faster on CPU, where the
    full-softmax loss is bound by memory traffic. `bf16`: the three products take bfloat16
    inputs (float32 results; the softmax and the sums stay float32)."""
    import torch

    low = torch.bfloat16 if bf16 else None

    class FusedLinearCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h, W, y, chunk: int = 512):
            n = h.shape[0]
            gh, gW, loss = torch.empty_like(h), torch.zeros_like(W), h.new_zeros(())
            Wl = W.to(low) if low is not None else W
            for s in range(0, n, chunk):
                hc, yc = h[s:s + chunk], y[s:s + chunk]
                hl = hc.to(low) if low is not None else hc
                z = (hl @ Wl.T).float() if low is not None else hc @ W.T
                lse = torch.logsumexp(z, 1, keepdim=True)
                loss += (lse.squeeze(1) - z.gather(1, yc[:, None]).squeeze(1)).sum()
                p = z.sub_(lse).exp_()                    # softmax, in place
                p[torch.arange(len(yc)), yc] -= 1.0       # d loss / d logits
                if low is None:
                    torch.mm(p, W, out=gh[s:s + chunk])
                    gW.addmm_(p.T, hc)
                else:
                    pl = p.to(low)
                    gh[s:s + chunk] = (pl @ Wl).float()
                    gW += (pl.T @ hl).float()
            ctx.save_for_backward(gh.div_(n), gW.div_(n))
            return loss / n

        @staticmethod
        def backward(ctx, g):
            gh, gW = ctx.saved_tensors
            return gh * g, gW * g, None, None

    return FusedLinearCE.apply


# ============================================================================ model
class LMSeq(Recommender):
    """Sequential transformer with language-model-initialised items; see the module docstring."""

    name = "lm-seq"
    Config = LMSeqConfig
    fresh_scores = True  # _score builds its matrix per call

    # ---------------------------------------------------------------- data
    def _item_text(self) -> np.ndarray | None:
        if self.config.mode == "id-only" and self.config.id_init != "text":
            return None
        from longrec.models._lm_items import model_item_text
        return model_item_text(self)

    def _windows(self, X) -> np.ndarray:
        """Right-padded training windows (n, max_len + 1) of item index + 1, from the ordered
        training histories; each history gives a window ending at its last item, then one
        every `window_stride` items back."""
        L = self.config.max_len + 1
        stride = self.config.window_stride or self.config.max_len
        ptr, idx = self.seen_.indptr, self.seen_.indices.astype(np.int64) + 1
        lens = np.diff(ptr)
        # window end positions (exclusive) per user: n, n - stride, ... while >= 2 items remain
        n_win = np.where(lens >= 2, (np.maximum(lens - 2, 0) // stride) + 1, 0)
        users = np.repeat(np.arange(len(lens)), n_win)
        k = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)
        end = ptr[users + 1] - k * stride
        start = np.maximum(end - L, ptr[users])
        pos = start[:, None] + np.arange(L)[None, :]
        ok = pos < end[:, None]
        return np.where(ok, idx[np.minimum(pos, len(idx) - 1)], 0)

    @staticmethod
    def _last_windows(hist: HistoryBatch, L: int) -> tuple[np.ndarray, np.ndarray]:
        """The last L items of each history (a HistoryBatch or a CSR matrix), right-padded (item
        index + 1), and their lengths."""
        return last_items(hist.indptr, hist.indices, L, offset=1)

    # ---------------------------------------------------------------- training
    def _fit(self, X, train, valid) -> None:
        t0 = time.perf_counter()
        text = self._item_text()
        self.fit_info_["text_seconds"] = round(time.perf_counter() - t0, 2)
        from longrec.models._training import run_training

        self.fit_info_.update(run_training(self, X, valid, text))
        self._finish()

    def _train(self, X, valid, text, comm=None) -> dict:
        """The training loop; returns the fit_info entries. `comm` (longrec.models._data_parallel)
        makes it one of several data-parallel workers: each takes its share of every batch, the
        gradients are averaged across workers, and the first worker's validation score decides
        for all. Without it the loop is the plain one-process fit."""
        import torch
        import torch.nn.functional as F

        from longrec.models.lm_seq_net import SeqNet

        cfg = self.config
        rank, world = (comm.rank, comm.world) if comm is not None else (0, 1)
        torch.set_num_threads(cfg.num_threads if comm is None else comm.threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        n_items = X.shape[1]
        # every worker starts from the same weights (same torch seed); dropout masks differ per worker
        net_cfg = cfg if rank == 0 else cfg.model_copy(update={"seed": cfg.seed + 7919 * rank})
        self.net_ = SeqNet(net_cfg, n_items, text)
        wins = torch.from_numpy(self._windows(X))
        opt = torch.optim.AdamW(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # the softmax runs over items seen in training only: pushing never-seen items down
        # would teach the text projection what "cold" text looks like
        warm = np.flatnonzero(self.popularity_ > 0)
        warm_rows = torch.from_numpy(warm + 1)
        remap = torch.full((n_items + 1,), -1, dtype=torch.long)
        remap[warm_rows] = torch.arange(len(warm))
        sampled = len(warm) > cfg.full_softmax_max_items
        bf16 = cfg.precision == "bf16"
        linear_ce = _fused_linear_cross_entropy(bf16)
        q = np.power(self.popularity_[warm], 0.75)
        q = torch.from_numpy((q / q.sum()).astype(np.float32))

        budget = Budget(cfg.max_seconds)

        def run_epoch(epoch: int) -> None:
            self.net_.train()
            perm = torch.from_numpy(rng.permutation(len(wins)))  # the same order on every worker
            for s in range(0, len(perm), cfg.batch_size):
                if comm is None and budget.spent():  # max_seconds inside an epoch (workers stop together
                    break                            # at epoch ends only: they must agree)
                w = wins[perm[s:s + cfg.batch_size][rank::world]]  # this worker's share of the batch
                keep = None
                if cfg.id_dropout > 0 and self.net_.use_id and self.net_.use_text:
                    keep = (torch.rand(n_items + 1, 1) >= cfg.id_dropout).float()
                opt.zero_grad()
                if len(w):
                    inp, tgt = w[:, :-1], w[:, 1:]
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        table = self.net_.item_table(keep)
                        h = self.net_(inp, table)[tgt > 0]      # (N, d) positions with a next item
                    if bf16:  # the loss reads float32 (its products cast down themselves)
                        table, h = table.float(), h.float()
                    y = tgt[tgt > 0]                             # (N,) next items (+1)
                    if not sampled:
                        loss = linear_ce(h, table[warm_rows], remap[y])
                    else:
                        neg = torch.multinomial(q, cfg.n_negatives, replacement=True)  # positions in `warm`
                        logq = torch.log(q * cfg.n_negatives)
                        pos_logit = (h * table[y]).sum(1, keepdim=True) - logq[remap[y], None]
                        neg_logit = h @ table[warm_rows[neg]].T - logq[neg][None, :]
                        neg_logit = neg_logit.masked_fill(neg[None, :] == remap[y][:, None], float("-inf"))
                        logits = torch.cat([pos_logit, neg_logit], 1)
                        loss = F.cross_entropy(logits, torch.zeros(len(y), dtype=torch.long))
                    loss.backward()
                if comm is not None:
                    comm.average_gradients(self.net_)
                opt.step()

        def score() -> float:
            from longrec.models.validation import valid_ndcg
            self._finish()
            if comm is None:
                return valid_ndcg(self, valid)
            return comm.score_on_first(lambda: valid_ndcg(self, valid))

        has_valid = valid is not None if comm is None else comm.has_valid
        return train_with_early_stopping(
            run_epoch, score if has_valid else None, *module_checkpoints(self.net_),
            epochs=cfg.epochs, eval_every=cfg.eval_every, patience=cfg.patience, max_seconds=cfg.max_seconds,
            progress="lm-seq epochs" if cfg.progress and rank == 0 else None,
            estimate="lm-seq" if rank == 0 else None,
            agree=None if comm is None else comm.agree, budget=budget)

    def _finish(self) -> None:
        """Inference mode; the ID part of items without training interactions is zeroed so
        that they are scored by their text (it was only ever pushed down by the softmax)."""
        import torch

        self.net_.eval()
        self._cold_mask = self.popularity_ == 0
        if self.net_.use_id and self.net_.use_text and self._cold_mask.any():
            with torch.no_grad():
                self.net_.ids.weight[1:][torch.from_numpy(self._cold_mask)] = 0.0
        with torch.no_grad():
            self._table = self.net_.item_table()

    # ---------------------------------------------------------------- inference
    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        return LMSeq._score_into(self, users, hist, None)

    def _score_into(self, users: np.ndarray, hist: HistoryBatch, out: np.ndarray | None) -> np.ndarray:
        """The scores, written into `out` when given (recommend's buffer: torch.mm into it gives
        the bits of the product it would otherwise allocate), else into a new matrix."""
        import torch

        if out is not None and type(self)._score is not LMSeq._score:  # a subclass changes the scores
            return self._score(users, hist)
        rows, h_last = self._last_hidden(hist)
        T = self._table[1:].T
        if len(rows) == len(users):  # every row has a history: the product is the matrix (no zeros + copy)
            with torch.no_grad():
                if out is None:
                    return (h_last @ T).numpy()
                torch.mm(h_last, T, out=torch.from_numpy(out))
                return out
        if out is None:
            out = np.zeros((len(users), hist.n_items), dtype=np.float32)
        else:
            out.fill(0.0)
        if len(rows):
            with torch.no_grad():
                out[rows] = (h_last @ T).numpy()
        return out

    def _last_hidden(self, hist: HistoryBatch):
        """(rows with a history, their hidden state after the last item): the user's vector."""
        import torch

        torch.set_num_threads(self.config.num_threads)
        seq, lens = self._last_windows(hist, self.config.max_len)
        rows = np.flatnonzero(lens > 0)
        if not len(rows):
            return rows, torch.zeros((0, self.config.dim))
        # histories are right-padded and attention is causal, so a history of n items needs only
        # the first n positions: rows are run in buckets padded to 16, 32 or max_len positions
        # instead of all at max_len (most histories are short: ~3x less work at max_len 50). The
        # buckets are multiples of the 16-float vectors and 32-position blocks of torch's CPU
        # attention kernel, so the extra padding only adds exact zeros: each row's state came
        # out the same, bit for bit, as in one max_len batch (torch 2.13, AVX-512; a length such
        # as 40 does not). tests/models/test_recommend_batches.py and bench/recommend_topk.py
        # check it.
        L = self.config.max_len
        n = lens[rows]
        edges = [e for e in LAST_HIDDEN_BUCKETS if e < L] + [L]
        h_last = torch.empty((len(rows), self.config.dim))
        lo = 0
        with torch.no_grad():
            for e in edges:
                sel = np.flatnonzero((n > lo) & (n <= e))
                lo = e
                if not len(sel):
                    continue
                part = seq[rows[sel]] if e == L else np.ascontiguousarray(seq[rows[sel], :e])
                h = self.net_(torch.from_numpy(part), self._table)
                h_last[torch.from_numpy(sel)] = h[torch.arange(len(sel)), torch.from_numpy(n[sel] - 1)]
        return rows, h_last

    # ---------------------------------------------------------------- persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}

    def _check_state(self, d, t, n_users, n_items) -> None:
        from longrec.models.artifacts import check_tensors

        # the net's own names and shapes are checked by torch (load_state_dict, strict)
        check_tensors(d, {k: v for k, v in t.items() if not k.startswith("net.")}, {})
        if "net.text" in t:
            check_tensors(d, {"net.text": t["net.text"]}, {"net.text": ("f", (n_items + 1, None))})

    def _set_state(self, t: dict[str, np.ndarray]) -> None:
        import torch

        n_items = len(self.vocab_.items)
        text = t["net.text"][1:] if "net.text" in t else None
        from longrec.models.lm_seq_net import SeqNet

        self.net_ = SeqNet(self.config, n_items, text)
        self.net_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in t.items() if k.startswith("net.")})
        self._finish()
