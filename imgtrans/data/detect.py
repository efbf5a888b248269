"""Which dataset format a folder is in, decided explicitly and the same way every time.

In order:

1. ``--format NAME`` (``data.format`` in a config) when it is not ``auto``;
2. a named dataset's catalogue ``layout``, when the folder is that dataset's cache folder (the
   plugin that registered it knows its format; nothing is guessed);
3. detection: every registered format's ``detect(root)`` is asked; among those that recognise the
   folder, the highest declared ``specificity`` wins (:class:`imgtrans.core.interfaces.DatasetFormat`).
   Several at the top, or none, stops with a message listing the candidates and ``--format``.
   Registration order and names play no part.

:func:`check_pairing` then keeps a recipe that learns from aligned pairs away from formats whose
A and B do not correspond (it would otherwise train on random pairs without a word).
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.interfaces import PairedDataset
from ..util.errors import DataError, UnknownNameError
from .catalog import DatasetCatalog, DatasetEntry, dataset_path

if TYPE_CHECKING:
    from ..core.registry import Component, Registry

HINT = "choose one with --format NAME (data.format in a config)"


def select_format(root: str | Path, registry: Registry, catalog: DatasetCatalog | None = None,
                  requested: str | None = "auto") -> str:
    """The format to read ``root`` with (see the module docstring for the order)."""
    formats = {c.name: c.factory for c in registry.components("dataset_format")}
    if requested and requested != "auto":
        if requested not in formats:
            raise UnknownNameError("dataset format", requested, formats)
        return requested
    entry = catalogue_entry(root, catalog)
    if entry is not None:
        if entry.layout not in formats:
            raise DataError(f"dataset {entry.name!r} (plugin {entry.plugin!r}) declares layout {entry.layout!r}, "
                            f"which is not a registered dataset format ({', '.join(formats)}); {HINT}")
        return entry.layout
    return detect_format(root, formats)


def catalogue_entry(root: str | Path, catalog: DatasetCatalog | None) -> DatasetEntry | None:
    """The named dataset whose cache folder ``root`` is, if any."""
    root = Path(root)
    if catalog is None or root.name not in catalog:
        return None
    try:
        same = root.resolve() == dataset_path(root.name).resolve()
    except OSError:
        same = False
    return catalog.get(root.name) if same else None


def detect_format(root: str | Path, candidates: Mapping[str, Any]) -> str:
    """The most specific of the ``candidates`` (name -> factory) whose ``detect`` recognises ``root``."""
    root = Path(root)
    matches: dict[str, int] = {}
    for name, factory in candidates.items():
        detect = getattr(factory, "detect", None)
        if detect is None:
            continue
        try:
            recognised = detect(root)
        except Exception as exc:  # a plugin's detect must not turn every command into a traceback
            raise DataError(f"dataset format {name!r} failed while inspecting {root}: "
                            f"{type(exc).__name__}: {exc}") from exc
        if recognised:
            matches[name] = int(getattr(factory, "specificity", 0))
    if not matches:
        raise DataError(f"cannot tell the format of {root}: expected aligned A|B images (twice as wide as high) in "
                        f"train/ val/ test/, A/ and B/ folders, trainA/ trainB/ folders, or a folder of images; "
                        f"{HINT}, one of {', '.join(sorted(candidates))}")
    best = max(matches.values())
    top = sorted(name for name, rank in matches.items() if rank == best)
    if len(top) > 1:
        raise DataError(f"{root} looks like several dataset formats equally ({', '.join(top)}, specificity {best}); "
                        f"{HINT}")
    return top[0]


def check_pairing(recipe: Component, fmt: Component, source: str | Path = "") -> None:
    """Refuse to train on a folder of single images (any recipe: there is no B to learn), pointing
    at ``imgtrans data make``, which builds pairs from such photos; and refuse a recipe with
    ``paired = True`` on a format that is not a :class:`PairedDataset` (unpaired sets): its A and B
    would be random pairs.

    A format given as a plain function cannot be told apart before it is built and passes.
    """
    where = f"{source} is" if source else "the data is"
    if fmt.name == "single":
        other_set = "" if getattr(recipe.factory, "paired", True) else "; or put two image sets in trainA/ and trainB/"
        folder = source or "PHOTOS"
        raise DataError(f"{where} a folder of single images, not pairs: build pairs from them with "
                        f"`imgtrans data make TASK {folder} OUT` (TASK: `imgtrans list pair_maker`, e.g. denoise), "
                        f"then --data OUT{other_set}; if the images are A|B pairs side by side, pass --format aligned")
    if not getattr(recipe.factory, "paired", True) or not inspect.isclass(fmt.factory):
        return
    if issubclass(fmt.factory, PairedDataset):
        return
    raise DataError(f"recipe {recipe.name!r} learns from aligned pairs, but {where} in the {fmt.name!r} format, "
                    "whose A and B images do not correspond; use a paired dataset (aligned or paired_folders layout)")

