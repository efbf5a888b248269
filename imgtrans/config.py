"""Run configuration: recipe defaults -> optional TOML file -> command-line options.

The resolved configuration is a plain nested mapping with one section per concern::

    [recipe]         name = "pix2pix", then the recipe's hyper-parameters (lambda_l1 = 100.0)
    [generator]      name = "unet_256", then the component's arguments (ngf = 64, ...)
    [discriminator]  ... one section per component slot the recipe declares
    [data]  [optim]  [run]     fixed fields, see the dataclasses below

``--set section.key=value`` addresses any of them (``--set generator.ngf=32``).  Changing a
component's ``name`` drops the arguments meant for the previous component.  Every key is
checked against the component's signature or the dataclass fields, so a typo is an error
that lists the valid keys rather than a silently ignored setting.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError
from .registry import Registry, check_arguments, factory_arguments

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class DataConfig:
    """What to train on and how to augment it."""

    source: str = ""
    format: str = "auto"
    split: str = "train"
    direction: str = "AtoB"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    batch_size: int = 1
    num_workers: int = 0
    max_items: int | None = None
    cache: bool = False
    strict: bool = False  # stop at the first unreadable image instead of skipping it with a warning


@dataclass
class OptimConfig:
    """Optimiser and the reference's linear-decay schedule (``epochs`` flat, then ``epochs_decay`` to zero)."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int = 100
    epochs_decay: int = 100
    max_steps: int | None = None


@dataclass
class RunConfig:
    """Where results go and how the run behaves."""

    out: str = ""
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    preview_every: int = 1  # epochs
    preview_every_steps: int = 0  # 0: only at epoch ends
    checkpoint_every: int = 1  # epochs
    checkpoint_every_steps: int = 0  # 0: only at epoch ends
    keep_checkpoints: int = 3  # newest checkpoints/step_*.safetensors kept
    validate_every: int = 0  # epochs; 0: no validation
    validate_split: str = "val"  # the split scored (unpaired data: only where A and B are aligned by name)
    tensorboard: bool = False
    progress: bool = True
    precision: str = "auto"  # auto | fp32 | bf16-mixed | fp16-mixed (training/engine.py)
    channels_last: str = "auto"  # auto | on | off (auto: see trainer.wants_channels_last)
    compile: bool = False  # torch.compile the networks
    sync_bn: bool = False  # batch statistics over all processes of a distributed run (CUDA)


SECTIONS: dict[str, type] = {"data": DataConfig, "optim": OptimConfig, "run": RunConfig}

PRECISIONS = ("auto", "fp32", "bf16-mixed", "fp16-mixed")
#: settings with a fixed set of values (section, key) -> choices
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("run", "precision"): PRECISIONS,
    ("run", "channels_last"): ("auto", "on", "off"),
}


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
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def recipe_defaults(recipe_name: str, registry: Registry) -> dict[str, Any]:
    """The bottom layer of every config: the recipe's slots, hyper-parameters and section defaults."""
    recipe_cls = registry.get("recipe", recipe_name).factory
    hparams = {k: v for k, v in _recipe_args(recipe_cls).items() if v is not inspect.Parameter.empty}
    tree: dict[str, Any] = {"recipe": {"name": recipe_name, **hparams}}
    for slot, spec in recipe_cls.slots.items():
        tree[slot] = {"name": spec.default, **dict(spec.args or {})}
    tree["data"] = dict(getattr(recipe_cls, "data_defaults", {}))
    tree["optim"] = dict(getattr(recipe_cls, "optim_defaults", {}))
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
    recipe_cls = registry.get("recipe", recipe_name).factory
    slots = recipe_cls.slots
    valid_sections = ["recipe", *slots, *SECTIONS]
    for section in tree:
        if section not in valid_sections:
            raise UnknownNameError("config section", section, valid_sections)

    hparams = {k: v for k, v in tree["recipe"].items() if k != "name"}
    _check_keys(f"hyper-parameter of recipe {recipe_name!r}", hparams, _recipe_args(recipe_cls))
    hparams = _coerce(hparams, _recipe_args(recipe_cls), f"recipe.{recipe_name}")

    components: dict[str, ComponentSpec] = {}
    for slot, slot_spec in slots.items():
        values = dict(tree[slot])
        name = values.pop("name")
        component = registry.get(slot_spec.kind, name)
        check_arguments(component, values)
        components[slot] = ComponentSpec(name, _coerce(values, component.arguments(), slot))
    derive = getattr(recipe_cls, "derived_args", None)
    if derive is not None:
        for slot, extra in derive(components).items():
            for key, value in extra.items():
                components[slot].args.setdefault(key, value)

    sections = {}
    for section, cls in SECTIONS.items():
        values = tree.get(section, {})
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        _check_keys(f"key of [{section}]", values, fields)
        sections[section] = cls(**_coerce(values, fields, section))
    for (section, key), choices in CHOICES.items():
        value = getattr(sections[section], key)
        if value not in choices:
            raise ConfigError(f"{section}.{key} must be one of {', '.join(choices)}, not {value!r}")
    return TrainConfig(ComponentSpec(recipe_name, hparams), components, **sections)


def _recipe_args(recipe_cls: type) -> dict[str, Any]:
    args = factory_arguments(recipe_cls)
    args.pop("components", None)
    return args


def _check_keys(what: str, values: Mapping[str, Any], valid: Mapping[str, Any]) -> None:
    for key in values:
        if key not in valid:
            raise UnknownNameError(what, key, valid)


def _coerce(values: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check each value against its default's type (ints are accepted where floats are expected)."""
    out = {}
    for key, value in values.items():
        default = defaults.get(key, inspect.Parameter.empty)
        if default is inspect.Parameter.empty or default is None or value is None:
            out[key] = value
        elif isinstance(default, bool) != isinstance(value, bool):
            raise ConfigError(f"{where}.{key} must be true or false, got {value!r}")
        elif isinstance(default, float) and isinstance(value, int):
            out[key] = float(value)
        elif isinstance(default, (int, float, str)) and not isinstance(value, type(default)):
            raise ConfigError(f"{where}.{key} must be a {type(default).__name__}, got {value!r}")
        else:
            out[key] = value
    return out
