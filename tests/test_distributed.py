"""Data-parallel training with torchrun: sharding, identical weights, equivalence, resume, refusals."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import assert_same_networks, records, write_aligned

from imgtrans.cli import cli
from imgtrans.core.checkpoint import load_checkpoint
from imgtrans.training.data_order import EpochSampler
from imgtrans.training.step_engine import ProcessGroup, _buckets
from imgtrans.util.errors import ConfigError

#: a norm-free, dropout-free configuration: its gradient is an exact mean over the batch, so two
#: processes with batch 1 must equal one process with batch 2 (up to summation order)
NORM_FREE = ["--set", "generator.name=unet", "--set", "generator.num_downs=6", "--set", "generator.ngf=8",
             "--set", "generator.norm=none", "--set", "generator.dropout=false", "--set", "discriminator.ndf=8",
             "--set", "discriminator.norm=none", "--set", "data.flip=false"]
COMMON = ["--load-size", "64", "--crop-size", "64", "--precision", "fp32", "--quiet", "--epochs", "1",
          "--epochs-decay", "1"]


def _start(*args: str | Path, cwd: Path) -> subprocess.Popen:
    """``python -m imgtrans ARGS`` started on one thread; runs that do not depend on each other are
    started together (each spends seconds importing on one core)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "imgtrans", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _imgtrans(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return _wait(_start(*args, cwd=cwd))


# -- sharding -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,world", [(8, 2), (7, 2), (5, 3), (2, 4)])
def test_shards_cover_the_epoch_evenly(size: int, world: int) -> None:
    samplers = [EpochSampler(size, seed=3, rank=r, world_size=world) for r in range(world)]
    shards = [[i for i, _ in s] for s in samplers]
    assert {len(s) for s in shards} == {len(samplers[0])} == {-(-size // world)}  # equal step counts
    assert set().union(*shards) == set(range(size))  # nothing left out
    order = samplers[0].permutation(1)
    # step k of all ranks together = items k*world .. k*world+world-1 of the one-process order
    for k in range(len(shards[0])):
        together = [shards[r][k] for r in range(world)]
        expected = [(order * world)[k * world + r] for r in range(world)]
        assert together == expected


def test_shard_resumes_part_way_and_reshuffles_per_epoch() -> None:
    s = EpochSampler(10, seed=0, rank=1, world_size=2)
    full = [i for i, _ in s]
    s.set_epoch(1, start=2)
    assert [i for i, _ in s] == full[2:]
    s.set_epoch(2)
    assert [i for i, _ in s] != full


def test_process_group_reads_torchrun_environment(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    group = ProcessGroup.from_environment()
    assert (group.rank, group.world_size, group.is_main, group.distributed) == (2, 4, False, True)
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ConfigError, match="torchrun environment"):
        ProcessGroup.from_environment()


def test_gradient_buckets_are_bounded_and_complete(monkeypatch) -> None:
    import imgtrans.training.step_engine as d

    monkeypatch.setattr(d, "BUCKET_ELEMENTS", 10)
    tensors = [torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.zeros(20), torch.zeros(3, dtype=torch.float64)]
    buckets = list(_buckets(tensors))
    assert [len(b) for b in buckets] == [2, 1, 1, 1]
    assert sum(len(b) for b in buckets) == len(tensors)


def test_nproc_is_refused_inside_torchrun(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    data = write_aligned(tmp_path / "data", count=2)
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(data), "--nproc", "2",
                                      "--out", str(tmp_path / "run"), *COMMON, *NORM_FREE])
    assert result.exit_code != 0 and "under torchrun leave it out" in result.output


# -- real processes ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_combined_batch(tmp_path: Path) -> None:
    write_aligned(tmp_path / "data", count=8)
    runs = [_start("train", "pix2pix", "--data", "data", "--out", "two", "--nproc", "2", *COMMON, *NORM_FREE,
                   cwd=tmp_path),
            _start("train", "pix2pix", "--data", "data", "--out", "one", "--batch-size", "2", *COMMON, *NORM_FREE,
                   cwd=tmp_path)]
    two, one = map(_wait, runs)
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("done:") == 1  # one report, from rank 0
    assert one.returncode == 0, one.stderr

    two_records = records(tmp_path / "two")
    digests = next(r["weights_digests"] for r in two_records if "weights_digests" in r)
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks ended bit-identical
    steps = [r["step"] for r in two_records if "G_L1" in r]
    assert steps == sorted(set(steps)) == [8]  # rank 0 alone wrote: no duplicated records
    assert two_records[0]["processes"] == 2 and two_records[0]["precision"] == "fp32"
    keys = ("G_L1", "G_GAN", "D_real", "D_fake")
    two_losses = next(r for r in two_records if "G_L1" in r)
    one_losses = next(r for r in records(tmp_path / "one") if "G_L1" in r)
    assert {k: two_losses[k] for k in keys} == pytest.approx({k: one_losses[k] for k in keys}, rel=1e-4)

    a = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.safetensors")
    b = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.safetensors")
    assert a.metadata["training_state"]["step"] == b.metadata["training_state"]["step"] == 8
    for name in ("generator", "discriminator"):
        for key, tensor in a.state_dict(name).items():
            torch.testing.assert_close(tensor, b.state_dict(name)[key], atol=1e-5, rtol=1e-4, msg=key)
    assert (tmp_path / "two" / "model.safetensors").is_file()


@pytest.mark.slow
def test_distributed_resume_continues_every_process_exactly(tmp_path: Path) -> None:
    """With dropout on, each process has its own random stream; resuming restores all of them."""
    write_aligned(tmp_path / "data", count=8)
    tiny = ["--set", "generator.name=unet", "--set", "generator.num_downs=6", "--set", "generator.ngf=8",
            "--set", "discriminator.ndf=8", "--set", "run.checkpoint_every_steps=2"]
    runs = [_start("train", "pix2pix", "--data", "data", "--out", "whole", "--nproc", "2", *COMMON, *tiny,
                   cwd=tmp_path),
            _start("train", "pix2pix", "--data", "data", "--out", "part", "--nproc", "2", "--max-steps", "3",
                   *COMMON, *tiny, cwd=tmp_path)]
    whole, part = map(_wait, runs)
    assert whole.returncode == 0, whole.stderr
    assert part.returncode == 0, part.stderr
    resumed = _imgtrans("train", "--resume", "part", "--max-steps", "8", "--nproc", "2", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.safetensors")
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.safetensors")
    assert_same_networks(a, b, ("generator", "discriminator"))


@pytest.mark.slow
def test_sync_bn_on_cpu_is_refused_clearly(tmp_path: Path) -> None:
    write_aligned(tmp_path / "data", count=4)
    proc = _imgtrans("train", "pix2pix", "--data", "data", "--out", "run", "--nproc", "2", "--sync-bn", *COMMON,
                     *NORM_FREE, cwd=tmp_path)
    assert proc.returncode != 0
    assert "SyncBatchNorm does not run on the CPU" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cyclegan_two_processes_equal_one_process_with_the_combined_batch(tmp_path: Path) -> None:
    """Both generators and both discriminators are averaged; the image pools are still filling, so
    each process's pool returns exactly what the one process's pool returns for its half."""
    from helpers import write_unpaired

    write_unpaired(tmp_path / "data", count=8)
    norm_free = [f"--set={slot}.{key}" for slot in ("generator_a", "generator_b") for key in ("norm=none", "ngf=4")]
    norm_free += [f"--set={slot}.{key}" for slot in ("discriminator_a", "discriminator_b")
                  for key in ("norm=none", "ndf=4")]
    common = [*norm_free, "--set", "data.flip=false", "--load-size", "32", "--crop-size", "32", "--precision", "fp32",
              "--quiet", "--epochs", "1", "--epochs-decay", "1"]
    runs = [_start("train", "cyclegan", "--data", "data", "--out", "two", "--nproc", "2", *common, cwd=tmp_path),
            _start("train", "cyclegan", "--data", "data", "--out", "one", "--batch-size", "2", *common, cwd=tmp_path)]
    two, one = map(_wait, runs)
    assert two.returncode == 0, two.stderr
    assert one.returncode == 0, one.stderr
    a = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.safetensors")
    b = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.safetensors")
    assert a.metadata["training_state"]["step"] == b.metadata["training_state"]["step"] == 8
    for name in ("generator_a", "generator_b", "discriminator_a", "discriminator_b"):
        for key, tensor in a.state_dict(name).items():
            torch.testing.assert_close(tensor, b.state_dict(name)[key], atol=1e-5, rtol=1e-4, msg=f"{name}.{key}")
