"""The core's own components (dataset formats, metrics), registered through the same hook every plugin uses.

By import path: ``imgtrans.metrics`` and the dataset formats import torch, which listing must not
(``tests/test_lazy_registry.py`` checks the names against the modules' own tables).
"""
from __future__ import annotations

from .data import builtin as data_builtin
from .hookspecs import hookimpl

#: the core's metrics by name; ``imgtrans eval`` scores the paired ones unless told otherwise
BUILTIN_METRICS = {
    "l1": "imgtrans.metrics.paired:L1",
    "psnr": "imgtrans.metrics.paired:PSNR",
    "ssim": "imgtrans.metrics.paired:SSIM",
    "fid": "imgtrans.metrics.distribution:FID",
    "kid": "imgtrans.metrics.distribution:KID",
}


@hookimpl
def register_components(registry) -> None:
    data_builtin.register_components(registry)
    for name, target in BUILTIN_METRICS.items():
        registry.metric(name, target)
