"""Declarative experiments: one TOML file -> fitted models, tests against a baseline, a report.

    from longrec.experiment import load_experiment, run_experiment
    res = run_experiment(load_experiment("examples/quickstart.toml"), "runs/qs")
    res.leaderboard            # one row per model
    res.report                 # path of report.html

See docs/experiment.md for every key of the file.
"""

from longrec.experiment.config import ExperimentConfig, load_experiment, parse_experiment
from longrec.experiment.runner import ExperimentResult, run_experiment

__all__ = ["ExperimentConfig", "ExperimentResult", "load_experiment", "parse_experiment", "run_experiment"]
