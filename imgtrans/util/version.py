"""The library's version: the one place it is written (``pyproject.toml`` reads it from here, and
checkpoints, downloads' User-Agent and ``imgtrans --version`` quote it), so that no low module has
to import the package face for it."""
from __future__ import annotations

__version__ = "0.1.0"
