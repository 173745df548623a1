"""`longrec synth`: exact sizes, the same files from the same seed, a folder the dataset
registry, the P2 split and `--data` read back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.data import synth as synth_mod
from longrec.data.synth import synthesize
from longrec.errors import ConfigError

SIZE = dict(users=300, items=120, interactions=4_000)


def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.name not in ("dataset.toml",)}


def test_sizes_are_exact_and_items_distinct_per_user(tmp_path):
    s = synthesize(tmp_path / "s", seed=3, **SIZE)
    df = pd.read_parquet(tmp_path / "s" / "interactions.parquet")
    assert len(df) == 4_000 == s["interactions"]
    assert df["user_id"].nunique() == 300 and df["user_id"].min() == 1 and df["user_id"].max() == 300
    assert df["item_id"].between(1, 120).all()
    assert not df.duplicated(["user_id", "item_id"]).any()
    assert (df.groupby("user_id").size() >= 3).all()
    assert (df.groupby("user_id")["timestamp"].diff().dropna() > 0).all()  # strictly increasing per user
    items = pd.read_csv(tmp_path / "s" / "items.csv")
    assert len(items) == 120 and items["title"].is_unique and items["genre"].nunique() == 20
    parts = {p: pd.read_csv(tmp_path / "s" / f"{p}.csv") for p in ("train", "valid", "test")}
    assert (len(parts["train"]), len(parts["valid"]), len(parts["test"])) == (4_000 - 600, 300, 300)


def test_popularity_skew(tmp_path):
    def top_share(skew):
        synthesize(tmp_path / f"k{skew}", users=300, items=1_000, interactions=4_000, seed=0, skew=skew)
        counts = pd.read_parquet(tmp_path / f"k{skew}" / "interactions.parquet")["item_id"].value_counts()
        return counts.to_numpy()[:50].sum() / 4_000  # the 5% most consumed items

    skewed, flat = top_share(1.0), top_share(0.0)
    assert skewed > 0.25 and skewed > 2 * flat, (skewed, flat)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    synthesize(tmp_path / "a", seed=7, **SIZE)
    synthesize(tmp_path / "b", seed=7, **SIZE)
    synthesize(tmp_path / "c", seed=8, **SIZE)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a")["train.csv"] != _files(tmp_path / "c")["train.csv"]


def test_chunked_generation_matches_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(synth_mod, "CHUNK_ROWS", 500)  # many chunks on tiny data
    s = synthesize(tmp_path / "s", seed=1, **SIZE)
    df = pd.read_parquet(tmp_path / "s" / "interactions.parquet")
    assert len(df) == 4_000 and s["test"] == 300
    assert df["user_id"].is_monotonic_increasing and not df.duplicated(["user_id", "item_id"]).any()


def test_loads_through_the_registry_and_data_folder(tmp_path, monkeypatch):
    from longrec.data.prepare import PreparedDataset
    from longrec.data.registry import load_dataset, load_split

    synthesize(tmp_path / "synth-small", seed=2, **SIZE)
    monkeypatch.setenv("LONGREC_DATA_DIR", str(tmp_path))
    full = load_dataset("synth-small")
    assert len(full) == 4_000 and full.items is not None and {"title", "genre"} <= set(full.items.columns)
    split = load_split("synth-small", "p2")  # computed by the P2 rule: the same rows as the folder's files
    prepared = PreparedDataset.load(tmp_path / "synth-small")
    for part in ("train", "valid", "test"):
        mine = prepared.interactions(part)[["user_id", "item_id"]].sort_values(["user_id", "item_id"])
        theirs = split[part].interactions[["user_id", "item_id"]].sort_values(["user_id", "item_id"])
        np.testing.assert_array_equal(mine.to_numpy(), theirs.to_numpy())


def test_cli_synth_then_train_on_it(tmp_path):
    from longrec.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["synth", "--users", "300", "--items", "120", "--interactions", "4000", "--seed", "1",
                            "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert "4,000 interactions" in " ".join(r.output.split())
    r = runner.invoke(app, ["train", "--model", "pop", "--data", str(tmp_path / "s"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["synth", "--users", "300", "--items", "120", "--interactions", "4000",
                            "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "not empty" in " ".join(r.output.split())
    r = runner.invoke(app, ["synth", "--users", "300", "--items", "120", "--interactions", "4000", "--seed", "2",
                            "--out", str(tmp_path / "s"), "--overwrite"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["synth", "--users", "300", "--items", "10", "--interactions", "4000",
                            "--out", str(tmp_path / "t")])
    assert r.exit_code == 2 and "cannot fit" in " ".join(r.output.split())


def test_impossible_sizes_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="3 per user"):
        synthesize(tmp_path / "x", users=100, items=50, interactions=200)
    with pytest.raises(ConfigError, match="unknown synth setting"):
        synthesize(tmp_path / "x", users=10, items=50, interactions=100, colour="red")
    assert not (tmp_path / "x").exists()


def test_a_small_catalogue_gets_one_genre_per_item(tmp_path):
    synthesize(tmp_path / "s", users=5, items=8, interactions=20)
    assert pd.read_csv(tmp_path / "s" / "items.csv")["genre"].nunique() == 8
