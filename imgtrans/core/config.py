"""Run configuration: recipe defaults -> optional TOML file -> command-line options.

The resolved configuration is a plain nested mapping with one section per concern::

    [recipe]         name = "pix2pix", then the recipe's hyper-parameters (lambda_l1 = 100.0)
    [generator]      name = "unet_256", then the component's arguments (ngf = 64, ...)
    [discriminator]  ... one section per component slot the recipe declares
    [data]  [optim]  [run]     fixed fields, see the dataclasses below

``--set section.key=value`` addresses any of them (``--set generator.ngf=32``).  Changing a
component's ``name`` drops the arguments meant for the previous component.  Every key is
checked against the component's signature or the dataclass fields, so a typo is an error
that lists the valid keys rather than a silently ignored setting.  Every value is checked against
its declared type and constraint (:mod:`imgtrans.util.typecheck`: the dataclass fields' ``metadata``,
a component's annotations and ``arg_constraints``), and a slot that declares a ``role`` only
accepts a component with that role.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..util.errors import ConfigError, UnknownNameError
from ..util.typecheck import argument_rules, check_values, field_rules
from .directions import DIRECTIONS
from .registry import Component, Registry, check_arguments, factory_arguments

if TYPE_CHECKING:  # interfaces imports torch; the command line imports this module for its help text
    from .interfaces import Recipe, Slot

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


PRECISIONS = ("auto", "fp32", "bf16-mixed", "fp16-mixed")
#: what validation scores unless run.val_metrics says otherwise
DEFAULT_VAL_METRICS = ("l1", "psnr", "ssim")


def _at_least(n: int) -> dict[str, Any]:
    return {"min": n}


@dataclass
class DataConfig:
    """What to train on and how to augment it.

    Each field's type and ``metadata`` constraint are what ``resolve`` checks (:mod:`imgtrans.util.typecheck`).
    """

    source: str = ""
    format: str = "auto"  # auto, or a registered dataset format (checked in resolve)
    split: str = "train"
    direction: str = field(default="AtoB", metadata={"choices": DIRECTIONS})
    load_size: int = field(default=286, metadata=_at_least(1))
    crop_size: int = field(default=256, metadata=_at_least(1))  # and <= load_size (checked in resolve)
    flip: bool = True
    batch_size: int = field(default=1, metadata=_at_least(1))
    num_workers: int = field(default=0, metadata=_at_least(0))
    max_items: int | None = field(default=None, metadata=_at_least(1))
    cache: bool = False
    strict: bool = False  # stop at the first unreadable image instead of skipping it with a warning


@dataclass
class OptimConfig:
    """Optimiser and the reference's linear-decay schedule (``epochs`` flat, then ``epochs_decay`` to zero)."""

    lr: float = field(default=2e-4, metadata={"gt": 0})
    beta1: float = field(default=0.5, metadata={"min": 0, "lt": 1})
    beta2: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    epochs: int = field(default=100, metadata=_at_least(0))
    epochs_decay: int = field(default=100, metadata=_at_least(0))
    max_steps: int | None = field(default=None, metadata=_at_least(1))


@dataclass
class RunConfig:
    """Where results go and how the run behaves."""

    out: str = ""
    seed: int = field(default=0, metadata=_at_least(0))
    device: str = "auto"
    log_every: int = field(default=10, metadata=_at_least(1))
    preview_every: int = field(default=1, metadata=_at_least(1))  # epochs
    preview_every_steps: int = field(default=0, metadata=_at_least(0))  # 0: only at epoch ends
    checkpoint_every: int = field(default=1, metadata=_at_least(1))  # epochs
    checkpoint_every_steps: int = field(default=0, metadata=_at_least(0))  # 0: only at epoch ends
    keep_checkpoints: int = field(default=3, metadata=_at_least(1))  # newest checkpoints/step_*.safetensors kept
    validate_every: int = field(default=0, metadata=_at_least(0))  # epochs; 0: no validation
    validate_split: str = "val"  # the split scored (unpaired data: only where A and B are aligned by name)
    # registered metrics validation scores (--val-metric); see training/validation.py
    val_metrics: list[str] = field(default_factory=lambda: list(DEFAULT_VAL_METRICS))
    keep_best: str | None = None  # a validation figure (--keep-best): see keep_best_key and training/checkpoints.py
    fid_weights: str | None = None  # a local copy of the FID Inception weights (--fid-weights); default: the cache
    tensorboard: bool = False
    progress: bool = True
    # auto | fp32 | bf16-mixed | fp16-mixed (training/engine.py)
    precision: str = field(default="auto", metadata={"choices": PRECISIONS})
    # auto | on | off (auto: see training/step_engine.py, wants_channels_last)
    channels_last: str = field(default="auto", metadata={"choices": ("auto", "on", "off")})
    compile: bool = False  # torch.compile the networks
    init: dict[str, str] = field(default_factory=dict)  # slot -> weights it starts from (--init SLOT=SOURCE)
    sync_bn: bool = False  # batch statistics over all processes of a distributed run (CUDA)


