"""Lazy package exports: `import longrec.X` stays cheap; a name's module loads on first use."""

from __future__ import annotations

import importlib


def lazy_getattr(package: str, exports: dict[str, str], namespace: dict):
    """A module-level `__getattr__` resolving `exports` (name -> submodule) inside `package`
    and caching each value in the package's `namespace`."""

    def __getattr__(name: str):
        mod = exports.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{mod}"), name)
        namespace[name] = value
        return value

    return __getattr__
