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


_URL_PASSWORD = None
_KEY_PASSWORD = None


def redact(text: str) -> str:
    """`text` with passwords and tokens replaced by `***`, for every message a user may see:
    `scheme://user:PASSWORD@host` in URLs (database URLs, proxies) and `password=...`,
    `token=...`, `secret=...`, `api_key=...` pairs (libpq DSNs, query strings)."""
    import re

    global _URL_PASSWORD, _KEY_PASSWORD
    if _URL_PASSWORD is None:
        _URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s'\"]*:)[^\s'\"]*(?P<at>@)")
        _KEY_PASSWORD = re.compile(r"(?i)(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*)"
                                   r"(?:'[^']*'|\"[^\"]*\"|[^\s&;,'\")]+)")
    text = _URL_PASSWORD.sub(r"\g<head>***\g<at>", str(text))
    return _KEY_PASSWORD.sub(r"\g<head>***", text)
