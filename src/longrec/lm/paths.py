"""Where the language-model layer keeps its files."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$LONGREC_CACHE_DIR`, else `~/.cache/longrec` (not created here)."""
    env = os.environ.get("LONGREC_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "longrec"


def default_embedding_cache_path() -> Path:
    """`<cache_dir>/embeddings.sqlite`."""
    return cache_dir() / "embeddings.sqlite"


def file_signature(path: Path) -> str:
    """Cheap change detector for a model file: size and modification time (ns)."""
    st = Path(path).stat()
    return f"{st.st_size}-{st.st_mtime_ns}"
