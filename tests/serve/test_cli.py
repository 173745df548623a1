"""`longrec serve` refuses a bad model directory with a clear message (exit 2, no traceback)."""

from __future__ import annotations

import json
import shutil

import pytest
import typer
from typer.testing import CliRunner

from longrec.cli._common import handle_errors
from longrec.cli.serve import serve


def run(*args):
    app = typer.Typer()
    app.command()(handle_errors(serve))
    app.command("other")(lambda: None)  # keep `serve` a subcommand
    return CliRunner().invoke(app, ["serve", *args])


def test_missing_dir(tmp_path):
    r = run("--model", str(tmp_path / "nope"))
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output


def test_corrupt_and_incompatible(tmp_path, model_dir):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    (bad / "config.toml").unlink()
    r = run("--model", str(bad))
    assert r.exit_code == 2 and "missing config.toml" in r.output
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    meta = json.loads((old / "meta.json").read_text())
    meta["format_version"] = 0
    (old / "meta.json").write_text(json.dumps(meta))
    r = run("--model", str(old))
    assert r.exit_code == 2 and "format" in r.output


def test_bad_db_url(model_dir):
    r = run("--model", str(model_dir), "--db", "mysql://x/y")
    assert r.exit_code == 2 and "unsupported database URL" in r.output


def test_create_app_refuses(tmp_path):
    from longrec.errors import ModelError
    from longrec.serve import create_app

    with pytest.raises(ModelError, match="does not exist"):
        create_app(tmp_path / "none")


def test_workers_flag_refuses_bad_input(model_dir, tmp_path):
    r = run("--model", str(model_dir), "--workers", "2", "--db", "mysql://x/y")
    assert r.exit_code == 2 and "unsupported database URL" in r.output and "Traceback" not in r.output
    r = run("--model", str(model_dir), "--workers", "0")
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = run("--model", str(model_dir), "--max-in-flight", "-1")
    assert r.exit_code == 2 and "Traceback" not in r.output
