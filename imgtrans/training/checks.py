"""Settings that only make sense together, checked before any data is read or folder created,
so that a run that cannot work says so in one line and leaves nothing behind."""
from __future__ import annotations

from ..config import TrainConfig
from ..errors import ConfigError


def check_run_settings(config: TrainConfig) -> None:
    run, optim, data = config.run, config.optim, config.data
    if run.checkpoint_every_steps < 0 or run.keep_checkpoints < 1 or run.checkpoint_every < 1:
        raise ConfigError("run.checkpoint_every must be >= 1, run.checkpoint_every_steps >= 0 (0: off) and "
                          "run.keep_checkpoints >= 1")
    for key in ("epochs", "epochs_decay"):
        if getattr(optim, key) < 0:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(optim, key)} is negative (optim.{key} must be >= 0)")
    if optim.epochs + optim.epochs_decay < 1:
        raise ConfigError("a run must have at least one step: --epochs 0 and --epochs-decay 0 give none "
                          "(optim.epochs + optim.epochs_decay must be >= 1)")
    if optim.max_steps is not None and optim.max_steps < 1:
        raise ConfigError(f"a run must have at least one step: --max-steps {optim.max_steps} (optim.max_steps) "
                          "must be >= 1, or unset")
    if data.crop_size > data.load_size:
        raise ConfigError(f"--crop-size {data.crop_size} is larger than --load-size {data.load_size} (images are "
                          f"resized to the load size, then cropped): pass --load-size {data.crop_size} or more, "
                          "or a smaller --crop-size")
