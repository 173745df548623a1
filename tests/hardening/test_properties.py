"""Property tests: the readers and the TOML config loader either return a valid result or
raise LongrecError — never anything else — on arbitrary input."""

from __future__ import annotations

import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from longrec.errors import LongrecError  # noqa: E402

SETTINGS = settings(max_examples=200, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

def _check_interactions(path):
    from longrec.data.readers import read_interactions

    try:
        df = read_interactions(path)
    except LongrecError:
        return
    assert isinstance(df, pd.DataFrame) and {"user_id", "item_id"} <= set(df.columns)


@SETTINGS
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".parquet", ".inter", ".tsv", ".dat"]))
def test_read_interactions_random_bytes(tmp_path, data, suffix):
    p = tmp_path / f"f{suffix}"
    p.write_bytes(data)
    _check_interactions(p)


@SETTINGS
@given(body=st.lists(st.lists(st.one_of(st.integers(-5, 10**12).map(str), st.text(max_size=6),
                                        st.sampled_from(["", "nan", "inf", '"', "1e309", "-1", "[/x]"])),
                              min_size=1, max_size=4).map(",".join), max_size=8).map("\n".join),
       header=st.sampled_from(["user_id,item_id", "user_id,item_id,timestamp", "user_id,item_id,rating",
                               "item_id", "u,i", ""]))
def test_read_interactions_csvish(tmp_path, header, body):
    p = tmp_path / "f.csv"
    p.write_text(f"{header}\n{body}\n", encoding="utf-8")
    _check_interactions(p)


toml_values = st.one_of(st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(
    lambda x: "nan" if x != x else ("inf" if x == float("inf") else ("-inf" if x == -float("inf") else repr(x)))),
    st.sampled_from(["'x'", "true", "[1, 2]", "{a = 1}", "[", "'", "\"\"\"", "1979-05-27"]))
toml_keys = st.sampled_from(["l2", "seed", "model", "config", "name", "tune_l2", "x", "[config]", "[model]",
                             "[[policies]]", "a.b"])


@SETTINGS
@given(lines=st.lists(st.tuples(toml_keys, toml_values), max_size=6),
       model=st.sampled_from(["ease", "pop", "bpr"]))
def test_load_model_config_random_toml(tmp_path, lines, model):
    from longrec.models.registry import create_model
    from longrec.pipeline import load_model_config

    p = tmp_path / "c.toml"
    p.write_text("\n".join(k if k.startswith("[") else f"{k} = {v}" for k, v in lines) + "\n")
    try:
        cfg = load_model_config(p, model)
        assert isinstance(cfg, dict)
        create_model(model, cfg)  # the model's typed config accepts it or raises ConfigError
    except LongrecError:
        pass


@SETTINGS
@given(data=st.binary(max_size=300))
def test_load_model_config_random_bytes(tmp_path, data):
    from longrec.pipeline import load_model_config

    p = tmp_path / "c.toml"
    p.write_bytes(data)
    try:
        assert isinstance(load_model_config(p, "ease"), dict)
    except LongrecError:
        pass
