"""Where imgtrans keeps downloaded and built data: ``$IMGTRANS_HOME`` or the user's cache dir."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache root: ``$IMGTRANS_HOME``, else ``$XDG_CACHE_HOME/imgtrans``, else ``~/.cache/imgtrans``."""
    env = os.environ.get("IMGTRANS_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "imgtrans"


def datasets_dir() -> Path:
    return home() / "datasets"
