"""What a run's model file and checkpoints say about their generators: one self-describing entry
per translation direction the recipe declares (docs/recipes.md).

Directions are recorded in the terms of the dataset: a recipe's ``AtoB`` generator maps the
batch's ``A`` to ``B``, which is the dataset's ``B`` to ``A`` when the run trained with
``--direction BtoA``.  So ``imgtrans translate --direction BtoA`` always means "domain B to domain A".
"""
from __future__ import annotations

import json
from typing import Any

from ..util.errors import CheckpointError
from .config import TrainConfig
from .directions import DIRECTIONS, opposite, primary_direction
from .interfaces import Recipe


def recommended_norm_stats(config: TrainConfig, world_size: int = 1) -> str:
    """Batch norm trained at batch size 1 only ever normalised with per-image statistics, which is
    what 'instance' reproduces at test time; the running averages are a looser fit (docs/translate.md).
    With --sync-bn the statistics span the processes, so the batch that counts is the combined one."""
    batch = config.data.batch_size * (world_size if config.run.sync_bn else 1)
    return "instance" if batch == 1 else "running"


def direction_entries(config: TrainConfig, recipe: Recipe, world_size: int = 1) -> dict[str, dict[str, Any]]:
    """Dataset direction -> the network (slot) that translates it and how to rebuild and run it."""
    from .plugin_host import provenance

    entries: dict[str, dict[str, Any]] = {}
    for direction, slot in recipe.directions.items():
        gen = recipe.components[slot]
        spec = config.components[slot]
        model_direction = direction if config.data.direction == "AtoB" else opposite(direction)
        entries[model_direction] = {
            "network": slot,
            "generator": spec.as_dict(),
            "in_channels": gen.in_channels,
            "out_channels": gen.out_channels,
            "stride": gen.stride,
            "norm_stats": recommended_norm_stats(config, world_size),
            "provided_by": provenance("generator", spec.name),
        }
    return entries


def model_metadata(config: TrainConfig, recipe: Recipe, *, epoch: int, step: int,
                   world_size: int = 1) -> dict[str, Any]:
    """Everything ``translate`` needs to rebuild and run each direction, and where it came from.
    The first direction's fields are also written flat (``generator``, ``in_channels``, ...) for
    tools that read files of imgtrans 0.1."""
    entries = direction_entries(config, recipe, world_size)
    primary = entries[primary_direction(entries)]
    return {
        "recipe": config.recipe.name,
        "directions": entries,
        "generator": primary["generator"],
        "in_channels": primary["in_channels"],
        "out_channels": primary["out_channels"],
        "stride": primary["stride"],
        "direction": primary_direction(entries),
        "value_range": "[-1, 1]",
        "norm_stats": primary["norm_stats"],
        "dataset": config.data.source,
        "config": config.to_dict(),
        "epoch": epoch,
        "step": step,
    }


def model_networks(recipe: Recipe) -> dict[str, Any]:
    """The networks a model file holds: every direction's generator, by slot name."""
    return {slot: recipe.components[slot] for slot in recipe.directions.values()}


def model_directions(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Direction -> how to build and run its network (``network``, ``generator``, channels, stride,
    ``norm_stats``), for new and pre-direction files alike."""
    directions = metadata.get("directions")
    if isinstance(directions, dict) and directions:
        return directions
    if not isinstance(metadata.get("generator"), dict):
        raise CheckpointError("checkpoint metadata does not say which generator it holds")
    legacy = {k: metadata[k] for k in ("in_channels", "out_channels", "stride", "norm_stats") if k in metadata}
    return {metadata.get("direction", "AtoB"): {"network": "generator", "generator": metadata["generator"], **legacy}}


def model_domains(metadata: dict[str, Any]) -> dict[str, str] | None:
    """The names of domains ``A`` and ``B`` a file records (a zoo conversion writes ``domains``, a
    JSON object), or None.  The field only labels the model, so a damaged or odd one counts as not
    recorded instead of making the model unusable."""
    value = metadata.get("domains")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) and value[k].strip() for k in "AB"):
        return None
    return {"A": value["A"].strip(), "B": value["B"].strip()}


def choose_direction(available: dict[str, Any], requested: str | None, source: str,
                     default: str | None = None) -> str:
    """``requested`` when the model has it; else the model's only direction, or ``default``/AtoB."""
    if requested is not None:
        if requested not in DIRECTIONS:
            raise CheckpointError(f"direction must be AtoB or BtoA, not {requested!r}")
        if requested not in available:
            raise CheckpointError(f"{source} translates {', '.join(available)} only, not {requested} "
                                  "(it is a one-way model)")
        return requested
    if len(available) == 1:
        return next(iter(available))
    if default in available:
        return default
    return primary_direction(available)
