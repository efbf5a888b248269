"""``imgtrans train --nproc N``: the same command in N processes on this machine, started through
torchrun's API (its command-line wrapper would add a launcher traceback to every worker's error).

Every worker re-reads the settings from the command line it is given: a fresh run passes its
resolved config as a temporary ``config.toml``, a resumed run the run directory and the options
that extend it.  For several machines, users run ``torchrun ... -m imgtrans train`` themselves.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.config import TrainConfig
from ..util.errors import ConfigError, RunError
from .placement import check_processes
from .resume import EXTENDABLE


def launch(nproc: int, args: Sequence[str]) -> None:
    """Run ``imgtrans train ARGS`` in ``nproc`` processes on this machine."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--nproc starts its own processes; under torchrun leave it out "
                          "(torchrun's --nproc-per-node sets their number)")
    # CPU processes share the cores rather than each taking all of them (torchrun's own default is 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "imgtrans", "train", *args]))
    except ChildFailedError as exc:
        codes = sorted({f.exitcode for f in exc.failures.values()})
        raise RunError(f"distributed training stopped (exit status {', '.join(map(str, codes))}); "
                       "see the messages above") from None


def launch_run(nproc: int, config: TrainConfig, *, overwrite: bool = False, quiet: bool = False) -> None:
    """Train ``config`` in ``nproc`` processes. It is checked here first, so that a mistake is
    reported once rather than by every process."""
    check_processes(config, nproc)
    with tempfile.TemporaryDirectory(prefix="imgtrans-") as tmp:
        toml = Path(tmp) / "config.toml"
        toml.write_text(config.to_toml(), encoding="utf-8")
        launch(nproc, [config.recipe.name, "--config", str(toml), *(["--overwrite"] if overwrite else []),
                       *(["--quiet"] if quiet else [])])


def launch_resume(nproc: int, run_dir: str | Path, extend: Mapping[str, Any], *, quiet: bool = False) -> None:
    """Continue the run in ``run_dir`` in ``nproc`` processes, extended by the :data:`EXTENDABLE`
    options in ``extend`` (None: not given)."""
    args = [a for k in EXTENDABLE if extend.get(k) is not None for a in (f"--{k.replace('_', '-')}", str(extend[k]))]
    launch(nproc, ["--resume", str(run_dir), *args, *(["--quiet"] if quiet else [])])