SECTIONS: dict[str, type] = {"data": DataConfig, "optim": OptimConfig, "run": RunConfig}


@dataclass
class ComponentSpec:
    """A registered name plus the keyword arguments to build it with."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.args}


@dataclass
class TrainConfig:
    """A fully resolved, validated training configuration."""

    recipe: ComponentSpec
    components: dict[str, ComponentSpec]
    data: DataConfig
    optim: OptimConfig
    run: RunConfig

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"recipe": self.recipe.as_dict()}
        out.update({slot: spec.as_dict() for slot, spec in self.components.items()})
        for section in SECTIONS:
            out[section] = dataclasses.asdict(getattr(self, section))
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(_drop_none(self.to_dict()))


def _drop_none(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _drop_none(v) for k, v in tree.items() if v is not None}
    return tree


def parse_value(text: str) -> Any:
    """A ``--set`` value in TOML syntax (``32``, ``1e-3``, ``true``, ``"x"``); bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set_options(items: Iterable[str]) -> dict[str, Any]:
    """``["generator.ngf=32"]`` -> ``{"generator": {"ngf": 32}}``."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise ConfigError(f"--set expects SECTION.KEY=VALUE (for example generator.ngf=32), got {item!r}")
        tree.setdefault(section, {})[name] = parse_value(value.strip())
    return tree


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
                          "TOML config files must be UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def recipe_class(registry: Registry, name: str) -> type[Recipe]:
    """The registered recipe ``name``, checked to be a :class:`~imgtrans.core.interfaces.Recipe`, so
    that every member the core reads is declared there with its default (none is looked up with
    ``getattr``)."""
    from .interfaces import Recipe  # imports torch, as the recipe's own module just did

    component = registry.get("recipe", name)
    factory = component.factory
    if not (isinstance(factory, type) and issubclass(factory, Recipe)):
        raise ConfigError(f"recipe {name!r} of plugin {component.plugin!r} is {factory!r}, not a subclass of "
                          "imgtrans.api.Recipe")
    check_recipe_declarations(factory, f"recipe {name!r} of plugin {component.plugin!r}")
    return factory


def check_recipe_declarations(cls: type[Recipe], who: str) -> None:
    """What the core looks up by name in a recipe's declarations must be there: each direction names
    a generator slot, and owned networks are not named like slots (one line naming the fix)."""
    slots = cls.slots
    generators = [s for s, spec in slots.items() if getattr(spec, "kind", None) == "generator"]
    for direction, slot in cls.directions.items():
        if direction not in DIRECTIONS:
            raise ConfigError(f"{who}: directions has {direction!r}; the directions are {', '.join(DIRECTIONS)}")
        if slot not in slots or slot not in generators:
            what = "a slot it does not declare" if slot not in slots else f"a {slots[slot].kind} slot"
            raise ConfigError(f"{who}: directions[{direction!r}] names {slot!r}, {what}; name one of its generator "
                              f"slots ({', '.join(generators) or 'none declared'})")
    for name in cls.owned_networks:
        if name in slots or name in ("recipe", *SECTIONS):
            raise ConfigError(f"{who}: owned network {name!r} has the name of a slot or config section; rename it")


def recipe_defaults(recipe_name: str, registry: Registry) -> dict[str, Any]:
    """The bottom layer of every config: the recipe's slots, hyper-parameters and section defaults."""
    recipe_cls = recipe_class(registry, recipe_name)
    hparams = {k: v for k, v in _recipe_args(recipe_cls).items() if v is not inspect.Parameter.empty}
    tree: dict[str, Any] = {"recipe": {"name": recipe_name, **hparams}}
    for slot, spec in recipe_cls.slots.items():
        tree[slot] = {"name": spec.default, **dict(spec.args or {})}
    tree["data"] = dict(recipe_cls.data_defaults)
    tree["optim"] = dict(recipe_cls.optim_defaults)
    return tree


