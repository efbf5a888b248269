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

from ..core.checkpoint import save_checkpoint
from ..core.checkpoint_fit import build_on_meta
from ..core.interfaces import Generator
from ..util.errors import CheckpointError

#: keys under which training scripts commonly wrap a state dict
WRAPPER_KEYS = ("state_dict", "model", "netG")


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
    adapted, missing, unexpected, mismatched = _fit(state, generator)
    if missing or unexpected or mismatched:
        spec = getattr(generator, "imgtrans_spec", None)
        target = f"generator {spec['name']!r} {spec['args'] or ''}".rstrip() if spec else type(generator).__name__
        parts = [_listing("missing key", missing), _listing("unexpected key", unexpected),
                 _listing("shape mismatch (weights vs generator)", mismatched, plural="shape mismatches")]
        raise CheckpointError(
            f"weights do not fit {target}: " + "; ".join(p for p in parts if p)
            + ". Check the generator name and arguments (norm, ngf, dropout, n_blocks) the weights were trained with"
        )
    return adapted


def _fit(state: dict[str, torch.Tensor], generator: nn.Module
         ) -> tuple[dict[str, torch.Tensor], list[str], list[str], list[str]]:
    """``state`` fitted to ``generator`` with the known variants tolerated (see
    :func:`adapt_state_dict`), and what still differs: missing keys, unexpected keys, shape mismatches."""
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
    return {key: adapted[key] for key in expected if key in adapted}, missing, unexpected, mismatched


def _listing(what: str, items: list[str], plural: str | None = None) -> str:
    if not items:
        return ""
    label = what if len(items) == 1 else (plural or what + "s")
    shown = ", ".join(items[:_LISTED])
    more = f", ... (and {len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return f"{len(items)} {label}: {shown}{more}"


