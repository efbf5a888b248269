"""The core's own components (dataset formats, metrics), registered through the same hook every plugin uses."""
from __future__ import annotations

from .data import builtin as data_builtin
from .hookspecs import hookimpl
from .metrics import builtin as metrics_builtin


@hookimpl
def register_components(registry) -> None:
    data_builtin.register_components(registry)
    metrics_builtin.register(registry)
