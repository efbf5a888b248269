"""The plugin contract in one place: what a recipe is (here), and the interfaces of networks,
data and metrics (defined beside it and re-exported, so ``from imgtrans.core.interfaces import
Generator`` and :mod:`imgtrans.api` keep naming the same classes).

These are small base classes rather than Protocols so that plugins get sensible defaults and
the core can rely on a few attributes (channels, stride) when it pads, checkpoints or tests.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from ..util.errors import ConfigError
from .data_interfaces import DatasetFormat, PairedDataset, PairMaker, UnpairedDataset
from .directions import DIRECTIONS, primary_direction
from .metric_interfaces import Metric, PairedMetric, SetMetric
from .networks import LOSS_ROLES, Discriminator, Generator, Loss, declared_role

__all__ = ["DIRECTIONS", "LOSS_ROLES", "DatasetFormat", "Discriminator", "Generator", "Loss", "Metric",
           "PairMaker", "PairedDataset", "PairedMetric", "Recipe", "RecipeOption", "SetMetric", "Slot",
           "StepEngine", "UnpairedDataset", "declared_role"]


@dataclass(frozen=True)
class Slot:
    """A component a recipe needs: its kind and the default name (arguments come from the config).

    ``role``, when set, is the :attr:`Loss.role` the component must have (``Slot("loss", "bce",
    role="adversarial")``): resolving a config with a component of another role is an error.
    """

    kind: str
    default: str
    args: Mapping[str, Any] | None = None
    role: str | None = None


@dataclass(frozen=True)
class RecipeOption:
    """A command-line option a recipe adds to ``imgtrans train RECIPE`` (shown by its ``--help``).

    ``keys`` are the config settings (``SECTION.KEY``) the value is written to; one option may set
    several (CycleGAN's ``--generator`` names both of its generators).  ``type`` is a Python type
    (``int``, ``float``, ``str``, ``bool`` for a flag) or a tuple of allowed strings.
    """

    flag: str
    keys: tuple[str, ...]
    help: str
    type: Any = str




class StepEngine(Protocol):
    """What a recipe's :meth:`Recipe.backward` and :meth:`Recipe.step` delegate to."""

    def backward(self, loss: torch.Tensor) -> None: ...

    def step(self, optimizer: torch.optim.Optimizer) -> None: ...


class Recipe(abc.ABC):
    """A training method: which components it needs, its defaults, and one optimisation step.

    Everything generic (devices, data loading, schedules, logging, checkpoints, validation) belongs
    to the trainer, so a recipe stays a small file.  The trainer calls, in order: ``__init__`` with
    the built components and the recipe's hyper-parameters, ``configure_optimizers``, then
    ``train_step`` once per batch (under autocast when the run trains in mixed precision).

    Inside ``train_step``, call ``self.backward(loss)`` and ``self.step(optimizer)`` rather than
    ``loss.backward()`` and ``optimizer.step()``: the trainer routes them through its step engine,
    which scales fp16 losses and averages gradients across the processes of a distributed run.
    A recipe that calls PyTorch directly still trains in fp32 and bf16 on one process.

    Everything the core reads of a recipe is declared here, with its default, and nothing else is
    looked up (docs/recipes.md has the same list):

    * class attributes: ``slots`` (the components to build, by slot name; required),
      ``directions`` (which generator slot translates which way, in the training data's terms:
      ``AtoB`` maps the batch's ``A`` to ``B``; the final model file holds all of them), ``paired``
      (whether batches must be aligned pairs; an unpaired dataset is then refused), ``options``
      (the recipe's own command-line options), ``data_defaults`` and ``optim_defaults`` (defaults
      of the ``[data]`` and ``[optim]`` config sections), ``tiny_config`` (what the conformance kit
      trains with), ``arg_constraints`` (checks of the hyper-parameters, as a generator's);
    * ``__init__(components, **hparams)``: the hyper-parameters are its keyword arguments;
    * ``derived_args(specs)`` (class method): component arguments that follow from others';
    * ``configure_optimizers`` and ``train_step`` (required);
    * ``owned_networks`` (class attribute: name -> description of each trainable network the recipe
      builds itself, such as CUT's patch sampler) and :meth:`add_network`, with which ``__init__``
      hands each of them over; they are then networks like the slots' (checkpoints, devices,
      gradient averaging, ``--init``, ``imgtrans info recipe``);
    * ``networks()`` (what checkpoints, devices and gradient averaging see; by default every
      component with parameters, then the owned networks), ``generators()`` and ``generator``
      (from ``directions``);
    * ``state_dict``/``load_state_dict``: state of the recipe's own (image pools, counters) that a
      resumed run must get back;
    * ``previews``: the image columns of a preview;
    * ``use_engine(engine)``: the trainer hands over its step engine, which ``backward`` and
      ``step`` then go through.
    """

    #: component slots, e.g. ``{"generator": Slot("generator", "unet_256"), ...}``
    slots: ClassVar[dict[str, Slot]]
    #: generator slot per translation direction (``{"AtoB": "generator"}`` for a one-way recipe)
    directions: ClassVar[dict[str, str]] = {"AtoB": "generator"}
    #: True when the recipe trains on aligned pairs (pix2pix), False for unpaired (CycleGAN)
    paired: ClassVar[bool] = True
    #: the recipe's own options of ``imgtrans train RECIPE``
    options: ClassVar[tuple[RecipeOption, ...]] = ()
    #: defaults for the ``[data]`` and ``[optim]`` sections of the run config
    data_defaults: ClassVar[dict[str, Any]] = {}
    optim_defaults: ClassVar[dict[str, Any]] = {}
    #: a config layer that makes the recipe train in seconds (small networks, small crops): what
    #: the conformance tests (``imgtrans.testing``) train every registered recipe with
    tiny_config: ClassVar[dict[str, dict[str, Any]]] = {}
    #: optional constraints on hyper-parameters (as :attr:`Generator.arg_constraints`)
    arg_constraints: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: trainable networks the recipe builds itself rather than from a slot (CUT's patch sampler,
    #: whose input widths follow the generator's encoder), by name -> a one-line description.
    #: ``__init__`` builds each and hands it over with :meth:`add_network`; names must differ from
    #: the slots'.  Their settings are the recipe's hyper-parameters.
    owned_networks: ClassVar[dict[str, str]] = {}
    #: the trainer's step engine, handed over with :meth:`use_engine`; None means plain PyTorch
    engine: StepEngine | None = None

    def __init__(self, components: dict[str, nn.Module], **hparams: Any):
        self.components = components

    @property
    def owned(self) -> dict[str, nn.Module]:
        """The networks of :attr:`owned_networks`, as handed over by :meth:`add_network`."""
        return self.__dict__.setdefault("_owned", {})

    def add_network(self, name: str, network: nn.Module) -> nn.Module:
        """Hand over owned network ``name`` (declared in :attr:`owned_networks`): the trainer then
        places, checkpoints, averages and restores it like a slot's network.  Returns ``network``."""
        if name not in self.owned_networks:
            declared = ", ".join(self.owned_networks) or "none"
            raise ConfigError(f"recipe {type(self).__name__}: network {name!r} is not declared in owned_networks "
                              f"(declared: {declared}); declare it there with a one-line description")
        if not isinstance(network, nn.Module):
            raise ConfigError(f"recipe {type(self).__name__}: owned network {name!r} must be a torch.nn.Module, "
                              f"got {type(network).__name__}")
        self.owned[name] = network
        return network

    @classmethod
    def derived_args(cls, specs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Component arguments that follow from other components' (``specs``: slot -> ComponentSpec),
        e.g. a conditional discriminator's input channels; applied where the config leaves them unset.

        ``specs[slot].args`` holds only the arguments set explicitly (the slot's ``Slot(..., args)``,
        the TOML file, ``--set``), never the component's own defaults: read them with a default,
        ``specs["generator"].args.get("in_channels", 3)``."""
        return {}

    def generators(self) -> dict[str, Generator]:
        """The networks inference uses, by direction."""
        return {d: self.components[slot] for d, slot in self.directions.items()}  # type: ignore[misc]

    @property
    def generator(self) -> Generator:
        """The ``AtoB`` generator (or the only one)."""
        gens = self.generators()
        return gens[primary_direction(gens)]

    def networks(self) -> dict[str, nn.Module]:
        """Trained modules, by name, for checkpoints, devices and gradient averaging: every component
        with parameters except losses (a loss with frozen weights is not a network), then the
        recipe's owned networks (:attr:`owned_networks`)."""
        slots = {k: v for k, v in self.components.items()
                 if self.slots[k].kind != "loss" and any(True for _ in v.parameters())}
        return {**slots, **self.owned}

    @abc.abstractmethod
    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per network group, by name."""

    @abc.abstractmethod
    def train_step(self, batch: dict[str, torch.Tensor], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        """Run one optimisation step on ``batch``; return the named losses (detached scalars)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The recipe's own state as tensors (saved in every checkpoint); empty for most recipes."""
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (on resume)."""

    def previews(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """Captioned image columns of a preview grid, computed without gradients in eval mode;
        by default input | output | target of every direction."""
        columns: list[tuple[str, torch.Tensor]] = []
        for direction, gen in self.generators().items():
            source, target = ("A", "B") if direction == "AtoB" else ("B", "A")
            columns += [(f"real_{source}", batch[source]), (f"fake_{target}", gen(batch[source])),
                        (f"real_{target}", batch[target])]
        return columns

    @staticmethod
    def set_requires_grad(networks: "list[nn.Module]", flag: bool) -> None:
        """Freeze (or unfreeze) ``networks``: a GAN step holds its discriminators still while it
        updates the generators, so their gradients are neither computed nor accumulated."""
        for net in networks:
            for p in net.parameters():
                p.requires_grad_(flag)

    def use_engine(self, engine: StepEngine | None) -> None:
        """Route :meth:`backward` and :meth:`step` through ``engine`` (the trainer's
        :class:`imgtrans.training.step_engine.StepEngine`: precision, loss scaling, gradient
        averaging over processes); None: plain PyTorch."""
        self.engine = engine

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` (outside autocast; loss-scaled under fp16-mixed)."""
        if self.engine is None:
            loss.backward()
        else:
            self.engine.backward(loss)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply ``optimizer`` (after averaging its gradients over processes; via the fp16 scaler)."""
        if self.engine is None:
            optimizer.step()
        else:
            self.engine.step(optimizer)
