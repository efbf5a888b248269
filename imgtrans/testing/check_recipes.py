"""Conformance check of a recipe: it declares what the trainer needs, trains on tiny data with its
``tiny_config``, and a run stopped after two steps resumes bit-exactly from its checkpoint."""
from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..core.interfaces import DIRECTIONS, Recipe, Slot
from ..core.registry import KINDS
from .samples import write_aligned, write_unpaired
from .subject import Subject, check_defaults, component_subject

if TYPE_CHECKING:  # pragma: no cover
    from ..core.registry import Registry

#: training items of the kit's data: an odd count, so the interrupted run stops inside an epoch
ITEMS = 3


def recipe_data(registry: "Registry", name: str, root: str | Path, count: int = 4, size: int = 32) -> Path:
    """Tiny data recipe ``name`` can train on: aligned pairs (and a ``test`` split) for a paired
    recipe, the CycleGAN layout for an unpaired one."""
    if registry.get("recipe", name).factory.paired:
        write_aligned(Path(root), "train", count=count, size=size)
        return write_aligned(Path(root), "test", count=2, size=size, seed=1)
    return write_unpaired(Path(root), count=count, size=size)


def tiny_layers(registry: "Registry", name: str, data: str | Path, out: str | Path, **run: Any) -> list[dict]:
    """Config layers for a quick run of recipe ``name``: its ``tiny_config``, then ``data``, one
    epoch plus one of decay, quiet, logging every step, into ``out``; ``run`` adds [run] settings."""
    return [dict(registry.get("recipe", name).factory.tiny_config),
            {"data": {"source": str(data)}, "optim": {"epochs": 1, "epochs_decay": 1},
             "run": {"out": str(out), "progress": False, "log_every": 1, **run}}]


def check_recipe(registry: "Registry", name: str, workdir: str | Path, *, steps: int = 2) -> dict[str, Any]:
    """Check recipe ``name``: its declarations, then three tiny runs on CPU in ``workdir``: one of
    ``2 * steps`` steps, one stopped after ``steps``, and that one resumed to ``2 * steps``, whose
    networks, optimizers, RNG states and recipe state must equal the uninterrupted run's exactly.
    Returns ``run_dir`` (the uninterrupted run) and ``steps``."""
    subject, component = component_subject(registry, "recipe", name)
    check_declarations(subject, registry, component.factory)
    check_defaults(subject, component, needed=("components",))
    from ..core.config import resolve
    from ..training.resume import resume_config
    from ..training.trainer import train

    workdir = Path(workdir)
    data = recipe_data(registry, name, workdir / "data", count=ITEMS)

    def config(out: Path, max_steps: int) -> Any:
        with subject.rule("config"):
            cfg = resolve(name, registry, tiny_layers(registry, name, data, out, device="cpu"))
        cfg.optim.max_steps = max_steps
        return cfg

    straight, stopped = workdir / "straight", workdir / "stopped"
    with subject.rule("trains"):
        initial = _initial_parameters(config(straight, 2 * steps), registry)
        result = train(config(straight, 2 * steps), registry=registry)
    if result.steps != 2 * steps:
        subject.fail("trains", f"the run took {result.steps} steps instead of {2 * steps}")
    _check_history(subject, result.history)
    _check_networks_changed(subject, initial, straight, 2 * steps)
    _check_model_file(subject, component.factory, result.model_path)
    with subject.rule("resume"):
        first = train(config(stopped, steps), registry=registry)
    if first.steps != steps:
        subject.fail("resume", f"a run with max_steps {steps} stopped after {first.steps} steps")
    with subject.rule("resume"):
        train(resume_config(stopped, registry, {"max_steps": 2 * steps}), resume=True, registry=registry)
    _compare_runs(subject, straight, stopped, steps)
    return {"run_dir": straight, "steps": result.steps}