def import_reference(pth: Path, out: Path, *, generator: str | None = None, generator_args: dict | None = None,
                     metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Convert reference weights ``pth`` into an imgtrans checkpoint at ``out``; returns ``out``.

    ``generator`` is the registered architecture (found from the weights' keys and shapes when
    None); ``generator_args`` are merged over the arguments its plugin declares for the
    reference's public weights (``Generator.reference_args``).  ``metadata`` overrides any
    metadata field (``recipe``, ``direction``, ``norm_stats``, ...).  An existing ``out`` is
    replaced only with ``overwrite=True``, and ``out`` may never be ``pth`` itself.
    """
    pth, out = Path(pth), Path(out)
    check_output(pth, out, overwrite=overwrite)
    net, meta = reference_checkpoint(pth, generator=generator, generator_args=generator_args, metadata=metadata)
    return _write(out, {"generator": net}, meta)


def _write(out: Path, networks: dict[str, nn.Module], meta: dict[str, Any]) -> Path:
    try:
        return save_checkpoint(out, networks, meta)
    except OSError as exc:
        raise CheckpointError(f"cannot write {out}: {exc.strerror or exc}; choose another -o/--out") from None


#: how the reference names a CycleGAN run's generators: ``latest_net_G_A.pth``, ``200_net_G_B.pth``
RUN_FILES = {"AtoB": "net_G_A.pth", "BtoA": "net_G_B.pth"}


def import_reference_run(run_dir: Path, out: Path, *, generator: str | None = None,
                         generator_args: dict | None = None, epoch: str = "latest",
                         metadata: dict | None = None, overwrite: bool = False) -> Path:
    """One two-way model file from a reference CycleGAN run directory (``{epoch}_net_G_A.pth`` maps
    A to B, ``{epoch}_net_G_B.pth`` B to A); the networks are named after the recipe that trains
    that architecture in both directions, so ``--init`` and resuming tools find them."""
    run_dir, out = Path(run_dir), Path(out)
    files = {d: run_dir / f"{epoch}_{name}" for d, name in RUN_FILES.items()}
    missing = [str(f.name) for f in files.values() if not f.is_file()]
    if missing:
        raise CheckpointError(f"{run_dir} holds no {' and no '.join(missing)} (a reference CycleGAN run directory "
                              f"has {epoch}_net_G_A.pth and {epoch}_net_G_B.pth; choose the epoch with --epoch)")
    check_output(files["AtoB"], out, overwrite=overwrite)
    loaded = {d: reference_checkpoint(f, generator=generator, generator_args=generator_args) for d, f in files.items()}
    name = loaded["AtoB"][1]["generator"]["name"]
    recipe, slots = _two_way_recipe(name)
    directions, networks = {}, {}
    for direction, (net, meta) in loaded.items():
        slot = slots.get(direction, f"generator_{direction}")
        networks[slot] = net
        directions[direction] = {"network": slot, "generator": meta["generator"], "in_channels": meta["in_channels"],
                                 "out_channels": meta["out_channels"], "stride": meta["stride"],
                                 "norm_stats": meta["norm_stats"]}
    first = loaded["AtoB"][1]
    meta = {**first, "recipe": recipe, "directions": directions, "source": run_dir.name, **(metadata or {})}
    return _write(out, networks, meta)


def _two_way_recipe(generator: str) -> tuple[str, dict[str, str]]:
    """The registered recipe that trains a generator in both directions (the one whose slots default to
    ``generator`` first, else the only two-way recipe), and its slot per direction."""
    from ..core.plugin_host import get_host

    two_way = [c for c in get_host().registry.components("recipe") if len(c.factory.directions) == 2]
    preferred = [c for c in two_way
                 if all(c.factory.slots[s].default == generator for s in c.factory.directions.values())]
    chosen = preferred or (two_way if len(two_way) == 1 else [])
    return (chosen[0].name, dict(chosen[0].factory.directions)) if chosen else ("", {})


def _reference_args(factory: Any) -> dict[str, Any]:
    """``Generator.reference_args`` of a generator class (a factory function declares none)."""
    return dict(factory.reference_args) if isinstance(factory, type) and issubclass(factory, Generator) else {}


def recipe_label(generator: str) -> str:
    """The recipe whose generator slot defaults to ``generator`` (what trained such weights), or ''."""
    from ..core.plugin_host import get_host

    for component in get_host().registry.components("recipe"):
        cls = component.factory
        if any(cls.slots[s].default == generator for s in cls.directions.values()):
            return component.name
    return ""


def infer_generator(state: dict[str, torch.Tensor], generator_args: dict | None = None) -> str:
    """The registered generator, at its declared reference arguments (plus ``generator_args``), that
    the weights fit; when none fits exactly, the closest (fewest differing keys and shapes), so the
    error that follows lists what differs from the most plausible architecture."""
    from ..core.plugin_host import get_host

    registry = get_host().registry
    scored = []
    for component in registry.components("generator"):
        reference = _reference_args(component.factory)
        if not reference:
            continue
        try:
            with torch.device("meta"):  # no memory: only names and shapes are compared
                net = registry.create("generator", component.name, **{**reference, **(generator_args or {})})
        except Exception:  # noqa: BLE001 - arguments this architecture does not take: not a candidate
            continue
        _, missing, unexpected, mismatched = _fit(state, net)
        scored.append((len(missing) + len(unexpected) + len(mismatched), component.name))
    if not scored:
        raise CheckpointError("no registered generator declares reference arguments; name it with --generator")
    exact = [name for differing, name in scored if differing == 0]
    if len(exact) > 1:
        raise CheckpointError(f"the weights fit {', '.join(exact)}; choose one with --generator")
    return min(scored)[1]


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


def reference_checkpoint(pth: Path, *, generator: str | None = None, generator_args: dict | None = None,
                         metadata: dict | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The generator loaded with the reference weights ``pth``, and the metadata to save it with.

    Succeeding proves that ``pth`` holds exactly the declared generator's weights (the zoo
    records the hash of an unchecksummed download only then)."""
    from ..core.plugin_host import get_host

    pth = Path(pth)
    state = load_reference_state_dict(pth)
    registry = get_host().registry
    generator = generator or infer_generator(state, generator_args)
    reference = _reference_args(registry.get("generator", generator).factory)
    args = {**reference, **(generator_args or {})}
    # the declared architecture is checked against the weights on the meta device first: a
    # `--set ngf=100000` is refused before it allocates anything
    on_meta, _ = build_on_meta(pth, {"name": generator, **args}, len(state))
    try:
        adapt_state_dict(state, on_meta)
        net = registry.create("generator", generator, **args)
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
        "recipe": recipe_label(generator),
        "generator": {"name": generator, **args},
        "in_channels": net.in_channels,
        "out_channels": net.out_channels,
        "stride": net.stride,
        "direction": "AtoB",
        "value_range": "[-1, 1]",
        # The reference tests in train mode: batch norm uses each image's statistics.
        "norm_stats": "instance" if has_batch_norm else "running",
        "source": pth.name,
    }
    meta.update(metadata or {})
    return net, meta
