"""Conformance checks of networks and losses: they build, have the declared attributes, map the
shapes the core relies on, and pass gradients to every trainable parameter."""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..core.interfaces import LOSS_ROLES, Discriminator, Generator, Loss, declared_role
from ..inference.engine import pad_to_multiple
from .subject import Subject, check_defaults, component_subject, positive_int

if TYPE_CHECKING:  # pragma: no cover
    from ..core.registry import Registry

#: the smallest side a generator is run at (rounded up to a multiple of its stride)
MIN_SIDE = 32
#: side of the images a discriminator is run at, unless the check is told otherwise
DISCRIMINATOR_SIDE = 64
ROLES = tuple(LOSS_ROLES)
#: odd image sizes (height, width) every generator is run at, padded to its stride as inference pads
ODD_SIZES = ((93, 67), (130, 70))


def check_generator(registry: "Registry", name: str, *, size: int | None = None,
                    parameters: int | None = None) -> dict[str, Any]:
    """Check generator ``name`` against the rules of docs/plugins.md ("Conformance rules").

    ``size`` is the side of the test input (default: the smallest multiple of its stride that is
    at least 32); ``parameters``, when given, is the parameter count it must have at its defaults.
    Returns what was measured (``size``, ``output_shape``, ``parameters``).
    """
    subject, component = component_subject(registry, "generator", name)
    check_defaults(subject, component)
    with subject.rule("builds"):
        gen = registry.create("generator", name, **_conformance_args(component))
    _check_type(subject, gen, Generator)
    for attr in ("in_channels", "out_channels", "stride"):
        if not positive_int(getattr(gen, attr, None)):
            subject.fail("attributes", f"{attr} must be a positive int, got {getattr(gen, attr, None)!r}")
    side = size or gen.stride * math.ceil(MIN_SIDE / gen.stride)
    if side % gen.stride:
        subject.fail("forward", f"the test size {side} is not a multiple of its stride {gen.stride}")
    x = _uniform((1, gen.in_channels, side, side))
    gen.eval()
    with subject.rule("forward"), torch.no_grad():
        y = gen(x)
    want = (1, gen.out_channels, side, side)
    if not torch.is_tensor(y) or tuple(y.shape) != want:
        subject.fail("forward", f"maps {tuple(x.shape)} to {_shape(y)}, expected {want}")
    if not torch.isfinite(y).all():
        subject.fail("range", "its output holds NaN or infinite values")
    if y.min() < -1 or y.max() > 1:
        subject.fail("range", f"its output spans [{float(y.min()):.4g}, {float(y.max()):.4g}], "
                              "outside the data's [-1, 1] (end with tanh, or clamp)")
    _check_sizes(subject, gen)
    gen.train()
    _check_gradients(subject, gen, lambda: gen(x))
    _check_layout(subject, gen, x)
    layers = _check_encode(subject, gen, x)
    count = _check_parameters(subject, gen, parameters)
    return {"size": side, "output_shape": tuple(y.shape), "parameters": count, "encoder_layers": layers}


def _check_sizes(subject: Subject, gen: Generator) -> None:
    """At odd sizes, padded to the declared stride as inference pads them, the output must have the
    padded input's size, so cropping gives the input's size back: a generator that needs larger
    multiples than the stride it declares would otherwise write smaller images than it was given."""
    for height, width in ODD_SIZES:
        x = _uniform((1, gen.in_channels, height, width), seed=4)
        padded, (left, _, top, _) = pad_to_multiple(x, gen.stride)
        with subject.rule("sizes"), torch.no_grad():
            y = gen(padded)
        want = (1, gen.out_channels, *padded.shape[-2:])
        if not torch.is_tensor(y) or tuple(y.shape) != want:
            subject.fail("sizes", f"a {height}x{width} image padded to its stride {gen.stride} "
                                  f"({padded.shape[-2]}x{padded.shape[-1]}) comes out {_shape(y)}, not {want}: "
                                  "declare stride = the multiple its input sides must be (2 ** its down-samplings)")


def _check_encode(subject: Subject, gen: Generator, x: torch.Tensor) -> list[int]:
    """A generator declaring ``encoder_layers`` returns one feature map per layer from ``encode``,
    with the batch kept, the widths ``encoder_channels`` reports, and gradients reaching it."""
    layers = getattr(gen, "encoder_layers", ())
    if not layers:
        return []
    if not (isinstance(layers, (tuple, list)) and all(isinstance(i, int) and not isinstance(i, bool) for i in layers)):
        subject.fail("encode", f"encoder_layers must be a tuple of ints, got {layers!r}")
    with subject.rule("encode"):
        channels = gen.encoder_channels(layers)
    batch = torch.cat([x, x.flip(-1)])
    gen.zero_grad(set_to_none=True)
    with subject.rule("encode"):
        feats = gen.encode(batch, layers)
    if not isinstance(feats, (list, tuple)) or len(feats) != len(layers):
        got = f"{len(feats)} feature maps" if isinstance(feats, (list, tuple)) else _shape(feats)
        subject.fail("encode", f"encode(x, {list(layers)}) returns {got}, expected a list of {len(layers)} feature maps")
    for layer, feat, width in zip(layers, feats, channels):
        if not torch.is_tensor(feat) or feat.ndim != 4 or feat.shape[0] != 2 or feat.shape[1] != width:
            subject.fail("encode", f"layer {layer}: encode gives {_shape(feat)}, expected (2, {width}, H, W) "
                                   "(the batch of 2, and the width encoder_channels reports)")
        if not torch.isfinite(feat).all():
            subject.fail("encode", f"layer {layer}: its features hold NaN or infinite values")
    with subject.rule("encode"):
        sum(f.float().mean() for f in feats).backward()
    if not any(p.grad is not None for p in gen.parameters() if p.requires_grad):
        subject.fail("encode", "no gradient reaches its parameters from encode(): it must compute the features "
                               "with the network's own layers, not under no_grad or on detached tensors")
    gen.zero_grad(set_to_none=True)
    return list(layers)


