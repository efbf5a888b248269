"""What a generator, a discriminator and a loss are: small base classes rather than Protocols, so
that plugins get sensible defaults and the core can rely on the few attributes (channels, stride,
encoder features, a loss's role) it uses when it pads, checkpoints, trains or tests.
Part of the interfaces (:mod:`imgtrans.core.interfaces` and :mod:`imgtrans.api` re-export it)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ..util.errors import ConfigError


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

    #: whether it trains faster in channels-last (NHWC) memory than in NCHW on the CPU, for the
    #: trainer's ``run.channels_last = "auto"``; ``None``: the trainer's own rule (channels-last
    #: unless it has transposed convolutions).  May be set per instance in ``__init__``.
    channels_last_on_cpu: bool | None = None

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
    #: as :attr:`Generator.channels_last_on_cpu`
    channels_last_on_cpu: bool | None = None


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
