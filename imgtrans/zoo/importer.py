"""Import the reference implementation's ``.pth`` generator weights into a self-describing checkpoint.

The public pix2pix and CycleGAN weights are ``torch.save(net.state_dict())`` files.  They are read
with ``torch.load(..., weights_only=True)`` only, so a file holding anything but tensors and plain
containers is refused and no arbitrary Python object is ever unpickled.  Our generators reproduce
the reference's module nesting, so keys are matched by *name* (never by shape); the only tolerated
differences are the known variants of old checkpoints (see :func:`adapt_state_dict`).

This is core code: networks are built through the registry, never by importing a plugin.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import save_checkpoint
from ..errors import CheckpointError

#: keys under which training scripts commonly wrap a state dict
WRAPPER_KEYS = ("state_dict", "model", "netG")

#: the reference's arguments for the generators its public weights were trained with
REFERENCE_ARGS: dict[str, dict[str, Any]] = {
    "unet_256": {"norm": "batch", "dropout": True},
    "unet_128": {"norm": "batch", "dropout": True},
    "resnet_9blocks": {"norm": "instance", "dropout": False},
    "resnet_6blocks": {"norm": "instance", "dropout": False},
}

_STALE_INSTANCE_NORM = ("running_mean", "running_var", "num_batches_tracked")
_LISTED = 8  # names shown per category in a mismatch message


def load_reference_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict stored in a reference ``.pth`` file (plain, or wrapped under a common key)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusal, truncated or foreign file: all the user's to fix
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        if len(reason) > 200:
            reason = reason[:197] + "..."
        raise CheckpointError(
            f"{path} cannot be read as plain weights (only tensors are loaded, never arbitrary Python "
            f"objects): {reason}"
        ) from None
    state = _unwrap(obj)
    if state is None:
        what = f"a dict with keys {', '.join(map(str, list(obj)[:6]))}" if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} does not hold a state dict of tensors (found {what}); expected torch.save(net.state_dict()) "
            f"or a dict wrapping one under {', '.join(repr(k) for k in WRAPPER_KEYS)}"
        )
    return state


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _unwrap(obj: Any) -> dict[str, torch.Tensor] | None:
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key])
    return None


def adapt_state_dict(state: dict[str, torch.Tensor], generator: nn.Module) -> dict[str, torch.Tensor]:
    """Fit a reference state dict to ``generator`` by key name, tolerating the known variants.

    * a ``module.`` prefix (saved from ``DataParallel``) is removed;
    * a BatchNorm's missing ``num_batches_tracked`` (older PyTorch) is filled with 0;
    * an InstanceNorm's stale ``running_mean``/``running_var``/``num_batches_tracked`` (checkpoints
      from when instance norm tracked statistics) are dropped.

    Anything else that does not fit raises :class:`CheckpointError` listing every missing key,
    unexpected key and shape mismatch.  The result is in the generator's key order.
    """
    expected = generator.state_dict()
    modules = dict(generator.named_modules())

    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        while name not in expected and name.startswith("module."):
            name = name[len("module."):]
        if name in renamed:
            raise CheckpointError(f"weights hold {name!r} twice (with and without a 'module.' prefix)")
        renamed[name] = value

    adapted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in renamed.items():
        if key in expected:
            adapted[key] = value
            continue
        owner, _, attr = key.rpartition(".")
        module = modules.get(owner)
        if isinstance(module, nn.modules.instancenorm._InstanceNorm) and attr in _STALE_INSTANCE_NORM:
            continue  # stale statistics of an old instance-norm checkpoint
        unexpected.append(key)

    missing: list[str] = []
    for key in expected:
        if key in adapted:
            continue
        owner, _, attr = key.rpartition(".")
        if attr == "num_batches_tracked" and isinstance(modules.get(owner), nn.modules.batchnorm._BatchNorm):
            adapted[key] = torch.tensor(0, dtype=torch.long)
        else:
            missing.append(key)

    mismatched = [f"{key} {tuple(adapted[key].shape)} vs {tuple(expected[key].shape)}"
                  for key in expected if key in adapted and adapted[key].shape != expected[key].shape]

    if missing or unexpected or mismatched:
        spec = getattr(generator, "imgtrans_spec", None)
        target = f"generator {spec['name']!r} {spec['args'] or ''}".rstrip() if spec else type(generator).__name__
        parts = [_listing("missing key", missing), _listing("unexpected key", unexpected),
                 _listing("shape mismatch (weights vs generator)", mismatched, plural="shape mismatches")]
        raise CheckpointError(
            f"weights do not fit {target}: " + "; ".join(p for p in parts if p)
            + ". Check the generator name and arguments (norm, ngf, dropout, n_blocks) the weights were trained with"
        )
    return {key: adapted[key] for key in expected}


def _listing(what: str, items: list[str], plural: str | None = None) -> str:
    if not items:
        return ""
    label = what if len(items) == 1 else (plural or what + "s")
    shown = ", ".join(items[:_LISTED])
    more = f", ... (and {len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return f"{len(items)} {label}: {shown}{more}"


def import_reference(pth: Path, out: Path, *, generator: str = "unet_256", generator_args: dict | None = None,
                     metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Convert reference weights ``pth`` into an imgtrans checkpoint at ``out``; returns ``out``.

    ``generator_args`` are merged over the reference's arguments for known generators (U-Nets:
    batch norm with dropout; ResNets: instance norm).  ``metadata`` overrides any metadata field
    (``recipe``, ``direction``, ``norm_stats``, ...).  An existing ``out`` is replaced only with
    ``overwrite=True``, and ``out`` may never be ``pth`` itself: nothing the user has is lost.
    """
    pth, out = Path(pth), Path(out)
    check_output(pth, out, overwrite=overwrite)
    net, meta = reference_checkpoint(pth, generator=generator, generator_args=generator_args, metadata=metadata)
    try:
        return save_checkpoint(out, {"generator": net}, meta)
    except OSError as exc:
        raise CheckpointError(f"cannot write {out}: {exc.strerror or exc}; choose another -o/--out") from None


