"""What a run builds from its config (:func:`build_recipe`, :func:`build_dataset`, ...): the recipe
with its components, and its data (the training split, the fixed preview batch, the validation
split).  Public because benchmarks, notebooks and tests build recipes and datasets exactly as the
trainer does; also importable from :mod:`imgtrans.training.trainer`.

``--init SLOT=SOURCE`` (:func:`apply_init`): start a recipe's component from existing weights
(fine-tuning).  SOURCE is an imgtrans checkpoint or model file (``FILE.safetensors``, optionally
``#NETWORK`` to pick one of several networks), ``zoo:NAME``, or a reference ``.pth`` state dict
(read with ``weights_only=True`` and fitted by :func:`imgtrans.zoo.importer.adapt_state_dict`).
The weights are copied exactly; anything that does not fit is a one-line error.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..core.checkpoint import load_checkpoint, read_metadata
from ..core.config import TrainConfig, recipe_class
from ..core.dataset_catalog import DatasetCatalog
from ..core.directions import primary_direction
from ..core.interfaces import PairedDataset, Recipe, UnpairedDataset
from ..core.registry import Registry, plugin_code
from ..data.catalog import resolve_dataset
from ..data.detect import check_pairing, select_format
from ..data.robust import SkipBadItems
from ..data.transforms import PairedTransform
from ..data.views import UnpairedView
from ..util.errors import CheckpointError, ConfigError, DataError
from ..util.terminal import warn_stderr
from ..zoo.importer import adapt_state_dict, load_reference_state_dict
from ..zoo.store import resolve_model

# -- what a run builds from its config -------------------------------------------------------------

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
        recipe = recipe_cls(components, **config.recipe.args)
    missing = [name for name in recipe_cls.owned_networks if name not in recipe.owned]
    if missing:
        raise ConfigError(f"recipe {config.recipe.name!r} (plugin {registered.plugin!r}) declares owned network "
                          f"{missing[0]!r} but its __init__ never hands it over: call "
                          f"self.add_network({missing[0]!r}, module) there")
    return recipe


def check_optimizers(recipe: Recipe, optimizers: Any, name: str) -> None:
    """Every parameter an optimizer updates must belong to a declared network (a slot's or an owned
    one): checkpoints save only those, so a run holding others could never resume exactly."""
    if not isinstance(optimizers, dict) or not all(isinstance(o, torch.optim.Optimizer) for o in optimizers.values()):
        raise ConfigError(f"recipe {name!r}: configure_optimizers must return a dict of name -> torch.optim.Optimizer, "
                          f"got {type(optimizers).__name__}")
    declared = {id(p) for net in recipe.networks().values() for p in net.parameters()}
    owners = {id(p): slot for slot, comp in recipe.components.items() for p in comp.parameters()}
    for opt_name, opt in optimizers.items():
        stray = [p for group in opt.param_groups for p in group["params"] if id(p) not in declared]
        if not stray:
            continue
        where = {owners[id(p)] for p in stray if id(p) in owners}
        whose = (f"of the {'/'.join(sorted(where))} slot, which is not a network checkpoints save" if where
                 else "of no declared network")
        raise ConfigError(
            f"recipe {name!r}: optimizer {opt_name!r} updates {len(stray)} parameter tensor(s) "
            f"({sum(p.numel() for p in stray):,} values) {whose}, so checkpoints would not save them and --resume "
            "could not continue the run exactly; declare such a network in the recipe's owned_networks and hand it "
            "over with self.add_network(NAME, module) in __init__")


def check_crop_size(recipe: Recipe, config: TrainConfig) -> None:
    """Refuse a crop that a generator cannot take whole (its input must be a multiple of its stride)."""
    for slot in recipe.directions.values():
        stride = recipe.components[slot].stride
        if config.data.crop_size % stride:
            suggestion = max(stride, config.data.crop_size // stride * stride)
            raise ConfigError(f"crop size {config.data.crop_size} is not a multiple of {stride}, the input size "
                              f"step of {slot} {config.components[slot].name!r}; use --crop-size "
                              f"{suggestion} or a generator with a smaller step")


def check_generator_sizes(recipe: Recipe, config: TrainConfig, registry: Registry) -> None:
    """Each direction's generator gives back the size of a training crop (one blank crop, no gradient,
    eval mode): a generator that does not would otherwise fail deep inside the recipe's step (or,
    at inference, write smaller images than it was given)."""
    crop = config.data.crop_size
    for slot in dict.fromkeys(recipe.directions.values()):
        gen = recipe.components[slot]
        param = next(gen.parameters(), None)
        x = torch.zeros(1, gen.in_channels, crop, crop, device=param.device if param is not None else "cpu")
        modes = [(m, m.training) for m in gen.modules()]
        gen.eval()
        try:
            name = config.components[slot].name
            with torch.no_grad(), plugin_code(registry.get("generator", name).plugin, f"generator {name!r}"):
                y = gen(x)
        finally:
            for module, training in modes:
                module.training = training
        want = (1, gen.out_channels, crop, crop)
        if not torch.is_tensor(y) or tuple(y.shape) != want:
            got = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
            raise ConfigError(f"{slot} {config.components[slot].name!r} maps a {crop}x{crop} crop {tuple(x.shape)} to "
                              f"{got}, not {want}: a generator must give back its input's size (if it needs sides "
                              f"that are multiples of N, declare stride = N; its declared stride is {gen.stride})")


def build_dataset(config: TrainConfig, registry: Registry, catalog: DatasetCatalog, *, split: str,
                  train: bool, progress: Callable[[str], None] | None = None, native: bool = False) -> Dataset:
    """The dataset of ``split``; ``native`` skips resizing and cropping (validation at full size)."""
    data = config.data
    if not data.source:
        raise ConfigError("no training data: pass --data NAME|PATH")
    root = resolve_dataset(data.source, catalog, progress=progress)
    name = select_format(root, registry, catalog, data.format)
    check_pairing(registry.get("recipe", config.recipe.name), registry.get("dataset_format", name), data.source)
    recipe_cls = recipe_class(registry, config.recipe.name)
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


# -- --init: start from existing weights -----------------------------------------------------------

def parse_init(items: Iterable[str]) -> dict[str, str]:
    """``["generator=zoo:maps_a2b"]`` -> ``{"generator": "zoo:maps_a2b"}``."""
    out: dict[str, str] = {}
    for item in items:
        slot, sep, source = item.partition("=")
        if not sep or not slot.strip() or not source.strip():
            raise ConfigError(f"--init expects SLOT=SOURCE (for example generator=zoo:maps_a2b), got {item!r}")
        out[slot.strip()] = source.strip()
    return out


def initial_state(source: str, slot: str, net: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict SOURCE provides for ``slot``'s network ``net``."""
    if source.endswith(".pth"):
        state = load_reference_state_dict(Path(source))
        try:
            return adapt_state_dict(state, net)
        except CheckpointError as exc:
            raise CheckpointError(f"--init {slot}={source}: {exc}") from None
    text, _, network = source.partition("#")
    path = resolve_model(text)
    networks = list(read_metadata(path).get("networks") or [])
    if not network:
        if slot in networks:
            network = slot
        elif len(networks) == 1:
            network = networks[0]
        else:
            raise CheckpointError(f"--init {slot}={source}: the file holds {', '.join(networks)}; "
                                  f"name one as {text}#NETWORK")
    if network not in networks:
        raise CheckpointError(f"--init {slot}={source}: the file holds no {network!r} "
                              f"(it holds: {', '.join(networks) or 'nothing'})")
    return load_checkpoint(path, networks=[network]).state_dict(network)


def apply_init(recipe: Recipe, inits: dict[str, str]) -> None:
    """Load each ``inits`` source into its slot's network, exactly (strict key and shape match)."""
    targets = {**recipe.components, **recipe.owned}
    for slot, source in inits.items():
        if slot not in targets:
            raise ConfigError(f"--init names slot {slot!r}; this recipe's slots and networks are {', '.join(targets)}")
        net = targets[slot]
        state = initial_state(source, slot, net)
        expected = net.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
        if missing or unexpected or shapes:
            raise CheckpointError(
                f"--init {slot}={source}: the weights do not fit this {slot} "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} of other shape"
                f"{', e.g. ' + (missing + unexpected + shapes)[0] if missing or unexpected or shapes else ''}); "
                f"build the {slot} with the settings the weights were trained with (--set {slot}.KEY=VALUE)")
        with torch.no_grad():
            for key, value in net.state_dict().items():
                value.copy_(state[key].to(value.dtype))
