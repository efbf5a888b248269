"""Check a checkpoint's declared generator against its tensors before anything real is built.

Why: the metadata says which generator to build and with which arguments, and inference pads
images to the metadata's ``stride``.  A small file that *claims* ``num_downs=100000``,
``ngf=400`` or ``stride=65536`` would otherwise make imgtrans allocate gigabytes before noticing
that the weights do not fit.  So, before building:

1. the tensor names and shapes are read from the safetensors header (no tensor data is read);
2. ``stride`` and the channel counts must be integers within sane bounds;
3. the declared generator is built on the ``meta`` device (shapes only, no memory), and its
   construction is stopped as soon as it registers more tensors than the file could fill;
4. its state-dict keys and shapes must equal the file's, and its ``stride``/channels the metadata's.

Any failure is one :class:`~imgtrans.util.errors.CheckpointError` line naming the file and the value.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..util.errors import CheckpointError, ImgtransError

__all__ = ["build_on_meta", "check_generator_fits", "check_declared_sizes", "header_shapes", "MAX_STRIDE", "MAX_CHANNELS"]

MAX_STRIDE = 4096
"""Largest ``stride`` accepted (a U-Net with 12 levels); images are padded to multiples of it."""

MAX_CHANNELS = 1024
"""Largest ``in_channels``/``out_channels`` accepted."""

_LISTED = 4  # names shown per category in a mismatch message


def header_shapes(path: str | Path, prefix: str) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the tensors under ``prefix.`` in a safetensors file, keys without the prefix.

    Only the header is read, and safetensors has already checked that it describes exactly the
    bytes the file holds, so these shapes are backed by real data."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key[len(prefix) + 1:]: tuple(f.get_slice(key).get_shape())
                    for key in f.keys() if key.startswith(prefix + ".")}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({' '.join(str(exc).split())})") from None


def check_generator_fits(path: str | Path, metadata: dict[str, Any], prefix: str = "generator") -> None:
    """Raise :class:`CheckpointError` unless the generator ``metadata`` declares is exactly what
    the tensors under ``prefix.`` in ``path`` hold (see the module docstring); builds nothing real."""
    path = Path(path)
    if not isinstance(metadata, dict) or not isinstance(prefix, str):
        raise CheckpointError(f"{path}: the metadata describing network {prefix!r} is malformed")
    shapes = header_shapes(path, prefix)
    if not shapes:
        raise CheckpointError(f"{path} holds no {prefix!r} tensors")
    check_declared_sizes(path, metadata, required=False)
    spec = metadata.get("generator")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise CheckpointError(f"{path}: the metadata does not say which generator it holds")
    net, expected = build_on_meta(path, spec, len(shapes))
    _compare(path, spec, shapes, expected)
    for key in ("stride", "in_channels", "out_channels"):
        actual = getattr(net, key, None)
        if key in metadata and isinstance(actual, int) and metadata[key] != actual:
            raise CheckpointError(f"{path}: metadata {key}={metadata[key]} does not match generator "
                                  f"{_describe(spec)}, whose {key} is {actual}")


def check_declared_sizes(path: str | Path, metadata: dict[str, Any], *, required: bool = True) -> None:
    """Refuse (one line) a declared ``stride``, ``in_channels`` or ``out_channels`` that is not an
    integer within :data:`MAX_STRIDE` / :data:`MAX_CHANNELS`: every allocation sized by them (padding
    to the stride, buffers) comes after this check, whether the file is safetensors or exported."""
    for key, bound in (("stride", MAX_STRIDE), ("in_channels", MAX_CHANNELS), ("out_channels", MAX_CHANNELS)):
        if key not in metadata and not required:
            continue
        value = metadata.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= bound:
            raise CheckpointError(f"{path}: metadata {key}={value!r} is not an integer from 1 to {bound}")


def _describe(spec: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "name")
    return f"{spec['name']!r}" + (f" ({args})" if args else "")


class _TooManyTensors(BaseException):
    """Aborts a constructor; a BaseException so that no ``except Exception`` on the way (the
    registry attributes plugin errors that way) can mistake it for the plugin's own failure."""


@contextmanager
def _tensor_budget(budget: int) -> Iterator[None]:
    """Stop a module constructor (in this thread) once it registers more than ``budget`` tensors."""
    from torch.nn.modules import module as nn_module

    owner, count = threading.get_ident(), [0]

    def hook(module: torch.nn.Module, name: str, value: Any) -> None:
        if value is not None and threading.get_ident() == owner:
            count[0] += 1
            if count[0] > budget:
                raise _TooManyTensors
        return None

    handles = [nn_module.register_module_parameter_registration_hook(hook),
               nn_module.register_module_buffer_registration_hook(hook)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def rebuild_args(registry: Any, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with the generator's declared :attr:`~imgtrans.core.interfaces.Generator.rebuild_args`
    applied: saved weights are about to replace the initial ones, so none are fetched."""
    return {**args, **(getattr(registry.get("generator", name).factory, "rebuild_args", None) or {})}


def build_on_meta(path: str | Path, spec: dict[str, Any],
                  n_tensors: int) -> tuple[torch.nn.Module, dict[str, tuple[int, ...]]]:
    """The declared generator on the meta device (no memory; its construction stops as soon as it
    would hold far more tensors than ``n_tensors``), and its state dict's shapes."""
    from .plugin_host import get_host

    args = {k: v for k, v in spec.items() if k != "name"}
    # Buffers that are not saved (and tensors replaced while building) also register: leave room.
    budget = 2 * n_tensors + 64
    try:
        with _tensor_budget(budget), torch.device("meta"):
            registry = get_host().registry
            net = registry.create("generator", spec["name"], **rebuild_args(registry, spec["name"], args))
            return net, {key: tuple(value.shape) for key, value in net.state_dict().items()}
    except ImgtransError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except _TooManyTensors:
        raise CheckpointError(f"{path}: generator {_describe(spec)} would hold more than {budget} tensors, "
                              f"but the file holds {n_tensors}; the metadata does not describe these weights") from None
    except Exception as exc:  # a plugin's constructor refusing its arguments (or running out of stack)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(f"{path}: generator {_describe(spec)} cannot be built: {reason}") from None


def _compare(path: Path, spec: dict[str, Any], shapes: dict[str, tuple[int, ...]],
             expected: dict[str, tuple[int, ...]]) -> None:
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    mismatched = [f"{k} {list(shapes[k])} vs {list(expected[k])}" for k in expected
                  if k in shapes and shapes[k] != expected[k]]
    if not (missing or unexpected or mismatched):
        return
    parts = [f"{len(items)} {label}: {', '.join(items[:_LISTED])}{', ...' if len(items) > _LISTED else ''}"
             for label, items in (("missing", missing), ("unexpected", unexpected),
                                  ("shape mismatch (file vs generator)", mismatched)) if items]
    raise CheckpointError(f"{path}: the tensors do not fit generator {_describe(spec)} its metadata declares "
                          f"({'; '.join(parts)}); the file is corrupt or its metadata is wrong")
