"""The models a server offers: each ``--model`` loaded once, in every direction it translates,
and run exactly as ``imgtrans translate`` runs it (same precision, layout, statistics, tiling).

A model is named after its source: ``zoo:NAME`` (or a bare zoo name) is ``NAME``; a training run's
``model.safetensors`` is the run's name (``runs/demo/model.safetensors`` is ``demo``) and the run's
other model files are ``RUN-STEM`` (``demo-model_best``, ``demo-step_500``); any other file is its
stem.  ``NAME=SOURCE`` chooses the name.

What a model does (``GET /v1/models``, the page) comes from its zoo entry, else its file's
``domains``, else the catalog entry of the dataset it was trained on; where none names the
domains, the answer says so rather than guessing.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.model_file import choose_direction, model_directions, model_domains
from ..core.plugin_host import get_host
from ..core.zoo_manifest import ZooEntry
from ..data.images import batch_from_pixels, to_pixels
from ..inference.exported import EXPORTED_SUFFIXES
from ..inference.model import TranslationModel, load_model, split_spec
from ..inference.precision_probe import AutoPrecision
from ..inference.translate import auto_batch_size
from ..util.errors import ConfigError
from ..zoo.store import PREFIX, entries

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Direction:
    """One direction of a served model, with the settings ``imgtrans translate`` would use."""

    model: TranslationModel
    auto: AutoPrecision              # verified ``auto``: decided on the first request, like translate
    channels_last: bool | None       # None: the engine's default for the decided precision
    norm_stats: str

    @property
    def precision(self) -> str:
        return self.auto.precision

    def batch_limit(self, height: int, width: int) -> int:
        """Images of this size per forward pass: translate's ``auto`` batch size."""
        return auto_batch_size(height, width, self.model.stride, self.model.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.auto.run(lambda precision: self.model.run(x, precision, norm_stats=self.norm_stats,
                                                              channels_last=self.channels_last))

    def translate(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Same-size ``H x W x C`` uint8 images in one forward pass, converted as translate does."""
        x = torch.from_numpy(np.stack(images)).to(self.model.device)
        x = batch_from_pixels(x)
        return list(to_pixels(self.forward(x)))

    def translate_tiled(self, pixels: np.ndarray, tile: int, overlap: int) -> np.ndarray:
        """One large image in overlapping tiles, as translate does above ``--tile``."""
        from ..inference.tiling import translate_tiled

        return translate_tiled(lambda x: self.forward(x).cpu(), pixels, tile=tile, overlap=overlap,
                               out_channels=self.model.out_channels, batch_size=self.batch_limit(tile, tile))


@dataclass
class ServedModel:
    name: str
    source: str
    default_direction: str
    directions: dict[str, Direction] = field(default_factory=dict)
    description: str | None = None       # what the model is, in a line (its zoo entry, or how it was trained)
    domains: dict[str, str] | None = None  # {"A": ..., "B": ...}; None: not recorded anywhere

    def describe(self) -> dict:
        """What ``GET /v1/models`` says about this model (no file paths: they are the server's business)."""
        names = self.domains or {"A": "domain A", "B": "domain B"}
        means = {d: f"{names[d[0]]} -> {names[d[-1]]}" for d in self.directions}
        return {"name": self.name, "directions": list(self.directions), "default_direction": self.default_direction,
                "description": self.description, "domains": self.domains, "means": means,
                "channels": {d: {"in": m.model.in_channels, "out": m.model.out_channels}
                             for d, m in self.directions.items()},
                "precision": {d: {"running": m.precision, "why": m.auto.decision.reason if m.auto.decision else
                                  f"auto: {m.auto.candidate} is checked against fp32 on the first request"}
                              for d, m in self.directions.items()}}

    def direction(self, requested: str | None) -> Direction:
        """The direction asked for, or the one translate would choose; :class:`CheckpointError` otherwise."""
        if requested is None:
            return self.directions[self.default_direction]
        return self.directions[choose_direction(self.directions, requested, f"model {self.name!r}")]


def _zoo_entry(source: str, metadata: dict) -> ZooEntry | None:
    """The zoo entry a model comes from: named by the source, or recorded in a converted file."""
    zoo = entries()
    if source.startswith(PREFIX):
        return zoo.get(source[len(PREFIX):])
    if not Path(source).expanduser().exists() and source in zoo:
        return zoo[source]
    name = metadata.get("zoo_name")
    return zoo.get(name) if isinstance(name, str) else None


def _about(source: str, metadata: dict) -> tuple[str | None, dict[str, str] | None]:
    """(description, domains) of a model: see the module docstring."""
    entry = _zoo_entry(source, metadata)
    domains = (model_domains({"domains": entry.domains}) if entry else None) or model_domains(metadata)
    dataset = metadata.get("dataset")
    catalog = get_host().catalog
    if domains is None and isinstance(dataset, str) and dataset in catalog:
        a, b = catalog.get(dataset).domains
        domains = None if (a, b) == ("A", "B") else {"A": a, "B": b}
    if entry is not None:
        return entry.description, domains
    trained = [str(metadata["recipe"])] if isinstance(metadata.get("recipe"), str) else []
    if isinstance(dataset, str) and dataset.strip():
        trained.append(f"trained on {Path(dataset).name}")  # a folder's name only: paths are the server's business
    if isinstance(metadata.get("step"), int):
        trained.append(f"step {metadata['step']}")
    return (", ".join(trained) or None), domains


def load_served(specs: Sequence[str], *, device: str | torch.device = "cpu", precision: str | None = None,
                channels_last: bool | None = None) -> dict[str, ServedModel]:
    """Load every model of ``specs`` (see the module docstring) in all its directions, or raise an
    :class:`ImgtransError` naming the bad one before anything is served."""
    if not specs:
        raise ConfigError("no model to serve: pass --model FILE or --model zoo:NAME (repeatable)")
    served: dict[str, ServedModel] = {}
    for spec in specs:
        name, source = split_spec(spec)
        if not _NAME.match(name):
            raise ConfigError(f"model name {name!r} (from {spec!r}) must be letters, digits, '_', '.' or '-'; "
                              f"name it with NAME={source}")
        if name in served:
            raise ConfigError(f"two models are named {name!r} ({served[name].source} and {source}); "
                              f"name one of them with NAME={source}")
        first = load_model(source, device=device)  # the default direction, resolved exactly as translate does
        exported = source.lower().endswith(EXPORTED_SUFFIXES)  # imgtrans export: one direction inside
        description, domains = _about(source, first.metadata)
        model = ServedModel(name, source, first.direction, description=description, domains=domains)
        for direction in [first.direction] if exported else model_directions(first.metadata):
            loaded = first if direction == first.direction else load_model(source, device=device, direction=direction)
            model.directions[direction] = Direction(
                loaded, AutoPrecision(loaded, precision, device=loaded.device), channels_last,
                loaded.recommended_norm_stats)
        served[name] = model
    return served