def check_discriminator(registry: "Registry", name: str, *, size: int = DISCRIMINATOR_SIDE,
                        parameters: int | None = None) -> dict[str, Any]:
    """Check discriminator ``name``: a batch of 2 images of ``in_channels`` gives finite logits with
    the batch as first dimension, in train mode, with gradients reaching every parameter.
    Returns ``output_shape`` and ``parameters``."""
    subject, component = component_subject(registry, "discriminator", name)
    check_defaults(subject, component)
    with subject.rule("builds"):
        disc = registry.create("discriminator", name, **_conformance_args(component))
    _check_type(subject, disc, Discriminator)
    if not positive_int(getattr(disc, "in_channels", None)):
        subject.fail("attributes", f"in_channels must be a positive int, got {getattr(disc, 'in_channels', None)!r}")
    x = torch.randn((2, disc.in_channels, size, size), generator=torch.Generator().manual_seed(0))
    disc.train()
    with subject.rule("forward"):
        out = disc(x)
    if not torch.is_tensor(out) or out.ndim < 1 or out.shape[0] != 2 or not out.is_floating_point():
        subject.fail("forward", f"maps {tuple(x.shape)} to {_shape(out)}: expected float logits whose first "
                                "dimension is the batch (2)")
    if not torch.isfinite(out).all():
        subject.fail("forward", "its logits hold NaN or infinite values")
    _check_gradients(subject, disc, lambda: disc(x))
    _check_layout(subject, disc, x)
    count = _check_parameters(subject, disc, parameters)
    return {"output_shape": tuple(out.shape), "parameters": count}


def check_loss(registry: "Registry", name: str) -> dict[str, Any]:
    """Check loss ``name`` according to its ``role``: a pixel loss is a finite scalar, zero on
    identical images and positive on different ones, with a gradient for the prediction; an
    adversarial loss is a finite scalar for both targets, with a gradient for the logits, and
    scores confident real logits lower as real than as fake.  Returns ``role``."""
    subject, component = component_subject(registry, "loss", name)
    check_defaults(subject, component)
    with subject.rule("builds"):
        loss = registry.create("loss", name, **_conformance_args(component))
    _check_type(subject, loss, Loss)
    role = getattr(loss, "role", None)
    if role not in ROLES:
        subject.fail("attributes", f"role must be one of {', '.join(ROLES)}, got {role!r}")
    # a loss written for another role fails deep in torch: say how it was called and why
    hint = (f"; as a {role!r} loss it is called {LOSS_ROLES[role]}" + (" (the default role: it declares none)"
            if declared_role(loss) is None else "") + "; if it takes other arguments, declare the role that matches")
    if role == "pixel":
        prediction, target = _uniform((2, 3, 32, 32), seed=1), _uniform((2, 3, 32, 32), seed=2)
        prediction.requires_grad_(True)
        value = _scalar(subject, "forward", lambda: loss(prediction, target), hint)
        with subject.rule("zero-on-identical"):
            same = loss(target, target.clone())
        if not torch.is_tensor(same) or float(same) != 0.0:
            subject.fail("zero-on-identical", f"loss(x, x) is {_value(same)}, not 0")
        if not float(value.detach()) > 0:
            subject.fail("positive-on-different", f"loss of two different images is {float(value)}, not > 0")
        _check_input_gradient(subject, value, prediction, "prediction")
    elif role == "feature":
        _check_feature_loss(subject, loss, hint)
    else:
        logits = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(0), requires_grad=True)
        for real in (True, False):
            value = _scalar(subject, "forward", lambda: loss(logits, real), hint)
            _check_input_gradient(subject, value, logits, "logits")
            logits.grad = None
        confident = torch.full((1, 1, 4, 4), 5.0)
        with subject.rule("real-below-fake"):
            as_real, as_fake = float(loss(confident, True)), float(loss(confident, False))
        if not as_real < as_fake:
            subject.fail("real-below-fake", f"confident real logits (5.0) cost {as_real:.4g} as real and "
                                            f"{as_fake:.4g} as fake: the targets look swapped")
    return {"role": role}


