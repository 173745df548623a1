"""lm-seq: a SASRec-style sequential transformer whose item embeddings start from a language
model (Kang & McAuley, ICDM 2018; text-initialised items as in UniSRec/Recformer-style work).

Everything lives in this one file: the config, the torch modules, training and scoring.

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

from longrec.models._training import module_checkpoints, train_with_early_stopping
from longrec.models.base import HistoryBatch, ModelConfig, Recommender


# ============================================================================ config
class LMSeqConfig(ModelConfig):
    mode: Literal["lm+id", "id-only", "text-only"] = Field(
        "lm+id", description="item embedding: LM text projection + ID (default) or an ablation")
    encoder: str = Field("default", description="longrec.lm encoder spec for item texts, or 'hash'")
    item_text_template: str | None = Field(None, description="str.format template over item columns")
    id_init: Literal["zero", "text", "normal"] = Field(
        "zero", description="start of the ID embeddings: zero (text carries the item at first), "
        "text (the top principal components of the LM embeddings: LM-initialised IDs) or normal")
    text_norm: bool = Field(False, description="LayerNorm after the text projection")
    text_adapter: Literal["linear", "mlp", "moe"] = Field(
        "linear", description="map from the LM embedding to the item space: linear, mlp (one GELU hidden "
        "layer) or moe (UniSRec's mixture of whitening experts); on ml-100k P2 valid linear did best")
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
    n_negatives: int = Field(512, ge=1, description="shared negatives per batch (sampled softmax)")
    eval_every: int = Field(1, ge=1)
    patience: int = Field(10, ge=1, description="validation checks without improvement before stopping")
    max_seconds: float | None = Field(None, gt=0, description="stop training after this long")
    num_threads: int = Field(2, ge=1)
    progress: bool = False


# ============================================================================ modules
def _build_net(n_items: int, text: np.ndarray | None, cfg: LMSeqConfig):
    """The torch module; `text` is the (n_items, d_text) frozen LM matrix (None for id-only).
    Row 0 of every item table is padding."""
    import torch
    from torch import nn

    import torch.nn.functional as F

    rng = np.random.default_rng([cfg.seed, 1])  # dropout masks: a stream apart from the batch order

    class Dropout(nn.Module):
        """Inverted dropout with masks from numpy's PCG64 bytes (keep probability rounded to
        1/256): torch's CPU bernoulli_ draws one Mersenne-Twister number per element and
        took a quarter of the training time."""

        def __init__(self, p: float) -> None:
            super().__init__()
            self.p, self.thr = p, max(1, round(256 * (1 - p)))

        def forward(self, x):
            if not self.training or self.thr >= 256:  # p < 1/512 rounds to no dropout
                return x
            keep = torch.frombuffer(bytearray(rng.bytes(x.numel())), dtype=torch.uint8).view(x.shape) < self.thr
            return x * (keep.to(x.dtype) * (256.0 / self.thr))

    class Attention(nn.Module):
        """Causal multi-head self-attention; parameters named as nn.MultiheadAttention's (so
        older artifacts load). Inference runs the fused scaled_dot_product_attention kernel;
        training spells it out to apply the dropout above to the attention weights."""

        def __init__(self, d: int, heads: int, p: float) -> None:
            super().__init__()
            self.heads, self.drop = heads, Dropout(p)
            self.explicit = False  # lm-seq-dp: vmap has no batching rule for the fused kernel's backward
            self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
            self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
            self.out_proj = nn.Linear(d, d)
            nn.init.xavier_uniform_(self.in_proj_weight)
            nn.init.zeros_(self.out_proj.bias)

        def forward(self, x):
            B, L, D = x.shape
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(B, L, 3, self.heads, D // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            if (self.training and self.drop.thr < 256) or self.explicit:
                a = (q @ k.transpose(-1, -2)) * (D // self.heads) ** -0.5
                a = a.masked_fill(torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1), float("-inf"))
                o = self.drop(a.softmax(-1)) @ v
            else:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out_proj(o.transpose(1, 2).reshape(B, L, D))

    class Block(nn.Module):
        def __init__(self, d: int, heads: int, p: float) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = Attention(d, heads, p)
            self.ff = nn.Sequential(nn.Linear(d, cfg.ff_mult * d), nn.GELU(), Dropout(p), nn.Linear(cfg.ff_mult * d, d))
            self.drop = Dropout(p)

        def forward(self, x):
            x = x + self.drop(self.attn(self.ln1(x)))
            return x + self.drop(self.ff(self.ln2(x)))

    class MoEAdapter(nn.Module):
        """UniSRec's adaptor (Hou et al., KDD 2022): a softmax-gated sum of parametric whitening
        experts (t - b_k) W_k."""

        def __init__(self, dt: int, d: int, k: int) -> None:
            super().__init__()
            self.b = nn.Parameter(torch.zeros(k, dt))
            self.W = nn.Parameter(torch.randn(k, dt, d) * dt ** -0.5)
            self.gate = nn.Linear(dt, k)

        def forward(self, t):
            g = self.gate(t).softmax(-1)                                        # (n, k)
            e = torch.einsum("nkt,ktd->nkd", t.unsqueeze(1) - self.b, self.W)   # (n, k, d)
            return (g.unsqueeze(-1) * e).sum(1)

    class SeqNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.dim
            self.use_text = cfg.mode != "id-only"
            self.use_id = cfg.mode != "text-only"
            if self.use_text:
                t = torch.zeros(n_items + 1, text.shape[1])
                t[1:] = torch.from_numpy(text)
                self.register_buffer("text", t)
                dt = text.shape[1]
                if cfg.text_adapter == "mlp":
                    self.proj = nn.Sequential(nn.Linear(dt, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
                elif cfg.text_adapter == "moe":
                    self.proj = MoEAdapter(dt, d, cfg.moe_experts)
                else:
                    self.proj = nn.Linear(dt, d)
                self.text_ln = nn.LayerNorm(d) if cfg.text_norm else None
            if self.use_id:
                self.ids = nn.Embedding(n_items + 1, d, padding_idx=0)
                init = cfg.id_init if not (cfg.id_init == "zero" and not self.use_text) else "normal"
                if init == "text" and text is not None:
                    # LM-initialised IDs: the top `d` principal components of the text embeddings
                    tc = text - text.mean(0, keepdims=True)
                    u, sv, _ = np.linalg.svd(tc, full_matrices=False)
                    pc = (u[:, :d] * sv[:d]).astype(np.float32)
                    pc = pc / (pc.std() + 1e-8) * 0.05
                    w = torch.zeros(n_items + 1, d)
                    w[1:, :pc.shape[1]] = torch.from_numpy(pc)
                    with torch.no_grad():
                        self.ids.weight.copy_(w)
                else:
                    # with text and id_init "zero", IDs start at zero: the text carries the item
                    # at first, IDs learn the residual
                    nn.init.normal_(self.ids.weight, std=0.0 if init == "zero" else 0.05)
                    with torch.no_grad():
                        self.ids.weight[0] = 0.0
            self.pos = nn.Embedding(cfg.max_len, d)
            nn.init.normal_(self.pos.weight, std=0.02)
            self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers))
            self.ln = nn.LayerNorm(d)
            self.drop = Dropout(cfg.dropout)

        def item_table(self, keep=None):
            """(n_items + 1, d); `keep` (n_items + 1, 1) in {0, 1} drops ID parts in training."""
            e = 0
            if self.use_text:
                e = self.proj(self.text)
                if self.text_ln is not None:
                    e = self.text_ln(e)
                e = e - e[0]  # the padding row maps to zero (no bias leak into row 0)
            if self.use_id:
                e = e + (self.ids.weight if keep is None else self.ids.weight * keep)
            return e

        def forward(self, seq, table=None):
            """seq (B, L) right-padded item indices (+1; 0 = pad) -> hidden states (B, L, d)."""
            table = self.item_table() if table is None else table
            L = seq.shape[1]
            x = table[seq] * (cfg.dim ** 0.5) + self.pos.weight[:L]
            x = self.drop(x)
            for b in self.blocks:
                x = b(x)
            return self.ln(x)

    return SeqNet()


def _fused_linear_cross_entropy():
    """Mean cross-entropy of softmax(h · Wᵀ) against y, computed in row chunks with the
    gradients taken in the same pass, so the (N, n_items) logit matrix never exists whole:
    the same values as F.cross_entropy(h @ W.T, y), about 2.5x faster on CPU, where the
    full-softmax loss is bound by memory traffic."""
    import torch

    class FusedLinearCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h, W, y, chunk: int = 512):
            n = h.shape[0]
            gh, gW, loss = torch.empty_like(h), torch.zeros_like(W), h.new_zeros(())
            for s in range(0, n, chunk):
                hc, yc = h[s:s + chunk], y[s:s + chunk]
                z = hc @ W.T
                lse = torch.logsumexp(z, 1, keepdim=True)
                loss += (lse.squeeze(1) - z.gather(1, yc[:, None]).squeeze(1)).sum()
                p = z.sub_(lse).exp_()                    # softmax, in place
                p[torch.arange(len(yc)), yc] -= 1.0       # d loss / d logits
                torch.mm(p, W, out=gh[s:s + chunk])
                gW.addmm_(p.T, hc)
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

    # ---------------------------------------------------------------- data
    def _item_text(self) -> np.ndarray | None:
        if self.config.mode == "id-only" and self.config.id_init != "text":
            return None
        from longrec.models._lm_items import item_text_matrix
        return item_text_matrix(self.vocab_.items.ids, self.items_, self.config.encoder,
                                self.config.item_text_template)

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
        ptr = hist.indptr
        lens = np.minimum(np.diff(ptr), L)
        start = ptr[1:] - lens
        pos = start[:, None] + np.arange(L)[None, :]
        ok = np.arange(L)[None, :] < lens[:, None]
        idx = hist.indices.astype(np.int64) + 1
        seq = np.where(ok, idx[np.minimum(pos, max(len(idx) - 1, 0))] if len(idx) else 0, 0)
        return seq, lens

    # ---------------------------------------------------------------- training
    def _fit(self, X, train, valid) -> None:
        import torch
        import torch.nn.functional as F

        cfg = self.config
        torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        n_items = X.shape[1]
        t0 = time.perf_counter()
        text = self._item_text()
        self.fit_info_["text_seconds"] = round(time.perf_counter() - t0, 2)
        self.net_ = _build_net(n_items, text, cfg)
        wins = torch.from_numpy(self._windows(X))
        opt = torch.optim.AdamW(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # the softmax runs over items seen in training only: pushing never-seen items down
        # would teach the text projection what "cold" text looks like
        warm = np.flatnonzero(self.popularity_ > 0)
        warm_rows = torch.from_numpy(warm + 1)
        remap = torch.full((n_items + 1,), -1, dtype=torch.long)
        remap[warm_rows] = torch.arange(len(warm))
        sampled = len(warm) > cfg.full_softmax_max_items
        linear_ce = _fused_linear_cross_entropy()
        q = np.power(self.popularity_[warm], 0.75)
        q = torch.from_numpy((q / q.sum()).astype(np.float32))
        def run_epoch(epoch: int) -> None:
            self.net_.train()
            perm = torch.from_numpy(rng.permutation(len(wins)))
            for s in range(0, len(perm), cfg.batch_size):
                w = wins[perm[s:s + cfg.batch_size]]
                inp, tgt = w[:, :-1], w[:, 1:]
                keep = None
                if cfg.id_dropout > 0 and self.net_.use_id and self.net_.use_text:
                    keep = (torch.rand(n_items + 1, 1) >= cfg.id_dropout).float()
                table = self.net_.item_table(keep)
                h = self.net_(inp, table)[tgt > 0]          # (N, d) positions with a next item
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
                opt.zero_grad()
                loss.backward()
                opt.step()

        def score() -> float:
            from longrec.models.validation import valid_ndcg
            self._finish()
            return valid_ndcg(self, valid)

        info = train_with_early_stopping(
            run_epoch, None if valid is None else score, *module_checkpoints(self.net_),
            epochs=cfg.epochs, eval_every=cfg.eval_every, patience=cfg.patience, max_seconds=cfg.max_seconds,
            progress="lm-seq epochs" if cfg.progress else None)
        self.fit_info_.update(info)
        self._finish()

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
        import torch

        rows, h_last = self._last_hidden(hist)
        out = np.zeros((len(users), hist.n_items), dtype=np.float32)
        if len(rows):
            with torch.no_grad():
                out[rows] = (h_last @ self._table[1:].T).numpy()
        return out

    def _last_hidden(self, hist: HistoryBatch):
        """(rows with a history, their hidden state after the last item): the user's vector."""
        import torch

        torch.set_num_threads(self.config.num_threads)
        seq, lens = self._last_windows(hist, self.config.max_len)
        rows = np.flatnonzero(lens > 0)
        if not len(rows):
            return rows, torch.zeros((0, self.config.dim))
        with torch.no_grad():
            h = self.net_(torch.from_numpy(seq[rows]), self._table)
            return rows, h[torch.arange(len(rows)), torch.from_numpy(lens[rows] - 1)]

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
        self.net_ = _build_net(n_items, text, self.config)
        self.net_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in t.items() if k.startswith("net.")})
        self._finish()
