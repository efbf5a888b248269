"""Any-size, batched generator execution: normalisation statistics, precision, memory format, dropout.

Inputs are padded (reflect, falling back to replicate for tiny images) to a multiple of the
generator's stride, run, and cropped back, so a U-Net-256 accepts 17x9 or 1000x700 images.

Speed options (all off by default here, so :func:`run_generator` called with only
``stride``/``norm_stats`` is exactly the plain fp32 forward that ``imgtrans eval`` scores):

* ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"``.  Lower precisions run under
  ``torch.autocast``; the convolution weights are cast once (into a private copy of the network,
  see :func:`prepare_generator`) instead of on every forward; the output is cast back to float32.
* ``channels_last``: run the network on NHWC tensors (faster with oneDNN on CPU; see
  docs/translate.md for the figures).
* ``compile``: ``torch.compile`` the private copy; where compilation is unavailable, one warning
  line and the eager network are used instead.
* ``dropout_seeds``: keep the dropout layers active (as the pix2pix paper did at test time), with
  one random generator per image, so an image's result depends on its seed only, not on the
  batch it shares.  (Runs eagerly: ``compile`` is ignored with dropout.)
"""
from __future__ import annotations

import contextlib
import copy
import math
import weakref
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.interfaces import Generator
from ..util.errors import PixelLimitError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ----------------------------------------------------------------------------- defaults