def check_declarations(subject: Subject, registry: "Registry", cls: Any) -> None:
    """What the trainer reads from a recipe class before it builds anything."""
    if not (inspect.isclass(cls) and issubclass(cls, Recipe)):
        subject.fail("interface", "it must subclass imgtrans.core.interfaces.Recipe")
    slots = getattr(cls, "slots", None)
    if not isinstance(slots, Mapping) or not slots:
        subject.fail("slots", "it declares no slots (a dict of slot name -> Slot(kind, default))")
    for slot, spec in slots.items():
        if not isinstance(spec, Slot) or spec.kind not in KINDS:
            subject.fail("slots", f"slot {slot!r} must be a Slot whose kind is one of {', '.join(KINDS)}, got {spec!r}")
        with subject.rule("slots"):
            registry.get(spec.kind, spec.default)
    directions = getattr(cls, "directions", None)
    if not isinstance(directions, Mapping) or not directions:
        subject.fail("directions", "it declares no directions ({'AtoB': GENERATOR_SLOT})")
    for direction, slot in directions.items():
        if direction not in DIRECTIONS or slot not in slots or slots[slot].kind != "generator":
            subject.fail("directions", f"{direction!r}: {slot!r} must map AtoB or BtoA to a generator slot")
    if not isinstance(getattr(cls, "tiny_config", None), Mapping):
        subject.fail("tiny_config", "tiny_config must be a dict of config sections")


def _initial_parameters(config: Any, registry: "Registry") -> dict[str, dict[str, torch.Tensor]]:
    """The trainable parameters each declared network starts a run of ``config`` with: the recipe
    built exactly as the trainer builds it (same seed, same order)."""
    from ..training.building import build_recipe
    from ..training.setup import seed_everything

    seed_everything(config.run.seed)
    recipe = build_recipe(config, registry)
    return {name: {k: p.detach().clone() for k, p in net.named_parameters() if p.requires_grad}
            for name, net in recipe.networks().items()}


def _check_networks_changed(subject: Subject, initial: Mapping[str, Mapping[str, torch.Tensor]], run: Path,
                            steps: int) -> None:
    """Every declared network with trainable parameters must have moved after the run's steps: one
    that never changed has an optimizer that is never stepped (or gets no gradient)."""
    from ..core.checkpoint import load_checkpoint

    trained = load_checkpoint(run / "checkpoints" / "last.safetensors").tensors
    for name, params in initial.items():
        if not params:
            continue
        saved = trained.get(name, {})
        if all(key in saved and torch.equal(saved[key], value) for key, value in params.items()):
            subject.fail("trains", f"network {name!r} did not change in {steps} steps: no optimizer steps it, or no "
                                   f"gradient reaches it (give it an optimizer in configure_optimizers and call "
                                   f"self.step(optimizer) in train_step)")


def _check_history(subject: Subject, history: list[dict[str, Any]]) -> None:
    for record in history:
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                subject.fail("trains", f"logged {key} = {value} at step {record.get('step')}")


def _check_model_file(subject: Subject, cls: Any, path: Path) -> None:
    from ..core.checkpoint import read_metadata

    meta = read_metadata(path)
    if set(meta.get("directions", {})) != set(cls.directions):
        subject.fail("trains", f"the model file translates {sorted(meta.get('directions', {}))}, "
                               f"but the recipe declares {sorted(cls.directions)}")


def _compare_runs(subject: Subject, straight: Path, resumed: Path, steps: int) -> None:
    from ..core.checkpoint import load_checkpoint

    want, got = (load_checkpoint(run / "checkpoints" / "last.safetensors") for run in (straight, resumed))
    mine, theirs = {**want.tensors, **want.state}, {**got.tensors, **got.state}
    prefix = f"resumed after step {steps}, the run differs from an uninterrupted one"
    if set(mine) != set(theirs):
        subject.fail("resume", f"{prefix}: it saves {sorted(theirs)}, not {sorted(mine)}")
    for group, tensors in mine.items():
        if tensors.keys() != theirs[group].keys():
            subject.fail("resume", f"{prefix}: {group} holds other tensors")
        for key, value in tensors.items():
            if not torch.equal(value, theirs[group][key]):
                subject.fail("resume", f"{prefix} in {group}.{key} (state the recipe keeps outside state_dict(), "
                                       "a trained module not declared as a slot or in owned_networks, "
                                       "or randomness not drawn from torch's generators?)")
    ends = [c.metadata["training_state"]["step"] for c in (want, got)]
    if ends != [2 * steps, 2 * steps]:
        subject.fail("resume", f"{prefix}: the runs end at steps {ends}, not {2 * steps}")
