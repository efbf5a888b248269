"""What ``imgtrans data info`` reports about a folder: its format, and images per split and size."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..core.dataset_catalog import DatasetCatalog
from ..core.registry import Registry
from .detect import select_format
from .images import list_images

SPLIT_FOLDERS = ("train", "val", "test", "trainA", "trainB", "testA", "testB", "A", "B",
                 "train/A", "train/B", "val/A", "val/B", "test/A", "test/B")


@dataclass
class SplitReport:
    name: str
    count: int
    sizes: Counter = field(default_factory=Counter)


@dataclass
class FolderReport:
    format: str
    splits: list[SplitReport]


def describe_folder(root: Path, registry: Registry, catalog: DatasetCatalog | None = None,
                    format: str = "auto") -> FolderReport:
    """``format`` as ``--format`` gives it; ``auto`` chooses as training does (:mod:`imgtrans.data.detect`)."""
    fmt = select_format(root, registry, catalog, format)
    folders = [root / s for s in SPLIT_FOLDERS if (root / s).is_dir()] or [root]
    splits = []
    for folder in folders:
        images = list_images(folder)
        sizes: Counter = Counter()
        for path in images:
            try:
                with Image.open(path) as img:  # reads the header only
                    sizes[img.size] += 1
            except OSError:
                sizes[("unreadable", "")] += 1
        name = str(folder.relative_to(root)) if folder != root else "."
        splits.append(SplitReport(name, len(images), sizes))
    return FolderReport(fmt, splits)
