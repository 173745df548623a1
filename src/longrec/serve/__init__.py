"""HTTP serving for any saved longrec model.

    from longrec.serve import create_app
    app = create_app("runs/ease", db_url=None)        # SQLite event store next to the model
    # uvicorn.run(app)  or  `longrec serve --model runs/ease`

Importing this package is cheap: FastAPI, SQLAlchemy and FAISS load when an app is created.
"""

from __future__ import annotations

from longrec._lazy import lazy_getattr

_EXPORTS = {
    "create_app": "app", "ServeSettings": "settings", "EventStore": "store",
    "VectorIndex": "retrieval", "RetrievalSettings": "settings", "HashEncoder": "encoding",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
