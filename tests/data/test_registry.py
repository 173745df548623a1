"""Registry, split loading and the downloader (no real network), plus real-data checks."""

from __future__ import annotations

import io
import os
import sys
import types
import urllib.error
import zipfile

import numpy as np
import pandas as pd
import pytest

import longrec.data
from longrec.data import download, find_dataset, load_dataset, load_split
from longrec.errors import DataError, DownloadError

U_DATA = "1\t10\t4\t100\n1\t11\t5\t101\n2\t10\t3\t102\n"


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("LONGREC_DATA_DIR", str(data))
    monkeypatch.setenv("LONGREC_CACHE_DIR", str(cache))
    return data, cache


def _atomic(d):
    d.mkdir(parents=True)
    (d / f"{d.name}.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA)
    (d / f"{d.name}.item").write_text("item_id:token\ttitle:token_seq\n10\ta\n11\tb\n12\tc\n")
    (d / f"{d.name}.user").write_text("user_id:token\tage:token\n1\t3\n2\t4\n")


def test_find_dataset_order(dirs):
    data, cache = dirs
    assert find_dataset("ml-100k") is None
    _atomic(cache / "ml-100k")
    assert find_dataset("ml-100k") == cache / "ml-100k"
    _atomic(data / "ml-100k")
    assert find_dataset("ML100K") == data / "ml-100k"  # data dir first; aliases accepted
    ds = load_dataset("ml-100k")
    assert ds.name == "ml-100k" and len(ds) == 3


def test_custom_name_in_data_dir(dirs):
    _atomic(dirs[0] / "mine")
    assert find_dataset("mine") == dirs[0] / "mine"
    assert len(load_dataset("mine", download=False)) == 3


def test_load_split_from_files(dirs):
    d = dirs[0] / "ml-100k"
    _atomic(d)
    s = d / "splits" / "p3"
    s.mkdir(parents=True)
    for part, rows in (("train", "1,10,4,100\n"), ("valid", "2,10,3,102\n"), ("test", "1,11,5,101\n")):
        (s / f"{part}.csv").write_text("user_id,item_id,rating,timestamp\n" + rows)
    (s / "cold_items.csv").write_text("item_id\n11\n")
    out = load_split("ml-100k", "p3")
    assert set(out) == {"train", "valid", "test", "cold_items"}
    assert out["test"].interactions["item_id"].tolist() == [11]
    assert out["train"].items is not None and len(out["train"].users) == 2
    assert out["cold_items"].tolist() == [11]
    with pytest.raises(DataError, match="protocol"):
        load_split("ml-100k", "p9")


def test_load_split_computed_fallback(dirs, monkeypatch):
    _atomic(dirs[0] / "ml-100k")

    def split_p2(inter):
        inter = inter.sort_values(["user_id", "timestamp"])
        return {"train": inter.iloc[:1], "valid": inter.iloc[1:2], "test": inter.iloc[2:]}

    fake = types.ModuleType("longrec.data.splits")
    fake.split_p2 = split_p2
    monkeypatch.setitem(sys.modules, "longrec.data.splits", fake)
    monkeypatch.setattr(longrec.data, "splits", fake, raising=False)
    out = load_split("ml-100k", "p2")
    assert [len(out[p]) for p in ("train", "valid", "test")] == [1, 1, 1]
    assert out["test"].items is not None and out["test"].meta["computed"]


def test_offline_download_fails_fast(dirs, monkeypatch):
    def offline(url, timeout):
        assert timeout <= 10
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "_open_url", offline)
    with pytest.raises(DownloadError) as e:
        load_dataset("ml-100k")
    msg = str(e.value)
    assert "LONGREC_DATA_DIR" in msg and "load_dataset('/path/to/ml-100k')" in msg
    assert not list((dirs[1] / "downloads").glob("*.part"))


def _zip_bytes(extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", U_DATA)
        zf.writestr("ml-100k/u.user", "1|24|M|x|1\n2|30|F|y|2\n")
        for k, v in (extra or {}).items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_download_extract_checksum(dirs, monkeypatch):
    payload = _zip_bytes()
    calls = []
    monkeypatch.setattr(download, "_open_url", lambda url, timeout: calls.append(url) or io.BytesIO(payload))
    ds = load_dataset("ml-100k")
    assert len(ds) == 3 and calls == [download.URLS["ml-100k"]]
    cache = dirs[1]
    assert (cache / "ml-100k" / "u.data").is_file()
    sidecar = cache / "downloads" / "ml-100k.zip.sha256"
    assert sidecar.read_text().split()[0] == download._sha256(cache / "downloads" / "ml-100k.zip")
    assert not [p for p in cache.iterdir() if p.name.startswith(".ml-100k")]  # temp dir cleaned
    # later use: cached folder, no network
    monkeypatch.setattr(download, "_open_url", lambda url, timeout: pytest.fail("network used"))
    assert len(load_dataset("ml-100k")) == 3
    # a tampered archive is refused on re-extraction
    import shutil

    shutil.rmtree(cache / "ml-100k")
    sidecar.write_text("0" * 64 + "  ml-100k.zip\n")
    with pytest.raises(DownloadError, match="sha256"):
        load_dataset("ml-100k")


def test_zip_slip_refused(dirs, monkeypatch):
    payload = _zip_bytes({"../evil.txt": "x"})
    monkeypatch.setattr(download, "_open_url", lambda url, timeout: io.BytesIO(payload))
    with pytest.raises(DownloadError, match="unsafe path"):
        load_dataset("ml-100k")
    assert not (dirs[1] / "ml-100k").exists()


# ------------------------------------------------------------------ real data (LONGREC_DATA_DIR)
def _need_data():
    if not os.environ.get("LONGREC_DATA_DIR"):
        pytest.skip("LONGREC_DATA_DIR is not set")


@pytest.mark.realdata
def test_real_ml100k():
    _need_data()
    ds = load_dataset("ml-100k", download=False)
    assert len(ds) == 100_000
    assert ds.interactions["user_id"].nunique() == 943 and ds.interactions["item_id"].nunique() == 1682
    assert len(ds.items) == 1682 and len(ds.users) == 943
    assert ds.interactions["user_id"].dtype == np.int64


@pytest.mark.realdata
def test_real_ml1m():
    _need_data()
    ds = load_dataset("ml-1m", download=False)
    assert len(ds) == 1_000_209 and ds.interactions["user_id"].nunique() == 6040
    assert ds.interactions["item_id"].iloc[0] == "One Flew Over the Cuckoo's Nest (1975)"
    assert len(ds.items) == 3883


@pytest.mark.realdata
def test_real_ml100k_published_protocols():
    _need_data()
    p1 = load_split("ml-100k", "p1", download=False)
    assert [len(p1[k]) for k in ("train", "valid", "test")] == [80_808, 9_596, 9_596]
    p3 = load_split("ml-100k", "p3", download=False)
    assert len(p3["cold_items"]) == 202 and len(p3["test"]) == 14_832
    assert isinstance(p3["train"].items, pd.DataFrame)
