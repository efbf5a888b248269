"""Conformance checks of dataset formats and named datasets: they build with the keywords the
trainer passes, and their items hold the promised keys, types, shapes and value range."""
from __future__ import annotations

import inspect
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..core.interfaces import DatasetFormat, PairedDataset, UnpairedDataset
from .samples import SAMPLE_ITEMS, SAMPLE_SIZE, write_sample_layouts
from .subject import Subject, component_subject

if TYPE_CHECKING:  # pragma: no cover
    from ..core.dataset_catalog import DatasetCatalog
    from ..core.registry import Registry

#: the keywords the trainer builds every format with (docs/plugins.md)
FORMAT_KEYWORDS = ("root", "split", "transform", "direction", "in_channels", "out_channels", "max_items")
#: the trainer's transform in the check: resize to LOAD, crop CROP
LOAD, CROP = 40, 32


def promised_keys(factory: Any) -> tuple[str, ...]:
    """The item keys a format promises, by its base class."""
    if inspect.isclass(factory) and issubclass(factory, PairedDataset):
        return ("A", "B", "path")
    if inspect.isclass(factory) and issubclass(factory, UnpairedDataset):
        return ("A", "B", "path_A", "path_B")
    return ("A", "path")  # one domain (a folder of inputs to translate)


def check_dataset_format(registry: "Registry", name: str, root: str | Path | None = None, *,
                         split: str = "train", workdir: str | Path | None = None,
                         catalog: "DatasetCatalog | None" = None) -> dict[str, Any]:
    """Check dataset format ``name`` on ``root`` (its ``split``).

    Without ``root`` the kit writes a small folder in each bundled layout under ``workdir`` and
    uses the first that the format's ``detect`` recognises; it then also knows how many items the
    format must read (4) and their size (64 x 64).  For a format that recognises none of them, a
    named dataset of ``catalog`` in that layout that is made locally (``build``) is built into
    ``workdir`` and read; failing that, pass ``root``.  Returns ``root``, ``layout`` (the kit's
    sample used, or None), ``length`` and ``shapes`` (of item 0's tensors).
    """
    subject, component = component_subject(registry, "dataset_format", name)
    factory = component.factory
    if not (inspect.isclass(factory) and issubclass(factory, DatasetFormat)):
        subject.fail("interface", "it must subclass imgtrans.core.interfaces.PairedDataset, UnpairedDataset or "
                                  "DatasetFormat (for detect and specificity)")
    specificity = getattr(factory, "specificity", None)
    if not isinstance(specificity, int) or isinstance(specificity, bool):
        subject.fail("attributes", f"specificity must be an int, got {specificity!r}")
    accepted = component.arguments()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()):
        absent = [k for k in FORMAT_KEYWORDS if k not in accepted]
        if absent:
            subject.fail("keywords", f"its constructor does not take {', '.join(absent)} (every format takes "
                                     f"{', '.join(FORMAT_KEYWORDS)})")
    layout = None
    if root is None:
        if workdir is None:
            raise TypeError("check_dataset_format needs a root, or a workdir to write sample folders in")
        root, layout = _sample_root(subject, factory, name, Path(workdir), catalog)
    expected = SAMPLE_ITEMS if layout else None
    return {"root": Path(root), "layout": layout,
            **check_items(registry, subject, name, Path(root), split, expected=expected)}


def _sample_root(subject: Subject, factory: Any, name: str, workdir: Path,
                 catalog: "DatasetCatalog | None") -> tuple[Path, str | None]:
    """A folder to read format ``name`` from: the kit's sample it detects, else a built named dataset."""
    samples = write_sample_layouts(workdir / "samples")
    with subject.rule("detect"):
        layout = next((lay for lay, path in samples.items() if factory.detect(path)), None)
    if layout is not None:
        return samples[layout], layout
    for entry in ([catalog.get(n) for n in catalog.names()] if catalog is not None else []):
        if entry.layout == name and entry.build is not None:
            return build_entry(Subject("dataset", entry.name, entry.plugin), entry, workdir), None
    subject.fail("detect", f"it recognises none of the kit's sample layouts ({', '.join(samples)}) and no "
                           "named dataset built locally is in its layout; pass root= a small folder in its layout")


