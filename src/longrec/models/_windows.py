"""Slicing histories into fixed-length windows, shared by the sequence models."""

from __future__ import annotations

import numpy as np


def last_items(indptr: np.ndarray, indices: np.ndarray, length: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The last `length` items of each CSR row, left-aligned and zero-padded (item index +
    `offset`, so that 0 can mean padding), and the row lengths (capped at `length`)."""
    lens = np.minimum(np.diff(indptr), length)
    start = indptr[1:] - lens
    pos = start[:, None] + np.arange(length)[None, :]
    ok = np.arange(length)[None, :] < lens[:, None]
    idx = np.asarray(indices, dtype=np.int64) + offset
    if not len(idx):
        return np.zeros(ok.shape, np.int64), lens
    return np.where(ok, idx[np.minimum(pos, len(idx) - 1)], 0).astype(np.int64), lens
