"""Model directories: tensors in safetensors, config in TOML, vocabulary and item table in
Parquet, provenance in JSON. Nothing is ever unpickled."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from longrec._version import __version__
from longrec.errors import ModelError

FORMAT_VERSION = 1
REQUIRED_FILES = ("config.toml", "model.safetensors", "meta.json", "vocab_users.parquet", "vocab_items.parquet")


def _toml_clean(obj):
    """TOML has no null: drop None values (pydantic restores the defaults on load)."""
    if isinstance(obj, dict):
        return {k: _toml_clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_toml_clean(v) for v in obj]
    return obj


def write_model_dir(directory: str | Path, *, name: str, config: dict, tensors: dict[str, np.ndarray],
                    meta: dict, write_extra) -> Path:
    """Write everything to a temporary sibling directory, then rename: a crash never
    leaves a half-written model where a good one was."""
    from safetensors.numpy import save_file

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with open(tmp / "config.toml", "wb") as f:
            tomli_w.dump({"model": name, "config": _toml_clean(config)}, f)
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / "model.safetensors"))
        full_meta = {"format_version": FORMAT_VERSION, "longrec_version": __version__, "model": name, **meta}
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=2, default=str))
        write_extra(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_model_dir(directory: str | Path) -> tuple[str, dict, dict[str, np.ndarray], dict]:
    """Return (model name, config dict, tensors, meta); ModelError with a fix if anything is off."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    d = Path(directory)
    if not d.is_dir():
        raise ModelError(f"model directory {d} does not exist. Train one with `longrec train --model NAME ... --out {d}`.")
    missing = [f for f in REQUIRED_FILES if not (d / f).is_file()]
    if missing:
        raise ModelError(f"{d} is not a complete longrec model directory: missing {', '.join(missing)}. "
                         "Re-train or re-save the model.")
    try:
        meta = json.loads((d / "meta.json").read_text())
        cfg = tomllib.loads((d / "config.toml").read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{d}: config.toml or meta.json is corrupt ({e}). Re-save the model.") from e
    fv = meta.get("format_version")
    if fv != FORMAT_VERSION:
        raise ModelError(f"{d} was written with model format {fv!r} (longrec {meta.get('longrec_version')}); "
                         f"this longrec ({__version__}) reads format {FORMAT_VERSION}. Re-train it with this version.")
    if "model" not in cfg:
        raise ModelError(f"{d}/config.toml has no `model` key; re-save the model.")
    try:
        tensors = load_file(str(d / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{d}/model.safetensors is corrupt ({e}). Re-save the model.") from e
    return cfg["model"], cfg.get("config", {}), tensors, meta


def frame_to_parquet(df: pd.DataFrame, path: Path) -> None:
    """Parquet needs one type per column: mixed object columns are stored as strings."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    out.to_parquet(path, index=False)
