"""Self-describing safetensors checkpoints.

Tensors of several networks live in one file under ``<network>.`` prefixes; the metadata (all
strings, JSON where structured) carries everything needed to rebuild and run the generator, so
``imgtrans translate --model FILE`` needs no other flag.  Loading never unpickles anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..util.errors import CheckpointError
from .checkpoint_fit import check_declared_sizes
from .directions import DIRECTIONS
from ..util.fileio import atomic_path

FORMAT = "imgtrans-checkpoint/1"
JSON_KEYS = ("generator", "directions", "config", "networks", "extra", "training_state", "best")


@dataclass
class Checkpoint:
    tensors: dict[str, dict[str, torch.Tensor]]  # network -> state dict
    metadata: dict[str, Any]
    state: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # other groups: optim/<name>, rng

    def state_dict(self, network: str) -> dict[str, torch.Tensor]:
        if network not in self.tensors:
            raise CheckpointError(f"checkpoint holds no {network!r} (it holds: {', '.join(self.tensors)})")
        return self.tensors[network]


def save_checkpoint(path: str | Path, networks: dict[str, nn.Module | dict[str, torch.Tensor]],
                    metadata: dict[str, Any], state: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Write ``networks`` and ``metadata`` atomically (temporary file, then rename).

    ``state`` holds further tensor groups that are not networks (optimizer moments under
    ``optim/<name>``, RNG states under ``rng``): stored with the same ``<group>.`` prefixes, but
    not listed in the ``networks`` metadata.
    """
    from ..util.version import __version__

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, net in {**networks, **(state or {})}.items():
        state = net.state_dict() if isinstance(net, nn.Module) else net
        for key, value in state.items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous()
    meta = {"format": FORMAT, "imgtrans_version": __version__, "networks": list(networks)}
    meta.update(metadata)
    encoded = {k: (json.dumps(v) if k in JSON_KEYS or not isinstance(v, str) else v) for k, v in meta.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=encoded)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata only (cheap: tensors are not read)."""
    with _open(path) as f:
        return _decode(f.metadata() or {}, path)


def load_checkpoint(path: str | Path, networks: list[str] | None = None) -> Checkpoint:
    """Networks (those the metadata lists) into ``tensors``, other groups (training state) into ``state``."""
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    state: dict[str, dict[str, torch.Tensor]] = {}
    with _open(path) as f:
        metadata = _decode(f.metadata() or {}, path)
        listed = metadata.get("networks")
        for key in f.keys():
            net, _, param = key.partition(".")
            if networks is None or net in networks:
                group = tensors if listed is None or net in listed else state
                group.setdefault(net, {})[param] = f.get_tensor(key)
    return Checkpoint(tensors, metadata, state)


class _open:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self):
        if not self.path.is_file():
            raise CheckpointError(f"checkpoint not found: {self.path}")
        try:
            self._ctx = safe_open(str(self.path), framework="pt")
            return self._ctx.__enter__()
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path} is not a readable safetensors file ({exc})") from None

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _decode(raw: dict[str, str], path: str | Path) -> dict[str, Any]:
    if raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not an imgtrans checkpoint (no '{FORMAT}' metadata); "
            "reference .pth weights can be imported with `imgtrans zoo import`"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_KEYS or key in ("in_channels", "out_channels", "stride", "epoch", "step"):
            try:
                out[key] = json.loads(value)
            except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
                raise CheckpointError(f"{path}: metadata field {key!r} is corrupt") from None
        else:
            out[key] = value
    check_metadata(out, path)
    return out


#: normalisation modes a model file may recommend
NORM_MODES = ("running", "instance")


def check_metadata(meta: dict[str, Any], path: str | Path) -> None:
    """Every field the library reads, checked for type and range in one place, so that a hostile or
    damaged file is one line naming the field, never a traceback deep in a loader."""
    def bad(field: str, value: Any, want: str) -> CheckpointError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return CheckpointError(f"{path}: metadata {field}={shown} is not {want}")

    def entry(where: str, fields: dict[str, Any], required: bool) -> None:  # required: the generator
        check_declared_sizes(path, fields, required=False)
        spec = fields.get("generator")
        if (spec is not None or required) and not (isinstance(spec, dict) and isinstance(spec.get("name"), str)):
            raise bad(f"{where}generator", spec, "an object naming a generator")
        if "norm_stats" in fields and fields["norm_stats"] not in NORM_MODES:
            raise bad(f"{where}norm_stats", fields["norm_stats"], f"one of {', '.join(NORM_MODES)}")
        if "network" in fields and not isinstance(fields["network"], str):
            raise bad(f"{where}network", fields["network"], "a network name")

    entry("", meta, required=False)
    if "direction" in meta and meta["direction"] not in DIRECTIONS:
        raise bad("direction", meta["direction"], f"one of {', '.join(DIRECTIONS)}")
    for key in ("epoch", "step"):
        if key in meta and (not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 0):
            raise bad(key, meta[key], "a whole number >= 0")
    for key in ("config", "extra", "training_state", "best"):
        if key in meta and not isinstance(meta[key], dict):
            raise bad(key, meta[key], "an object")
    if "networks" in meta and not (isinstance(meta["networks"], list) and all(isinstance(n, str) for n in meta["networks"])):
        raise bad("networks", meta["networks"], "a list of network names")
    directions = meta.get("directions")
    if directions is not None:
        if not isinstance(directions, dict) or not directions:
            raise bad("directions", directions, "an object with an entry per direction")
        for direction, fields in directions.items():
            if direction not in DIRECTIONS:
                raise bad("directions", direction, f"keyed by {' or '.join(DIRECTIONS)}")
            if not isinstance(fields, dict):
                raise bad(f"directions.{direction}", fields, "an object")
            entry(f"directions.{direction}.", fields, required=True)
