"""Errors a user can act on.

Every error raised for bad input is a `LongrecError` subclass whose message says what is
wrong, where (file, row, column) and how to fix it. The CLI prints these as one paragraph
and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class LongrecError(Exception):
    """Base class for errors caused by input the user can fix."""


class DataError(LongrecError):
    """A data file or table is malformed (columns, types, values, encoding)."""


class ConfigError(LongrecError):
    """A model or experiment configuration is invalid."""


class ModelError(LongrecError):
    """A model directory is missing, corrupt, or incompatible; or a model is used before fit."""


class UnknownIdError(LongrecError):
    """A user or item id is not in the model's vocabulary."""


class DownloadError(LongrecError):
    """A dataset could not be fetched (no network, bad checksum)."""
