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


@hookimpl
def register_components(registry) -> None:
    for name, target in BUILTIN_FORMATS.items():
        registry.dataset_format(name, target)
