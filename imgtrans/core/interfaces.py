"""What a generator, discriminator, loss, dataset, recipe, metric and pair maker are.

These are small base classes rather than Protocols so that plugins get sensible defaults and
the core can rely on a few attributes (channels, stride) when it pads, checkpoints or tests.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from ..util.errors import ConfigError
from .directions import DIRECTIONS, primary_direction  # noqa: F401 - DIRECTIONS is part of this module's API

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class Generator(nn.Module):
    """Maps an image batch ``(N, in_channels, H, W)`` in [-1, 1] to ``(N, out_channels, H, W)``.

    ``stride`` is the multiple that ``H`` and ``W`` must be for the network to accept them
    (256 for U-Net-256); inference pads to it and crops back, so users can feed any size.
    """

    in_channels: int
    out_channels: int
    stride: int = 1
    #: optional constraints on constructor arguments, checked with their annotations when a config
    #: is resolved, e.g. ``{"ngf": {"min": 1}, "norm": {"choices": ("batch", "instance")}}``
    #: (keys: min, gt, max, lt, choices; see :mod:`imgtrans.util.typecheck`)
    arg_constraints: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: the constructor arguments the reference implementation's public weights were trained with
    #: (``{"norm": "batch", "dropout": True}`` for pix2pix's U-Nets): what ``imgtrans zoo import``
    #: builds before loading such weights, and what lets it recognise an architecture from its keys
    reference_args: ClassVar[Mapping[str, Any]] = {}
    #: arguments that replace the recorded ones when the network is rebuilt to receive saved weights
    #: (translate, checkpoint checks): ``{"pretrained": False}`` for a generator that fetches initial
    #: weights, so that loading a trained model never downloads weights it would overwrite
    rebuild_args: ClassVar[Mapping[str, Any]] = {}
    #: arguments the conformance kit builds it with instead of its defaults, for defaults that need
    #: something a test machine lacks (downloaded weights); empty: the defaults are checked
    conformance_args: ClassVar[Mapping[str, Any]] = {}
    #: the only precision it runs in, whatever ``auto`` would choose (an exported graph: ``"fp32"``);
    #: ``None``: any, decided by :class:`~imgtrans.inference.precision_probe.AutoPrecision`
    fixed_precision: ClassVar[str | None] = None

    #: the encoder layers :meth:`encode` returns when none are named, for feature losses (CUT's
    #: PatchNCE); empty: the generator exposes no encoder features.  Usually set in ``__init__``,
    #: since the layer list depends on the architecture's arguments.
    encoder_layers: tuple[int, ...] = ()

    def check_options(self, *, norm_stats: str, precision: str, compile: bool, dropout: bool) -> None:
        """Raise :class:`~imgtrans.util.errors.ConfigError` for run options it cannot honour; a network
        built from its weights honours them all (an exported graph fixes some)."""

    def encode(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Encoder features of ``x``: one ``(N, C_i, H_i, W_i)`` tensor per index of ``layers`` (default
        :attr:`encoder_layers`), in that order, computed as :meth:`forward` computes them (same weights,
        same graph, so gradients reach the encoder) and stopping after the deepest one.

        What an index means is the generator's own, documented choice (the ResNet generators: the
        output of ``model[i]``, as CUT's reference counts; the U-Nets: the output of down level
        ``i``).  A generator that exposes features overrides this and sets :attr:`encoder_layers`."""
        raise ConfigError(f"generator {type(self).__name__} exposes no encoder features (it does not implement "
                          "Generator.encode); a recipe that needs them wants a generator that does, such as "
                          "resnet_9blocks or unet_256")

    def encoder_channels(self, layers: Sequence[int] | None = None) -> list[int]:
        """The channel count of each feature :meth:`encode` returns for ``layers``: what a network fed
        by them (CUT's patch sampler) is built from.  By default measured once on a blank image of
        the smallest size the generator accepts, without gradients and in eval mode (so no batch
        statistics move and no dropout draws); a generator may override it with declared widths."""
        side = self.stride * max(1, -(-32 // self.stride))
        modes = [(m, m.training) for m in self.modules()]
        param = next(self.parameters(), None)
        x = torch.zeros(1, self.in_channels, side, side, device=param.device if param is not None else "cpu",
                        dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32)
        self.eval()
        try:
            with torch.no_grad():
                return [int(f.shape[1]) for f in self.encode(x, layers)]
        finally:
            for module, training in modes:
                module.training = training

    def encode_sequential(self, model: nn.Sequential, x: torch.Tensor,
                          layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """:meth:`encode` for a generator that is one ``nn.Sequential``: layer ``i`` is the output of
        ``model[i]`` (as CUT's reference counts), computed up to the deepest layer asked for.  A
        feature that the next layer would overwrite in place (``ReLU(inplace=True)``) is copied first."""
        chosen = self.chosen_layers(layers, len(model))
        wanted, last, found = set(chosen), max(chosen), {}
        for i, layer in enumerate(model):
            x = layer(x)
            if i in wanted:
                following = model[i + 1] if i + 1 < len(model) else None
                found[i] = x.clone() if getattr(following, "inplace", False) else x
            if i == last:
                break
        return [found[i] for i in chosen]

    def chosen_layers(self, layers: Sequence[int] | None, count: int) -> list[int]:
        """``layers`` (default :attr:`encoder_layers`) checked against ``count`` available layers
        (indices ``0 .. count - 1``): a helper for :meth:`encode` implementations."""
        chosen = list(self.encoder_layers if layers is None else layers)
        if not chosen:
            raise ConfigError(f"generator {type(self).__name__}: no encoder layers asked for "
                              "(name some, or declare encoder_layers)")
        bad = [i for i in chosen if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count]
        if bad:
            raise ConfigError(f"generator {type(self).__name__} has encoder layers 0..{count - 1}, "
                              f"not {bad[0]!r} (its default: {list(self.encoder_layers)})")
        return chosen


class Discriminator(nn.Module):
    """Scores an image batch with logits (no sigmoid: the adversarial loss owns that).

    A conditional discriminator receives the condition and the image concatenated on channels;
    ``in_channels`` is the total it expects.
    """

    in_channels: int
    #: optional constraints on constructor arguments (as :attr:`Generator.arg_constraints`)
    arg_constraints: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: arguments the conformance kit builds it with instead of its defaults (as :attr:`Generator.conformance_args`)
    conformance_args: ClassVar[Mapping[str, Any]] = {}


#: how a recipe calls a loss of each role (:attr:`Loss.role`)
LOSS_ROLES: dict[str, str] = {
    "pixel": "loss(prediction, target) on images",
    "adversarial": "loss(logits, target_is_real: bool) on a discriminator's logits",
    "feature": "loss(query, key) on (N, P, C) patch features, row p of query matching row p of key",
}


class Loss(nn.Module):
    """A loss term.  ``role`` tells a recipe how to call it (:data:`LOSS_ROLES`):

    * ``"pixel"``: ``loss(prediction, target) -> scalar`` on images;
    * ``"adversarial"``: ``loss(logits, target_is_real: bool) -> scalar``;
    * ``"feature"``: ``loss(query, key) -> scalar`` on features ``(N, P, C)``: ``P`` feature vectors
      of each of ``N`` images, where row ``p`` of ``query`` (from the output) should match row ``p``
      of ``key`` (from the input): a contrastive loss such as CUT's PatchNCE, or feature matching.

    A recipe's :class:`Slot` names the role it needs; a loss of another role is refused when the
    config is resolved.  A loss that declares no role counts as ``"pixel"`` (the default here, kept
    for plugins written before roles were checked); :func:`declared_role` tells the two apart, so
    messages can say so.
    """

    role: ClassVar[str] = "pixel"
    #: optional constraints on constructor arguments (as :attr:`Generator.arg_constraints`)
    arg_constraints: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: arguments the conformance kit builds it with instead of its defaults (as
    #: :attr:`Generator.conformance_args`): a perceptual loss whose default backbone needs downloaded weights
    conformance_args: ClassVar[Mapping[str, Any]] = {}


def declared_role(cls: Any) -> str | None:
    """The ``role`` a loss class (or instance) declares itself, or None when it only inherits
    :class:`Loss`'s default."""
    cls = cls if isinstance(cls, type) else type(cls)
    for klass in cls.__mro__:
        if klass is Loss:
            return None
        if "role" in vars(klass):
            return vars(klass)["role"]
    return getattr(cls, "role", None)


class _EpochAware:
    """What the trainer may tell any dataset at the start of each epoch."""

    #: True when items depend on the epoch (unpaired B draws): loader workers are then not kept
    #: across epochs, so each sees the new draws
    draws_per_epoch: ClassVar[bool] = False

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (1, 2, ...); datasets whose items do not depend on it ignore it."""

    def set_seed(self, seed: int) -> None:
        """Called once with the run's seed; datasets that draw at random derive their draws from it,
        so a run is reproducible and resumable.  Others ignore it."""


class DatasetFormat:
    """What ``--format auto`` reads from a dataset format class (:func:`imgtrans.data.detect.detect_format`).

    ``detect(root)`` says whether a folder looks like this format.  When several formats recognise
    a folder, the highest ``specificity`` wins; a tie at the top stops with an error listing them,
    and the user chooses with ``--format``.  Bundled: ``paired_folders`` and ``unpaired`` 30
    (named subfolders), ``aligned`` 20 (images twice as wide as high), ``single`` 0 (any images).
    A format that recognises a special case of another's layout declares a higher specificity.
    """

    specificity: ClassVar[int] = 0

    @staticmethod
    def detect(root: Path) -> bool:
        """Whether ``root`` looks like this format (default: never detected, only chosen by name)."""
        return False


class PairedDataset(_EpochAware, Dataset, DatasetFormat, abc.ABC):
    """Aligned pairs.  Items are dicts ``{"A": tensor, "B": tensor, "path": str}`` in [-1, 1],
    already in the training direction (``A`` is always the network input).  Recipes with
    ``paired = True`` train only on formats that subclass this."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...


class UnpairedDataset(_EpochAware, Dataset, DatasetFormat, abc.ABC):
    """Two unaligned image sets.  Items are ``{"A", "B", "path_A", "path_B"}``; ``B`` is drawn
    independently of ``A`` (at random, or by index after :meth:`pair_by_index`), so the length is
    the larger of the two sets."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def pair_by_index(self) -> None:
        """Pair item ``i``'s ``A`` with the ``i``-th ``B`` instead of a random one: what validation and
        evaluation ask for before checking :meth:`aligned`."""

    def aligned(self) -> bool:
        """True when item ``i``'s ``B`` is the ground truth of its ``A`` (test sets laid out that way,
        such as basemap_unpaired's test band), so the split can be scored with paired metrics."""
        return False


class PairMaker(abc.ABC):
    """Derives the input image A of a training pair from a photo, which is its target B
    (``imgtrans data make TASK PHOTOS OUT``): edges, a greyscale copy, a degraded copy.

    Constructor keyword arguments are the task's parameters (``--set TASK.ARG=VALUE``); each needs a
    JSON-serialisable default, and values are checked against the annotations and
    ``arg_constraints`` (as a generator's) before the maker is built.  ``__call__`` receives an
    ``H x W x 3`` uint8 RGB photo and a numpy ``Generator`` seeded from the run's seed and the
    photo's name, and returns A as ``H x W x 3`` uint8.  It must depend on nothing else (so a
    dataset is reproducible whatever the order or number of threads) and must not modify the photo.
    """

    #: optional constraints on constructor arguments (as :attr:`Generator.arg_constraints`)
    arg_constraints: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @abc.abstractmethod
    def __call__(self, photo: "np.ndarray", rng: "np.random.Generator") -> "np.ndarray": ...


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


class Metric:
    """A figure of merit for translated images, registered like any component (``registry.metric``).

    Two shapes, chosen by subclassing :class:`PairedMetric` or :class:`SetMetric`; the one scoring
    loop (:mod:`imgtrans.metrics.scoring`) serves ``imgtrans eval``, training validation and
    :func:`imgtrans.evaluate` alike.  Images reach a metric in [-1, 1], already quantised to the
    256 levels an 8-bit PNG holds, so a score describes the files a user gets.
    """

    #: ``"higher"`` or ``"lower"``: which way is better (best checkpoints, best/worst images)
    better: ClassVar[str] = "higher"
    #: the column heading in tables, units included (``"PSNR dB"``); default: the name
    label: ClassVar[str] = ""
    #: printed with the results: what exactly is computed, so figures can be compared with others'
    protocol: ClassVar[str] = ""


class PairedMetric(Metric, abc.ABC):
    """Scores each output against its own ground truth; the set's figure is the mean over images."""

    @abc.abstractmethod
    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` outputs and targets -> ``(N,)`` per-image scores."""


class SetMetric(Metric, abc.ABC):
    """Compares the distribution of the outputs with that of reference images (FID, KID): needs no
    pairing, so it scores unpaired test sets too.

    The loop calls :meth:`features` on every batch of outputs and of reference images, keeps the
    rows, and calls :meth:`compute` once at the end.  Metrics whose ``feature_key`` is equal share
    one extraction per image (FID and KID on the same Inception features).
    """

    #: metrics with the same non-empty key get the same features, computed once
    feature_key: str = ""
    #: fewest images per side for a meaningful figure; fewer is an error naming the count
    min_images: ClassVar[int] = 2

    def prepare(self) -> None:
        """Fetch and load what the metric needs (weights) now: training calls it at start-up, so a
        missing or wrong file stops a run before it trains rather than at its first validation."""

    @abc.abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images in [-1, 1] -> ``(N, D)`` float features."""

    @abc.abstractmethod
    def compute(self, generated: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        """The figure from all features of both sides: ``{name: value}`` with the metric's own figure
        first (reported under the name the metric is registered as, whatever its key here);
        further keys (``kid_std``) are reported alongside."""