def check_items(registry: "Registry", subject: Subject, name: str, root: Path, split: str,
                expected: int | None = None) -> dict[str, Any]:
    """Build format ``name`` on ``root`` as the trainer does, and check its items."""
    factory = registry.get("dataset_format", name).factory
    keys = promised_keys(factory)

    def build(**kwargs: Any) -> Any:
        with subject.rule("builds"):
            return registry.create("dataset_format", name, root=root, split=split, **kwargs)

    dataset = build(transform=None, direction="AtoB", in_channels=3, out_channels=3, max_items=None)
    with subject.rule("length"):
        length = len(dataset)
    if length < 1:
        subject.fail("length", f"it reads no items from {root} (split {split!r})")
    if expected is not None and length != expected:
        subject.fail("length", f"it reads {length} items from the kit's sample folder {root}, which holds {expected}")
    first = _item(subject, dataset, 0, keys, (3, 3))
    _item(subject, dataset, length - 1, keys, (3, 3))
    if expected is not None and tuple(first["A"].shape) != (3, SAMPLE_SIZE, SAMPLE_SIZE):
        subject.fail("items", f"item A of the kit's {SAMPLE_SIZE}x{SAMPLE_SIZE} images has shape "
                              f"{tuple(first['A'].shape)}")
    _item(subject, build(transform=None, in_channels=1, out_channels=3), 0, keys, (1, 3))
    with subject.rule("max-items"):
        capped = len(build(max_items=1))
    if capped != 1:
        subject.fail("max-items", f"max_items=1 gives {capped} items, not 1")
    from ..data.transforms import PairedTransform

    transformed = _item(subject, build(transform=PairedTransform(LOAD, CROP, flip=False, train=True, seed=0)),
                        0, keys, (3, 3))
    for key in ("A", "B") if "B" in keys else ("A",):
        if tuple(transformed[key].shape[1:]) != (CROP, CROP):
            subject.fail("transform", f"with the trainer's transform (resize {LOAD}, crop {CROP}) item {key} is "
                                      f"{tuple(transformed[key].shape[1:])}: the transform it is given was not applied")
    if "path" in keys and "B" in keys:  # paired: BtoA swaps the two images of every pair
        swapped = _item(subject, build(direction="BtoA"), 0, keys, (3, 3))
        if not (torch.equal(swapped["A"], first["B"]) and torch.equal(swapped["B"], first["A"])):
            subject.fail("direction", "with direction='BtoA' item 0's A and B are not the AtoB item's B and A")
    return {"length": length, "shapes": {k: tuple(v.shape) for k, v in first.items() if torch.is_tensor(v)}}


def _item(subject: Subject, dataset: Any, index: int, keys: tuple[str, ...], channels: tuple[int, int]) -> dict:
    with subject.rule("items"):
        item = dataset[index]
    if not isinstance(item, Mapping):
        subject.fail("items", f"item {index} is a {type(item).__name__}, not a dict")
    missing = [k for k in keys if k not in item]
    if missing:
        subject.fail("items", f"item {index} lacks {', '.join(missing)} (promised: {', '.join(keys)})")
    for key, want in zip(("A", "B"), channels):
        if key not in keys:
            continue
        value = item[key]
        if not torch.is_tensor(value) or value.dtype != torch.float32 or value.ndim != 3:
            what = f"{value.dtype} tensor of shape {tuple(value.shape)}" if torch.is_tensor(value) else \
                type(value).__name__
            subject.fail("items", f"item {index}'s {key} is a {what}; expected a float32 tensor C x H x W")
        if value.shape[0] != want:
            subject.fail("channels", f"item {index}'s {key} has {value.shape[0]} channels, expected {want} "
                                     f"(from in_channels/out_channels)")
        if not torch.isfinite(value).all() or value.min() < -1 or value.max() > 1:
            subject.fail("items", f"item {index}'s {key} spans [{float(value.min()):.4g}, {float(value.max()):.4g}], "
                                  "not [-1, 1]")
    for key in (k for k in keys if k not in ("A", "B")):
        if not isinstance(item[key], str):
            subject.fail("items", f"item {index}'s {key} is a {type(item[key]).__name__}, not a str")
    return item


def check_dataset(catalog: "DatasetCatalog", registry: "Registry", name: str, workdir: str | Path) -> dict[str, Any]:
    """Check named dataset ``name``: its ``layout`` is a registered format; one made locally
    (``build``) is built into ``workdir`` (never the cache), holds the ``splits`` it declares, and
    its format reads it (:func:`check_dataset_format`'s item rules).  Entries that are downloaded
    (``url``) or prepared from the user's files are checked without the network.
    Returns ``layout`` and, when built, ``root`` and ``length``."""
    entry = catalog.get(name)
    subject = Subject("dataset", name, entry.plugin)
    if not entry.description:
        subject.fail("described", "it has no description")
    formats = registry.names("dataset_format")
    if entry.layout not in formats:
        subject.fail("layout", f"layout {entry.layout!r} is not a registered dataset format ({', '.join(formats)})")
    ways = [way for way in ("build", "url", "prepare") if getattr(entry, way) is not None]
    if len(ways) != 1:
        given = ", ".join(ways) or "none"
        subject.fail("source", f"it must give exactly one of build, url, prepare (it gives {given})")
    if entry.build is None:
        return {"layout": entry.layout}
    root = build_entry(subject, entry, Path(workdir))
    found = check_items(registry, subject, entry.layout, root, "train")
    return {"layout": entry.layout, "root": root, "length": found["length"]}


def build_entry(subject: Subject, entry: Any, workdir: Path) -> Path:
    """Build a named dataset into ``workdir`` as the cache would (into a folder that does not exist
    yet), and check the splits it declares."""
    base = workdir / "datasets"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{entry.name}-", dir=base)) / "data"
    with subject.rule("builds"):
        entry.build(root, progress=None)
    if entry.splits:
        from ..data.catalog import verify_structure

        with subject.rule("splits"):
            verify_structure(root, entry.splits, tolerance=entry.tolerance)
    return root