@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bf16 convolutions natively (AVX-512 BF16 or AMX), i.e. faster than fp32.

    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` alone is also true on plain AVX-512 CPUs, where
    bf16 is emulated and slower than fp32, so the CPU's own flags decide (Linux ``/proc/cpuinfo``;
    elsewhere we do not guess and stay with fp32)."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except Exception:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def default_precision(device: str | torch.device = "cpu") -> str:
    """fp16 on CUDA, bf16 on CPUs with native bf16 (see :func:`cpu_has_fast_bf16`), fp32 otherwise: the
    precision the hardware runs fastest, which ``auto`` only uses after checking that the model's
    outputs survive it (:mod:`imgtrans.inference.precision_probe`)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return "fp16"
    if kind == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def resolve_precision(precision: str | None, device: str | torch.device = "cpu") -> str:
    """``None`` or ``"auto"`` -> :func:`default_precision` (the unverified candidate; translate and
    eval verify it per model with :class:`imgtrans.inference.precision_probe.AutoPrecision`); otherwise one of :data:`PRECISIONS`, from
    any spelling of :mod:`imgtrans.util.precision_names` (``bf16-mixed`` -> ``bf16``, ``32-true`` -> ``fp32``)."""
    from ..util.precision_names import inference_precision

    precision = "auto" if precision is None else inference_precision(precision)
    return default_precision(device) if precision == "auto" else precision


def default_channels_last(precision: str, device: str | torch.device = "cpu") -> bool:
    """Channels-last where it was measured to help: on CPU (oneDNN) U-Net-256 translates about 34%
    faster in bf16 and 22% faster in fp32 at batch 8, end to end (docs/translate.md); on CUDA for
    fp16/bf16 (tensor cores)."""
    kind = torch.device(device).type
    if kind == "cpu":
        return True
    return kind == "cuda" and precision != "fp32"


# ----------------------------------------------------------------------------- normalisation and dropout

@contextlib.contextmanager
def instance_statistics(net: nn.Module) -> Iterator[None]:
    """Make every BatchNorm use the statistics of each image, as the reference does at test time
    (it leaves networks in train mode).  Per image, not per batch, so batching changes nothing;
    running statistics are left untouched."""
    with _patched(net, nn.modules.batchnorm._BatchNorm, _instance_forward):
        yield


def _instance_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, None, None, self.weight, self.bias, use_input_stats=True, eps=self.eps)


@contextlib.contextmanager
def per_image_dropout(net: nn.Module, seeds: Sequence[int]) -> Iterator[None]:
    """Keep every ``nn.Dropout`` active, drawing each image's masks from its own generator seeded
    with ``seeds[i]``: an image's masks depend on its seed only, not on its batch or the precision."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def forward(self: nn.modules.dropout._DropoutNd, x: torch.Tensor) -> torch.Tensor:
        if len(generators) != x.shape[0]:
            raise ValueError(f"{len(generators)} dropout seeds for a batch of {x.shape[0]}")
        keep = 1.0 - self.p
        masks = torch.stack([torch.empty(x.shape[1:]).bernoulli_(keep, generator=g) for g in generators])
        return x * masks.to(device=x.device, dtype=x.dtype).div_(keep)

    with _patched(net, nn.modules.dropout._DropoutNd, forward):
        yield


@contextlib.contextmanager
def _patched(net: nn.Module, kind: type, forward) -> Iterator[None]:
    patched = []
    for m in net.modules():
        if isinstance(m, kind):
            m.forward = forward.__get__(m)  # type: ignore[method-assign]
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


# ----------------------------------------------------------------------------- preparing the network

# generator -> {(precision, channels_last, compile, norm_stats): (fingerprint, prepared network)}
_prepared: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[tuple, nn.Module]]] = weakref.WeakKeyDictionary()


def _fingerprint(net: nn.Module) -> tuple:
    """Changes whenever a weight or buffer of ``net`` is replaced or modified in place, or its mode changes."""
    return (net.training, *((t.data_ptr(), t._version) for t in (*net.parameters(), *net.buffers())))


def prepare_generator(generator: nn.Module, *, precision: str = "fp32", channels_last: bool = False,
                      compile: bool = False, norm_stats: str = "running") -> nn.Module:
    """The network to run: ``generator`` itself for plain fp32, else a private copy with the
    convolution weights in ``precision`` and/or in channels-last layout and/or compiled.

    The copy is made once and reused while ``generator``'s weights are unchanged; the caller's
    network is never modified.  (A compiled copy has the ``instance`` statistics built in, so
    ``norm_stats`` is part of its identity.)"""
    if precision == "fp32" and not channels_last and not compile:
        return generator
    key = (precision, channels_last, compile, norm_stats if compile else None)
    cache = _prepared.setdefault(generator, {})
    fingerprint = _fingerprint(generator)
    hit = cache.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    net = copy.deepcopy(generator)
    for p in net.parameters():
        p.requires_grad_(False)
    if precision != "fp32":  # what autocast would cast on every call, cast once
        for m in net.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                m.to(DTYPES[precision])
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if compile:
        net = _compiled(net, norm_stats)
    cache[key] = (fingerprint, net)
    return net


class _Compiled(nn.Module):
    """``torch.compile`` of a network, falling back to the network itself (with one warning line)
    where compilation is unavailable or fails."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.compiled = None
        try:
            self.compiled = torch.compile(net, dynamic=False)
        except Exception as exc:  # e.g. no compile support on this Python / platform
            self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        from ..util.terminal import warn_stderr

        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        warn_stderr(f"--compile is unavailable here ({type(exc).__name__}: {reason}); running without it")
        self.compiled = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as exc:
                self._fall_back(exc)
        return self.net(x)


def _compiled(net: nn.Module, norm_stats: str) -> nn.Module:
    if norm_stats == "instance":  # built in for good: the copy is private
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.forward = _instance_forward.__get__(m)  # type: ignore[method-assign]
    return _Compiled(net)


# ----------------------------------------------------------------------------- running

#: padding to the stride may multiply an image's work by at most this much (beyond the floor below):
#: a 1 x 400000 PNG of 1.2 kB padded to 256 x 400128 took 93 s in serve, a square of its size 0.6 s
MAX_PADDING_FACTOR = 16
#: padded pixels any image may take, whatever its own size (a 10 x 10 image pads to a whole stride)
PADDING_FLOOR = 1 << 20


def check_padded_work(height: int, width: int, stride: int) -> None:
    """Refuse (:class:`PixelLimitError`: one line, 413 in serve) an image whose padding to the
    network's stride would multiply its work more than :data:`MAX_PADDING_FACTOR`-fold: the cost of
    a forward pass is its padded size, not its pixel count, so extreme aspect ratios are bounded by
    what they would compute."""
    padded = math.ceil(height / stride) * stride * math.ceil(width / stride) * stride
    if padded > max(MAX_PADDING_FACTOR * height * width, PADDING_FLOOR):
        raise PixelLimitError(f"a {width}x{height} image pads to {math.ceil(width / stride) * stride}x"
                              f"{math.ceil(height / stride) * stride} for this network (stride {stride}): "
                              f"{padded / (height * width):.0f} times its pixels of work; crop it to a less "
                              "extreme shape")


def pad_to_multiple(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``(N, C, H, W)`` symmetrically to multiples of ``stride``; returns the padding (l, r, t, b)."""
    h, w = x.shape[-2:]
    ph, pw = math.ceil(h / stride) * stride - h, math.ceil(w / stride) * stride - w
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    remaining = list(pads)
    while any(remaining):
        h, w = x.shape[-2:]
        step = [min(remaining[0], w - 1), min(remaining[1], w - 1), min(remaining[2], h - 1), min(remaining[3], h - 1)]
        if not any(step):  # a 1-pixel side cannot be reflected
            x = F.pad(x, tuple(remaining), mode="replicate")
            break
        x = F.pad(x, tuple(step), mode="reflect")
        remaining = [r - s for r, s in zip(remaining, step)]
    return x, pads


@torch.inference_mode()
def run_generator(generator: nn.Module, images: torch.Tensor, *, stride: int = 1, norm_stats: str = "running",
                  precision: str = "fp32", channels_last: bool = False, compile: bool = False,
                  dropout_seeds: Sequence[int] | None = None) -> torch.Tensor:
    """Translate a batch of same-size images of any size; the float32 output has the input's height
    and width.  With the defaults this is the plain fp32 forward of ``generator`` as it is."""
    if norm_stats not in ("running", "instance"):
        raise ValueError(f"norm_stats must be 'running' or 'instance', not {norm_stats!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if isinstance(generator, Generator):  # an exported graph fixes some options
        generator.check_options(norm_stats=norm_stats, precision=precision, compile=compile,
                                dropout=dropout_seeds is not None)
    compile = compile and dropout_seeds is None  # per-image dropout patches the network: eager only
    net = prepare_generator(generator, precision=precision, channels_last=channels_last, compile=compile,
                            norm_stats=norm_stats)
    h, w = images.shape[-2:]
    padded, (left, _, top, _) = pad_to_multiple(images.float(), stride)
    padded = padded.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    with contextlib.ExitStack() as stack:
        if norm_stats == "instance" and not compile:
            stack.enter_context(instance_statistics(net))
        if dropout_seeds is not None:
            stack.enter_context(per_image_dropout(net, dropout_seeds))
        if precision != "fp32":
            stack.enter_context(torch.autocast(padded.device.type, dtype=DTYPES[precision]))
        out = net(padded)
    return out[..., top:top + h, left:left + w].float()