def merge_layer(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """Apply one layer; a component whose ``name`` changes starts again from no arguments."""
    out = copy.deepcopy(base)
    for section, values in layer.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"config key {section!r} must be a section (a TOML table), got {values!r}")
        current = out.setdefault(section, {})
        new_name = values.get("name")
        if section not in SECTIONS and new_name is not None and new_name != current.get("name"):
            current = out[section] = {"name": new_name}
        current.update({k: v for k, v in values.items() if v is not None or k not in current})
    return out


def resolve(recipe_name: str, registry: Registry, layers: Iterable[Mapping[str, Any]]) -> TrainConfig:
    """Merge ``layers`` over the recipe defaults and validate everything against the registry."""
    tree = recipe_defaults(recipe_name, registry)
    for layer in layers:
        tree = merge_layer(tree, layer)
    if tree["recipe"].get("name", recipe_name) != recipe_name:
        raise ConfigError(f"config is for recipe {tree['recipe']['name']!r}, not {recipe_name!r}")
    recipe_cls = recipe_class(registry, recipe_name)
    slots = recipe_cls.slots
    valid_sections = ["recipe", *slots, *SECTIONS]
    for section in tree:
        if section not in valid_sections:
            raise UnknownNameError("config section", section, valid_sections)

    hparams = {k: v for k, v in tree["recipe"].items() if k != "name"}
    recipe_args = _recipe_args(recipe_cls)
    _check_keys(f"hyper-parameter of recipe {recipe_name!r}", hparams, recipe_args)
    hparams = check_values(hparams, argument_rules(recipe_cls, recipe_args, f"recipe {recipe_name!r}"), "recipe")

    components: dict[str, ComponentSpec] = {}
    for slot, slot_spec in slots.items():
        values = dict(tree[slot])
        name = values.pop("name")
        component = registry.get(slot_spec.kind, name)
        check_role(slot, slot_spec, component, registry)
        check_arguments(component, values)
        rules = argument_rules(component.factory, component.arguments(), f"{component.kind} {name!r}")
        components[slot] = ComponentSpec(name, check_values(values, rules, slot))
    for slot, extra in recipe_cls.derived_args(components).items():
        for key, value in extra.items():
            components[slot].args.setdefault(key, value)

    sections = {}
    for section, cls in SECTIONS.items():
        values = tree.get(section, {})
        if section == "run":
            values = _stored_precision(values)
        rules = field_rules(cls)
        _check_keys(f"key of [{section}]", values, rules)
        sections[section] = cls(**check_values(values, rules, section))
    _check_data(sections["data"], registry)
    _check_validation(sections["run"], registry, recipe_cls)
    return TrainConfig(ComponentSpec(recipe_name, hparams), components, **sections)


