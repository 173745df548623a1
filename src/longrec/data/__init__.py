"""Data layer: readers, validation, filters, datasets by name. Imports no torch."""

from longrec.data.dataset import Dataset
from longrec.data.download import cache_dir, download_dataset
from longrec.data.filters import binarize, deduplicate, k_core
from longrec.data.readers import (
    dataset_files,
    dataset_from_frames,
    from_dataframe,
    read_id_list,
    read_interactions,
    read_items,
    read_users,
)
from longrec.data.registry import data_dirs, find_dataset, known_names, load_dataset, load_split
from longrec.data.validate import DUPLICATE_POLICIES, DataWarning

__all__ = [
    "DUPLICATE_POLICIES", "DataWarning", "Dataset", "binarize", "cache_dir", "data_dirs", "dataset_files",
    "dataset_from_frames", "deduplicate", "download_dataset", "find_dataset", "from_dataframe", "k_core",
    "known_names", "load_dataset", "load_split", "read_id_list", "read_interactions", "read_items", "read_users",
]
