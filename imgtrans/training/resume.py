"""``train --resume``: with which settings a run continues, from which checkpoint, and what its
run directory keeps.

A resumed run continues with its own ``config.toml``; only its length may grow (:data:`EXTENDABLE`).
It continues from the newest intact checkpoint, on the same data, and the metrics a killed run
logged after that checkpoint are dropped, since the steps behind them are trained again.  What a
checkpoint holds and how it is restored: :mod:`imgtrans.training.checkpoints`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.checkpoint import Checkpoint
from ..core.config import TrainConfig, load_toml, resolve
from ..core.registry import Registry
from ..util.errors import ConfigError
from ..util.fileio import atomic_path
from ..util.terminal import warn_stderr
from . import rundir as rd
from .checkpoints import STATE_KEY, latest_checkpoint
from .data_order import RECORD_KEY, check_same_data
from .rundir import RunLock

#: options that ``--resume`` accepts, and only to extend the run (config section, key)
EXTENDABLE = {"epochs": ("optim", "epochs"), "epochs_decay": ("optim", "epochs_decay"),
              "max_steps": ("optim", "max_steps")}


def resume_config(run_dir: str | Path, registry: Registry, extend: Mapping[str, Any] | None = None) -> TrainConfig:
    """The resolved config of ``run_dir`` (its ``config.toml``), with ``extend`` applied: only
    ``epochs``, ``epochs_decay`` and ``max_steps``, and only raised."""
    run_dir = Path(run_dir)
    toml = run_dir / "config.toml"
    if not toml.is_file():
        what = "does not exist" if not run_dir.exists() else "holds no config.toml"
        raise ConfigError(f"cannot resume {run_dir}: it {what} (pass the run directory of an earlier `imgtrans train`)")
    tree = load_toml(toml)
    recipe = tree.get("recipe", {}).get("name") if isinstance(tree.get("recipe"), dict) else None
    if not recipe:
        raise ConfigError(f"{toml} names no recipe ([recipe] name = ...)")
    saved = resolve(recipe, registry, [tree])
    layer: dict[str, dict[str, Any]] = {}
    for option, value in (extend or {}).items():
        if value is None:
            continue
        if option not in EXTENDABLE:
            raise ConfigError(f"--resume continues a run with its own settings; {option} cannot be changed "
                              "(only --epochs, --epochs-decay and --max-steps, to extend it)")
        section, key = EXTENDABLE[option]
        old = getattr(getattr(saved, section), key)
        if old is None or value < old:
            was = "no limit" if old is None else old
            raise ConfigError(f"--resume can only extend a run: --{option.replace('_', '-')} {value} is below "
                              f"the run's {was}")
        layer.setdefault(section, {})[key] = value
    config = resolve(recipe, registry, [tree, layer])
    config.run.out = str(run_dir)
    return config


def resume_config_for(run_dir: str | Path, registry: Registry, *, recipe: str | None = None,
                      options: Mapping[str, Any] | None = None, refused: Sequence[str] = ()) -> TrainConfig:
    """The config of ``imgtrans train [RECIPE] --resume RUN_DIR [options]``.

    ``options`` are the command line's settings by name (None where not given): only those of
    :data:`EXTENDABLE` may be given, to extend the run.  ``refused`` are the flags given that a
    resume never takes (``--config``, ``--set``, a recipe's own options...).  A ``recipe`` must
    be the run's."""
    options = options or {}
    refused = [f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None and k not in EXTENDABLE] \
        + list(refused)
    if refused:
        raise ConfigError(f"--resume continues a run with its own settings: {', '.join(refused)} cannot be given "
                          "with it (only --epochs, --epochs-decay and --max-steps, to extend the run)")
    config = resume_config(run_dir, registry, {k: options.get(k) for k in EXTENDABLE})
    if recipe is not None and recipe != config.recipe.name:
        raise ConfigError(f"{run_dir} is a {config.recipe.name!r} run, not {recipe!r}")
    return config


def lock_and_find_checkpoint(config: TrainConfig, lock: RunLock) -> Checkpoint:
    """Lock the run in ``config.run.out`` and find its newest readable checkpoint (rank 0 only)."""
    run_dir = Path(config.run.out)
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"cannot resume {run_dir}: it holds no config.toml")
    lock.acquire()
    return latest_checkpoint(run_dir, warn_stderr)


def continue_run_dir(config: TrainConfig, ckpt: Checkpoint, data: dict[str, Any], *,
                     allow_data_change: bool = False) -> None:
    """Once the resume is known to work (same data, everything built): tidy the run directory
    for its continuation and record its new length (rank 0 only: it writes)."""
    run_dir = Path(config.run.out)
    state = ckpt.metadata[STATE_KEY]
    check_same_data(state.get(RECORD_KEY), data, run_dir, allow_change=allow_data_change)
    rd.remove_stale_temp_files(run_dir)
    with atomic_path(run_dir / "config.toml") as tmp:  # an extended run records its new length
        tmp.write_text(config.to_toml(), encoding="utf-8")
    (run_dir / "previews").mkdir(exist_ok=True)
    trim_metrics(run_dir / "metrics.jsonl", state["step"])


def trim_metrics(path: Path, step: int) -> None:
    """Drop the records a killed run logged after the checkpoint it resumes from (they are redone)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
        if not isinstance(record.get("step"), int) or record["step"] <= step:
            kept.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
