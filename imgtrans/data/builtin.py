"""The core's own components, registered through the same hook every plugin uses."""
from __future__ import annotations

from ..hookspecs import hookimpl
from .formats import FORMATS
from .pairmakers import PAIR_MAKERS
from .unpaired import FORMATS as UNPAIRED_FORMATS


@hookimpl
def register_components(registry) -> None:
    for name, cls in {**FORMATS, **UNPAIRED_FORMATS}.items():
        registry.dataset_format(name, cls)
    for name, maker in PAIR_MAKERS.items():
        registry.pair_maker(name, maker)
