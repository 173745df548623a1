"""One regression test per class of the hostile-input review (what a user must get)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.cli.main import app
from tests.hardening.test_bad_inputs import pristine, snapshot, ws  # noqa: F401 (fixtures)

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_overwrite_replaces_only_a_model_dir(ws):
    out = ws / "models" / "ease"
    r = invoke("train", "--model", "pop", "--train", ws / "train.csv", "--out", out)
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert json.loads((out / "meta.json").read_text())["model"] == "ease"
    r = invoke("train", "--model", "pop", "--train", ws / "train.csv", "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "meta.json").read_text())["model"] == "pop"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporaries left
    r = invoke("train", "--model", "pop", "--train", ws / "train.csv", "--out", ws, "--overwrite")
    assert r.exit_code == 2 and (ws / "train.csv").is_file()


def test_empty_out_dir_is_fine(ws):
    (ws / "empty").mkdir()
    assert invoke("train", "--model", "pop", "--train", ws / "train.csv", "--out", ws / "empty").exit_code == 0


def test_crafted_index_is_refused_not_a_segfault(ws):
    from safetensors.numpy import load_file, save_file

    import longrec.models.artifacts as artifacts
    import longrec.models.base as base
    from longrec.errors import ModelError

    validate_model_dir = getattr(base, "validate_model_dir", None) or artifacts.validate_model_dir

    f = ws / "models" / "itemknn" / "model.safetensors"
    t = load_file(str(f))
    t["S_indices"][0] = 10**6
    save_file(t, str(f))
    with pytest.raises(ModelError, match="S_indices|indices"):
        validate_model_dir(ws / "models" / "itemknn")
    assert validate_model_dir(ws / "models" / "ease").name == "ease"


def test_inf_in_config_is_refused_with_the_field(ws):
    (ws / "c.toml").write_text("l2 = inf\n")
    r = invoke("train", "--model", "ease", "--train", ws / "train.csv", "--config", ws / "c.toml", "--out", ws / "o")
    assert r.exit_code == 2 and "l2" in r.output and "finite" in r.output


def test_meta_claiming_another_model_is_refused(ws):
    m = ws / "models" / "pop" / "meta.json"
    m.write_text(json.dumps({**json.loads(m.read_text()), "model": "ease"}))
    r = invoke("recommend", "--model", ws / "models" / "pop", "--k", 3, "--output", ws / "r.csv")
    assert r.exit_code == 2 and "meta.json" in r.output and not (ws / "r.csv").exists()


def test_os_errors_are_one_paragraph(ws, monkeypatch):
    import longrec.pipeline as pl

    def boom(*a, **k):
        raise PermissionError(13, "Permission denied", str(ws / "locked.csv"))

    monkeypatch.setattr(pl, "read_recs", boom)
    r = invoke("evaluate", "--recs", ws / "recs.csv", "--truth", ws / "test.csv", "--output", ws / "m.json")
    assert r.exit_code == 2 and "permission denied" in r.output and "locked.csv" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("exc,needle", [(RecursionError, "nested"), (MemoryError, "out of memory")])
def test_recursion_and_memory_errors_are_messages(ws, monkeypatch, exc, needle):
    import longrec.pipeline as pl

    def boom(*a, **k):
        raise exc()

    monkeypatch.setattr(pl, "read_recs", boom)
    r = invoke("evaluate", "--recs", ws / "recs.csv", "--truth", ws / "test.csv", "--output", ws / "m.json")
    assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output


def test_huge_k_is_clamped_and_long_k_warned(ws):
    r = invoke("evaluate", "--recs", ws / "recs.csv", "--truth", ws / "test.csv", "--k", "10,20,5000000",
               "--output", ws / "m.json")
    assert r.exit_code == 0, r.output
    assert "clamped" in r.output and "exceeds the longest recommendation list" in r.output
    ks = json.loads((ws / "m.json").read_text())["ks"]
    assert max(ks) < 5000000 and 10 in ks


def test_messages_keep_brackets(ws):
    (ws / "c.toml").write_text("[config]\nl2 = 1\n[[policies]]\nname = 'x'\n")
    r = invoke("train", "--model", "ease", "--train", ws / "train.csv", "--config", ws / "c.toml", "--out", ws / "o")
    assert r.exit_code == 2 and "move them into [config]" in r.output


def test_item_id_with_markup_is_printed_verbatim(ws):
    (ws / "h.csv").write_text("user_id,item_id\n1,[/x]\n")
    r = invoke("recommend", "--model", ws / "models" / "pop", "--k", 3, "--history", ws / "h.csv",
               "--output", ws / "r.csv")
    assert r.exit_code == 0, r.output
    assert "[/x]" in r.output


def test_passwords_are_redacted():
    from longrec.cli._common import handle_errors
    from longrec.errors import ConfigError, redact

    assert "PW" not in redact("postgresql://admin:PW@db/x") and "admin" in redact("postgresql://admin:PW@db/x")
    assert "s3cret" not in redact("host=db password=s3cret user=a")

    @handle_errors
    def cmd():
        raise ConfigError("cannot connect to postgresql://admin:PW@db:5432/app")

    import typer

    t = typer.Typer()
    t.command()(cmd)
    r = CliRunner().invoke(t, [])
    assert r.exit_code == 2 and "PW" not in r.output and "admin:***@db" in r.output
    assert app.pretty_exceptions_show_locals is False


def test_recommend_writes_csv_and_meta_together_or_neither(ws, monkeypatch):
    import longrec.pipeline as pl

    real = json.dumps

    def failing_dumps(obj, *a, **k):
        if isinstance(obj, dict) and "model_dir" in obj:
            raise OSError(28, "No space left on device", "RECS.csv.meta.json")
        return real(obj, *a, **k)

    monkeypatch.setattr(pl.json, "dumps", failing_dumps)
    before = snapshot(ws)
    r = invoke("recommend", "--model", ws / "models" / "pop", "--k", 3, "--output", ws / "r.csv")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert snapshot(ws) == before
    monkeypatch.setattr(pl.json, "dumps", real)
    assert invoke("recommend", "--model", ws / "models" / "pop", "--k", 3, "--output", ws / "r.csv").exit_code == 0
    assert (ws / "r.csv").is_file() and (ws / "r.csv.meta.json").is_file()


def test_library_save_never_replaces_user_data(ws):
    from longrec.errors import ModelError
    from longrec.models.base import Recommender

    m = Recommender.load(ws / "models" / "pop")
    with pytest.raises(ModelError, match="not a longrec model"):
        m.save(ws / "notes")
    assert (ws / "notes" / "todo.txt").read_text() == "my notes\n"


@pytest.mark.parametrize("bad", ["raises", "nan", "shape"])
def test_load_trial_scoring_failure_is_one_clear_error(tmp_path, monkeypatch, bad):
    """A model whose tensors pass every check but cannot score is refused at load with a
    ModelError naming the file (not a NameError/ValueError traceback)."""
    import numpy as np

    from longrec.data.dataset import Dataset
    from longrec.errors import ModelError
    from longrec.models import Recommender
    from longrec.models.ease import EASE
    from tests.conftest import make_synthetic

    inter, items = make_synthetic()
    EASE(l2=10.0, tune_l2=False).fit(Dataset(inter, items=items)).save(tmp_path / "m")

    def broken(self, users, hist):
        if bad == "raises":
            raise ValueError("boom")
        n = hist.n_items
        return np.full((len(users), n), np.nan, np.float32) if bad == "nan" else np.zeros((len(users), n + 1), np.float32)

    monkeypatch.setattr(EASE, "_score", broken)
    with pytest.raises(ModelError, match="model.safetensors|cannot score|NaN|shape"):
        Recommender.load(tmp_path / "m")
