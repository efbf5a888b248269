"""The core's own components, registered through the same hook every plugin uses.

Registered by import path, so listing them imports neither torch nor albumentations; the names
and classes are the ``FORMATS`` tables of :mod:`.formats` and :mod:`.unpaired` (a test keeps the two in step).
"""
from __future__ import annotations

from ..hookspecs import hookimpl

BUILTIN_FORMATS = {
    "aligned": "imgtrans.data.formats:AlignedDataset",
    "paired_folders": "imgtrans.data.formats:PairedFoldersDataset",
    "unpaired": "imgtrans.data.unpaired:UnpairedFolders",
    "single": "imgtrans.data.unpaired:SingleFolder",
}

#: the pair makers of :mod:`.pairmakers` (``PAIR_MAKERS``; a test keeps the two in step)
BUILTIN_PAIR_MAKERS = {name: f"imgtrans.data.pairmakers:{cls}" for name, cls in (
    ("edges", "Edges"), ("colorize", "Colorize"), ("superres", "SuperRes"), ("denoise", "Denoise"),
    ("inpaint", "Inpaint"), ("jpeg", "Jpeg"), ("blur", "Blur"))}


@hookimpl
def register_components(registry) -> None:
    for name, target in BUILTIN_FORMATS.items():
        registry.dataset_format(name, target)
    for name, target in BUILTIN_PAIR_MAKERS.items():
        registry.pair_maker(name, target)
