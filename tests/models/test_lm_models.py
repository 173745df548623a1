"""The language-model recommenders (lm-seq, lm-twotower, blend): their own behaviour (the shared
conformance suite runs on them through the registry, in test_conformance.py).

Fast tests use the `hash` text encoder (no language model); one slow test runs the real
packaged MiniLM encoder; the realdata test trains lm-seq on ml-100k P2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.data.dataset import Dataset
from longrec.errors import ConfigError
from longrec.models import Recommender, get_model_class
from tests.conftest import make_synthetic
from tests.models.test_conformance import FAST_CONFIGS as FAST

_SEQ_FAST = FAST["lm-seq"]
_TT_FAST = FAST["lm-twotower"]


# ------------------------------------------------------------------ lm-seq
def _seq(**kw):
    from longrec.models.lm_seq import LMSeq
    return LMSeq({**_SEQ_FAST, **kw})


def test_lm_seq_modes_and_order_matters(synthetic):
    train, valid = synthetic
    for mode in ("lm+id", "id-only", "text-only"):
        m = _seq(mode=mode, epochs=2).fit(train, valid)
        a = m.score(histories={"x": [2, 4, 6]}).to_numpy()
        b = m.score(histories={"x": [6, 4, 2]}).to_numpy()
        assert np.isfinite(a).all()
        assert not np.allclose(a, b), f"{mode}: a sequential model must read the order of the history"
    assert "valid_ndcg@10" in m.fit_info_ and m.fit_info_["best_epoch"] >= 1


def test_lm_seq_stores_text_matrix_and_loads_without_encoder(synthetic, tmp_path, monkeypatch):
    train, valid = synthetic
    m = _seq().fit(train, valid)
    m.save(tmp_path / "m")
    import longrec.models._lm_items as li

    def boom(*a, **k):
        raise AssertionError("a loaded model must not call the encoder")
    monkeypatch.setattr(li, "embed_texts", boom)
    loaded = Recommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.score(histories={"n": [1, 3]}), loaded.score(histories={"n": [1, 3]}))


def test_lm_seq_cold_items_scored_through_text(synthetic):
    """Items of the item table with no interactions get finite scores that follow their text."""
    train, valid = synthetic
    inter, items = make_synthetic(n_items=40)
    extra = pd.DataFrame({"item_id": [101, 102], "title": ["Item 3 new", "Item 4 new"], "genre": ["Odd", "Even"]})
    ds = Dataset(train.interactions.copy(), pd.concat([items, extra], ignore_index=True))
    m = _seq(epochs=6).fit(ds, valid)
    s = m.score(histories={"odd-fan": [1, 3, 5, 7, 9]}, items=[101, 102])
    assert np.isfinite(s.to_numpy()).all() and s.iloc[0, 0] != s.iloc[0, 1]
    assert m.popularity_[m.vocab_.items.lookup([101])[0]] == 0


def test_lm_seq_sampled_softmax_path(synthetic):
    train, valid = synthetic
    m = _seq(full_softmax_max_items=5, n_negatives=8).fit(train, valid)
    assert np.isfinite(m.score(users=train.user_ids[:3]).to_numpy()).all()


def test_lm_seq_windows_cover_long_histories():
    from longrec.models.lm_seq import LMSeq
    import scipy.sparse as sp

    m = LMSeq(max_len=4)
    # one user with 10 items (0..9), one with 1 item (no window), one with 2
    indptr = np.array([0, 10, 11, 13])
    m.seen_ = sp.csr_matrix((np.ones(13), np.r_[np.arange(10), 5, 3, 4], indptr), shape=(3, 10))
    w = m._windows(None)
    assert w.shape == (4, 5)  # windows ending at 10, 6, 2 for user 0 and one for user 2
    assert list(w[0]) == [6, 7, 8, 9, 10] and list(w[1]) == [2, 3, 4, 5, 6] and list(w[2]) == [1, 2, 0, 0, 0]
    assert list(w[3]) == [4, 5, 0, 0, 0]


def test_lm_seq_text_initialised_ids_and_options(synthetic, tmp_path):
    """id_init="text" starts the ID table at the principal components of the text matrix
    (items with similar text start close); the options train and round-trip."""
    import torch

    from longrec.models.lm_seq_net import SeqNet

    train, valid = synthetic
    m = _seq(epochs=1).fit(train, valid)
    text = m.net_.text[1:].numpy()
    net = SeqNet(m.config.model_copy(update={"id_init": "text"}), len(text), text)
    ids = net.ids.weight.detach().numpy()
    assert np.allclose(ids[0], 0) and ids[1:].std() > 0.01
    # the ID table is a linear image of the centred text: same Gram structure up to rank dim
    tc = text - text.mean(0)
    proj = tc @ np.linalg.lstsq(tc, ids[1:], rcond=None)[0]
    assert np.allclose(proj, ids[1:], atol=1e-4)
    zero = SeqNet(m.config, len(text), text)
    assert torch.count_nonzero(zero.ids.weight) == 0
    for n, kw in enumerate(({"mode": "id-only", "id_init": "text"}, {"text_norm": True, "id_dropout": 0.5},
                            {"text_adapter": "mlp"}, {"text_adapter": "moe", "moe_experts": 3})):
        a = _seq(epochs=2, **kw).fit(train, valid)
        a.save(tmp_path / str(n))
        b = Recommender.load(tmp_path / str(n))
        pd.testing.assert_frame_equal(a.score(histories={"n": [1, 3]}), b.score(histories={"n": [1, 3]}))
        # id-only keeps no text: the LM only chose where the IDs start
        assert ("net.text" in a._state()) == (kw.get("mode") != "id-only")


# ------------------------------------------------------------------ lm-twotower
def test_twotower_early_stopping_on_cold_items(synthetic):
    """valid_items="cold": early stopping ranks only items with no training interactions,
    the set-up of a cold-item fold (P3)."""
    from longrec.models.lm_twotower import LMTwoTower

    train, valid = synthetic
    inter = train.interactions
    cold = inter["item_id"].drop_duplicates().iloc[:5].to_numpy()
    fold_train = train.with_interactions(inter[~inter["item_id"].isin(cold)])
    fold_valid = train.with_interactions(inter[inter["item_id"].isin(cold)])
    m = LMTwoTower(_TT_FAST, valid_items="cold").fit(fold_train, fold_valid)
    assert 0.0 <= m.fit_info_["valid_ndcg@10"] <= 1.0
    assert set(m.vocab_.items.ids[m.popularity_ == 0]) >= set(cold)
    recs = m.recommend(users=fold_valid.user_ids[:3], k=3, candidates=cold)
    assert set(recs["item_id"]) <= set(cold)


def test_twotower_additive_cannot_personalise(synthetic):
    from longrec.models.lm_twotower import LMTwoTower

    train, valid = synthetic
    add = LMTwoTower(_TT_FAST, interaction="additive").fit(train, valid)
    s = add.score(histories={"even": [2, 4, 6, 8], "odd": [1, 3, 5, 7]}).to_numpy()
    # the user term shifts a row by a constant: the item ranking is the same for everyone
    assert np.allclose(s[0] - s[0].mean(), s[1] - s[1].mean(), atol=1e-5)
    dot = LMTwoTower(_TT_FAST, epochs=8).fit(train, valid)
    s = dot.score(histories={"even": [2, 4, 6, 8], "odd": [1, 3, 5, 7]}).to_numpy()
    assert not np.array_equal(np.argsort(-s[0]), np.argsort(-s[1]))


def test_twotower_options_train(synthetic):
    from longrec.models.lm_twotower import LMTwoTower

    train, valid = synthetic
    users = pd.DataFrame({"user_id": train.user_ids, "age": 30, "occupation": "writer"})
    ds = Dataset(train.interactions.copy(), train.items, users)
    for kw in ({"pooling": "attention"}, {"loss": "bpr"}, {"user_text": True}, {"use_id": False},
               {"full_softmax_max_items": 5, "n_negatives": 8}):
        m = LMTwoTower(_TT_FAST, **kw).fit(ds, valid)
        assert np.isfinite(m.score(users=train.user_ids[:3]).to_numpy()).all(), kw


def test_twotower_loads_saves_of_the_previous_layer_names(synthetic, tmp_path):
    """One-layer item towers were saved as `net.proj.weight`/`net.bias_text.weight` (a bare
    Linear); they load into today's `net.proj.0.*` names with the same scores. A save whose
    tensors do not map onto the net is refused with ModelError."""
    from safetensors.numpy import load_file, save_file

    from longrec.errors import ModelError
    from longrec.models.lm_twotower import LMTwoTower

    train, valid = synthetic
    m = LMTwoTower(_TT_FAST, item_layers=1).fit(train, valid)
    m.save(tmp_path / "m")
    f = tmp_path / "m" / "model.safetensors"
    t = load_file(str(f))
    assert "net.proj.0.weight" in t and "net.bias_text.0.bias" in t
    old = {k.replace("net.proj.0.", "net.proj.").replace("net.bias_text.0.", "net.bias_text."): v
           for k, v in t.items()}
    save_file(old, str(f))
    loaded = Recommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.score(histories={"n": [1, 3]}), loaded.score(histories={"n": [1, 3]}))
    save_file({k: v for k, v in old.items() if not k.startswith("net.user_mlp.")}, str(f))
    with pytest.raises(ModelError, match="user_mlp"):
        Recommender.load(tmp_path / "m")


# ------------------------------------------------------------------ blend
def test_blend_weights_tuned_and_bad_weights_rejected(synthetic):
    from longrec.models.blend import Blend

    train, valid = synthetic
    b = Blend(FAST["blend"]).fit(train, valid)
    assert abs(sum(b.fit_info_["weights"]) - 1.0) < 1e-6 and len(b.fit_info_["members"]) == 2
    with pytest.raises(ConfigError, match="weights"):
        Blend(FAST["blend"], weights=[1.0]).fit(train, valid)
    with pytest.raises(ConfigError):
        Blend(models=[{"name": "no-such-model"}]).fit(train, valid)


def test_blend_default_config_lists_ease_and_lm_seq():
    from longrec.models.blend import Blend

    assert [m.name for m in Blend().config.models] == ["ease", "lm-seq"]


# ------------------------------------------------------------------ the real encoder and real data
@pytest.mark.slow
def test_lm_seq_with_the_packaged_minilm(synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("LONGREC_CACHE_DIR", str(tmp_path / "cache"))
    train, valid = synthetic
    m = _seq(encoder="default").fit(train, valid)
    assert m.net_.text.shape[1] == 384
    assert len(m.recommend(users=train.user_ids[:2], k=5)) == 10


@pytest.mark.slow
@pytest.mark.realdata
def test_lm_seq_learns_ml100k_p2(real_data_dir, monkeypatch):
    """A short run on ml-100k P2 (hash text) must beat popularity on valid."""
    monkeypatch.setenv("LONGREC_DATA_DIR", str(real_data_dir))
    from longrec.data.registry import load_split
    from longrec.models.validation import valid_ndcg

    s = load_split("ml-100k", "p2", download=False)
    m = _seq(encoder="hash", dim=32, max_len=30, epochs=3, num_threads=2).fit(s["train"], s["valid"])
    pop = get_model_class("pop")().fit(s["train"])
    assert valid_ndcg(m, s["valid"]) > valid_ndcg(pop, s["valid"])


def test_lm_seq_fused_cross_entropy_matches_torch():
    """The chunked loss gives F.cross_entropy's value and gradients (chunks smaller than,
    equal to and not dividing the number of rows)."""
    import torch
    import torch.nn.functional as F
    from longrec.models.lm_seq import _fused_linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    h0, W0 = torch.randn(37, 8, generator=g), torch.randn(11, 8, generator=g)
    y = torch.randint(0, 11, (37,), generator=g)
    h, W = h0.clone().requires_grad_(), W0.clone().requires_grad_()
    ref = F.cross_entropy(h @ W.T, y)
    (2 * ref).backward()
    for chunk in (5, 37, 64):
        h2, W2 = h0.clone().requires_grad_(), W0.clone().requires_grad_()
        loss = _fused_linear_cross_entropy()(h2, W2, y, chunk)
        (2 * loss).backward()
        torch.testing.assert_close(loss, ref)
        torch.testing.assert_close(h2.grad, h.grad)
        torch.testing.assert_close(W2.grad, W.grad)


def test_lm_seq_bf16_loss_and_fit_stay_close_to_fp32(synthetic):
    """precision="bf16": the chunked loss equals F.cross_entropy over bfloat16-rounded inputs
    (the reference rounds h and W itself) to float32 accuracy in value and close in gradients,
    and a tiny fit reaches the float32 fit's validation NDCG within noise while scoring in float32."""
    import torch
    import torch.nn.functional as F
    from longrec.models.lm_seq import _fused_linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    h0, W0 = torch.randn(37, 8, generator=g), torch.randn(11, 8, generator=g)
    y = torch.randint(0, 11, (37,), generator=g)
    hb, Wb = h0.bfloat16().float().requires_grad_(), W0.bfloat16().float().requires_grad_()
    ref = F.cross_entropy(hb @ Wb.T, y)
    ref.backward()
    h2, W2 = h0.clone().requires_grad_(), W0.clone().requires_grad_()
    loss = _fused_linear_cross_entropy(bf16=True)(h2, W2, y, 5)
    loss.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h2.grad, hb.grad, rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(W2.grad, Wb.grad, rtol=2e-2, atol=2e-3)

    from longrec.models.validation import valid_ndcg
    train, valid = synthetic
    fits = {p: _seq(epochs=6, patience=100, precision=p).fit(train, valid) for p in ("fp32", "bf16")}
    a, b = (valid_ndcg(fits[p], valid) for p in ("fp32", "bf16"))
    assert abs(a - b) <= 0.1 * max(a, b) + 0.01, (a, b)
    assert next(fits["bf16"].net_.parameters()).dtype == torch.float32


