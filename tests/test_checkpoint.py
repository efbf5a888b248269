"""Checkpoints are self-describing safetensors files that round-trip bit for bit."""
from __future__ import annotations

import pytest
import torch

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from imgtrans.util.errors import CheckpointError

META = {"generator": {"name": "unet_256", "ngf": 8}, "in_channels": 3, "out_channels": 3, "stride": 256,
        "direction": "AtoB", "norm_stats": "running", "recipe": "pix2pix"}


def test_round_trip_is_bit_exact(tmp_path) -> None:
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet_256", ngf=8)
    gen.train()(torch.randn(2, 3, 256, 256))  # move the running statistics away from their init
    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, META)
    ckpt = load_checkpoint(path)
    state = gen.state_dict()
    assert set(ckpt.state_dict("generator")) == set(state)
    for key, value in state.items():
        loaded = ckpt.state_dict("generator")[key]
        assert loaded.dtype == value.dtype and torch.equal(loaded, value), key
    assert ckpt.metadata["generator"] == META["generator"] and ckpt.metadata["stride"] == 256
    model = imgtrans.load_model(path)
    x = torch.randn(1, 3, 256, 256)
    assert torch.equal(model.generator(x), gen.eval()(x))


def test_load_model_needs_no_architecture_flags(tmp_path) -> None:
    gen = imgtrans.create_generator("unet_128", ngf=4, in_channels=1, norm="instance", dropout=False)
    meta = {**META, "generator": {"name": "unet_128", **gen.imgtrans_spec["args"]}, "in_channels": 1, "stride": 128}
    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, meta)
    model = imgtrans.load_model(path)
    assert model.in_channels == 1 and model.stride == 128
    assert read_metadata(path)["format"] == "imgtrans-checkpoint/1"


def test_corrupt_and_foreign_files_are_clear_errors(tmp_path) -> None:
    gen = imgtrans.create_generator("unet_256", ngf=4)
    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, META)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        imgtrans.load_model(truncated)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an imgtrans checkpoint"):
        imgtrans.load_model(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        imgtrans.load_model(tmp_path / "nope.safetensors")
    wrong = save_checkpoint(tmp_path / "wrong.safetensors", {"generator": gen},
                            {**META, "generator": {"name": "unet_128", "ngf": 4}})
    with pytest.raises(CheckpointError, match="do not fit generator 'unet_128'"):
        imgtrans.load_model(wrong)


def test_write_is_atomic(tmp_path, monkeypatch) -> None:
    import imgtrans.core.checkpoint as ck

    gen = imgtrans.create_generator("unet_256", ngf=4)
    target = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, META)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", fail)
    with pytest.raises(OSError):
        save_checkpoint(target, {"generator": gen}, META)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_written_files_get_ordinary_permissions(tmp_path) -> None:
    import os
    import stat

    from imgtrans.util.fileio import UMASK

    path = save_checkpoint(tmp_path / "m.safetensors", {"generator": imgtrans.create_generator("unet_256", ngf=4)}, META)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~UMASK  # not mkstemp's 0600
