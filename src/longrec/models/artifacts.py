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
#: every file a model directory may hold (what `Recommender.save` writes)
MODEL_FILES = frozenset(REQUIRED_FILES + ("items.parquet",))


def _toml_clean(obj):
    """TOML has no null: drop None values (pydantic restores the defaults on load)."""
    if isinstance(obj, dict):
        return {k: _toml_clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_toml_clean(v) for v in obj]
    return obj


def is_model_dir(directory: str | Path) -> bool:
    """Whether `directory` is a longrec model directory: its meta.json says so and it holds
    nothing but model files (so replacing it destroys nothing else)."""
    d = Path(directory)
    if not d.is_dir() or d.is_symlink() or not (d / "config.toml").is_file():
        return False
    try:
        meta = json.loads((d / "meta.json").read_text())
        names = {p.name for p in d.iterdir()}
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and "format_version" in meta and "model" in meta and names <= MODEL_FILES


def check_model_output(directory: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output path that writing a model there would destroy: a file, a folder that
    is not a longrec model directory (user data), or — unless `overwrite` — an existing model.
    A missing path or an empty folder is fine."""
    d = Path(directory)
    if d.is_symlink() or (d.exists() and not d.is_dir()):
        raise ModelError(f"{d} exists and is not a longrec model directory (it is a file); longrec will not "
                         "replace it. Pass another path for --out.")
    if d.is_dir():
        try:
            entries = sorted(p.name for p in d.iterdir())
        except OSError as e:
            raise ModelError(f"cannot list {d} ({e.strerror or e}); pass another path for --out.") from None
        if not entries:
            return d
        if not is_model_dir(d):
            other = [n for n in entries if n not in MODEL_FILES]
            shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
            raise ModelError(f"{d} exists and is not a longrec model directory"
                             f"{f' (it holds {shown})' if other else ''}; longrec never deletes a folder it did not "
                             "write. Pass another path for --out (or move those files away).")
        if not overwrite:
            raise ModelError(f"{d} already holds a longrec model; pass --overwrite to replace it, or another path.")
    return d


def write_model_dir(directory: str | Path, *, name: str, config: dict, tensors: dict[str, np.ndarray],
                    meta: dict, write_extra, overwrite: bool = True) -> Path:
    """Write everything to a temporary sibling directory, then rename: a crash never
    leaves a half-written model where a good one was. An existing model directory is
    replaced only when `overwrite`; anything else at that path is never touched."""
    from safetensors.numpy import save_file

    target = Path(directory)
    check_model_output(target, overwrite)
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
            check_model_output(target, overwrite)  # still a model (or empty) directory right before the swap
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_model_dir(directory: str | Path) -> tuple[str, dict, dict[str, np.ndarray], dict]:
    """Return (model name, config dict, tensors, meta); ModelError with a fix if anything is off:
    missing files, unreadable TOML/JSON, a meta.json that disagrees with config.toml (model
    name, format version), tensors of an unsupported dtype or with non-finite values."""
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
    except RecursionError:
        raise ModelError(f"{d}: config.toml or meta.json is nested too deeply to be a model's; re-save the model.") from None
    except OSError as e:
        raise ModelError(f"{d}: cannot read config.toml or meta.json ({e.strerror or e}).") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{d}/meta.json must be a JSON object, got {type(meta).__name__}; re-save the model.")
    fv = meta.get("format_version")
    if fv != FORMAT_VERSION:
        raise ModelError(f"{d} was written with model format {fv!r} (longrec {meta.get('longrec_version')}); "
                         f"this longrec ({__version__}) reads format {FORMAT_VERSION}. Re-train it with this version.")
    if not isinstance(cfg.get("model"), str):
        raise ModelError(f"{d}/config.toml has no `model = \"NAME\"` key; re-save the model.")
    if not isinstance(cfg.get("config", {}), dict):
        raise ModelError(f"{d}/config.toml: `config` must be a table of model settings; re-save the model.")
    if meta.get("model") != cfg["model"]:
        raise ModelError(f"{d}: meta.json says the model is {meta.get('model')!r} but config.toml says "
                         f"{cfg['model']!r}; one of them was edited. Re-train or re-save the model.")
    try:
        tensors = load_file(str(d / "model.safetensors"))
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ModelError(f"{d}/model.safetensors is corrupt ({e}). Re-save the model.") from e
    for key, v in tensors.items():
        if v.dtype.kind not in "fiu" or v.dtype.itemsize < 4 and v.dtype.kind == "f":
            raise ModelError(tensor_message(d, f"tensor {key!r} has dtype {v.dtype}; longrec writes float32/float64 "
                                               "and int32/int64 tensors only"))
        if v.dtype.kind == "f" and v.size and not np.isfinite(v).all():
            n_bad = int((~np.isfinite(v)).sum())
            raise ModelError(tensor_message(d, f"tensor {key!r} holds {n_bad:,} non-finite value(s) (NaN/inf)"))
    return cfg["model"], cfg.get("config", {}), tensors, meta


def tensor_message(d: str | Path, what: str) -> str:
    return (f"{d}/model.safetensors: {what}. The file does not match its config.toml and vocabulary "
            "(edited, corrupt or from another model); re-train or re-save the model.")


def check_tensors(d: str | Path, t: dict[str, np.ndarray], spec: dict[str, tuple], optional: tuple = (),
                  exact: bool = True) -> None:
    """Check tensors against `spec`: name -> (kind, shape) with kind "f" (float) or "i"
    (integer) and shape a tuple of ints or None (any length). `exact`: no other tensors.
    Raises ModelError naming the tensor."""
    missing = [k for k in spec if k not in t and k not in optional]
    if missing:
        raise ModelError(tensor_message(d, f"missing tensor(s) {', '.join(missing)}"))
    if exact:
        extra = sorted(set(t) - set(spec))
        if extra:
            raise ModelError(tensor_message(d, f"unexpected tensor(s) {', '.join(extra[:5])}"))
    for key, (kind, shape) in spec.items():
        if key not in t:
            continue
        v = t[key]
        if (kind == "i") != (v.dtype.kind in "iu"):
            raise ModelError(tensor_message(d, f"tensor {key!r} has dtype {v.dtype}, expected "
                                               f"{'an integer' if kind == 'i' else 'a float'} dtype"))
        if len(v.shape) != len(shape) or any(s is not None and s != n for s, n in zip(shape, v.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ModelError(tensor_message(d, f"tensor {key!r} has shape {tuple(v.shape)}, expected {want}"))


def check_csr(d: str | Path, indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int, what: str) -> None:
    """A CSR structure that scipy can index without reading out of bounds."""
    if indptr.ndim != 1 or indices.ndim != 1 or indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise ModelError(tensor_message(d, f"{what}: the index tensors must be 1-D integer arrays"))
    if len(indptr) != n_rows + 1:
        raise ModelError(tensor_message(d, f"{what}: indptr has {len(indptr):,} entries, expected {n_rows + 1:,} "
                                           "(rows + 1)"))
    if indptr[0] != 0 or indptr[-1] != len(indices) or (len(indptr) > 1 and (np.diff(indptr) < 0).any()):
        raise ModelError(tensor_message(d, f"{what}: indptr must rise from 0 to the number of indices "
                                           f"({len(indices):,})"))
    if len(indices) and (indices.min() < 0 or indices.max() >= n_cols):
        raise ModelError(tensor_message(d, f"{what}: indices must lie in [0, {n_cols:,}); found "
                                           f"{int(indices.min()):,}..{int(indices.max()):,}"))


def frame_to_parquet(df: pd.DataFrame, path: Path) -> None:
    """Parquet needs one type per column: mixed object columns are stored as strings."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    out.to_parquet(path, index=False)