def _stored_precision(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """``run.precision`` in any spelling of :mod:`imgtrans.util.precision_names` (``bf16``, ``16-mixed``,
    ``32-true``...) -> the one stored (:data:`PRECISIONS`); anything else is left for the type check
    to refuse."""
    from ..util.precision_names import SPELLINGS, training_precision

    value = run.get("precision")
    if isinstance(value, str) and value.strip().lower() in SPELLINGS:
        return {**run, "precision": training_precision(value)}
    return run


def check_role(slot: str, spec: Slot, component: Component, registry: Registry) -> None:
    """A slot that needs a role (an adversarial loss, a pixel loss) gets a component with that role:
    a GAN loss in the pixel slot would train nonsense, or fail deep inside a step."""
    if spec.role is None:
        return
    from .interfaces import declared_role  # imports torch, as the component's own module just did

    role = getattr(component.factory, "role", None)
    if role != spec.role:
        fitting = [c.name for c in registry.components(spec.kind) if getattr(c.factory, "role", None) == spec.role]
        fix = ""
        if role is not None and declared_role(component.factory) is None:
            has = f"declares no role, so it counts as {role!r} (the default of imgtrans.api.Loss)"
            fix = f"; if it is called as {spec.role!r} losses are, declare role = {spec.role!r} on its class"
        else:
            has = f"has role {role!r}" if role is not None else "declares no role"
        raise ConfigError(f"{slot}: {component.kind} {component.name!r} {has}, but slot {slot!r} needs role "
                          f"{spec.role!r} (for example: {', '.join(fitting) or 'none registered'}){fix}")


def _check_data(data: DataConfig, registry: Registry) -> None:
    formats = registry.names("dataset_format")
    if data.format != "auto" and data.format not in formats:
        raise UnknownNameError("dataset format (data.format)", data.format, ["auto", *formats])
    if data.crop_size > data.load_size:
        raise ConfigError(f"data.crop_size {data.crop_size} is larger than data.load_size {data.load_size}: images "
                          "are resized to load_size, then cropped, so crop_size must be <= load_size")


def keep_best_key(text: str) -> tuple[str, str]:
    """``--keep-best`` in any accepted spelling -> (recipe direction, metric name).

    A validation figure is named as in metrics.jsonl, with or without ``val_``: ``fid`` /
    ``val_fid`` is the metric of the recipe's ``AtoB`` generator, ``BtoA_l1`` / ``val_BtoA_l1``
    that of its way back (``AtoB_l1`` is accepted for symmetry)."""
    name = text.strip()
    name = name[len("val_"):] if name.startswith("val_") else name
    for direction in DIRECTIONS:
        if name.startswith(direction + "_"):
            return direction, name[len(direction) + 1:]
    return "AtoB", name


def val_key(direction: str, metric: str) -> str:
    """The metrics.jsonl key of ``metric`` for ``direction`` (``val_fid``, ``val_BtoA_fid``)."""
    return f"val_{metric}" if direction == "AtoB" else f"val_{direction}_{metric}"


def _check_validation(run: RunConfig, registry: Registry, recipe_cls: type[Recipe]) -> None:
    """Validation metrics must be registered; ``keep_best`` must name one of them for a direction
    the recipe trains (its metric is added to them when missing) and is stored as its
    metrics.jsonl key, so config.toml says exactly which figure chooses the best checkpoint."""
    names = [run.val_metrics] if isinstance(run.val_metrics, str) else run.val_metrics
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"run.val_metrics must be a list of metric names (`imgtrans list metric`), got {names!r}")
    known = registry.names("metric")
    for name in names:
        if name not in known:
            raise UnknownNameError("metric", name, known, note="(--val-metric, run.val_metrics)")
    names = list(dict.fromkeys(names))
    if run.keep_best is not None:
        direction, metric = keep_best_key(run.keep_best)
        if metric not in known:
            raise UnknownNameError("metric", metric, known, note=f"(--keep-best {run.keep_best}, run.keep_best)")
        directions = recipe_cls.directions
        if direction not in directions:
            raise ConfigError(f"--keep-best {run.keep_best}: this recipe trains no {direction} generator "
                              f"(its directions: {', '.join(directions)})")
        if metric not in names:
            names.append(metric)
        run.keep_best = val_key(direction, metric)
    if not names and run.validate_every:
        raise ConfigError("run.val_metrics is empty: validation needs at least one metric (`imgtrans list metric`)")
    run.val_metrics = names


def _recipe_args(recipe_cls: type[Recipe]) -> dict[str, Any]:
    args = factory_arguments(recipe_cls)
    args.pop("components", None)
    return args


def _check_keys(what: str, values: Mapping[str, Any], valid: Mapping[str, Any]) -> None:
    for key in values:
        if key not in valid:
            raise UnknownNameError(what, key, valid)
