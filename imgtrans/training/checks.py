"""Settings that are valid one by one (config.py checks each) but cannot make a run together,
checked before any data is read or folder created, so that such a run says so in one line and
leaves nothing behind."""
from __future__ import annotations

from ..core.config import TrainConfig
from ..util.errors import ConfigError


def check_run_settings(config: TrainConfig) -> None:
    run, optim = config.run, config.optim
    if run.checkpoint_every_steps < 0 or run.keep_checkpoints < 1 or run.checkpoint_every < 1:
        raise ConfigError("run.checkpoint_every must be >= 1, run.checkpoint_every_steps >= 0 (0: off) and "
                          "run.keep_checkpoints >= 1")
    if optim.epochs + optim.epochs_decay < 1:
        raise ConfigError(f"a run must have at least one step: --epochs {optim.epochs} and --epochs-decay "
                          f"{optim.epochs_decay} give none (optim.epochs + optim.epochs_decay must be >= 1)")
    if optim.max_steps is not None and optim.max_steps < 1:
        raise ConfigError(f"a run must have at least one step: --max-steps {optim.max_steps} (optim.max_steps) "
                          "must be >= 1, or unset")
    if run.keep_best is not None and not run.validate_every:
        raise ConfigError(f"--keep-best {run.keep_best} needs --validate-every N (run.validate_every): the best "
                          "checkpoint is chosen by validation scores")
