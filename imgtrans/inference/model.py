"""Load a self-describing checkpoint (a file, ``zoo:NAME`` or a bare zoo name) into a ready-to-run
generator for one translation direction.

A model file lists the directions it translates under the metadata field ``directions``
(``{"AtoB": {"network": ..., "generator": {...}, "in_channels": ..., ...}, "BtoA": {...}}``, in
the terms of the dataset it was trained on).  Files written before directions existed hold one
network, ``generator``, serving the direction recorded in ``direction``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.checkpoint import load_checkpoint, read_metadata
from ..core.checkpoint_fit import check_generator_fits, rebuild_args
from ..core.interfaces import Generator
from ..core.model_file import choose_direction, model_directions
from ..util.errors import CheckpointError
from ..util.outputmarks import read_mark
from ..zoo.store import PREFIX, resolve_model, zoo_default_direction
from .engine import default_channels_last, run_generator
from .exported import EXPORTED_SUFFIXES, load_exported

NORM_STATS = ("running", "instance")


@dataclass
class TranslationModel:
    """A generator in eval mode, the direction it translates, and the metadata it was saved with."""

    generator: Generator
    metadata: dict[str, Any]
    source: str = ""
    direction: str = "AtoB"
    info: dict[str, Any] = field(default_factory=dict)  # this direction's entry of ``directions``

    @property
    def device(self) -> torch.device:
        """Where inputs go: the weights' device (the CPU for an exported model, which has none)."""
        for tensor in (*self.generator.parameters(), *self.generator.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def in_channels(self) -> int:
        return int(self.info.get("in_channels", self.generator.in_channels))

    @property
    def out_channels(self) -> int:
        return int(self.info.get("out_channels", self.generator.out_channels))

    @property
    def stride(self) -> int:
        return int(self.info.get("stride", self.generator.stride))

    @property
    def recommended_norm_stats(self) -> str:
        return self.info.get("norm_stats", self.metadata.get("norm_stats", "running"))

    @property
    def directions(self) -> list[str]:
        return list(model_directions(self.metadata))

    def run(self, x: torch.Tensor, precision: str = "fp32", *, norm_stats: str | None = None,
            channels_last: bool | None = None, compile: bool = False,
            dropout_seeds: list[int] | None = None) -> torch.Tensor:
        """The one forward pass every job uses (translate, eval, serve, the precision probe): ``x``
        in [-1, 1] on the model's device, reflect-padded to the stride and cropped back, in
        ``precision``, with ``norm_stats`` (default: the one the model file recommends).
        ``channels_last=None`` is the engine's choice for the precision and device
        (:func:`~imgtrans.inference.engine.default_channels_last`)."""
        if channels_last is None:
            channels_last = default_channels_last(precision, self.device)
        return run_generator(self.generator, x.to(self.device), stride=self.stride,
                             norm_stats=norm_stats or self.recommended_norm_stats, precision=precision,
                             channels_last=channels_last, compile=compile, dropout_seeds=dropout_seeds)


def build_generator(spec: Any) -> Generator:
    """The generator a ``directions`` entry (or legacy metadata) describes, with fresh weights."""
    from ..core.plugin_host import get_host

    entry = spec
    if isinstance(spec, dict) and "generator" in spec and isinstance(spec["generator"], dict):
        spec = spec["generator"]
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError("checkpoint metadata does not say which generator it holds")
    args = {k: v for k, v in spec.items() if k != "name"}
    registry = get_host().registry
    if spec["name"] not in registry.names("generator"):  # say what to install, when the checkpoint knows
        from ..core.plugin_host import provenance_note
        from ..util.errors import UnknownNameError

        raise UnknownNameError("generator", spec["name"], registry.names("generator"),
                               note=provenance_note(entry))
    return registry.create("generator", spec["name"], **rebuild_args(registry, spec["name"], args))


def load_model(source: str | Path, device: str | torch.device = "cpu", direction: str | None = None) -> TranslationModel:
    """The generator that translates ``direction`` (default: the model's only one, or for a
    two-way model the zoo entry's direction or AtoB), on ``device`` in eval mode.  ``source`` is a
    model file, ``zoo:NAME`` or a run directory (its ``model.safetensors``).  A ``.onnx`` file
    written by ``imgtrans export`` runs through onnxruntime (:mod:`imgtrans.inference.exported`)."""
    if str(source).lower().endswith(EXPORTED_SUFFIXES):  # imgtrans export --format onnx
        path = Path(str(source)).expanduser()
        generator, metadata, exported_direction, info = load_exported(path, device=device, direction=direction)
        return TranslationModel(generator, metadata, str(path), exported_direction, info)
    path = resolve_model(source)  # a run directory: its model.safetensors
    available = model_directions(read_metadata(path))
    chosen = choose_direction(available, direction, str(path), zoo_default_direction(source))
    info = available[chosen]
    network = info.get("network", "generator")
    check_generator_fits(path, info, network)
    ckpt = load_checkpoint(path, networks=[network])
    generator = build_generator(info)
    state = ckpt.state_dict(network)
    result = generator.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: weights do not fit generator {info['generator']['name']!r}: "
            f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
        )
    generator.to(device).eval()
    return TranslationModel(generator, ckpt.metadata, str(path), chosen, info)


def split_spec(spec: str) -> tuple[str, str]:
    """A model's name where several are shown (serve's list, eval's --compare): ``NAME=SOURCE`` ->
    (NAME, SOURCE); ``zoo:NAME`` -> NAME; a training run's ``model.safetensors`` -> the run's name
    (``runs/demo/model.safetensors`` is ``demo``), the run's other model files ``RUN-STEM``
    (``demo-model_best``, ``demo-step_500``); any other file -> its stem."""
    name, sep, source = spec.partition("=")
    if sep and not spec.startswith(PREFIX) and not Path(spec).exists():
        return name, source
    source = spec
    if source.startswith(PREFIX):
        return source[len(PREFIX):], source
    return _file_name(Path(source).expanduser()), source


def _is_run(folder: Path) -> bool:
    """A training run's directory: it carries train's mark, or (runs older than marks) the config
    and metrics that train writes first.  Only a name hangs on this, so the names are proof enough."""
    return read_mark(folder) == "train-run" or ((folder / "config.toml").is_file()
                                               and (folder / "metrics.jsonl").is_file())


def _file_name(path: Path) -> str:
    if not path.is_file():  # a directory or nothing: load_model says what is wrong with it
        return path.stem
    path = path.resolve()
    if _is_run(path.parent):
        return path.parent.name if path.name == "model.safetensors" else f"{path.parent.name}-{path.stem}"
    if path.parent.name == "checkpoints" and _is_run(path.parent.parent):
        return f"{path.parent.parent.name}-{path.stem}"
    return path.stem
