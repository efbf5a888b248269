"""The core's own components (dataset formats, pair makers, metrics), registered through the same
hook every plugin uses.

By import path: the modules that define them import torch, which listing must not, and a module
named in a string is not imported (tests/test_lazy_registry.py keeps these tables in step with the
modules' own ``FORMATS`` and ``PAIR_MAKERS``).
"""
from __future__ import annotations

from .hookspecs import hookimpl

#: the dataset formats of :mod:`imgtrans.data.formats` and :mod:`imgtrans.data.unpaired`
BUILTIN_FORMATS = {
    "aligned": "imgtrans.data.formats:AlignedDataset",
    "paired_folders": "imgtrans.data.formats:PairedFoldersDataset",
    "unpaired": "imgtrans.data.unpaired:UnpairedFolders",
    "single": "imgtrans.data.unpaired:SingleFolder",
}

#: the pair makers of :mod:`imgtrans.data.pairmakers` (``PAIR_MAKERS``)
BUILTIN_PAIR_MAKERS = {name: f"imgtrans.data.pairmakers:{cls}" for name, cls in (
    ("edges", "Edges"), ("colorize", "Colorize"), ("superres", "SuperRes"), ("denoise", "Denoise"),
    ("inpaint", "Inpaint"), ("jpeg", "Jpeg"), ("blur", "Blur"))}
#: the core's metrics by name; ``imgtrans eval`` scores the paired ones unless told otherwise
BUILTIN_METRICS = {
    "l1": "imgtrans.metrics.paired:L1",
    "psnr": "imgtrans.metrics.paired:PSNR",
    "ssim": "imgtrans.metrics.paired:SSIM",
    "grid": "imgtrans.metrics.grid:GridArtefacts",
    "fid": "imgtrans.metrics.distribution:FID",
    "kid": "imgtrans.metrics.distribution:KID",
}


@hookimpl
def register_components(registry) -> None:
    for name, target in BUILTIN_FORMATS.items():
        registry.dataset_format(name, target)
    for name, target in BUILTIN_PAIR_MAKERS.items():
        registry.pair_maker(name, target)
    for name, target in BUILTIN_METRICS.items():
        registry.metric(name, target)
