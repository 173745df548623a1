"""longrec: recommender systems for the language-model era, judged on the long term.

The top-level import is deliberately light (numpy/pandas only are pulled in lazily by
submodules); torch and sentence-transformers load only where a model needs them.
"""

from longrec._version import __version__
from longrec.errors import LongrecError

__all__ = ["__version__", "LongrecError"]
