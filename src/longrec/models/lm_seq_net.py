"""The torch modules of lm-seq (longrec.models.lm_seq), top to bottom as in nanoGPT:
Dropout, Attention, Block, MoEAdapter, SeqNet. Imports torch at module level: import this
file lazily (lm_seq.py does, inside fit/load), so `import longrec` stays light.

Parameter names are part of the saved artifact (model.safetensors keys `net.*`): keep them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Dropout(nn.Module):
    """Inverted dropout with masks from numpy's PCG64 bytes (keep probability rounded to
    1/256): torch's CPU bernoulli_ draws one Mersenne-Twister number per element and took a
    quarter of the training time. All dropouts of one net share `rng` (one stream apart from
    the batch order)."""

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__()
        self.p, self.thr, self.rng = p, max(1, round(256 * (1 - p))), rng

    def forward(self, x):
        if not self.training or self.thr >= 256:  # p < 1/512 rounds to no dropout
            return x
        keep = torch.frombuffer(bytearray(self.rng.bytes(x.numel())), dtype=torch.uint8).view(x.shape) < self.thr
        return x * (keep.to(x.dtype) * (256.0 / self.thr))


class Attention(nn.Module):
    """Causal multi-head self-attention; parameters named as nn.MultiheadAttention's (so older
    artifacts load). Inference runs the fused scaled_dot_product_attention kernel; training
    spells it out to apply the dropout above to the attention weights.

    explicit: always spell it out (per-sample gradients with torch.func.vmap, as lm-seq-dp
    takes them, have no batching rule for the fused kernel's backward)."""

    def __init__(self, d: int, heads: int, p: float, rng: np.random.Generator, explicit: bool = False) -> None:
        super().__init__()
        self.heads, self.drop, self.explicit = heads, Dropout(p, rng), explicit
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
    """Pre-norm transformer block: attention, then a GELU feed-forward, each with a residual."""

    def __init__(self, d: int, heads: int, p: float, ff_mult: int, rng: np.random.Generator,
                 explicit_attention: bool = False) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, p, rng, explicit_attention)
        self.ff = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), Dropout(p, rng), nn.Linear(ff_mult * d, d))
        self.drop = Dropout(p, rng)

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
    """The whole lm-seq network. `text` is the (n_items, d_text) frozen LM matrix (None for
    mode "id-only"); row 0 of every item table is padding. `cfg` is an LMSeqConfig.

    explicit_attention: spell attention out (see Attention), for per-sample gradients."""

    def __init__(self, cfg, n_items: int, text: np.ndarray | None, explicit_attention: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        rng = np.random.default_rng([cfg.seed, 1])  # dropout masks: a stream apart from the batch order
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
                # with text and id_init "zero", IDs start at zero: the text carries the item at
                # first, IDs learn the residual
                nn.init.normal_(self.ids.weight, std=0.0 if init == "zero" else 0.05)
                with torch.no_grad():
                    self.ids.weight[0] = 0.0
        self.pos = nn.Embedding(cfg.max_len, d)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.dropout, cfg.ff_mult, rng, explicit_attention)
                                    for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(d)
        self.drop = Dropout(cfg.dropout, rng)

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
        x = table[seq] * (self.cfg.dim ** 0.5) + self.pos.weight[:L]
        x = self.drop(x)
        for b in self.blocks:
            x = b(x)
        return self.ln(x)
