"""``--init SLOT=SOURCE``: start a recipe's component from existing weights (fine-tuning).

SOURCE is an imgtrans checkpoint or model file (``FILE.safetensors``, optionally ``#NETWORK`` to
pick one of several networks), ``zoo:NAME``, or a reference ``.pth`` state dict (read with
``weights_only=True`` and fitted by :func:`imgtrans.zoo.importer.adapt_state_dict`).  The weights
are copied exactly; anything that does not fit is a one-line error.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..core.checkpoint import load_checkpoint, read_metadata
from ..core.interfaces import Recipe
from ..util.errors import CheckpointError, ConfigError


def parse_init(items: Iterable[str]) -> dict[str, str]:
    """``["generator=zoo:maps_a2b"]`` -> ``{"generator": "zoo:maps_a2b"}``."""
    out: dict[str, str] = {}
    for item in items:
        slot, sep, source = item.partition("=")
        if not sep or not slot.strip() or not source.strip():
            raise ConfigError(f"--init expects SLOT=SOURCE (for example generator=zoo:maps_a2b), got {item!r}")
        out[slot.strip()] = source.strip()
    return out


def initial_state(source: str, slot: str, net: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict SOURCE provides for ``slot``'s network ``net``."""
    if source.endswith(".pth"):
        from ..zoo.importer import adapt_state_dict, load_reference_state_dict

        state = load_reference_state_dict(Path(source))
        try:
            return adapt_state_dict(state, net)
        except CheckpointError as exc:
            raise CheckpointError(f"--init {slot}={source}: {exc}") from None
    from ..zoo.store import resolve_model

    text, _, network = source.partition("#")
    path = resolve_model(text)
    networks = list(read_metadata(path).get("networks") or [])
    if not network:
        if slot in networks:
            network = slot
        elif len(networks) == 1:
            network = networks[0]
        else:
            raise CheckpointError(f"--init {slot}={source}: the file holds {', '.join(networks)}; "
                                  f"name one as {text}#NETWORK")
    if network not in networks:
        raise CheckpointError(f"--init {slot}={source}: the file holds no {network!r} "
                              f"(it holds: {', '.join(networks) or 'nothing'})")
    return load_checkpoint(path, networks=[network]).state_dict(network)


def apply_init(recipe: Recipe, inits: dict[str, str]) -> None:
    """Load each ``inits`` source into its slot's network, exactly (strict key and shape match)."""
    for slot, source in inits.items():
        if slot not in recipe.components:
            raise ConfigError(f"--init names slot {slot!r}; this recipe's slots are {', '.join(recipe.components)}")
        net = recipe.components[slot]
        state = initial_state(source, slot, net)
        expected = net.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
        if missing or unexpected or shapes:
            raise CheckpointError(
                f"--init {slot}={source}: the weights do not fit this {slot} "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} of other shape"
                f"{', e.g. ' + (missing + unexpected + shapes)[0] if missing or unexpected or shapes else ''}); "
                f"build the {slot} with the settings the weights were trained with (--set {slot}.KEY=VALUE)")
        with torch.no_grad():
            for key, value in net.state_dict().items():
                value.copy_(state[key].to(value.dtype))