def test_lm_seq_dropout_and_attention_modules():
    """Dropout keeps ~(1 - p) of the entries, rescaled so the mean is kept, and is the identity
    in eval mode; the training attention path (spelled out, for dropout) equals the fused
    inference kernel when dropout is off, and matches nn.MultiheadAttention's layout."""
    import torch
    from longrec.models.lm_seq import LMSeqConfig
    from longrec.models.lm_seq_net import SeqNet

    torch.manual_seed(0)
    net = SeqNet(LMSeqConfig(mode="id-only", dim=16, n_heads=2, dropout=0.25, max_len=6), 5, None)
    drop = net.drop
    x = torch.ones(200, 50)
    net.train()
    y = drop(x)
    kept = (y > 0).float().mean().item()
    assert abs(kept - 0.75) < 0.02 and abs(y.mean().item() - 1.0) < 0.03
    torch.testing.assert_close(torch.unique(y), torch.tensor([0.0, 256 / 192]))
    net.eval()
    assert torch.equal(drop(x), x)

    attn = net.blocks[0].attn
    xs = torch.randn(3, 6, 16)
    attn.eval()
    fused = attn(xs)
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    mha.load_state_dict(attn.state_dict())
    mha.eval()
    causal = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    torch.testing.assert_close(fused, mha(xs, xs, xs, attn_mask=causal, need_weights=False)[0])
    attn.train()
    dropped = attn(xs)  # the spelled-out path with p = 0.25: some weights dropped
    assert not torch.allclose(dropped, fused, atol=1e-3)
    attn.drop.forward = lambda a: a  # same path with the dropout made the identity
    torch.testing.assert_close(attn(xs), fused, atol=1e-5, rtol=1e-5)


