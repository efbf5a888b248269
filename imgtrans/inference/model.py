"""Load a self-describing checkpoint (a file, ``zoo:NAME`` or a bare zoo name) into a ready-to-run generator."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_checkpoint
from ..errors import CheckpointError
from ..interfaces import Generator

NORM_STATS = ("running", "instance")


@dataclass
class TranslationModel:
    """A generator in eval mode plus the metadata it was saved with."""

    generator: Generator
    metadata: dict[str, Any]
    source: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def in_channels(self) -> int:
        return int(self.metadata.get("in_channels", self.generator.in_channels))

    @property
    def out_channels(self) -> int:
        return int(self.metadata.get("out_channels", self.generator.out_channels))

    @property
    def stride(self) -> int:
        return int(self.metadata.get("stride", getattr(self.generator, "stride", 1)))

    @property
    def recommended_norm_stats(self) -> str:
        return self.metadata.get("norm_stats", "running")


def build_generator(metadata: dict[str, Any]) -> Generator:
    from ..plugins import get_host

    spec = metadata.get("generator")
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError("checkpoint metadata does not say which generator it holds")
    args = {k: v for k, v in spec.items() if k != "name"}
    return get_host().registry.create("generator", spec["name"], **args)


def load_model(source: str | Path, device: str | torch.device = "cpu") -> TranslationModel:
    from ..zoo.store import resolve_model

    path = resolve_model(source)
    ckpt = load_checkpoint(path, networks=["generator"])
    generator = build_generator(ckpt.metadata)
    state = ckpt.state_dict("generator")
    result = generator.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: weights do not fit generator {ckpt.metadata['generator']['name']!r}: "
            f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
        )
    generator.to(device).eval()
    return TranslationModel(generator, ckpt.metadata, str(path))
