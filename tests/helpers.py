"""Small builders shared by the tests, and what the tests of training runs share: running
``imgtrans train`` in a process that can be killed, reading a run's metrics log, comparing the
checkpoints of two runs tensor by tensor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from imgtrans.core.checkpoint import Checkpoint, save_checkpoint
from imgtrans.core.interfaces import Generator

# the tiny dataset writers live in the conformance kit, which plugin authors use too
from imgtrans.testing.samples import write_aligned, write_unpaired

__all__ = ["TINY", "TinyGen", "assert_same_networks", "assert_same_state", "finish", "kill_when", "losses", "records",
           "tiny_model_file", "train_process", "write_aligned", "write_unpaired"]

#: small pix2pix networks for 64x64 crops: a 6-level U-Net (stride 64) and a narrow PatchGAN
TINY = {"generator": {"name": "unet", "num_downs": 6, "ngf": 8}, "discriminator": {"ndf": 8}}


# -- runs in a process of their own ----------------------------------------------------------------

def train_process(*args: str | Path) -> subprocess.Popen:
    """``imgtrans train ARGS --quiet`` in a new process, on one thread: two such processes in the
    same environment compute identically."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "imgtrans", "train", *map(str, args), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    """Wait for ``proc`` to succeed; returns what it wrote on stderr."""
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return err


def kill_when(proc: subprocess.Popen, path: Path) -> None:
    """SIGKILL ``proc`` as soon as ``path`` exists (it must not end before)."""
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


# -- what a run wrote --------------------------------------------------------------------------------

def records(run: Path) -> list[dict]:
    """Every record of the run's metrics.jsonl."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses(run: Path) -> list[dict]:
    """The run's records by step, without what depends on the clock (``time``, ``img_per_s``)."""
    return [{k: v for k, v in r.items() if k not in ("time", "img_per_s")} for r in records(run) if "step" in r]


def assert_same_state(want: Checkpoint, got: Checkpoint) -> None:
    """Two checkpoints hold the same groups (networks; optimizers, RNG, recipe state) with the same
    keys and bit-identical tensors."""
    assert set(want.tensors) == set(got.tensors)
    assert set(want.state) == set(got.state)
    for group, tensors in {**want.tensors, **want.state}.items():
        other = {**got.tensors, **got.state}[group]
        assert tensors.keys() == other.keys(), group
        for key, value in tensors.items():
            assert torch.equal(value, other[key]), f"{group}.{key}"


def assert_same_networks(want: Checkpoint, got: Checkpoint, names: Iterable[str]) -> None:
    """The networks ``names`` of two checkpoints are bit-identical (the keys of ``want``'s)."""
    for name in names:
        for key, tensor in want.state_dict(name).items():
            assert torch.equal(tensor, got.state_dict(name)[key]), key


def tiny_model_file(folder: Path) -> Path:
    """``folder/m.safetensors``: a tiny U-Net (stride 32) as a self-describing checkpoint."""
    import imgtrans

    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    meta = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3, "out_channels": 3,
            "stride": 32}
    return save_checkpoint(Path(folder) / "m.safetensors", {"generator": gen}, meta)


class TinyGen(Generator):
    """A conforming tiny generator of any size (conformance tests subclass it to break one rule)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 1
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x))
