"""A corpus of hostile and careless inputs to the CLI: CSV/Parquet data, TOML configs, model
directories and command-line arguments. Each must end in exit code 2 with one paragraph naming
the problem (no traceback), and leave every file it could touch exactly as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.cli.main import app
from tests.conftest import make_synthetic

runner = CliRunner()
MODELS = ("pop", "ease", "itemknn", "bpr")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    from longrec.data.dataset import Dataset
    from longrec.models.registry import create_model

    ws = tmp_path_factory.mktemp("pristine")
    inter, items = make_synthetic()
    last = inter.groupby("user_id").tail(1)
    train = inter.drop(last.index)
    train.to_csv(ws / "train.csv", index=False)
    last.to_csv(ws / "test.csv", index=False)
    items.to_csv(ws / "items.csv", index=False)
    (ws / "users.csv").write_text("user_id\n1\n2\n")
    (ws / "notes").mkdir()
    (ws / "notes" / "todo.txt").write_text("my notes\n")
    ds = Dataset(train.reset_index(drop=True), items)
    cfg = {"bpr": {"epochs": 2}}
    for name in MODELS:
        create_model(name, cfg.get(name, {})).fit(ds).save(ws / "models" / name)
    recs = create_model("pop").fit(ds).recommend(users=[1, 2, 3], k=10)
    recs.to_csv(ws / "recs.csv", index=False)
    return ws


@pytest.fixture
def ws(pristine, tmp_path) -> Path:
    d = tmp_path / "ws"
    shutil.copytree(pristine, d)
    return d


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            out[key] = "link"
        elif p.is_dir():
            out[key] = "dir"
        else:
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ------------------------------------------------------------------ setups
def write(rel: str, data: str | bytes):
    def setup(ws: Path) -> None:
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
    return setup


def parquet(rel: str, df_fn):
    def setup(ws: Path) -> None:
        df_fn().to_parquet(ws / rel, index=False)
    return setup


def tensors(model: str, fn):
    def setup(ws: Path) -> None:
        from safetensors.numpy import load_file, save_file

        f = ws / "models" / model / "model.safetensors"
        t = load_file(str(f))
        fn(t)
        save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, str(f))
    return setup


def meta(model: str, fn):
    def setup(ws: Path) -> None:
        f = ws / "models" / model / "meta.json"
        m = json.loads(f.read_text())
        f.write_text(json.dumps(fn(m)))
    return setup


def remove(rel: str):
    def setup(ws: Path) -> None:
        (ws / rel).unlink()
    return setup


def setitem(key, value):
    def fn(t):
        t[key] = value
    return fn


def poke(key, pos, value):
    def fn(t):
        a = t[key].copy()
        a.flat[pos] = value
        t[key] = a
    return fn


def pop_key(key):
    return lambda t: t.pop(key)


TRAIN = ["train", "--model", "pop", "--out", "{ws}/out"]
REC = ["recommend", "--k", "5", "--output", "{ws}/r.csv"]
EVAL = ["evaluate", "--output", "{ws}/m.json"]


def train_on(path: str, model: str = "pop") -> list[str]:
    return ["train", "--model", model, "--train", path, "--out", "{ws}/out"]


def rec(model: str) -> list[str]:
    return REC + ["--model", "{ws}/models/" + model]


def cfg(text: str | bytes, model: str = "ease", needle: str = ""):
    return (write("c.toml", text), ["train", "--model", model, "--train", "{ws}/train.csv", "--config",
                                    "{ws}/c.toml", "--out", "{ws}/out"], needle)


deep = "x = " + "[" * 5000 + "]" * 5000 + "\n"
deep_tables = "".join(f"[{'.'.join(['a'] * n)}]\n" for n in range(1, 3)) + "a" + ".a" * 4000 + " = 1\n"

CASES: list[tuple] = [
    # ---------------------------------------------------------------- CSV data
    ("csv-empty", write("bad.csv", ""), train_on("{ws}/bad.csv"), "empty"),
    ("csv-header-only", write("bad.csv", "user_id,item_id\n"), train_on("{ws}/bad.csv"), ""),
    ("csv-binary", write("bad.csv", bytes(range(256)) * 8), train_on("{ws}/bad.csv"), "bad.csv"),
    ("csv-no-item", write("bad.csv", "user_id,rating\n1,5\n"), train_on("{ws}/bad.csv"), "item"),
    ("csv-no-user", write("bad.csv", "item_id,rating\n1,5\n"), train_on("{ws}/bad.csv"), "user"),
    ("csv-ragged", write("bad.csv", "user_id,item_id\n1,2\n1,2,3,4\n"), train_on("{ws}/bad.csv"), "bad.csv"),
    ("csv-latin1", write("bad.csv", "user_id,item_id\n\xe9t\xe9,1\n".encode("latin-1")), train_on("{ws}/bad.csv"), "bad.csv"),
    ("csv-json", write("bad.csv", '{"user_id": 1, "item_id": 2}'), train_on("{ws}/bad.csv"), "bad.csv"),
    ("csv-html", write("bad.csv", "<html><body>404</body></html>\n"), train_on("{ws}/bad.csv"), "bad.csv"),
    ("csv-blank-ids", write("bad.csv", "user_id,item_id\n,\n,\n"), train_on("{ws}/bad.csv"), ""),
    ("csv-only-commas", write("bad.csv", ",,,\n,,,\n"), train_on("{ws}/bad.csv"), "bad.csv"),
    ("csv-missing", None, train_on("{ws}/nope.csv"), "nope.csv"),
    ("csv-is-dir", None, train_on("{ws}/notes"), "directory"),
    ("csv-bracket-name", write("[b]x[/b].csv", ""), train_on("{ws}/[b]x[/b].csv"), "[b]x[/b].csv"),
    ("csv-valid-garbage", write("bad.csv", bytes(range(256))), train_on("{ws}/train.csv") + ["--valid", "{ws}/bad.csv"], "bad.csv"),
    ("csv-items-garbage", write("bad.csv", "\x00\x01\x02"), train_on("{ws}/train.csv") + ["--items", "{ws}/bad.csv"], "bad.csv"),
    ("csv-items-missing", None, train_on("{ws}/train.csv") + ["--items", "{ws}/none.csv"], "none.csv"),
    ("csv-users-missing", None, train_on("{ws}/train.csv") + ["--users", "{ws}/none.csv"], "none.csv"),
    ("csv-history-garbage", write("bad.csv", "\xff\xfe\x00"), rec("pop") + ["--history", "{ws}/bad.csv"], "bad.csv"),
    ("csv-history-missing", None, rec("pop") + ["--history", "{ws}/none.csv"], "none.csv"),
    ("csv-userlist-empty", write("u.csv", "user_id\n"), rec("pop") + ["--users", "{ws}/u.csv"], "u.csv"),
    ("csv-candidates-missing", None, rec("pop") + ["--candidates", "{ws}/none.csv"], "none.csv"),
    ("csv-recs-garbage", write("bad.csv", b"\x00\x01garbage"), EVAL + ["--recs", "{ws}/bad.csv", "--truth", "{ws}/test.csv"], "bad.csv"),
    ("csv-recs-nocols", write("bad.csv", "a,b\n1,2\n"), EVAL + ["--recs", "{ws}/bad.csv", "--truth", "{ws}/test.csv"], "user_id"),
    ("csv-recs-empty", write("bad.csv", ""), EVAL + ["--recs", "{ws}/bad.csv", "--truth", "{ws}/test.csv"], "bad.csv"),
    ("csv-truth-garbage", write("bad.csv", bytes(range(200))), EVAL + ["--recs", "{ws}/recs.csv", "--truth", "{ws}/bad.csv"], "bad.csv"),
    ("csv-truth-missing", None, EVAL + ["--recs", "{ws}/recs.csv", "--truth", "{ws}/none.csv"], "none.csv"),
    ("csv-catalog-empty", write("c.csv", "item_id\n"), EVAL + ["--recs", "{ws}/recs.csv", "--truth", "{ws}/test.csv", "--catalog", "{ws}/c.csv"], "c.csv"),
    # ---------------------------------------------------------------- Parquet data
    ("pq-garbage", write("bad.parquet", b"PAR1garbagePAR1"), train_on("{ws}/bad.parquet"), "bad.parquet"),
    ("pq-truncated", write("bad.parquet", b"PAR1"), train_on("{ws}/bad.parquet"), "bad.parquet"),
    ("pq-text", write("bad.parquet", "user_id,item_id\n1,2\n"), train_on("{ws}/bad.parquet"), "bad.parquet"),
    ("pq-no-item", parquet("bad.parquet", lambda: pd.DataFrame({"user_id": [1, 2]})), train_on("{ws}/bad.parquet"), "item"),
    ("pq-zero-rows", parquet("bad.parquet", lambda: pd.DataFrame({"user_id": pd.Series([], dtype="int64"),
                                                                   "item_id": pd.Series([], dtype="int64")})),
     train_on("{ws}/bad.parquet"), ""),
    ("pq-null-ids", parquet("bad.parquet", lambda: pd.DataFrame({"user_id": [None, None], "item_id": [None, None]})),
     train_on("{ws}/bad.parquet"), ""),
    ("pq-recs-garbage", write("bad.parquet", b"PAR1xxxx"), EVAL + ["--recs", "{ws}/bad.parquet", "--truth", "{ws}/test.csv"], "bad.parquet"),
    # ---------------------------------------------------------------- TOML configs
    cfg("l2 = inf\n", needle="l2"),
    cfg("l2 = nan\n", needle="l2"),
    cfg("l2 = -inf\n", needle="l2"),
    cfg("[config]\nl2 = inf\n", needle="l2"),
    cfg("l2 = -1\n", needle="l2"),
    cfg("l2 = 'big'\n", needle="l2"),
    cfg("l2 = [1, 2]\n", needle="l2"),
    cfg("nonsense = 1\n", needle="nonsense"),
    cfg("l2 = \n", needle="TOML"),
    cfg("[config\nl2 = 1\n", needle="TOML"),
    cfg(b"\xff\xfe\x00l\x002", needle="TOML"),
    cfg(deep, needle="nested"),
    cfg(deep_tables, needle="Extra inputs"),
    cfg("config = 5\n", needle="[config]"),
    cfg("model = 'bpr'\nl2 = 1\n", needle="bpr"),
    cfg("model = 5\n", needle="5"),
    cfg("[model]\nname = 'pop'\n", needle="pop"),
    cfg("[config]\nl2 = 1\n[extra]\nx = 1\n", needle="[config]"),
    cfg("[config]\nl2 = 1\n[[policies]]\nname = 'x'\n", needle="policies"),
    cfg("seed = 'x'\n", needle="seed"),
    cfg("seed = 1.5\n", needle="seed"),
    cfg("lr = nan\n", model="bpr", needle="lr"),
    cfg("lr = inf\nepochs = 1\n", model="bpr", needle="lr"),
    cfg("epochs = -1\n", model="bpr", needle="epochs"),
    cfg("k = inf\n", model="itemknn", needle="k"),
    cfg("shrink = nan\n", model="itemknn", needle="shrink"),
    cfg("weights = [inf, 1.0]\n", model="blend", needle="weights"),
    cfg("weight_step = nan\n", model="blend", needle="weight_step"),
    cfg("clip = inf\n", model="lm-linear-dp", needle="clip"),
    cfg("dp_epsilon = nan\n", model="lm-linear-dp", needle="dp_epsilon"),
    ("toml-missing", None, ["train", "--model", "ease", "--train", "{ws}/train.csv", "--config", "{ws}/none.toml",
                            "--out", "{ws}/out"], "none.toml"),
    ("toml-is-dir", None, ["train", "--model", "ease", "--train", "{ws}/train.csv", "--config", "{ws}/notes",
                           "--out", "{ws}/out"], "notes"),
    # ---------------------------------------------------------------- train --out
    ("out-notes-dir", None, ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}/notes"], "not a longrec model"),
    ("out-notes-dir-overwrite", None, ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}/notes",
                                       "--overwrite"], "not a longrec model"),
    ("out-data-dir", None, ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}"], "not a longrec model"),
    ("out-file", None, ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}/items.csv"], "not a longrec model"),
    ("out-file-overwrite", None, ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}/items.csv",
                                  "--overwrite"], "not a longrec model"),
    ("out-model-no-overwrite", None, ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}/models/ease"],
     "--overwrite"),
    ("out-model-plus-notes", write("models/ease/README.txt", "mine"),
     ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}/models/ease", "--overwrite"], "README.txt"),
    ("out-under-file", None, ["train", "--model", "pop", "--train", "{ws}/train.csv", "--out", "{ws}/items.csv/m"], "items.csv"),
    # ---------------------------------------------------------------- model directories
    *[(f"dir-missing-{f}", remove(f"models/pop/{f}"), rec("pop"), f)
      for f in ("config.toml", "model.safetensors", "meta.json", "vocab_users.parquet", "vocab_items.parquet")],
    ("dir-none", None, rec("nope"), "does not exist"),
    ("dir-is-file", None, REC + ["--model", "{ws}/train.csv"], "does not exist"),
    ("meta-list", write("models/pop/meta.json", "[]"), rec("pop"), "JSON object"),
    ("meta-string", write("models/pop/meta.json", '"x"'), rec("pop"), "JSON object"),
    ("meta-garbage", write("models/pop/meta.json", "{not json"), rec("pop"), "corrupt"),
    ("meta-binary", write("models/pop/meta.json", b"\xff\xfe\x00"), rec("pop"), "corrupt"),
    ("meta-deep", write("models/pop/meta.json", "[" * 100000 + "]" * 100000), rec("pop"), "meta.json"),
    ("meta-other-model", meta("pop", lambda m: {**m, "model": "ease"}), rec("pop"), "meta.json"),
    ("meta-format-2", meta("pop", lambda m: {**m, "format_version": 2}), rec("pop"), "format"),
    ("meta-no-format", meta("pop", lambda m: {k: v for k, v in m.items() if k != "format_version"}), rec("pop"), "format"),
    ("meta-no-model", meta("pop", lambda m: {k: v for k, v in m.items() if k != "model"}), rec("pop"), "meta.json"),
    ("config-garbage", write("models/pop/config.toml", "model = \n"), rec("pop"), "corrupt"),
    ("config-deep", write("models/pop/config.toml", deep), rec("pop"), "config.toml"),
    ("config-no-model", write("models/pop/config.toml", "[config]\nseed = 0\n"), rec("pop"), "model"),
    ("config-unknown-model", write("models/pop/config.toml", "model = 'zzz'\n"), rec("pop"), "zzz"),
    ("config-table-not-dict", write("models/pop/config.toml", "model = 'pop'\nconfig = 5\n"), rec("pop"), "config"),
    ("config-bad-value", write("models/ease/config.toml", "model = 'ease'\n[config]\nl2 = -5\n"), rec("ease"), "l2"),
    ("config-inf-value", write("models/ease/config.toml", "model = 'ease'\n[config]\nl2 = inf\n"), rec("ease"), "l2"),
    ("st-garbage", write("models/pop/model.safetensors", b"garbage"), rec("pop"), "corrupt"),
    ("st-empty", write("models/pop/model.safetensors", b""), rec("pop"), "model.safetensors"),
    ("st-huge-header", write("models/pop/model.safetensors", (10**12).to_bytes(8, "little") + b"{}"), rec("pop"), "model.safetensors"),
    ("seen-index-1e6", tensors("pop", poke("_seen_indices", 0, 10**6)), rec("pop"), "indices"),
    ("seen-index-neg", tensors("pop", poke("_seen_indices", 0, -1)), rec("pop"), "indices"),
    ("seen-indptr-short", tensors("pop", lambda t: t.update(_seen_indptr=t["_seen_indptr"][:-1])), rec("pop"), "_seen_indptr"),
    ("seen-indptr-desc", tensors("pop", poke("_seen_indptr", 3, 0)), rec("pop"), "indptr"),
    ("seen-indptr-float", tensors("pop", lambda t: t.update(_seen_indptr=t["_seen_indptr"].astype(np.float32))), rec("pop"), "dtype"),
    ("seen-missing", tensors("pop", pop_key("_seen_indices")), rec("pop"), "_seen_indices"),
    ("pop-nan", tensors("pop", poke("_popularity", 0, np.nan)), rec("pop"), "non-finite"),
    ("pop-inf", tensors("pop", poke("_popularity", 0, np.inf)), rec("pop"), "non-finite"),
    ("pop-shape", tensors("pop", lambda t: t.update(_popularity=t["_popularity"][:-3])), rec("pop"), "_popularity"),
    ("pop-extra-tensor", tensors("pop", setitem("junk", np.zeros(3, np.float32))), rec("pop"), "junk"),
    ("pop-f16", tensors("pop", lambda t: t.update(_popularity=t["_popularity"].astype(np.float16))), rec("pop"), "dtype"),
    ("ease-nan", tensors("ease", poke("B", 5, np.nan)), rec("ease"), "non-finite"),
    ("ease-shape", tensors("ease", lambda t: t.update(B=t["B"][:-1])), rec("ease"), "'B'"),
    ("ease-int", tensors("ease", lambda t: t.update(B=t["B"].astype(np.int32))), rec("ease"), "dtype"),
    ("ease-missing", tensors("ease", pop_key("B")), rec("ease"), "B"),
    ("ease-1d", tensors("ease", lambda t: t.update(B=t["B"].ravel())), rec("ease"), "'B'"),
    ("knn-index-1e6", tensors("itemknn", poke("S_indices", 0, 10**6)), rec("itemknn"), "indices"),
    ("knn-index-neg", tensors("itemknn", poke("S_indices", 0, -7)), rec("itemknn"), "indices"),
    ("knn-indptr-big", tensors("itemknn", poke("S_indptr", -1, 10**6)), rec("itemknn"), "indptr"),
    ("knn-data-nan", tensors("itemknn", poke("S_data", 0, np.nan)), rec("itemknn"), "non-finite"),
    ("knn-data-short", tensors("itemknn", lambda t: t.update(S_data=t["S_data"][:-1])), rec("itemknn"), "S_data"),
    ("bpr-P-shape", tensors("bpr", lambda t: t.update(P=t["P"][:-1])), rec("bpr"), "'P'"),
    ("bpr-dim-mismatch", tensors("bpr", lambda t: t.update(P=t["P"][:, :-1].copy())), rec("bpr"), "'P'"),
    ("bpr-Q-nan", tensors("bpr", poke("Q", 0, np.nan)), rec("bpr"), "non-finite"),
    ("bpr-b-missing", tensors("bpr", pop_key("b")), rec("bpr"), "b"),
    ("vocab-garbage", write("models/pop/vocab_items.parquet", b"PAR1xx"), rec("pop"), "vocabulary"),
    ("vocab-no-col", parquet("models/pop/vocab_items.parquet", lambda: pd.DataFrame({"x": [1, 2]})), rec("pop"), "item_id"),
    ("vocab-short", parquet("models/pop/vocab_items.parquet", lambda: pd.DataFrame({"item_id": [1, 2]})), rec("pop"), "model.safetensors"),
    ("vocab-dupes", parquet("models/pop/vocab_users.parquet", lambda: pd.DataFrame({"user_id": [1] * 30})), rec("pop"), "twice"),
    ("items-garbage", write("models/pop/items.parquet", b"PAR1zz"), rec("pop"), "items.parquet"),
    # ---------------------------------------------------------------- command-line arguments
    ("k-zero", None, ["recommend", "--model", "{ws}/models/pop", "--k", "0", "--output", "{ws}/r.csv"], "--k"),
    ("k-neg", None, ["recommend", "--model", "{ws}/models/pop", "--k", "-3", "--output", "{ws}/r.csv"], "--k"),
    ("k-text", None, ["recommend", "--model", "{ws}/models/pop", "--k", "ten", "--output", "{ws}/r.csv"], None),
    ("eval-k-text", None, EVAL + ["--recs", "{ws}/recs.csv", "--truth", "{ws}/test.csv", "--k", "10,x"], "--k"),
    ("eval-k-zero", None, EVAL + ["--recs", "{ws}/recs.csv", "--truth", "{ws}/test.csv", "--k", "0"], "--k"),
    ("eval-k-empty", None, EVAL + ["--recs", "{ws}/recs.csv", "--truth", "{ws}/test.csv", "--k", ","], "--k"),
    ("rec-output-dir", None, ["recommend", "--model", "{ws}/models/pop", "--k", "5", "--output", "{ws}/notes"], "directory"),
    ("rec-output-under-file", None, ["recommend", "--model", "{ws}/models/pop", "--k", "5", "--output", "{ws}/items.csv/r.csv"], "items.csv"),
    ("eval-output-dir", None, ["evaluate", "--recs", "{ws}/recs.csv", "--truth", "{ws}/test.csv", "--output", "{ws}/notes"], "directory"),
    ("rerank-bad", None, rec("pop") + ["--rerank", "nope:0.3"], "nope"),
    ("rerank-lambda", None, rec("pop") + ["--rerank", "mmr:abc"], "mmr"),
    ("users-and-all", None, rec("pop") + ["--users", "{ws}/users.csv", "--all-users"], "--all-users"),
    ("eval-users-no-fairness", None, EVAL + ["--recs", "{ws}/recs.csv", "--truth", "{ws}/test.csv", "--users", "{ws}/users.csv"], "--fairness"),
    ("train-unknown-model", None, train_on("{ws}/train.csv", model="nope"), "unknown model"),
    ("train-bracket-model", None, train_on("{ws}/train.csv", model="[red]x[/red]"), "[red]x[/red]"),
    ("dp-zero", None, train_on("{ws}/train.csv", model="lm-seq") + ["--dp-epsilon", "0"], "--dp-epsilon"),
    ("dp-neg", None, train_on("{ws}/train.csv", model="lm-seq") + ["--dp-epsilon", "-1"], "--dp-epsilon"),
    ("dp-on-ease", None, train_on("{ws}/train.csv", model="ease") + ["--dp-epsilon", "1"], "differentially private"),
    ("seed-text", None, train_on("{ws}/train.csv") + ["--seed", "x"], None),
    ("missing-option", None, ["train", "--model", "pop"], None),
]
NORMALISED = [(f"toml-{args[2]}-{i}", *c[:1], args, c[2]) if len(c) == 3 else c
              for i, c in enumerate(CASES) for args in [c[1] if len(c) == 3 else None]]


def test_corpus_size():
    assert len(NORMALISED) >= 100


@pytest.mark.parametrize("name,setup,args,needle", NORMALISED, ids=[c[0] for c in NORMALISED])
def test_bad_input(ws, name, setup, args, needle):
    if setup is not None:
        setup(ws)
    before = snapshot(ws)
    r = runner.invoke(app, [a.replace("{ws}", str(ws)) for a in args])
    out = r.output
    assert r.exit_code == 2, out
    assert "Traceback" not in out and r.exception is None or isinstance(r.exception, SystemExit), out
    if needle is not None:  # our own error: one paragraph, "error:" first
        msg = out[out.index("error:"):].strip()
        assert "\n" not in msg, msg
        assert needle in msg, msg
    assert snapshot(ws) == before, "a failing command changed or left files"
