"""What a run builds from its config: the recipe with its components, and its data (the training
split, the fixed preview batch, the validation split).

Public because benchmarks, notebooks and tests build recipes and datasets exactly as the trainer
does; also importable from :mod:`imgtrans.training.trainer`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from ..core.config import TrainConfig
from ..core.dataset_catalog import DatasetCatalog
from ..core.directions import primary_direction
from ..core.interfaces import PairedDataset, Recipe, UnpairedDataset
from ..core.registry import Registry, plugin_code
from ..data.catalog import resolve_dataset
from ..data.detect import check_pairing, select_format
from ..data.robust import SkipBadItems
from ..data.transforms import PairedTransform
from ..data.views import UnpairedView
from ..util.errors import ConfigError, DataError
from ..util.terminal import warn_stderr

PREVIEW_ROWS = 4


def build_recipe(config: TrainConfig, registry: Registry) -> Recipe:
    """The recipe with its components built (a failure in plugin code reads as one line naming it)."""
    registered = registry.get("recipe", config.recipe.name)
    recipe_cls = registered.factory
    components = {
        slot: registry.create(recipe_cls.slots[slot].kind, spec.name, **spec.args)
        for slot, spec in config.components.items()
    }
    with plugin_code(registered.plugin, f"recipe {config.recipe.name!r}"):
        return recipe_cls(components, **config.recipe.args)


def check_crop_size(recipe: Recipe, config: TrainConfig) -> None:
    """Refuse a crop that a generator cannot take whole (its input must be a multiple of its stride)."""
    for slot in recipe.directions.values():
        stride = recipe.components[slot].stride
        if config.data.crop_size % stride:
            suggestion = max(stride, config.data.crop_size // stride * stride)
            raise ConfigError(f"crop size {config.data.crop_size} is not a multiple of {stride}, the input size "
                              f"step of {slot} {config.components[slot].name!r}; use --crop-size "
                              f"{suggestion} or a generator with a smaller step")


def build_dataset(config: TrainConfig, registry: Registry, catalog: DatasetCatalog, *, split: str,
                  train: bool, progress: Callable[[str], None] | None = None, native: bool = False) -> Dataset:
    """The dataset of ``split``; ``native`` skips resizing and cropping (validation at full size)."""
    data = config.data
    if not data.source:
        raise ConfigError("no training data: pass --data NAME|PATH")
    root = resolve_dataset(data.source, catalog, progress=progress)
    name = select_format(root, registry, catalog, data.format)
    check_pairing(registry.get("recipe", config.recipe.name), registry.get("dataset_format", name), data.source)
    recipe_cls = registry.get("recipe", config.recipe.name).factory
    first = recipe_cls.directions[primary_direction(recipe_cls.directions)]
    g = config.components[first].args
    transform = None if native else PairedTransform(data.load_size, data.crop_size, flip=data.flip and train,
                                                    train=train, seed=config.run.seed)
    dataset = registry.create("dataset_format", name, root=root, split=split, transform=transform,
                              direction=data.direction, in_channels=g.get("in_channels", 3),
                              out_channels=g.get("out_channels", 3), max_items=data.max_items,
                              **({"cache": True} if data.cache else {}))
    if isinstance(dataset, UnpairedDataset) and not train:
        dataset.pair_by_index()  # held-out splits are scored where their B is A's ground truth
    if not recipe_cls.paired and isinstance(dataset, PairedDataset) and train:
        dataset = UnpairedView(dataset)  # B drawn independently of A
    if isinstance(dataset, (PairedDataset, UnpairedDataset)):
        dataset.set_seed(config.run.seed)
    return dataset


def preview_batch(config: TrainConfig, registry: Registry, catalog: DatasetCatalog,
                  fallback: SkipBadItems) -> dict[str, torch.Tensor]:
    """A fixed batch from the held-out split when there is one, so previews show generalisation.
    Unreadable items are skipped like in training (or stop the run, strict)."""
    candidates = []
    for split in ("val", "test"):
        try:
            ds = build_dataset(config, registry, catalog, split=split, train=False)
        except DataError:
            continue
        candidates.append(SkipBadItems(ds, strict=fallback.strict, warn=fallback.warn))
        break
    candidates.append(fallback)
    for ds in candidates:
        items = []
        for i in range(len(ds)):
            item = ds[i]
            if item is not None:
                items.append(item)
            if len(items) == PREVIEW_ROWS:
                break
        if items:
            return {k: torch.stack([it[k] for it in items]) for k in ("A", "B")}
    raise DataError(f"none of the {len(fallback)} training items could be read (see the warnings above)")


def validation_data(config: TrainConfig, registry: Registry, catalog: DatasetCatalog) -> SkipBadItems | None:
    """The validation split at native size (skipping unreadable files), or None with a warning.
    Unpaired data is scored only where its two sets are aligned by file name (ground truth)."""
    split = config.run.validate_split
    problem = None
    try:
        dataset = build_dataset(config, registry, catalog, split=split, train=False, native=True)
    except DataError:
        problem = f"the dataset has no {split!r} split"
    else:
        if isinstance(dataset, UnpairedDataset) and not dataset.aligned():
            problem = f"the {split!r} split is unpaired (no ground truth for its images)"
    if problem is not None:
        if config.run.keep_best is not None:  # no validation, no best: refused rather than ignored
            raise DataError(f"--keep-best {config.run.keep_best} needs validation, but {problem} "
                            "(choose another split with --set run.validate_split=test)")
        warn_stderr(f"{problem}; --validate-every is ignored (choose another split with --set run.validate_split=test)")
        return None
    return SkipBadItems(dataset, strict=config.data.strict, warn=warn_stderr)
