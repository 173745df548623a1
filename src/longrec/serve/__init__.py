"""HTTP serving for any saved longrec model.

    from longrec.serve import create_app
    app = create_app("runs/ease", db_url=None)        # SQLite event store next to the model
    # uvicorn.run(app)  or  `longrec serve --model runs/ease`

Importing this package is cheap: FastAPI, SQLAlchemy and FAISS load when an app is created.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "create_app": "app", "ServeSettings": "settings", "EventStore": "store",
    "VectorIndex": "retrieval", "RetrievalSettings": "settings", "HashEncoder": "encoding",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'longrec.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"longrec.serve.{mod}"), name)
    globals()[name] = value
    return value