def test_example_p1_blend_config_is_a_valid_blend():
    from pathlib import Path

    from longrec.models.blend import Blend
    from longrec.pipeline import load_model_config

    cfg = Blend.Config(**load_model_config(Path(__file__).parents[2] / "examples" / "blend_p1.toml", "blend"))
    assert [m.name for m in cfg.models] == ["ease", "lm-linear-dp", "lm-linear-dp", "bpr"]
    for m in cfg.models:  # every member config is valid for its model (typos fail here, not after training)
        get_model_class(m.name).Config(**m.config)
    assert cfg.models[1].config["item_weight"] == 4.0


def test_twotower_item_vectors_of_some_items_are_those_rows_of_all():
    """item_vectors(keep, idx=...) runs the item tower on the rows `idx` alone (sampled softmax
    steps): the same vectors and biases as the full call's rows, with `keep` given per row, and
    gradients only into those items' ID rows."""
    import torch

    from longrec.models.twotower_net import TwoTowerNet

    torch.manual_seed(0)
    text = np.random.default_rng(0).normal(size=(20, 12)).astype(np.float32)
    net = TwoTowerNet(text, 8)
    with torch.no_grad():
        net.ids.weight.normal_()
        net.bias_id.normal_()
        net.id_mask[5:8] = 0.0  # cold items: no ID part
    keep = (torch.rand(20) >= 0.5).float()
    idx = torch.tensor([3, 0, 7, 19, 6, 11])
    F, b = net.item_vectors(keep)
    Fs, bs = net.item_vectors(keep[idx], idx=idx)
    assert Fs.shape == (6, 8) and bs.shape == (6,)
    assert torch.allclose(Fs, F[idx], atol=1e-6) and torch.allclose(bs, b[idx], atol=1e-6)
    F0, b0 = net.item_vectors()
    Fs0, bs0 = net.item_vectors(idx=idx)
    assert torch.allclose(Fs0, F0[idx], atol=1e-6) and torch.allclose(bs0, b0[idx], atol=1e-6)
    (Fs.sum() + bs.sum()).backward()
    touched = set(torch.nonzero(net.ids.weight.grad.abs().sum(1) > 0).flatten().tolist())
    live = (keep * net.id_mask)[idx] > 0  # rows whose ID part was kept (not dropped, not cold)
    assert touched == set(idx[live].tolist()) and live.any() and not live.all()


def test_lm_twotower_bf16_fits_stay_close_to_fp32(synthetic):
    """precision="bf16" (autocast for the towers and scores, float32 loss): full and sampled
    softmax fits reach the float32 fit's validation NDCG within noise; weights stay float32."""
    import torch
    from longrec.models.lm_twotower import LMTwoTower
    from longrec.models.validation import valid_ndcg

    train, valid = synthetic
    for kw in ({}, {"full_softmax_max_items": 5, "n_negatives": 8}):
        a, b = (valid_ndcg(LMTwoTower(_TT_FAST, epochs=6, precision=p, **kw).fit(train, valid), valid)
                for p in ("fp32", "bf16"))
        assert abs(a - b) <= 0.1 * max(a, b) + 0.01, (kw, a, b)
    m = LMTwoTower(_TT_FAST, epochs=1, precision="bf16").fit(train, valid)
    assert all(p.dtype == torch.float32 for p in m.net_.parameters())
