"""Old import paths of moved modules keep working for third-party plugins and scripts.

Each old module replaces itself in ``sys.modules`` with the module it moved to, so that
``from imgtrans.interfaces import Generator`` still works and a monkeypatch through the old path
patches the one real module (a re-exporting copy would silently patch a stale name).  Importing
an old path warns once with the path to use instead; nothing inside imgtrans imports one (an
import-linter contract checks it).
"""
from __future__ import annotations

import importlib
import sys
import warnings


def alias_module(old: str, new: str, instead: str | None = None) -> None:
    """Make ``old`` name the module ``new``, warning that ``instead`` (default ``new``) is the path to use."""
    warnings.warn(f"{old} has moved: import {instead or new} instead", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