def _check_feature_loss(subject: Subject, loss: Loss, hint: str) -> None:
    """A feature loss on ``(N, P, C)`` patch features: a finite scalar with a gradient for the query,
    and lower when each query row equals its own key row than for unrelated queries."""
    gen = torch.Generator().manual_seed(5)
    key = torch.nn.functional.normalize(torch.randn((2, 16, 8), generator=gen), dim=-1)
    unrelated = torch.nn.functional.normalize(torch.randn((2, 16, 8), generator=gen), dim=-1).requires_grad_(True)
    value = _scalar(subject, "forward", lambda: loss(unrelated, key), hint)
    _check_input_gradient(subject, value, unrelated, "query")
    with subject.rule("matched-below-unrelated"):
        matched = loss(key.clone(), key)
    if not float(matched) < float(value.detach()):
        subject.fail("matched-below-unrelated", f"queries equal to their keys cost {float(matched):.4g}, unrelated "
                                                f"ones {float(value.detach()):.4g}: the loss must fall as each query row "
                                                "approaches its own key row")


# helpers ------------------------------------------------------------------------------------------
def _conformance_args(component: Any) -> dict[str, Any]:
    """What a component declares to be checked with instead of its defaults (downloads it cannot make)."""
    return dict(getattr(component.factory, "conformance_args", None) or {})


def _uniform(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Images in [-1, 1], the value range networks see."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if torch.is_tensor(value) else f"a {type(value).__name__}"


def _value(value: Any) -> str:
    return f"{float(value):.4g}" if torch.is_tensor(value) and value.numel() == 1 else _shape(value)


def _check_type(subject: Subject, obj: Any, base: type) -> None:
    if not isinstance(obj, base):
        subject.fail("interface", f"it builds a {type(obj).__name__}, which does not subclass "
                                  f"imgtrans.core.interfaces.{base.__name__}")


def _scalar(subject: Subject, rule: str, compute: Any, hint: str = "") -> torch.Tensor:
    try:
        value = compute()
    except Exception as exc:  # noqa: BLE001 - whatever the plugin raised, it broke this rule
        detail = " ".join(str(exc).split())
        subject.fail(rule, f"{type(exc).__name__}" + (f": {detail}" if detail else "") + hint)
    if not torch.is_tensor(value) or value.ndim != 0:
        subject.fail(rule, f"returns {_shape(value)}, expected a scalar tensor")
    if not torch.isfinite(value):
        subject.fail(rule, f"returns {float(value)}, expected a finite value")
    return value


def _check_input_gradient(subject: Subject, value: torch.Tensor, tensor: torch.Tensor, what: str) -> None:
    with subject.rule("gradients"):
        value.backward()
    if tensor.grad is None or not torch.isfinite(tensor.grad).all():
        subject.fail("gradients", f"no finite gradient reaches the {what}")


def _check_gradients(subject: Subject, module: nn.Module, forward: Any) -> None:
    """Back-propagate a random weighting of the output: every trainable parameter gets a finite gradient."""
    module.zero_grad(set_to_none=True)
    with subject.rule("gradients"):
        out = forward()
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
        (out * weights).sum().backward()
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    if missing:
        subject.fail("gradients", f"{len(missing)} of {len(trainable)} trainable parameters get no gradient "
                                  f"(first: {', '.join(missing[:3])}); unused layers, or a detach() in forward?")
    broken = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    if broken:
        subject.fail("gradients", f"non-finite gradients in {', '.join(broken[:3])}")
    module.zero_grad(set_to_none=True)


def _check_layout(subject: Subject, net: Generator | Discriminator, x: torch.Tensor) -> None:
    """The trainer may put a network in channels-last (NHWC) memory (``run.channels_last``, and on
    the CPU what ``channels_last_on_cpu`` declares), so in train mode it must compute the same
    there as in NCHW, up to summation order: a layer that reads ``.view`` strides or assumes NCHW
    would train a different model only where the layout changes.  Dropout is off for the
    comparison (its masks follow memory order)."""
    declared = net.channels_last_on_cpu
    if declared is not None and not isinstance(declared, bool):
        subject.fail("attributes", f"channels_last_on_cpu must be True, False or None, got {declared!r}")
    twin = copy.deepcopy(net).to(memory_format=torch.channels_last)
    outputs = []
    for module, inputs in ((net, x), (twin, x.contiguous(memory_format=torch.channels_last))):
        module.train()
        for m in module.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        with subject.rule("layout"), torch.no_grad():
            outputs.append(module(inputs).float())
    net.train()
    scale = max(1.0, float(outputs[0].abs().max()))
    diff = float((outputs[0] - outputs[1]).abs().max())
    if not diff <= 1e-4 * scale:
        subject.fail("layout", f"in train mode it computes other values in channels-last memory than in NCHW "
                               f"(max difference {diff:.3g}); the trainer may train it in either layout")


def _check_parameters(subject: Subject, module: nn.Module, expected: int | None) -> int:
    count = sum(p.numel() for p in module.parameters())
    if expected is not None and count != expected:
        subject.fail("parameters", f"it has {count:,} parameters at its defaults, expected {expected:,}")
    return count