def check_output(pth: Path, out: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, an ``out`` that is the input, exists (without ``overwrite``), is a
    folder, or cannot be created (missing folders are created, as for every output)."""
    if out.exists() and pth.exists() and os.path.samefile(out, pth):
        raise CheckpointError(f"-o {out} is the input file {pth}: importing would replace the weights "
                              "being read; choose another output file")
    if out.is_dir():
        raise CheckpointError(f"-o {out} is a folder; give the output file's name (e.g. {out / (pth.stem + '.safetensors')})")
    if out.exists() and not overwrite:
        raise CheckpointError(f"-o {out} already exists; pass --overwrite to replace it, or choose another file")
    folder = out.parent.absolute()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        what = "is not a folder" if not folder.is_dir() else "is not writable"
        raise CheckpointError(f"cannot write {out}: {folder} {what}; choose another -o/--out")


def reference_checkpoint(pth: Path, *, generator: str = "unet_256", generator_args: dict | None = None,
                         metadata: dict | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The generator loaded with the reference weights ``pth``, and the metadata to save it with.

    Succeeding proves that ``pth`` holds exactly the declared generator's weights (the zoo
    records the hash of an unchecksummed download only then)."""
    from ..plugins import get_host

    pth = Path(pth)
    args = {**REFERENCE_ARGS.get(generator, {}), **(generator_args or {})}
    net = get_host().registry.create("generator", generator, **args)
    state = load_reference_state_dict(pth)
    try:
        adapted = adapt_state_dict(state, net)
    except CheckpointError as exc:
        raise CheckpointError(f"{pth}: {exc}") from None
    try:
        net.load_state_dict(adapted, strict=True)
    except RuntimeError as exc:  # adapt_state_dict checked names and shapes; this is a safety net
        raise CheckpointError(f"{pth}: weights do not load into generator {generator!r}: "
                              f"{' '.join(str(exc).split())}") from None
    has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    meta: dict[str, Any] = {
        "recipe": "pix2pix",
        "generator": {"name": generator, **args},
        "in_channels": net.in_channels,
        "out_channels": net.out_channels,
        "stride": getattr(net, "stride", 1),
        "direction": "AtoB",
        "value_range": "[-1, 1]",
        # The reference tests in train mode: batch norm uses each image's statistics.
        "norm_stats": "instance" if has_batch_norm else "running",
        "source": pth.name,
    }
    meta.update(metadata or {})
    return net, meta
