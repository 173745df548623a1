"""Long-term feedback-loop simulation: a world fitted to real data, a user-behaviour model,
policies retrained on their own logs, long-term metrics per step and user group, reports.

    from longrec.simulate import load_config, simulate
    simulate("examples/simulate_ml100k.toml", out="runs/sim")       # metrics.parquet + report.html

Names are imported lazily so `import longrec.simulate` stays cheap. See docs/simulate.md.
"""

from __future__ import annotations

from longrec._lazy import lazy_getattr

_EXPORTS = {
    "SimConfig": "config", "load_config": "config", "parse_config": "config",
    "World": "world", "fit_world": "world", "validate_world": "world",
    "UserState": "users", "MetricTracker": "metrics", "METRICS": "metrics",
    "make_policy": "policies",
    "build_world": "loop", "run_policy": "loop", "run_sweep": "loop", "simulate": "loop",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
