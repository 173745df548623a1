"""Errors of the language-model layer (all are `LongrecError`s, so the CLI prints them)."""

from __future__ import annotations

from longrec.errors import ConfigError, LongrecError, ModelError


class LMError(LongrecError):
    """Base class for encoder / generator / embedding-cache errors."""


class EncoderError(LMError):
    """An encoder could not be loaded or could not encode the given texts."""


class GeneratorError(LMError):
    """A text generator failed: server down, timeout, HTTP error, bad JSON, prompt too long."""


class MissingDependencyError(LMError, ConfigError):
    """An optional dependency (an extra of longrec) is not installed."""


class LMModelNotFoundError(LMError, ModelError):
    """A model file or directory given by path does not exist."""


def missing(package: str, extra: str, what: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"{what} needs the optional package '{package}', which is not installed. "
        f"Install it with: pip install 'longrec[{extra}]'"
    )
