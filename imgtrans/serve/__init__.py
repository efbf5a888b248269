"""``imgtrans serve``: models over HTTP, with dynamic batching and a web page (extra ``[serve]``).

From Python::

    from imgtrans.serve import create_app, load_served
    app = create_app(load_served(["zoo:basemap_a2b"]))     # a FastAPI app: serve it with any ASGI server

:mod:`.models` loads and runs the models exactly as ``imgtrans translate`` does, :mod:`.batcher`
groups concurrent requests into forward passes, :mod:`.app` is the HTTP API and the page,
:mod:`.server` binds and runs it.  FastAPI is imported only by :mod:`.app`.
"""
from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """:func:`imgtrans.serve.app.create_app` (imported on first use: it needs FastAPI)."""
    from .app import create_app as create

    return create(*args, **kwargs)


def load_served(*args: Any, **kwargs: Any) -> Any:
    """:func:`imgtrans.serve.models.load_served`."""
    from .models import load_served as load

    return load(*args, **kwargs)
