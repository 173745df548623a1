"""lm-seq, lm-twotower and bpr trained by two Ray Train workers: the same quality as one
process, a model directory that loads without Ray, and clear errors where data-parallel training
does not apply (one-process models, the differentially private variants).

The Ray tests share one local Ray runtime (its start takes 10-20 s); each fit joins it."""

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
# the other data-parallel models: (registry name, tiny config); num_threads 2 = one per worker
OTHERS = {"lm-twotower": {"encoder": "hash", "epochs": 5, "dim": 16, "batch_size": 64, "num_threads": 2},
          "bpr": {"epochs": 30, "eval_every": 2, "factors": 16, "batch_size": 128, "lr": 0.02, "num_threads": 2}}


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray runtime for this module's fits (fit_data_parallel joins a running one and
    leaves it running)."""
    pytest.importorskip("ray.train")
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


def _split():
    inter, items = make_synthetic(n_users=200, n_items=80, per_user=12)
    train = Dataset(inter.iloc[::3].reset_index(drop=True), items=items)
    rest = inter.drop(inter.index[::3])
    valid = train.with_interactions(rest.iloc[::2].reset_index(drop=True))
    test = train.with_interactions(rest.iloc[1::2].reset_index(drop=True))
    return train, valid, test


def _loads_without_ray(model, tmp_path) -> None:
    """`model` saved, loaded in a fresh process where `import ray` fails, scores as here."""
    model.save(tmp_path / "m")
    expected = model.score(users=[1, 2, 3]).to_numpy()
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


@pytest.mark.ray
def test_two_workers_match_one_and_load_without_ray(tmp_path, ray_session):
    from longrec.models.lm_seq import LMSeq

    train, valid, test = _split()
    one = LMSeq(CFG).fit(train, valid)
    two = LMSeq({**CFG, "workers": 2}).fit(train, valid)
    assert two.fit_info_["workers"] == 2 and two.fit_info_["best_epoch"] >= 1
    assert len(two.fit_info_["worker_peak_rss_mb"]) == 2 and min(two.fit_info_["worker_peak_rss_mb"]) > 50
    assert two.fit_info_["worker_threads"] == [1, 1]
    a, b = valid_ndcg(one, test), valid_ndcg(two, test)
    assert a > 0.1  # the task is learnable
    assert abs(b - a) <= 0.15 * a, (a, b)  # 2 workers vs 1: the same model quality (tiny data: loose)
    _loads_without_ray(two, tmp_path)


@pytest.mark.ray
@pytest.mark.parametrize("name", sorted(OTHERS))
def test_other_models_two_workers_match_one_and_load_without_ray(tmp_path, ray_session, name):
    from longrec.models.registry import get_model_class

    klass, cfg = get_model_class(name), OTHERS[name]
    train, valid, test = _split()
    one = klass(cfg).fit(train, valid)
    two = klass({**cfg, "workers": 2}).fit(train, valid)
    info = two.fit_info_
    assert info["workers"] == 2 and info["best_epoch"] >= 1 and len(info["worker_peak_rss_mb"]) == 2
    assert len(info["valid_curve"]) >= 2  # validated on the first worker, its score shared
    assert info["worker_threads"] == [1, 1]  # num_threads 2 shared; validating did not leave rank 0 on 2
    a, b = valid_ndcg(one, test), valid_ndcg(two, test)
    assert a > 0.1  # the task is learnable
    assert abs(b - a) <= 0.15 * a, (a, b)  # 2 workers vs 1: the same model quality (tiny data: loose)
    _loads_without_ray(two, tmp_path)


def test_workers_on_a_one_process_model_is_a_clear_error(tmp_path):
    from longrec.pipeline import train_from_files

    inter, items = make_synthetic()
    inter.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ConfigError, match="one process"):
        train_from_files("ease", tmp_path / "train.csv", tmp_path / "out", workers=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["lm-seq", *sorted(OTHERS)])
def test_one_worker_is_the_plain_fit(name):
    from longrec.models.registry import get_model_class

    klass, cfg = get_model_class(name), {**({"lm-seq": CFG} | OTHERS)[name], "epochs": 2}
    train, valid, _ = _split()
    a = klass(cfg).fit(train, valid)
    b = klass({**cfg, "workers": 1}).fit(train, valid)
    assert "workers" not in b.fit_info_  # not sent to Ray
    np.testing.assert_array_equal(a.score(users=[1, 2]).to_numpy(), b.score(users=[1, 2]).to_numpy())


@pytest.mark.parametrize("name,cfg", [
    ("lm-seq-dp", {"dp_epsilon": 8.0}), ("lm-twotower-dp", {}), ("lm-linear-dp", {}), ("lm-linear", {})])
def test_private_and_closed_form_models_refuse_workers(name, cfg):
    """The DP variants train in one process (per-user clipping and noise): asking them for
    workers is a ConfigError that says so, not an unknown field or a silent one-process fit."""
    from longrec.models.registry import get_model_class

    with pytest.raises(ConfigError, match="trains in one process"):
        get_model_class(name)({**cfg, "encoder": "hash", "workers": 2})
    assert get_model_class("lm-seq-dp")({"workers": 2}).config.workers == 2  # without dp_epsilon: plain lm-seq


@pytest.mark.parametrize("model", ["lm-twotower", "lm-seq", "lm-linear"])
def test_cli_dp_epsilon_with_workers_exits_2(tmp_path, model):
    from typer.testing import CliRunner

    from longrec.cli.main import app

    inter, items = make_synthetic()
    inter.to_csv(tmp_path / "train.csv", index=False)
    r = CliRunner().invoke(app, ["train", "--model", model, "--dp-epsilon", "8", "--workers", "2",
                                 "--train", str(tmp_path / "train.csv"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "one process" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_experiment_model_configs_take_workers():
    """An experiment file's [[models]] config takes `workers` for the data-parallel models; a
    private model asked for workers fails the up-front check (before any data is read)."""
    from longrec.experiment.config import parse_experiment
    from longrec.experiment.runner import check_model_configs

    def exp(*models):
        return parse_experiment({"data": {"name": "ml-100k"}, "models": [
            {"name": n, "config": {"workers": 2, **cfg}} for n, cfg in models]})

    check_model_configs(exp(("lm-seq", {}), ("lm-twotower", {}), ("bpr", {"ray_address": "auto"})))
    with pytest.raises(ConfigError, match="trains in one process"):
        check_model_configs(exp(("lm-twotower-dp", {})))
