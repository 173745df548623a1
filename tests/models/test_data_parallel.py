"""lm-seq trained by two Ray Train workers: the same quality as one process, a model directory
that loads without Ray, and clear errors where data-parallel training does not apply."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from longrec.data.dataset import Dataset
from longrec.errors import ConfigError
from longrec.models.validation import valid_ndcg
from tests.conftest import REPO, make_synthetic

CFG = {"encoder": "hash", "epochs": 8, "dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 10,
       "num_threads": 2, "batch_size": 32}


def _split():
    inter, items = make_synthetic(n_users=200, n_items=80, per_user=12)
    train = Dataset(inter.iloc[::3].reset_index(drop=True), items=items)
    rest = inter.drop(inter.index[::3])
    valid = train.with_interactions(rest.iloc[::2].reset_index(drop=True))
    test = train.with_interactions(rest.iloc[1::2].reset_index(drop=True))
    return train, valid, test


@pytest.mark.ray
def test_two_workers_match_one_and_load_without_ray(tmp_path):
    pytest.importorskip("ray.train")
    from longrec.models.lm_seq import LMSeq

    train, valid, test = _split()
    one = LMSeq(CFG).fit(train, valid)
    two = LMSeq({**CFG, "workers": 2}).fit(train, valid)
    assert two.fit_info_["workers"] == 2 and two.fit_info_["best_epoch"] >= 1
    assert len(two.fit_info_["worker_peak_rss_mb"]) == 2 and min(two.fit_info_["worker_peak_rss_mb"]) > 50
    a, b = valid_ndcg(one, test), valid_ndcg(two, test)
    assert a > 0.1  # the task is learnable
    assert abs(b - a) <= 0.15 * a, (a, b)  # 2 workers vs 1: the same model quality (tiny data: loose)

    two.save(tmp_path / "m")
    expected = two.score(users=[1, 2, 3]).to_numpy()
    np.save(tmp_path / "expected.npy", expected)
    code = (
        "import sys; sys.modules['ray'] = None\n"  # any `import ray` would now fail
        "import numpy as np\n"
        "from longrec.models import Recommender\n"
        f"m = Recommender.load({str(tmp_path / 'm')!r})\n"
        f"np.testing.assert_allclose(m.score(users=[1, 2, 3]).to_numpy(), np.load({str(tmp_path / 'expected.npy')!r}), rtol=1e-5, atol=1e-6)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_workers_on_a_one_process_model_is_a_clear_error(tmp_path):
    from longrec.pipeline import train_from_files

    inter, items = make_synthetic()
    inter.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ConfigError, match="one process"):
        train_from_files("ease", tmp_path / "train.csv", tmp_path / "out", workers=2)
    assert not (tmp_path / "out").exists()


def test_one_worker_is_the_plain_fit():
    from longrec.models.lm_seq import LMSeq

    train, valid, _ = _split()
    a = LMSeq({**CFG, "epochs": 2}).fit(train, valid).score(users=[1, 2]).to_numpy()
    b = LMSeq({**CFG, "epochs": 2, "workers": 1}).fit(train, valid).score(users=[1, 2]).to_numpy()
    np.testing.assert_array_equal(a, b)
